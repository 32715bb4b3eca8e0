use std::any::TypeId;
use std::fmt::{self, Write as _};

use super::error::short_type_name;
use super::{Adapters, Entry, Requirement};
use crate::Context;

/// Every problem [`Adapters::validate`] found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the dependency graph has {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
pub struct ValidationError {
    problems: Vec<String>,
}

impl ValidationError {
    /// The problems, one sentence each.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

/// The registered adapters as a graph of types, exportable as Mermaid or DOT text.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    edges: Vec<Edge>,
    products: Vec<String>,
}

#[derive(Debug, Clone)]
struct Edge {
    product: String,
    dependency: String,
    label: String,
    optional: bool,
}

impl Graph {
    /// A Mermaid flowchart: one node per type, an edge from each product to what it needs.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for product in &self.products {
            let _ = writeln!(out, "    {}[\"{}\"]", node_id(product), product);
        }
        for edge in &self.edges {
            let arrow = if edge.optional { "-.->" } else { "-->" };
            let _ = writeln!(
                out,
                "    {}[\"{}\"] {arrow}|{}| {}[\"{}\"]",
                node_id(&edge.product),
                edge.product,
                edge.label,
                node_id(&edge.dependency),
                edge.dependency
            );
        }
        out
    }

    /// A Graphviz digraph with the same content as [`Graph::to_mermaid`].
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph dependencies {\n    rankdir=LR;\n");
        for product in &self.products {
            let _ = writeln!(out, "    \"{product}\";");
        }
        for edge in &self.edges {
            let style = if edge.optional { ", style=dashed" } else { "" };
            let _ = writeln!(
                out,
                "    \"{}\" -> \"{}\" [label=\"{}\"{style}];",
                edge.product, edge.dependency, edge.label
            );
        }
        out.push_str("}\n");
        out
    }
}

fn node_id(type_name: &str) -> String {
    type_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl Adapters {
    /// Checks, before anything runs, that every registered adapter's dependencies can be
    /// provided by `context` or by other adapters, and runs each dependency's start-up check
    /// (a config section that fails to load is reported here). Lists every problem at once.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use buvar_kit::Context;
    /// struct Pool;
    /// struct Repo;
    /// struct Mailer;
    /// fn repo(_: Arc<Pool>) -> Repo { Repo }
    /// fn mailer(_: Arc<String>) -> Mailer { Mailer }
    ///
    /// let ctx = Context::new();
    /// ctx.adapters().register_infallible(repo);
    /// ctx.adapters().register_infallible(mailer);
    /// let err = ctx.adapters().validate(&ctx).unwrap_err();
    /// assert_eq!(err.problems().len(), 2);
    /// ```
    pub fn validate(&self, context: &Context) -> Result<(), super::ValidationError> {
        let mut problems = Vec::new();
        for entry in self.entries().iter() {
            for requirement in entry.requirements.iter().filter(|r| !r.optional) {
                let mut path = vec![entry.product];
                if let Err(reason) = self.check(context, requirement, &mut path) {
                    problems.push(format!(
                        "`{}` (adapter `{}`) needs `{}`{}: {reason}",
                        short_type_name(entry.product_name),
                        short_type_name(entry.adapter_name),
                        short_type_name(requirement.type_name),
                        requirement
                            .name
                            .map(|n| format!(" named `{n}`"))
                            .unwrap_or_default(),
                    ));
                }
            }
        }
        problems.dedup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { problems })
        }
    }

    fn check(
        &self,
        context: &Context,
        requirement: &Requirement,
        path: &mut Vec<TypeId>,
    ) -> Result<(), String> {
        if let Some(check) = requirement.check {
            check(context)?;
        }
        if context.contains_type(requirement.type_id, requirement.name) {
            return Ok(());
        }
        if requirement.context_only {
            return Err("no such component in the context".to_owned());
        }
        if path.contains(&requirement.type_id) {
            return Err("dependency cycle".to_owned());
        }
        let candidates = self.for_product(requirement.type_id).unwrap_or_default();
        if candidates.is_empty() {
            return Err("no component and no adapter".to_owned());
        }
        path.push(requirement.type_id);
        let mut first_reason = None;
        for candidate in candidates.iter() {
            match self.check_entry(context, candidate, path) {
                Ok(()) => {
                    path.pop();
                    return Ok(());
                }
                Err(reason) => {
                    first_reason.get_or_insert(reason);
                }
            }
        }
        path.pop();
        Err(first_reason.unwrap_or_default())
    }

    fn check_entry(
        &self,
        context: &Context,
        entry: &Entry,
        path: &mut Vec<TypeId>,
    ) -> Result<(), String> {
        for requirement in entry.requirements.iter().filter(|r| !r.optional) {
            self.check(context, requirement, path).map_err(|reason| {
                format!(
                    "needs `{}`: {reason}",
                    short_type_name(requirement.type_name)
                )
            })?;
        }
        Ok(())
    }

    /// The adapters as a graph of types.
    pub fn graph(&self) -> Graph {
        let mut graph = Graph::default();
        for entry in self.entries().iter() {
            let product = short_type_name(entry.product_name);
            if !graph.products.contains(&product) {
                graph.products.push(product.clone());
            }
            for requirement in &entry.requirements {
                graph.edges.push(Edge {
                    product: product.clone(),
                    dependency: short_type_name(requirement.type_name),
                    label: match requirement.name {
                        Some(name) => format!("{} ({name})", short_type_name(entry.adapter_name)),
                        None => short_type_name(entry.adapter_name),
                    },
                    optional: requirement.optional,
                });
            }
        }
        graph
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_mermaid())
    }
}
