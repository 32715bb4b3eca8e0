//! The config source: layers merged by figment, typed sections cached per type.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Provider, Source};
use serde::Serialize;

use super::env::{self, EnvSnapshot, EnvWarning};
use super::error::ConfigError;
use super::help::{EnvHelp, EnvVar};
use super::layer::{Layer, nest, read_config_file, serialize_defaults};
use super::origin::origin;
use super::schema::{Schema, section_path};
use super::typo::closest;
use super::unknown::{UnknownKey, unknown_keys};
use super::{Section, dump};
use crate::components::TypeIdBuildHasher;

/// A section type this source has seen: its shape and its in-code defaults.
#[derive(Debug)]
struct Known {
    schema: Schema,
    defaults: Option<Layer>,
    /// Loads (and caches) the section, for [`ConfigSource::check`].
    load: fn(&ConfigSource) -> Result<(), ConfigError>,
}

fn load_section<T: Section>(source: &ConfigSource) -> Result<(), ConfigError> {
    source.section::<T>().map(drop)
}

type Cache = HashMap<TypeId, Arc<dyn Any + Send + Sync>, TypeIdBuildHasher>;

struct Inner {
    figment: Figment,
    prefix: Option<String>,
    deny_unknown_keys: bool,
    /// Variables with the prefix that name config files rather than fields.
    file_vars: Vec<String>,
    /// Loaded sections; read without a lock on the request path.
    cache: ArcSwap<Cache>,
    /// Section types seen so far, for env warnings, the dump and unknown keys.
    known: Mutex<BTreeMap<TypeId, Arc<Known>>>,
}

/// The single source of truth for configuration: layers merged deeply, later over earlier,
/// read as typed [`Section`]s with environment overrides applied.
///
/// Cheap to clone (an `Arc` inside). Building methods consume and return the source; a source
/// does not change once built, so sections are loaded once and cached.
///
/// ```
/// use buvar_kit::config::{ConfigSource, Section};
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize)]
/// struct Http {
///     host: String,
///     port: u16,
/// }
/// buvar_kit::section!(Http, "http");
///
/// let source = ConfigSource::new()
///     .env_prefix("DOCTEST_SOURCE")
///     .toml("[http]\nhost = \"0.0.0.0\"\nport = 80")?
///     .toml("[http]\nport = 8080")?;
/// let http = source.section::<Http>()?;
/// assert_eq!((http.host.as_str(), http.port), ("0.0.0.0", 8080));
/// # Ok::<(), buvar_kit::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ConfigSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layers: Vec<String> = self
            .inner
            .figment
            .metadata()
            .map(|metadata| metadata.name.to_string())
            .collect();
        f.debug_struct("ConfigSource")
            .field("layers", &layers)
            .field("env_prefix", &self.inner.prefix)
            .field("deny_unknown_keys", &self.inner.deny_unknown_keys)
            .field("cached_sections", &self.inner.cache.load().len())
            .finish()
    }
}

