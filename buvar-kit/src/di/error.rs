use std::fmt;

use crate::BoxError;
use crate::config::ConfigError;
use crate::current::NoCurrentContext;

/// Why a dependency could not be resolved, with the chain of types that led there.
///
/// Its `Display` reads as the chain: ``"`Service` needs `Repo` needs `Pool`: no component and
/// no adapter for `Pool`"``.
#[derive(Debug)]
pub struct ResolveError {
    chain: Vec<&'static str>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Missing {
        name: Option<String>,
        /// An `Arc<T>` component found where a `T` was looked for: added with `add(Arc::new(..))`.
        added_as_arc: Option<&'static str>,
    },
    Cycle,
    Adapter {
        adapter: &'static str,
        source: BoxError,
    },
    Config {
        section: &'static str,
        source: ConfigError,
    },
    Outside(NoCurrentContext),
}

impl ResolveError {
    pub(crate) fn missing(chain: Vec<&'static str>, name: Option<&str>) -> Self {
        Self {
            chain,
            kind: Kind::Missing {
                name: name.map(str::to_owned),
                added_as_arc: None,
            },
        }
    }

    pub(crate) fn cycle(chain: Vec<&'static str>) -> Self {
        Self {
            chain,
            kind: Kind::Cycle,
        }
    }

    pub(crate) fn adapter(
        chain: Vec<&'static str>,
        adapter: &'static str,
        source: BoxError,
    ) -> Self {
        Self {
            chain,
            kind: Kind::Adapter { adapter, source },
        }
    }

    pub(crate) fn config(
        chain: Vec<&'static str>,
        section: &'static str,
        source: ConfigError,
    ) -> Self {
        Self {
            chain,
            kind: Kind::Config { section, source },
        }
    }

    /// Says that a component `arc` (an `Arc<T>`) exists where this error found no `T`.
    pub(crate) fn added_as_arc(mut self, arc: &'static str) -> Self {
        if let Kind::Missing { added_as_arc, .. } = &mut self.kind {
            *added_as_arc = Some(arc);
        }
        self
    }

    /// A resolution through [`crate::nject`] where no context is current.
    pub(crate) fn outside<T: ?Sized>() -> Self {
        Self {
            chain: vec![std::any::type_name::<T>()],
            kind: Kind::Outside(NoCurrentContext),
        }
    }

    /// No context was current (see [`Context::current`](crate::Context::current)).
    pub fn is_outside_context(&self) -> bool {
        matches!(self.kind, Kind::Outside(_))
    }

    /// A config section failed to load (see [`std::error::Error::source`]).
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config { .. })
    }

    /// Nothing provides a type somewhere down the chain: no component, no override, no adapter.
    pub fn is_missing(&self) -> bool {
        matches!(self.kind, Kind::Missing { .. })
    }

    /// The chain of adapters depends on itself.
    pub fn is_cycle(&self) -> bool {
        matches!(self.kind, Kind::Cycle)
    }

    /// An adapter ran and returned an error (see [`std::error::Error::source`]).
    pub fn is_adapter_failure(&self) -> bool {
        matches!(self.kind, Kind::Adapter { .. })
    }

    /// The type names from the one asked for down to the one that failed, by full path.
    pub fn chain(&self) -> &[&'static str] {
        &self.chain
    }

    /// The type that could not be provided (the last link of the chain).
    pub fn type_name(&self) -> &'static str {
        self.chain.last().copied().unwrap_or("?")
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failing = short_type_name(self.type_name());
        match &self.kind {
            Kind::Cycle => {
                let path: Vec<String> = self.chain.iter().map(|t| short_type_name(t)).collect();
                write!(
                    f,
                    "dependency cycle: {}; break it by adding one of these as a component",
                    path.join(" -> ")
                )
            }
            Kind::Outside(outside) => write!(f, "cannot resolve `{failing}`: {outside}"),
            kind => {
                for (i, link) in self.chain.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" needs ")?;
                    }
                    write!(f, "`{}`", short_type_name(link))?;
                }
                match kind {
                    Kind::Missing {
                        name,
                        added_as_arc: Some(arc),
                    } => write!(
                        f,
                        ": no component `{failing}`{}, but there is a component `{}`: it was added with `add(Arc::new(..))`, which stores the `Arc` itself; did you mean `add_arc`? It stores the `Arc` as the `{failing}` it points to",
                        name.as_ref()
                            .map(|n| format!(" named `{n}`"))
                            .unwrap_or_default(),
                        short_type_name(arc)
                    ),
                    Kind::Missing {
                        name: None,
                        added_as_arc: None,
                    } => write!(
                        f,
                        ": no component and no adapter for `{failing}`; add one to the context or register an adapter"
                    ),
                    Kind::Missing {
                        name: Some(name),
                        added_as_arc: None,
                    } => write!(
                        f,
                        ": no component `{failing}` named `{name}` (nor an unnamed one) and no adapter for it"
                    ),
                    Kind::Adapter { adapter, source } => write!(
                        f,
                        ": adapter `{}` failed: {source}",
                        short_type_name(adapter)
                    ),
                    Kind::Config { section, source } => write!(
                        f,
                        ": config section `{}` failed to load: {source}",
                        short_type_name(section)
                    ),
                    Kind::Cycle | Kind::Outside(_) => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Adapter { source, .. } => Some(&**source),
            Kind::Config { source, .. } => Some(source),
            Kind::Outside(outside) => Some(outside),
            _ => None,
        }
    }
}

/// `alloc::sync::Arc<my_app::db::Pool>` -> `Arc<Pool>`: the module paths only add noise to a
/// chain a person reads.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    for (i, c) in full.char_indices() {
        if matches!(c, '<' | '>' | ',' | ' ' | '(' | ')' | '[' | ']' | ';' | '&') {
            out.push_str(last_path_segment(&full[segment_start..i]));
            out.push(c);
            segment_start = i + c.len_utf8();
        }
    }
    out.push_str(last_path_segment(&full[segment_start..]));
    out
}

fn last_path_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names_drop_module_paths_inside_generics() {
        assert_eq!(
            short_type_name("alloc::sync::Arc<my_app::db::Pool>"),
            "Arc<Pool>"
        );
        assert_eq!(
            short_type_name("core::option::Option<(a::B, c::D)>"),
            "Option<(B, D)>"
        );
        assert_eq!(short_type_name("u32"), "u32");
    }

    #[test]
    fn missing_error_reads_as_the_whole_chain() {
        let err = ResolveError::missing(vec!["app::Service", "app::Repo", "db::Pool"], None);
        assert_eq!(
            err.to_string(),
            "`Service` needs `Repo` needs `Pool`: no component and no adapter for `Pool`; add one to the context or register an adapter"
        );
        assert!(err.is_missing());
        assert_eq!(err.type_name(), "db::Pool");
    }

    #[test]
    fn cycle_error_shows_the_cycle() {
        let err = ResolveError::cycle(vec!["x::A", "x::B", "x::A"]);
        assert!(
            err.to_string().starts_with("dependency cycle: A -> B -> A"),
            "{err}"
        );
        assert!(err.is_cycle());
    }
}
