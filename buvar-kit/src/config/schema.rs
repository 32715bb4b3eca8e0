//! The shape of a section type, found by reflecting over its serde implementation.
//!
//! The environment mapping, unknown-key checks, help and secret redaction all follow the
//! struct's fields rather than guessing from key names, so fields with underscores and
//! `#[serde(rename)]` work.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_reflection::{
    ContainerFormat, Format, Registry, Samples, Tracer, TracerConfig, VariantFormat,
};

use super::secret::is_secret_name;
use super::{Limit, choices, duration, file_mode};

/// The value type of a leaf field, as far as the environment mapping needs to know it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Bool,
    Int(&'static str),
    Float(&'static str),
    /// A field read with [`config::duration`](super::duration).
    Duration,
    /// A field read with [`config::file_mode`](super::file_mode): octal text.
    FileMode,
    Str,
    Char,
    Bytes,
    List(Box<Kind>),
    Tuple(Vec<Kind>),
    Map(Box<Kind>),
    /// An enum whose variants are all units: one of these names, as serde spells them.
    OneOf(Vec<String>),
    /// A named enum or struct that is set as a whole (e.g. inside a list).
    Named(String),
    Unit,
    Unknown,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Bool => f.write_str("bool"),
            Kind::Int(name) | Kind::Float(name) => f.write_str(name),
            Kind::Duration => f.write_str("duration"),
            Kind::FileMode => f.write_str("octal file mode"),
            Kind::Str => f.write_str("string"),
            Kind::Char => f.write_str("char"),
            Kind::Bytes => f.write_str("bytes"),
            Kind::List(inner) => write!(f, "list of {}", inner.nested()),
            Kind::Tuple(items) => {
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", item.nested())?;
                }
                f.write_str(")")
            }
            Kind::Map(inner) => write!(f, "table of {}", inner.nested()),
            Kind::OneOf(names) => f.write_str(&names.join(" | ")),
            Kind::Named(name) => f.write_str(name),
            Kind::Unit => f.write_str("unit"),
            Kind::Unknown => f.write_str("value"),
        }
    }
}

impl Kind {
    /// The kind as shown inside another label, where a choice needs parentheses to read as one.
    fn nested(&self) -> String {
        match self {
            Kind::OneOf(_) => format!("({self})"),
            _ => self.to_string(),
        }
    }
}

/// One settable field: a primitive, list, map or enum, never a struct with fields.
#[derive(Clone, Debug)]
pub(crate) struct Leaf {
    /// Keys from the config root, section path included.
    pub(crate) path: Vec<String>,
    pub(crate) kind: Kind,
    pub(crate) optional: bool,
    pub(crate) secret: bool,
}

impl Leaf {
    /// The dotted key, e.g. `http.port`.
    pub(crate) fn key(&self) -> String {
        self.path.join(".")
    }

    /// The environment variable that sets this leaf.
    pub(crate) fn env_name(&self, prefix: &str) -> String {
        env_name(prefix, &self.path)
    }

    /// The type as shown to people.
    pub(crate) fn type_label(&self) -> String {
        let mut label = if self.optional || self.secret {
            self.kind.nested()
        } else {
            self.kind.to_string()
        };
        if self.optional {
            label = format!("optional {label}");
        }
        if self.secret {
            label = format!("secret {label}");
        }
        label
    }
}

/// The environment variable name for a key path.
pub(crate) fn env_name(prefix: &str, path: &[String]) -> String {
    let mut name = String::from(prefix);
    for key in path {
        if !name.is_empty() {
            name.push('_');
        }
        name.extend(key.chars().map(|c| match c {
            '-' | '.' | ' ' => '_',
            c => c.to_ascii_uppercase(),
        }));
    }
    name
}

/// Which keys a struct accepts, for finding unknown keys.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Fields(BTreeMap<String, Node>),
    Any,
}