impl Default for ConfigSource {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigSource {
    /// An empty source without environment overrides.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                figment: Figment::new(),
                prefix: None,
                deny_unknown_keys: false,
                file_vars: Vec::new(),
                cache: ArcSwap::default(),
                known: Mutex::default(),
            }),
        }
    }

    /// A new source from this one's settings, with an empty cache: any change to the layers
    /// or settings can change every section.
    fn rebuild(self, change: impl FnOnce(&mut Figment, &mut Inner)) -> Self {
        let known = self.known().clone();
        let mut inner = Inner {
            figment: Figment::new(),
            prefix: self.inner.prefix.clone(),
            deny_unknown_keys: self.inner.deny_unknown_keys,
            file_vars: self.inner.file_vars.clone(),
            cache: ArcSwap::default(),
            known: Mutex::new(known),
        };
        let mut figment = self.inner.figment.clone();
        change(&mut figment, &mut inner);
        inner.figment = figment;
        Self {
            inner: Arc::new(inner),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, BTreeMap<TypeId, Arc<Known>>> {
        // A panic while holding this lock leaves the map intact: entries are only inserted whole.
        self.inner
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn add(self, layer: Layer) -> Self {
        self.rebuild(|figment, _| *figment = std::mem::take(figment).merge(layer))
    }

    /// Reads environment overrides from variables starting with `prefix` and `_`: with
    /// `"APP"`, `APP_HTTP_PORT` sets `http.port`. With `""`, `HTTP_PORT` sets `http.port`
    /// (and [`env_warnings`](Self::env_warnings) stays quiet, as every variable would match).
    pub fn env_prefix(self, prefix: &str) -> Self {
        let prefix = prefix.trim_end_matches('_').to_owned();
        self.rebuild(|_, inner| inner.prefix = Some(prefix))
    }

    /// Whether keys that match no field of their section fail loading (default: they are
    /// logged as warnings and listed by [`unknown_keys`](Self::unknown_keys)).
    pub fn deny_unknown_keys(self, deny: bool) -> Self {
        self.rebuild(|_, inner| inner.deny_unknown_keys = deny)
    }

    /// Adds a TOML file as a layer. A missing or unreadable file is an error, never an empty
    /// layer.
    pub fn file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        self.file_named_by(path.as_ref(), None)
    }

    /// Adds the TOML file named by environment variable `var`, if it is set and not empty; a
    /// variable naming a missing file is an error that names both.
    pub fn file_from_env(self, var: &str) -> Result<Self, ConfigError> {
        let path = std::env::var_os(var);
        let this = self.rebuild(|_, inner| inner.file_vars.push(var.to_owned()));
        match path {
            // Container set-ups often "unset" a variable by leaving it empty.
            Some(path) if !path.is_empty() => this.file_named_by(Path::new(&path), Some(var)),
            _ => Ok(this),
        }
    }

    fn file_named_by(self, path: &Path, var: Option<&str>) -> Result<Self, ConfigError> {
        let text = read_config_file(path, var)?;
        let data: Dict = toml::from_str(&text).map_err(|error| {
            ConfigError::parse(format!("config file {}", path.display()), &text, &error)
        })?;
        // Messages name the file absolutely: a relative path says little in a service's logs.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        Ok(self.add(Layer {
            metadata: Metadata::from("file", Source::File(path)),
            data,
        }))
    }

    /// Adds TOML text as a layer; a syntax error is reported with its line.
    pub fn toml(self, text: &str) -> Result<Self, ConfigError> {
        let data: Dict = toml::from_str(text)
            .map_err(|error| ConfigError::parse("TOML text".to_owned(), text, &error))?;
        Ok(self.add(Layer {
            metadata: Metadata::named("TOML text"),
            data,
        }))
    }

    /// Adds in-code defaults as a layer; `value` must serialise to a table (a struct or map).
    pub fn defaults<T: Serialize>(self, value: &T) -> Result<Self, ConfigError> {
        let data = serialize_defaults(value)?;
        let name = format!(
            "in-code defaults of `{}`",
            super::schema::short_name(std::any::type_name::<T>())
        );
        Ok(self.add(Layer {
            metadata: Metadata::named(name),
            data,
        }))
    }

    /// Adds any figment provider as a layer: maps (`figment::providers::Serialized`), other
    /// formats, ...
    pub fn merge(self, provider: impl Provider) -> Self {
        self.rebuild(|figment, _| *figment = std::mem::take(figment).merge(provider))
    }

    /// The section `T`, loaded on first use and cached; later calls take no lock.
    pub fn section<T: Section>(&self) -> Result<Arc<T>, ConfigError> {
        if let Some(section) = self.cached::<T>() {
            return Ok(section);
        }
        let loaded = Arc::new(self.load::<T>()?);
        let erased: Arc<dyn Any + Send + Sync> = loaded.clone();
        self.inner.cache.rcu(|cache| {
            let mut cache = Cache::clone(cache);
            cache
                .entry(TypeId::of::<T>())
                .or_insert_with(|| erased.clone());
            cache
        });
        // Another thread may have won the race: hand out the value that is cached.
        Ok(self.cached::<T>().unwrap_or(loaded))
    }

    fn cached<T: Section>(&self) -> Option<Arc<T>> {
        let cache = self.inner.cache.load();
        cache
            .get(&TypeId::of::<T>())
            .and_then(|section| section.clone().downcast::<T>().ok())
    }

    /// Loads every section known so far (loaded or [registered](Self::register)), as a service
    /// does at start-up before anything runs: every error at once, one per line. Tables of the
    /// files that belong to no known section are warned about with the closest section name
    /// (an error with [`deny_unknown_keys`](Self::deny_unknown_keys)).
    ///
    /// ```
    /// use buvar_kit::config::ConfigSource;
    /// use buvar_kit::log::LogConfig;
    ///
    /// let source = ConfigSource::new().toml("[log]\nformat = \"yaml\"")?;
    /// source.register::<LogConfig>()?;
    /// let error = source.check().unwrap_err();
    /// assert!(error.to_string().starts_with("log.format: expected one of"), "{error}");
    /// # Ok::<(), buvar_kit::config::ConfigError>(())
    /// ```
    pub fn check(&self) -> Result<(), ConfigError> {
        let known: Vec<Arc<Known>> = self.known().values().cloned().collect();
        let mut errors: Vec<ConfigError> = known
            .iter()
            .filter_map(|known| (known.load)(self).err())
            .collect();
        let unknown = self.unknown_sections();
        if self.inner.deny_unknown_keys && !unknown.is_empty() {
            errors.push(ConfigError::unknown_keys(unknown));
        } else {
            for section in &unknown {
                tracing::warn!(key = %section.key, origin = %section.origin, "{section}");
            }
        }
        ConfigError::all(errors)
    }

    /// Tables at the root of the layers that no known section reads, e.g. `[htpp]`, each with
    /// the closest known section.
    pub fn unknown_sections(&self) -> Vec<UnknownKey> {
        let known: Vec<Arc<Known>> = self.known().values().cloned().collect();
        // A root section reads root keys, so every table may be one of its fields.
        if known.iter().any(|known| known.schema.section.is_empty()) {
            return Vec::new();
        }
        let sections: Vec<String> = known
            .iter()
            .map(|known| known.schema.section.to_owned())
            .collect();
        let Ok(Value::Dict(_, root)) = self.inner.figment.find_value("") else {
            return Vec::new();
        };
        root.iter()
            .filter(|(key, value)| {
                matches!(value, Value::Dict(..))
                    && !sections.iter().any(|section| {
                        section == *key
                            || section
                                .strip_prefix(key.as_str())
                                .is_some_and(|rest| rest.starts_with('.'))
                    })
            })
            .map(|(key, value)| UnknownKey {
                key: key.clone(),
                origin: self.origin_of(&self.inner.figment, value, std::slice::from_ref(key)),
                suggestion: closest(key, sections.iter().map(String::as_str)).map(str::to_owned),
                what: "unknown section",
            })
            .collect()
    }

    /// Makes `T` known without loading it, so [`env_warnings`](Self::env_warnings),
    /// [`unknown_keys`](Self::unknown_keys) and [`dump`](Self::dump) cover it.
    pub fn register<T: Section>(&self) -> Result<(), ConfigError> {
        self.known_section::<T>().map(drop)
    }

    fn known_section<T: Section>(&self) -> Result<Arc<Known>, ConfigError> {
        if let Some(known) = self.known().get(&TypeId::of::<T>()) {
            return Ok(known.clone());
        }
        let schema = Schema::of::<T>(T::SECTION, T::limits());
        let defaults = T::defaults()?.map(|dict| Layer {
            metadata: Metadata::named(format!(
                "in-code defaults of `{}`",
                super::schema::short_name(schema.type_name)
            )),
            data: nest(&section_path(T::SECTION), Value::from(dict)),
        });
        let known = Arc::new(Known {
            schema,
            defaults,
            load: load_section::<T>,
        });
        self.known()
            .entry(TypeId::of::<T>())
            .or_insert_with(|| known.clone());
        Ok(known)
    }

    /// Loads `T` afresh, bypassing the cache (re-reads environment variables).
    pub fn load<T: Section>(&self) -> Result<T, ConfigError> {
        let known = self.known_section::<T>()?;
        let schema = &known.schema;
        let figment = self.figment_for(std::slice::from_ref(&known))?;
        let path = section_path(T::SECTION);
        self.check_limits(&figment, schema)?;
        // A section of the wrong type in a file is an error even when environment variables
        // set fields of it (their table would replace it in the merged view).
        if !path.is_empty() {
            if let Ok(other) = self.inner.figment.find_value(T::SECTION) {
                if !matches!(other, Value::Dict(..)) {
                    return Err(ConfigError::not_a_table(
                        T::SECTION.to_owned(),
                        other.to_actual().to_string(),
                        self.origin_of(&self.inner.figment, &other, &path),
                    ));
                }
            }
        }
        let focused = if path.is_empty() {
            figment.clone()
        } else {
            match figment.find_value(T::SECTION) {
                Ok(Value::Dict(..)) | Err(_) => figment.focus(T::SECTION),
                Ok(other) => {
                    return Err(ConfigError::not_a_table(
                        T::SECTION.to_owned(),
                        other.to_actual().to_string(),
                        self.origin_of(&figment, &other, &path),
                    ));
                }
            }
        };
        let prefix = self.inner.prefix.clone();
        let env_hint = |key: &str| {
            let prefix = prefix.as_deref()?;
            schema
                .leaves
                .iter()
                .find(|leaf| leaf.key() == key)
                .map(|leaf| leaf.env_name(prefix))
        };
        let is_secret = |key: &str| {
            schema.leaves.iter().any(|leaf| {
                let leaf_key = leaf.key();
                leaf.secret
                    && (key == leaf_key
                        || key
                            .strip_prefix(leaf_key.as_str())
                            .is_some_and(|rest| rest.starts_with('.')))
            })
        };
        // Lossy: booleans written as `yes`/`on`/`1` and numbers written as strings read the same
        // from every layer as they do from the environment.
        let section = focused
            .extract_lossy::<T>()
            .map_err(|error| ConfigError::values(error, &path, &env_hint, &is_secret))?;
        let sections = self.known_section_paths();
        let unknown = unknown_keys(&figment, schema, &sections);
        if !unknown.is_empty() {
            if self.inner.deny_unknown_keys {
                return Err(ConfigError::unknown_keys(unknown));
            }
            for key in &unknown {
                tracing::warn!(key = %key.key, origin = %key.origin, "{key}");
            }
        }
        Ok(section)
    }

    /// Every number of the section within its declared range, checked on the values as written
    /// so that nothing out of range reaches the code that uses them.
    fn check_limits(&self, figment: &Figment, schema: &Schema) -> Result<(), ConfigError> {
        let problems: Vec<String> = schema
            .limits
            .iter()
            .filter_map(|limit| {
                let key = schema.key_of(limit);
                let value = figment.find_value(&key).ok()?;
                let found = limit.check(&value).err()?;
                let origin = self.origin_of(figment, &value, &section_path(&key));
                Some(format!(
                    "`{key}` must be {limit}, found {found}, from {origin}"
                ))
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::out_of_range(problems))
        }
    }

    fn known_section_paths(&self) -> Vec<Vec<String>> {
        self.known()
            .values()
            .map(|known| section_path(known.schema.section))
            .collect()
    }

    /// The layers plus the in-code defaults and environment overrides of `sections`.
    fn figment_for(&self, sections: &[Arc<Known>]) -> Result<Figment, ConfigError> {
        let mut figment = self.inner.figment.clone();
        for known in sections {
            if let Some(defaults) = &known.defaults {
                figment = figment.join(defaults.clone());
            }
        }
        if let Some(prefix) = &self.inner.prefix {
            let env = EnvSnapshot::read(prefix);
            for known in sections {
                for layer in env::overrides(&known.schema, prefix, &env)? {
                    figment = figment.merge(layer);
                }
            }
        }
        Ok(figment)
    }

    fn origin_of(&self, figment: &Figment, value: &Value, path: &[String]) -> String {
        figment.get_metadata(value.tag()).map_or_else(
            || "an unnamed layer".to_owned(),
            |metadata| origin(metadata, path),
        )
    }

    /// The root `plugins = ["a", "b"]` list (empty when absent). `<PREFIX>_PLUGINS=a,b`
    /// overrides it.
    ///
    /// ```
    /// use buvar_kit::config::ConfigSource;
    ///
    /// let source = ConfigSource::new().toml(r#"plugins = ["app", "metrics"]"#)?;
    /// assert_eq!(source.plugins()?, ["app", "metrics"]);
    /// assert!(ConfigSource::new().plugins()?.is_empty());
    /// assert!(ConfigSource::new().toml("plugins = 3")?.plugins().unwrap_err().is_invalid_value());
    /// # Ok::<(), buvar_kit::config::ConfigError>(())
    /// ```
    pub fn plugins(&self) -> Result<Vec<String>, ConfigError> {
        let mut figment = self.inner.figment.clone();
        if let Some(prefix) = &self.inner.prefix {
            let leaf = plugins_leaf();
            let var = leaf.env_name(prefix);
            if let Some(raw) = EnvSnapshot::read(prefix).get(&var) {
                if let Some(value) = env::coerce_leaf(&leaf, &var, raw?)? {
                    figment = figment.merge(Layer::env(&var, &leaf.path, value));
                }
            }
        }
        let value = match figment.find_value("plugins") {
            Ok(value) => value,
            Err(error) if error.missing() => return Ok(Vec::new()),
            Err(error) => return Err(ConfigError::values(error, &[], &|_| None, &|_| false)),
        };
        let path = ["plugins".to_owned()];
        let not_a_list = |found: &Value| {
            ConfigError::plugins(
                found.to_actual().to_string(),
                self.origin_of(&figment, &value, &path),
            )
        };
        let Value::Array(_, items) = &value else {
            return Err(not_a_list(&value));
        };
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| not_a_list(item))
            })
            .collect()
    }

    /// Variables with the source's prefix that set no field of any section known so far
    /// (loaded or [registered](Self::register)), each with the closest real variable.
    /// Empty with an empty prefix, where every variable of the process would be a suspect.
    pub fn env_warnings(&self) -> Vec<EnvWarning> {
        let Some(prefix) = self
            .inner
            .prefix
            .as_ref()
            .filter(|prefix| !prefix.is_empty())
        else {
            return Vec::new();
        };
        let known: Vec<Arc<Known>> = self.known().values().cloned().collect();
        let mut names: Vec<String> = self.inner.file_vars.clone();
        names.push(plugins_leaf().env_name(prefix));
        let mut stems = Vec::new();
        for known in &known {
            if known.schema.problem.is_some() {
                stems.push(known.schema.env_stem(prefix));
            }
            names.extend(known.schema.leaves.iter().map(|leaf| leaf.env_name(prefix)));
        }
        env::warnings(&EnvSnapshot::read(prefix), &names, &stems)
    }

    /// Every environment variable the sections known so far read (loaded or
    /// [registered](Self::register)), plus `<PREFIX>_PLUGINS`, for an `--env-help` flag.
    /// Empty without a prefix.
    ///
    /// ```
    /// use buvar_kit::config::ConfigSource;
    /// use buvar_kit::log::LogConfig;
    ///
    /// let source = ConfigSource::new().env_prefix("APP");
    /// source.register::<LogConfig>()?;
    /// let names: Vec<String> = source.env_help().vars().iter().map(|var| var.name.clone()).collect();
    /// assert_eq!(names, ["APP_LOG_FORMAT", "APP_LOG_LEVEL", "APP_PLUGINS"]);
    /// # Ok::<(), buvar_kit::config::ConfigError>(())
    /// ```
    pub fn env_help(&self) -> EnvHelp {
        let Some(prefix) = &self.inner.prefix else {
            return EnvHelp::of([], "");
        };
        let known: Vec<Arc<Known>> = self.known().values().cloned().collect();
        let defaults: Vec<Option<Value>> = known
            .iter()
            .map(|known| {
                known
                    .defaults
                    .as_ref()
                    .map(|layer| Value::from(layer.data.clone()))
            })
            .collect();
        let mut help = EnvHelp::of(
            known
                .iter()
                .zip(&defaults)
                .map(|(known, defaults)| (&known.schema, defaults.as_ref())),
            prefix,
        );
        let plugins = plugins_leaf();
        help.push(EnvVar {
            name: plugins.env_name(prefix),
            key: plugins.key(),
            type_label: plugins.type_label(),
            default: None,
            range: None,
        });
        for var in &self.inner.file_vars {
            help.push(EnvVar {
                name: var.clone(),
                key: "(config file)".to_owned(),
                type_label: "path".to_owned(),
                default: None,
                range: None,
            });
        }
        help.sort();
        help
    }

    /// Keys that match no field of their section, for every section known so far.
    pub fn unknown_keys(&self) -> Result<Vec<UnknownKey>, ConfigError> {
        let known: Vec<Arc<Known>> = self.known().values().cloned().collect();
        let figment = self.figment_for(&known)?;
        let sections = self.known_section_paths();
        Ok(known
            .iter()
            .flat_map(|known| unknown_keys(&figment, &known.schema, &sections))
            .collect())
    }

    /// The effective config as TOML: every layer, the in-code defaults and environment
    /// overrides of every section known so far, with [`Secret`](super::Secret) fields shown as
    /// `***`. Register sections first ([`register`](Self::register)) to cover them before
    /// they are loaded.
    ///
    /// ```
    /// use buvar_kit::config::{ConfigSource, Secret};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Db { url: String, password: Secret<String> }
    /// buvar_kit::section!(Db, "db");
    ///
    /// let source = ConfigSource::new().toml("[db]\nurl = \"pg://db\"\npassword = \"hunter2\"")?;
    /// source.register::<Db>()?;
    /// let dump = source.dump()?;
    /// assert!(dump.contains("password = \"***\""));
    /// assert!(!dump.contains("hunter2"));
    /// # Ok::<(), buvar_kit::config::ConfigError>(())
    /// ```
    pub fn dump(&self) -> Result<String, ConfigError> {
        let known: Vec<Arc<Known>> = self.known().values().cloned().collect();
        let figment = self.figment_for(&known)?;
        let secrets = known
            .iter()
            .flat_map(|known| known.schema.leaves.iter().filter(|leaf| leaf.secret))
            .map(|leaf| leaf.path.as_slice());
        dump::to_toml(&figment, secrets)
    }
}

