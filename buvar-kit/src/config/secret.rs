//! A wrapper that keeps secret config values out of logs and dumps.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// What a secret shows instead of its value.
pub(crate) const REDACTED: &str = "***";

thread_local! {
    // Set only while the kit itself serialises in-code defaults, so a `Secret` default reaches
    // the config layers with its real value while every other serialisation sees `***`.
    static EXPOSE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with secrets serialising their real value on this thread.
pub(crate) fn exposing<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSE.with(|flag| flag.set(self.0));
        }
    }
    let _reset = Reset(EXPOSE.with(|flag| flag.replace(true)));
    f()
}

/// A config value that must never be printed: passwords, tokens, keys.
///
/// It deserialises like `T` (from files, maps and environment variables alike), but its
/// `Debug` and `Display` show `***`, it serialises as `"***"`, and
/// [`ConfigSource::dump`](super::ConfigSource::dump) redacts it. Read the value with
/// [`expose`](Secret::expose), which makes every place that handles the secret easy to find.
///
/// ```
/// use buvar_kit::config::Secret;
///
/// let token = Secret::new(String::from("hunter2"));
/// assert_eq!(format!("{token:?} {token}"), "*** ***");
/// assert_eq!(token.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if EXPOSE.with(Cell::get) {
            self.0.serialize(serializer)
        } else {
            serializer.serialize_str(REDACTED)
        }
    }
}

/// The newtype name a `Secret<T>` announces to deserialisers: unique per `T`, so reflecting
/// over a struct with secrets of different types does not see one type with two shapes.
fn newtype_name<T>() -> &'static str {
    std::any::type_name::<Secret<T>>()
}

/// Whether a reflected newtype name is one of ours.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let ours = newtype_name::<()>();
    let stem = ours.split('<').next().unwrap_or(ours);
    name.strip_prefix(stem)
        .is_some_and(|rest| rest.starts_with('<'))
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SecretVisitor<T> {
            type Value = Secret<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret value")
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                T::deserialize(deserializer).map(Secret)
            }
        }

        deserializer.deserialize_newtype_struct(newtype_name::<T>(), SecretVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2".to_string());
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
    }

    #[test]
    fn serialising_shows_stars_unless_the_kit_exposes_it() {
        let secret = Secret::new(42_u32);
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        let exposed = exposing(|| serde_json::to_string(&secret).unwrap());
        assert_eq!(exposed, "42");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
    }

    #[test]
    fn deserialises_like_the_inner_type() {
        let secret: Secret<Vec<u8>> = serde_json::from_str("[1,2]").unwrap();
        assert_eq!(secret.expose(), &vec![1, 2]);
    }

    #[test]
    fn secret_names_are_recognised_for_any_inner_type() {
        assert!(is_secret_name(newtype_name::<String>()));
        assert!(is_secret_name(newtype_name::<Vec<u16>>()));
        assert!(!is_secret_name("Secretive"));
        assert!(!is_secret_name(std::any::type_name::<String>()));
    }
}