/// The reflected shape of one section type.
#[derive(Clone, Debug)]
pub(crate) struct Schema {
    pub(crate) type_name: &'static str,
    pub(crate) section: &'static str,
    pub(crate) leaves: Vec<Leaf>,
    pub(crate) tree: Node,
    /// Why reflection failed, if it did; then `leaves` is empty and `tree` is `Any`.
    pub(crate) problem: Option<String>,
    /// The section's validated ranges.
    pub(crate) limits: Vec<Limit>,
}

impl Schema {
    /// Reflects over `T`, read at dotted path `section` with the ranges `limits`.
    ///
    /// Takes what a [`Section`](super::Section) declares rather than the trait, so that the
    /// reflection depends on nothing of the config it serves.
    pub(crate) fn of<T: DeserializeOwned>(section: &'static str, limits: Vec<Limit>) -> Self {
        let type_name = std::any::type_name::<T>();
        let section_path = section_path(section);
        // A sample text that text-typed fields (file modes, durations, non-empty paths) accept
        // while being traced.
        let mut tracer = Tracer::new(
            TracerConfig::default()
                .default_borrowed_str_value("0")
                .default_string_value("0".to_owned()),
        );
        let samples = Samples::new();
        match tracer.trace_type_once::<T>(&samples) {
            Ok((format, _)) => {
                let registry = tracer.registry_unchecked();
                let mut walker = Walker {
                    registry: &registry,
                    choices: choices::unit_enums::<T>(),
                    leaves: Vec::new(),
                    stack: Vec::new(),
                };
                let tree = walker.walk(&format, &section_path, false, false);
                Self {
                    type_name,
                    section,
                    leaves: walker.leaves,
                    tree,
                    problem: None,
                    limits,
                }
            }
            Err(error) => Self {
                type_name,
                section,
                leaves: Vec::new(),
                tree: Node::Any,
                problem: Some(error.to_string()),
                limits,
            },
        }
    }

    /// The environment variable prefix of the whole section, e.g. `APP_HTTP`.
    pub(crate) fn env_stem(&self, prefix: &str) -> String {
        env_name(prefix, &section_path(self.section))
    }

    /// The limit of the field at dotted `key` (from the root), if it has one.
    pub(crate) fn limit_of(&self, key: &str) -> Option<&Limit> {
        self.limits.iter().find(|limit| self.key_of(limit) == key)
    }

    /// The dotted key of a limit, from the root.
    pub(crate) fn key_of(&self, limit: &Limit) -> String {
        if self.section.is_empty() {
            limit.key().to_owned()
        } else {
            format!("{}.{}", self.section, limit.key())
        }
    }
}

/// Splits a dotted section name into keys ("" is the root).
pub(crate) fn section_path(section: &str) -> Vec<String> {
    section
        .split('.')
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .collect()
}

struct Walker<'a> {
    registry: &'a Registry,
    /// The unit-variant enums' names, which the tracer saw only one of.
    choices: BTreeMap<String, Vec<String>>,
    leaves: Vec<Leaf>,
    /// Container names being walked, so a recursive type ends as an opaque leaf.
    stack: Vec<String>,
}