/// The root `plugins` list as a field, for its environment variable.
fn plugins_leaf() -> super::schema::Leaf {
    super::schema::Leaf {
        path: vec!["plugins".to_owned()],
        kind: super::schema::Kind::List(Box::new(super::schema::Kind::Str)),
        optional: false,
        secret: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Flags {
        on: bool,
        off: bool,
    }
    crate::section!(Flags, "flags");

    #[test]
    fn relaxed_booleans_read_alike_from_toml_and_serialised_layers() {
        let toml = ConfigSource::new()
            .toml("[flags]\non = \"yes\"\noff = \"OFF\"")
            .unwrap()
            .load::<Flags>()
            .unwrap();
        assert!(toml.on && !toml.off);
        let mut dict = Dict::new();
        dict.insert("on".to_owned(), Value::from("1"));
        dict.insert("off".to_owned(), Value::from(0));
        let serialised = ConfigSource::new()
            .merge(figment::providers::Serialized::default("flags", dict))
            .load::<Flags>()
            .unwrap();
        assert!(serialised.on && !serialised.off);
        let error = ConfigSource::new()
            .toml("[flags]\non = \"maybe\"\noff = false")
            .unwrap()
            .load::<Flags>()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("flags.on: expected a boolean"),
            "{error}"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    struct Foo {
        bar: u16,
    }
    crate::section!(Foo, "foo");

    #[test]
    // figment's `Jail` fixes the closure's error type.
    #[allow(clippy::result_large_err)]
    fn an_empty_prefix_reads_the_variables_env_help_advertises() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FOO_BAR", "7");
            let source = ConfigSource::new().env_prefix("");
            assert_eq!(source.load::<Foo>().unwrap().bar, 7);
            let help = crate::config::env_help::<Foo>("");
            assert_eq!(help.vars()[0].name, "FOO_BAR");
            assert!(source.env_warnings().is_empty());
            Ok(())
        });
    }

    #[test]
    fn serialised_layers_are_named_in_words() {
        let mut dict = Dict::new();
        dict.insert("bar".to_owned(), Value::from("x"));
        let error = ConfigSource::new()
            .merge(figment::providers::Serialized::default("foo", dict))
            .load::<Foo>()
            .unwrap_err()
            .to_string();
        assert!(!error.contains("::"), "{error}");
        assert!(error.contains("from in-code values"), "{error}");
        let error = ConfigSource::new()
            .defaults(&serde_json::json!({ "foo": { "bar": -1 } }))
            .unwrap()
            .load::<Foo>()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("from in-code defaults of `Value`"),
            "{error}"
        );
    }
}
