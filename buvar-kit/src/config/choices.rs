//! The values an enum field accepts, as serde names them.
//!
//! serde-reflection traces one variant of an enum nested in a section, so the schema alone
//! knows `LogFormat` by its Rust name only. Serde tells every deserializer more:
//! `deserialize_enum` receives the names of all variants. This probe deserializes a section type
//! from made-up values, as the tracer does, records those names and tries each variant once to
//! learn whether it carries data. An enum whose variants are all units is a choice among names.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// From this depth on options, lists and tables read as empty, so a recursive type ends (a
/// type can only recurse through them, or through an enum, which ends on a unit variant).
const EMPTY_FROM: usize = 16;

/// How deep the probe follows nested values that cannot be empty.
const MAX_DEPTH: usize = 64;

/// The enums type `T` reads at any depth whose variants are all units: serde's container name
/// to the variant names, in declaration order.
pub(crate) fn unit_enums<T: DeserializeOwned>() -> BTreeMap<String, Vec<String>> {
    let mut recording = Recording::default();
    // Each pass tries one more variant of every enum it reaches; a pass that tries none is the
    // last. The value read is made up, so whether it reads is of no interest.
    loop {
        recording.tried = false;
        let _ = T::deserialize(Probe {
            recording: &mut recording,
            depth: 0,
        });
        if !recording.tried {
            break;
        }
    }
    recording
        .enums
        .into_iter()
        .filter(|(_, found)| {
            found.consistent
                && !found.shapes.is_empty()
                && found.shapes.iter().all(|shape| *shape == Shape::Unit)
        })
        .map(|(name, found)| {
            let names = found.names.iter().map(|name| (*name).to_owned()).collect();
            (name.to_owned(), names)
        })
        .collect()
}

/// What trying a variant found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Untried,
    /// Tried, but the variant's name did not read back.
    Failed,
    Unit,
    Data,
}

struct Found {
    names: &'static [&'static str],
    shapes: Vec<Shape>,
    /// False when two enums share a serde name but not their variants.
    consistent: bool,
}

#[derive(Default)]
struct Recording {
    enums: BTreeMap<&'static str, Found>,
    /// Whether the current pass tried a variant for the first time.
    tried: bool,
}

impl Recording {
    /// The variant to read for enum `name` in this pass: the first untried one, else a unit one
    /// (which ends a recursive enum).
    fn choose(
        &mut self,
        name: &'static str,
        variants: &'static [&'static str],
    ) -> Result<usize, Unreadable> {
        let found = self.enums.entry(name).or_insert_with(|| Found {
            names: variants,
            shapes: vec![Shape::Untried; variants.len()],
            consistent: true,
        });
        if found.names != variants {
            found.consistent = false;
            return Err(Unreadable::new("two enums share a name"));
        }
        if let Some(index) = found.shapes.iter().position(|s| *s == Shape::Untried) {
            found.shapes[index] = Shape::Failed;
            self.tried = true;
            return Ok(index);
        }
        found
            .shapes
            .iter()
            .position(|s| *s == Shape::Unit)
            .or((!variants.is_empty()).then_some(0))
            .ok_or_else(|| Unreadable::new("an enum without variants"))
    }

    fn learn(&mut self, name: &'static str, index: usize, shape: Shape) {
        if let Some(slot) = self
            .enums
            .get_mut(name)
            .and_then(|found| found.shapes.get_mut(index))
        {
            *slot = shape;
        }
    }
}

/// The probe's error; its text is never shown, the probe only records.
#[derive(Debug)]
struct Unreadable(String);