impl Walker<'_> {
    fn walk(&mut self, format: &Format, path: &[String], optional: bool, secret: bool) -> Node {
        match format {
            Format::Option(inner) => self.walk(inner, path, true, secret),
            Format::TypeName(name) if name == duration::NAME || name == file_mode::NAME => {
                self.leaf(format, path, optional, secret)
            }
            Format::TypeName(name) if !self.stack.contains(name) => match self.registry.get(name) {
                Some(ContainerFormat::Struct(fields)) if !secret => {
                    self.stack.push(name.clone());
                    let mut children = BTreeMap::new();
                    for field in fields {
                        let mut child = path.to_vec();
                        child.push(field.name.clone());
                        let node = self.walk(&field.value, &child, optional, secret);
                        children.insert(field.name.clone(), node);
                    }
                    self.stack.pop();
                    Node::Fields(children)
                }
                Some(ContainerFormat::NewTypeStruct(inner)) => {
                    self.stack.push(name.clone());
                    let node = self.walk(inner, path, optional, secret || is_secret_name(name));
                    self.stack.pop();
                    node
                }
                _ => self.leaf(format, path, optional, secret),
            },
            _ => self.leaf(format, path, optional, secret),
        }
    }

    fn leaf(&mut self, format: &Format, path: &[String], optional: bool, secret: bool) -> Node {
        let kind = self.kind(format);
        if kind != Kind::Unit {
            // A list or table holding secrets is redacted as a whole.
            let secret = secret || self.holds_secret(format, &mut Vec::new());
            self.leaves.push(Leaf {
                path: path.to_vec(),
                kind,
                optional,
                secret,
            });
        }
        Node::Any
    }

    fn holds_secret(&self, format: &Format, seen: &mut Vec<String>) -> bool {
        match format {
            Format::Option(inner) | Format::Seq(inner) => self.holds_secret(inner, seen),
            Format::TupleArray { content, .. } => self.holds_secret(content, seen),
            Format::Map { key, value } => {
                self.holds_secret(key, seen) || self.holds_secret(value, seen)
            }
            Format::Tuple(items) => items.iter().any(|item| self.holds_secret(item, seen)),
            Format::TypeName(name) if is_secret_name(name) => true,
            Format::TypeName(name) if !seen.contains(name) => {
                seen.push(name.clone());
                match self.registry.get(name) {
                    Some(ContainerFormat::NewTypeStruct(inner)) => self.holds_secret(inner, seen),
                    Some(ContainerFormat::TupleStruct(items)) => {
                        items.iter().any(|item| self.holds_secret(item, seen))
                    }
                    Some(ContainerFormat::Struct(fields)) => fields
                        .iter()
                        .any(|field| self.holds_secret(&field.value, seen)),
                    Some(ContainerFormat::Enum(variants)) => {
                        variants.values().any(|variant| match &variant.value {
                            VariantFormat::NewType(inner) => self.holds_secret(inner, seen),
                            VariantFormat::Tuple(items) => {
                                items.iter().any(|item| self.holds_secret(item, seen))
                            }
                            VariantFormat::Struct(fields) => fields
                                .iter()
                                .any(|field| self.holds_secret(&field.value, seen)),
                            VariantFormat::Unit | VariantFormat::Variable(_) => false,
                        })
                    }
                    Some(ContainerFormat::UnitStruct) | None => false,
                }
            }
            _ => false,
        }
    }

    fn kind(&self, format: &Format) -> Kind {
        match format {
            Format::Bool => Kind::Bool,
            Format::I8 => Kind::Int("i8"),
            Format::I16 => Kind::Int("i16"),
            Format::I32 => Kind::Int("i32"),
            Format::I64 => Kind::Int("i64"),
            Format::I128 => Kind::Int("i128"),
            Format::U8 => Kind::Int("u8"),
            Format::U16 => Kind::Int("u16"),
            Format::U32 => Kind::Int("u32"),
            Format::U64 => Kind::Int("u64"),
            Format::U128 => Kind::Int("u128"),
            Format::F32 => Kind::Float("f32"),
            Format::F64 => Kind::Float("f64"),
            Format::Char => Kind::Char,
            Format::Str => Kind::Str,
            Format::Bytes => Kind::Bytes,
            Format::Unit => Kind::Unit,
            Format::Option(inner) => self.kind(inner),
            Format::Seq(inner) => Kind::List(Box::new(self.kind(inner))),
            Format::TupleArray { content, .. } => Kind::List(Box::new(self.kind(content))),
            Format::Tuple(items) => Kind::Tuple(items.iter().map(|item| self.kind(item)).collect()),
            Format::Map { value, .. } => Kind::Map(Box::new(self.kind(value))),
            Format::TypeName(name) if name == duration::NAME => Kind::Duration,
            Format::TypeName(name) if name == file_mode::NAME => Kind::FileMode,
            Format::TypeName(name) => match self.registry.get(name) {
                Some(ContainerFormat::NewTypeStruct(inner)) if !self.stack.contains(name) => {
                    self.kind(inner)
                }
                Some(ContainerFormat::Enum(_)) => self.choices.get(name).map_or_else(
                    || Kind::Named(short_name(name)),
                    |names| Kind::OneOf(names.clone()),
                ),
                _ => Kind::Named(short_name(name)),
            },
            Format::Variable(_) => Kind::Unknown,
        }
    }
}

