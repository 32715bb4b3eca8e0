//! Keys that match no field of their section, with where they were set and the closest field.

use std::fmt;

use figment::Figment;
use figment::value::Value;

use super::origin::origin;
use super::schema::{Node, Schema, section_path};
use super::typo::closest;

/// A key that matches no field of its section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKey {
    pub(super) key: String,
    pub(super) origin: String,
    pub(super) suggestion: Option<String>,
    /// `unknown key` or `unknown section`.
    pub(super) what: &'static str,
}

impl UnknownKey {
    /// The dotted key, e.g. `http.portt`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where it was set: file and line, TOML text, environment variable...
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}, from {}", self.key, self.what, self.origin)?;
        match &self.suggestion {
            Some(suggestion) => write!(f, "; did you mean `{suggestion}`?"),
            None => f.write_str("; remove it or check its spelling"),
        }
    }
}

/// Keys under `schema`'s section that match none of its fields. Tables that hold another
/// known section (`[db.replica]` inside `[db]`) are not unknown; at the root, no table is,
/// since each belongs to some section.
pub(super) fn unknown_keys(
    figment: &Figment,
    schema: &Schema,
    sections: &[Vec<String>],
) -> Vec<UnknownKey> {
    let path = section_path(schema.section);
    let Ok(value) = figment.find_value(schema.section) else {
        return Vec::new();
    };
    let mut scan = UnknownScan {
        figment,
        sections,
        found: Vec::new(),
    };
    scan.visit(&value, &schema.tree, &path);
    scan.found
}

struct UnknownScan<'a> {
    figment: &'a Figment,
    sections: &'a [Vec<String>],
    found: Vec<UnknownKey>,
}

impl UnknownScan<'_> {
    fn visit(&mut self, value: &Value, node: &Node, path: &[String]) {
        let (Node::Fields(fields), Value::Dict(_, dict)) = (node, value) else {
            return;
        };
        for (key, value) in dict {
            let mut child = path.to_vec();
            child.push(key.clone());
            match fields.get(key) {
                Some(node) => self.visit(value, node, &child),
                None if self.belongs_elsewhere(path, key, value, &child) => {}
                None => self.found.push(UnknownKey {
                    key: child.join("."),
                    origin: self.figment.get_metadata(value.tag()).map_or_else(
                        || "an unnamed layer".to_owned(),
                        |metadata| origin(metadata, &child),
                    ),
                    suggestion: closest(key, fields.keys().map(String::as_str)).map(str::to_owned),
                    what: "unknown key",
                }),
            }
        }
    }

    fn belongs_elsewhere(
        &self,
        parent: &[String],
        key: &str,
        value: &Value,
        child: &[String],
    ) -> bool {
        let is_table = matches!(value, Value::Dict(..));
        if parent.is_empty() {
            return is_table || key == "plugins";
        }
        is_table
            && self
                .sections
                .iter()
                .any(|section| section.starts_with(child))
    }
}