impl Unreadable {
    fn new(why: &str) -> Self {
        Self(why.to_owned())
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreadable {}

impl de::Error for Unreadable {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

/// A deserializer that hands out zeros, `"0"` (the tracer's sample text, which text-typed
/// fields such as durations accept) and one item per list, and records every enum it is asked
/// for.
struct Probe<'a> {
    recording: &'a mut Recording,
    depth: usize,
}

impl<'a> Probe<'a> {
    fn items(self, len: usize) -> Items<'a> {
        Items {
            left: len,
            recording: self.recording,
            depth: self.depth + 1,
        }
    }

    /// How many items a list or table holds: one, or none from [`EMPTY_FROM`] on.
    fn how_many(&self) -> usize {
        usize::from(self.depth < EMPTY_FROM)
    }

    /// Fails at the depth limit, for values that cannot be empty.
    fn must_nest(&self) -> Result<(), Unreadable> {
        if self.depth < MAX_DEPTH {
            Ok(())
        } else {
            Err(Unreadable::new("nested too deep"))
        }
    }
}

macro_rules! zero {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unreadable> {
                visitor.$visit($($value)?)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Unreadable;

    zero! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(0),
        deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0),
        deserialize_i64 => visit_i64(0),
        deserialize_i128 => visit_i128(0),
        deserialize_u8 => visit_u8(0),
        deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0),
        deserialize_u64 => visit_u64(0),
        deserialize_u128 => visit_u128(0),
        deserialize_f32 => visit_f32(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('A'),
        deserialize_str => visit_str("0"),
        deserialize_string => visit_str("0"),
        deserialize_bytes => visit_bytes(b""),
        deserialize_byte_buf => visit_bytes(b""),
        deserialize_unit => visit_unit(),
        deserialize_ignored_any => visit_unit(),
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Unreadable> {
        Err(Unreadable::new("a self-describing value"))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Unreadable> {
        Err(Unreadable::new("an identifier outside an enum"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unreadable> {
        if self.depth < EMPTY_FROM {
            visitor.visit_some(Probe {
                recording: self.recording,
                depth: self.depth + 1,
            })
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        self.must_nest()?;
        visitor.visit_newtype_struct(Probe {
            recording: self.recording,
            depth: self.depth + 1,
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unreadable> {
        let len = self.how_many();
        visitor.visit_seq(self.items(len))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        self.must_nest()?;
        visitor.visit_seq(self.items(len))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unreadable> {
        let len = self.how_many();
        visitor.visit_map(self.items(len))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        // Derived structs read their fields in order from a sequence, so no field name has to
        // be made up.
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        self.must_nest()?;
        let index = self.recording.choose(name, variants)?;
        visitor.visit_enum(Variant {
            recording: self.recording,
            depth: self.depth + 1,
            name,
            variant: variants[index],
            index,
        })
    }

    fn is_human_readable(&self) -> bool {
        // As serde-reflection's tracer, so both see the same shapes.
        false
    }
}

/// The items of a list, tuple, struct or table.
struct Items<'a> {
    recording: &'a mut Recording,
    depth: usize,
    left: usize,
}

impl Items<'_> {
    fn next<'de, S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Unreadable> {
        seed.deserialize(Probe {
            recording: self.recording,
            depth: self.depth,
        })
    }
}

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = Unreadable;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Unreadable> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.next(seed).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Items<'_> {
    type Error = Unreadable;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Unreadable> {
        self.next_element_seed(seed)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, Unreadable> {
        self.next(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The variant chosen for one enum value; records whether it carries data.
struct Variant<'a> {
    recording: &'a mut Recording,
    depth: usize,
    name: &'static str,
    variant: &'static str,
    index: usize,
}

impl<'a> Variant<'a> {
    fn learn(self, shape: Shape) -> Probe<'a> {
        self.recording.learn(self.name, self.index, shape);
        Probe {
            recording: self.recording,
            depth: self.depth,
        }
    }
}

impl<'de, 'a> EnumAccess<'de> for Variant<'a> {
    type Error = Unreadable;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), Unreadable> {
        // By name rather than index: serde lists aliases among the variants' names.
        let variant = seed.deserialize(self.variant.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Unreadable;

    fn unit_variant(self) -> Result<(), Unreadable> {
        self.learn(Shape::Unit);
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, Unreadable> {
        seed.deserialize(self.learn(Shape::Data))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        visitor.visit_seq(self.learn(Shape::Data).items(len))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unreadable> {
        visitor.visit_seq(self.learn(Shape::Data).items(fields.len()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        #[serde(rename = "careful")]
        Slow,
        OffAndOn,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Level {
        Low,
        High,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Target {
        Stdout,
        File(String),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Tree {
        Node(Box<Tree>, Box<Tree>),
        Leaf,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Deep {
        levels: Vec<Level>,
        by_name: HashMap<String, Option<Mode>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        mode: Mode,
        target: Target,
        tree: Tree,
        nested: Option<Box<Sample>>,
        deep: Deep,
    }

    #[test]
    fn every_variant_of_every_nested_unit_enum_is_named_as_serde_names_it() {
        let enums = unit_enums::<Sample>();
        assert_eq!(enums["Mode"], ["fast", "careful", "off-and-on"]);
        assert_eq!(enums["Level"], ["Low", "High"]);
    }

    #[test]
    fn enums_with_data_are_no_choice_and_recursion_ends() {
        let enums = unit_enums::<Sample>();
        assert!(!enums.contains_key("Target"), "{enums:?}");
        assert!(!enums.contains_key("Tree"), "{enums:?}");
    }
}