/// `buvar_kit::log::LogFormat` -> `LogFormat`; serde-reflection already uses short names,
/// but secrets announce their full type name.
pub(crate) fn short_name(name: &str) -> String {
    let stem = name.split('<').next().unwrap_or(name);
    stem.rsplit("::").next().unwrap_or(stem).to_owned()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::config::Secret;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        deep_value: u8,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        some_field: u16,
        names: Vec<String>,
        maybe: Option<bool>,
        inner: Inner,
        optional_inner: Option<Inner>,
        token: Secret<String>,
        pin: Secret<u32>,
        #[serde(rename = "renamed-key")]
        renamed: f64,
        keys: Vec<Secret<String>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Colour {
        DeepRed,
        #[serde(rename = "sky")]
        Blue,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Palette {
        colour: Colour,
        accent: Option<Colour>,
        rest: Vec<Colour>,
        log: crate::log::LogConfig,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Painting {
        palette: Palette,
        frame: Option<Colour>,
    }

    fn leaf<'a>(schema: &'a Schema, key: &str) -> &'a Leaf {
        schema.leaves.iter().find(|leaf| leaf.key() == key).unwrap()
    }

    #[test]
    fn leaves_follow_fields_and_section_path() {
        let schema = Schema::of::<Sample>("my.sample", Vec::new());
        assert_eq!(schema.problem, None);
        let keys: Vec<String> = schema.leaves.iter().map(Leaf::key).collect();
        assert_eq!(
            keys,
            [
                "my.sample.some_field",
                "my.sample.names",
                "my.sample.maybe",
                "my.sample.inner.deep_value",
                "my.sample.optional_inner.deep_value",
                "my.sample.token",
                "my.sample.pin",
                "my.sample.renamed-key",
                "my.sample.keys",
            ]
        );
        assert_eq!(schema.env_stem("APP"), "APP_MY_SAMPLE");
    }

    #[test]
    fn leaves_carry_type_optionality_and_secrecy() {
        let schema = Schema::of::<Sample>("my.sample", Vec::new());
        assert_eq!(leaf(&schema, "my.sample.some_field").type_label(), "u16");
        assert_eq!(
            leaf(&schema, "my.sample.names").type_label(),
            "list of string"
        );
        assert_eq!(
            leaf(&schema, "my.sample.maybe").type_label(),
            "optional bool"
        );
        assert_eq!(
            leaf(&schema, "my.sample.token").type_label(),
            "secret string"
        );
        assert_eq!(leaf(&schema, "my.sample.pin").type_label(), "secret u32");
        assert_eq!(
            leaf(&schema, "my.sample.keys").type_label(),
            "secret list of string"
        );
        assert!(!leaf(&schema, "my.sample.names").secret);
        assert_eq!(
            leaf(&schema, "my.sample.renamed-key").env_name("APP"),
            "APP_MY_SAMPLE_RENAMED_KEY"
        );
    }

    #[test]
    fn enums_of_unit_variants_show_every_value_at_any_depth() {
        let schema = Schema::of::<Painting>("art", Vec::new());
        assert_eq!(schema.problem, None);
        assert_eq!(
            leaf(&schema, "art.palette.colour").type_label(),
            "deep_red | sky"
        );
        assert_eq!(
            leaf(&schema, "art.palette.accent").type_label(),
            "optional (deep_red | sky)"
        );
        assert_eq!(
            leaf(&schema, "art.palette.rest").type_label(),
            "list of (deep_red | sky)"
        );
        assert_eq!(
            leaf(&schema, "art.frame").type_label(),
            "optional (deep_red | sky)"
        );
        assert_eq!(
            leaf(&schema, "art.palette.log.format").type_label(),
            "auto | json | pretty"
        );
    }
}
