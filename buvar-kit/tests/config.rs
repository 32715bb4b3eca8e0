//! Config source behaviour with real files and real environment variables.
//!
//! Every test runs inside `figment::Jail`, which serialises tests that touch the environment
//! or the working directory, runs each in a fresh temporary directory, and restores the
//! variables it set.

use std::collections::BTreeMap;
use std::sync::Arc;

use buvar_kit::config::figment::Jail;
use buvar_kit::config::figment::providers::Serialized;
use buvar_kit::config::{ConfigSource, Secret, env_help};
use buvar_kit::log::{LogConfig, LogFormat};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, PartialEq)]
struct Http {
    host: String,
    port: u16,
}
buvar_kit::section!(Http, "http");

#[derive(Debug, Deserialize, PartialEq)]
struct Foobar {
    some: String,
}
buvar_kit::section!(Foobar, "foobar");

#[derive(Debug, Deserialize, PartialEq)]
struct RootWithLogLevel {
    log_level: String,
}
buvar_kit::section!(RootWithLogLevel, "");

#[derive(Debug, Deserialize, PartialEq)]
struct FooInBar {
    baz: u32,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Bar {
    foo: FooInBar,
}
buvar_kit::section!(Bar, "bar");

#[derive(Debug, Deserialize, PartialEq)]
struct Underscored {
    max_conn_count: u32,
}
buvar_kit::section!(Underscored, "my_service");

#[derive(Debug, Deserialize, PartialEq)]
struct Replica {
    read_only: bool,
}
buvar_kit::section!(Replica, "db.replica");

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
struct Kebab {
    idle_timeout: u64,
}
buvar_kit::section!(Kebab, "kebab");

#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
struct Types {
    flag: bool,
    count: i64,
    ratio: f64,
    name: String,
    tags: Vec<String>,
    ports: Vec<u16>,
    limit: Option<u32>,
    labels: BTreeMap<String, String>,
    token: Secret<String>,
}
buvar_kit::section!(Types, "types", default);

#[allow(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's error type"
)]
fn jail(test: impl FnOnce(&mut Jail)) {
    Jail::expect_with(|jail| {
        test(jail);
        Ok(())
    });
}

// ---- layers ----

#[test]
fn later_layers_override_earlier_ones_deeply() {
    jail(|jail| {
        jail.create_file("app.toml", "[http]\nhost = \"file\"\nport = 1\n")
            .unwrap();
        let source = ConfigSource::new()
            .defaults(&serde_json::json!({"http": {"host": "default", "port": 0}}))
            .unwrap()
            .file("app.toml")
            .unwrap()
            .merge(Serialized::default("http.port", 3))
            .toml("[other]\nkey = 1")
            .unwrap();
        let http = source.load::<Http>().unwrap();
        assert_eq!(
            http,
            Http {
                host: "file".into(),
                port: 3
            }
        );
    });
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    jail(|_| {
        let error = ConfigSource::new().file("missing.toml").unwrap_err();
        assert!(error.is_missing_file());
        assert!(error.to_string().contains("missing.toml"), "{error}");
    });
}

#[test]
fn file_named_by_env_is_a_layer() {
    jail(|jail| {
        jail.create_file("env.toml", "[http]\nhost = \"env\"\nport = 7\n")
            .unwrap();
        jail.set_env("T_FILE_CONFIG", "env.toml");
        let source = ConfigSource::new().file_from_env("T_FILE_CONFIG").unwrap();
        assert_eq!(source.load::<Http>().unwrap().host, "env");
    });
}

#[test]
fn unset_or_empty_file_variable_adds_nothing() {
    jail(|jail| {
        jail.set_env("T_FILE_EMPTY_CONFIG", "");
        let source = ConfigSource::new()
            .file_from_env("T_FILE_UNSET_CONFIG")
            .unwrap()
            .file_from_env("T_FILE_EMPTY_CONFIG")
            .unwrap();
        assert!(source.load::<Http>().unwrap_err().is_missing_field());
    });
}

#[test]
fn missing_file_named_by_env_names_the_variable() {
    jail(|jail| {
        jail.set_env("T_FILE_MISSING_CONFIG", "nowhere.toml");
        let error = ConfigSource::new()
            .file_from_env("T_FILE_MISSING_CONFIG")
            .unwrap_err();
        assert!(error.is_missing_file());
        let message = error.to_string();
        assert!(
            message.contains("nowhere.toml") && message.contains("T_FILE_MISSING_CONFIG"),
            "{message}"
        );
    });
}

#[test]
fn toml_syntax_errors_name_the_file_and_line() {
    jail(|jail| {
        jail.create_file("bad.toml", "[http]\nport = 80\nhost = \n")
            .unwrap();
        let error = ConfigSource::new().file("bad.toml").unwrap_err();
        assert!(error.is_parse());
        let message = error.to_string();
        assert!(
            message.contains("bad.toml") && message.contains("line 3"),
            "{message}"
        );
    });
}

#[test]
fn toml_text_syntax_errors_name_the_text() {
    let error = ConfigSource::new().toml("a = [").unwrap_err();
    assert!(error.is_parse());
    assert!(
        error
            .to_string()
            .starts_with("TOML text is not valid TOML at line 1"),
        "{error}"
    );
}

#[test]
fn defaults_must_be_a_table() {
    let error = ConfigSource::new().defaults(&5).unwrap_err();
    assert!(error.to_string().contains("not to a table"), "{error}");
}

// ---- sections ----

#[test]
fn sections_bind_to_named_dotted_and_root_tables() {
    let source = ConfigSource::new()
        .toml("log_level = \"warn\"\n[db.replica]\nread_only = true\n[foobar]\nsome = \"x\"")
        .unwrap();
    assert_eq!(source.load::<Foobar>().unwrap().some, "x");
    assert!(source.load::<Replica>().unwrap().read_only);
    assert_eq!(source.load::<RootWithLogLevel>().unwrap().log_level, "warn");
}

#[test]
fn sections_are_cached_and_load_reads_afresh() {
    jail(|jail| {
        let source = ConfigSource::new()
            .env_prefix("T_CACHE")
            .toml("[foobar]\nsome = \"file\"")
            .unwrap();
        let first = source.section::<Foobar>().unwrap();
        jail.set_env("T_CACHE_FOOBAR_SOME", "env");
        let second = source.section::<Foobar>().unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(second.some, "file");
        assert_eq!(source.load::<Foobar>().unwrap().some, "env");
        assert!(Arc::ptr_eq(
            &source.clone().section::<Foobar>().unwrap(),
            &first
        ));
    });
}

#[test]
fn missing_section_uses_in_code_defaults() {
    let log = ConfigSource::new().load::<LogConfig>().unwrap();
    assert_eq!(log, LogConfig::default());
}

#[test]
fn in_code_defaults_fill_only_missing_fields() {
    let log = ConfigSource::new()
        .toml("[log]\nformat = \"json\"")
        .unwrap()
        .load::<LogConfig>()
        .unwrap();
    assert_eq!((log.level.as_str(), log.format), ("info", LogFormat::Json));
}

#[test]
fn section_that_is_not_a_table_is_an_error() {
    let error = ConfigSource::new()
        .toml("http = 5")
        .unwrap()
        .load::<Http>()
        .unwrap_err();
    assert!(error.is_invalid_value());
    assert!(
        error.to_string().contains("http: expected a table"),
        "{error}"
    );
}

// ---- environment variable naming ----

#[test]
fn prefix_section_and_field_name_the_variable() {
    jail(|jail| {
        jail.set_env("T_NAME_FOOBAR_SOME", "from env");
        let source = ConfigSource::new().env_prefix("T_NAME");
        assert_eq!(source.load::<Foobar>().unwrap().some, "from env");
    });
}

#[test]
fn log_level_sets_field_level_of_section_log() {
    jail(|jail| {
        jail.set_env("T_LOG_LOG_LEVEL", "debug");
        let log = ConfigSource::new()
            .env_prefix("T_LOG")
            .load::<LogConfig>()
            .unwrap();
        assert_eq!(log.level, "debug");
    });
}

#[test]
fn log_level_sets_root_field_log_level() {
    jail(|jail| {
        jail.set_env("T_ROOT_LOG_LEVEL", "debug");
        let root = ConfigSource::new()
            .env_prefix("T_ROOT")
            .load::<RootWithLogLevel>()
            .unwrap();
        assert_eq!(root.log_level, "debug");
    });
}

#[test]
fn nested_struct_fields_join_with_underscores() {
    jail(|jail| {
        jail.set_env("T_NEST_BAR_FOO_BAZ", "42");
        let bar = ConfigSource::new()
            .env_prefix("T_NEST")
            .load::<Bar>()
            .unwrap();
        assert_eq!(bar.foo.baz, 42);
    });
}

#[test]
fn underscores_inside_section_and_field_names_work() {
    jail(|jail| {
        jail.set_env("T_UNDER_MY_SERVICE_MAX_CONN_COUNT", "9");
        let section = ConfigSource::new()
            .env_prefix("T_UNDER")
            .load::<Underscored>()
            .unwrap();
        assert_eq!(section.max_conn_count, 9);
    });
}

#[test]
fn dotted_sections_and_renamed_fields_map_to_variables() {
    jail(|jail| {
        jail.set_env("T_DOT_DB_REPLICA_READ_ONLY", "yes");
        jail.set_env("T_DOT_KEBAB_IDLE_TIMEOUT", "30");
        let source = ConfigSource::new().env_prefix("T_DOT_");
        assert!(source.load::<Replica>().unwrap().read_only);
        assert_eq!(source.load::<Kebab>().unwrap().idle_timeout, 30);
    });
}

#[test]
fn environment_overrides_files() {
    jail(|jail| {
        jail.create_file("app.toml", "[http]\nhost = \"file\"\nport = 1\n")
            .unwrap();
        jail.set_env("T_OVER_HTTP_PORT", "8080");
        let http = ConfigSource::new()
            .env_prefix("T_OVER")
            .file("app.toml")
            .unwrap()
            .load::<Http>()
            .unwrap();
        assert_eq!(
            http,
            Http {
                host: "file".into(),
                port: 8080
            }
        );
    });
}

// ---- environment value types ----

fn types_from_env(jail: &mut Jail, vars: &[(&str, &str)]) -> Types {
    for (name, value) in vars {
        jail.set_env(format!("T_TYPES_TYPES_{name}"), value);
    }
    ConfigSource::new()
        .env_prefix("T_TYPES")
        .load::<Types>()
        .unwrap()
}

#[test]
fn booleans_accept_words_in_any_case() {
    jail(|jail| {
        for (raw, expected) in [("1", true), ("YES", true), ("On", true), ("true", true)] {
            assert_eq!(
                types_from_env(jail, &[("FLAG", raw)]).flag,
                expected,
                "{raw}"
            );
        }
        for (raw, expected) in [
            ("0", false),
            ("no", false),
            ("OFF", false),
            ("False", false),
        ] {
            assert_eq!(
                types_from_env(jail, &[("FLAG", raw)]).flag,
                expected,
                "{raw}"
            );
        }
    });
}

#[test]
fn numbers_parse_to_the_field_type() {
    jail(|jail| {
        let types = types_from_env(jail, &[("COUNT", "-12"), ("RATIO", "0.25")]);
        assert_eq!((types.count, types.ratio), (-12, 0.25));
    });
}

#[test]
fn strings_stay_strings_even_when_they_look_like_numbers() {
    jail(|jail| {
        assert_eq!(types_from_env(jail, &[("NAME", "007")]).name, "007");
    });
}

#[test]
fn lists_accept_commas_and_toml_arrays() {
    jail(|jail| {
        let types = types_from_env(jail, &[("TAGS", "a, b,c"), ("PORTS", "[80, 443]")]);
        assert_eq!(types.tags, ["a", "b", "c"]);
        assert_eq!(types.ports, [80, 443]);
        let types = types_from_env(jail, &[("TAGS", r#"["x,y", "z"]"#), ("PORTS", "1,2")]);
        assert_eq!(types.tags, ["x,y", "z"]);
        assert_eq!(types.ports, [1, 2]);
    });
}

#[test]
fn option_fields_take_the_inner_type_and_ignore_empty_values() {
    jail(|jail| {
        assert_eq!(types_from_env(jail, &[("LIMIT", "5")]).limit, Some(5));
        assert_eq!(types_from_env(jail, &[("LIMIT", "")]).limit, None);
    });
}

#[test]
fn maps_accept_toml_inline_tables() {
    jail(|jail| {
        let types = types_from_env(jail, &[("LABELS", r#"{ team = "core", tier = "1" }"#)]);
        assert_eq!(types.labels.get("team").map(String::as_str), Some("core"));
        assert_eq!(types.labels.len(), 2);
    });
}

#[test]
fn enums_accept_their_variant_names() {
    jail(|jail| {
        jail.set_env("T_ENUM_LOG_FORMAT", "pretty");
        let log = ConfigSource::new()
            .env_prefix("T_ENUM")
            .load::<LogConfig>()
            .unwrap();
        assert_eq!(log.format, LogFormat::Pretty);
    });
}

#[test]
fn bad_enum_values_list_the_variants() {
    jail(|jail| {
        jail.set_env("T_BADENUM_LOG_FORMAT", "xml");
        let error = ConfigSource::new()
            .env_prefix("T_BADENUM")
            .load::<LogConfig>()
            .unwrap_err();
        assert!(error.is_invalid_value());
        assert_eq!(
            error.to_string(),
            "log.format: expected one of `auto`, `json`, `pretty`, found \"xml\", \
             from environment variable T_BADENUM_LOG_FORMAT"
        );
    });
}

#[test]
fn secrets_are_set_from_the_environment() {
    jail(|jail| {
        assert_eq!(
            types_from_env(jail, &[("TOKEN", "s3cret")]).token.expose(),
            "s3cret"
        );
    });
}

// ---- errors ----

#[test]
fn bad_env_value_names_key_type_value_and_variable() {
    jail(|jail| {
        jail.set_env("APP_HTTP_PORT", "abc");
        let error = ConfigSource::new()
            .env_prefix("APP")
            .toml("[http]\nhost = \"h\"\nport = 1")
            .unwrap()
            .load::<Http>()
            .unwrap_err();
        assert!(error.is_invalid_value());
        assert_eq!(
            error.to_string(),
            r#"http.port: expected u16, found string "abc", from environment variable APP_HTTP_PORT"#
        );
    });
}

#[test]
fn bad_file_value_names_file_and_line() {
    jail(|jail| {
        jail.create_file(
            "app.toml",
            "# comment\n[http]\nhost = \"h\"\nport = \"abc\"\n",
        )
        .unwrap();
        let error = ConfigSource::new()
            .file("app.toml")
            .unwrap()
            .load::<Http>()
            .unwrap_err();
        let path = jail.directory().join("app.toml");
        assert_eq!(
            error.to_string(),
            format!(
                r#"http.port: expected u16, found string "abc", from file {} line 4"#,
                path.display()
            )
        );
    });
}

#[test]
fn bad_list_item_in_a_file_names_its_line() {
    jail(|jail| {
        jail.create_file("app.toml", "[types]\nports = [\n  80,\n  \"x\",\n]\n")
            .unwrap();
        let error = ConfigSource::new()
            .file("app.toml")
            .unwrap()
            .load::<Types>()
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("types.ports.1: expected u16, found string \"x\""),
            "{message}"
        );
        assert!(message.ends_with("app.toml line 4"), "{message}");
    });
}

#[test]
fn bad_toml_text_value_names_the_text() {
    let error = ConfigSource::new()
        .toml("[http]\nhost = 5\nport = 1")
        .unwrap()
        .load::<Http>()
        .unwrap_err();
    assert!(error.is_invalid_value());
    assert!(
        error
            .to_string()
            .starts_with("http.host: expected a string, found signed int `5`, from TOML text"),
        "{error}"
    );
}

#[test]
fn bad_default_value_names_the_defaults() {
    let error = ConfigSource::new()
        .defaults(&serde_json::json!({"http": {"host": "h", "port": -1}}))
        .unwrap()
        .load::<Http>()
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("from in-code defaults of `Value`"),
        "{error}"
    );
}

#[test]
fn bad_toml_array_in_env_names_the_variable() {
    jail(|jail| {
        jail.set_env("T_ARR_TYPES_PORTS", "[1, 2");
        let error = ConfigSource::new()
            .env_prefix("T_ARR")
            .load::<Types>()
            .unwrap_err();
        assert!(error.is_invalid_value());
        let message = error.to_string();
        assert!(
            message.starts_with("types.ports: expected list of u16, found \"[1, 2\""),
            "{message}"
        );
        assert!(
            message.ends_with("from environment variable T_ARR_TYPES_PORTS"),
            "{message}"
        );
    });
}

#[test]
fn missing_field_names_the_key_and_its_variable() {
    jail(|_| {
        let error = ConfigSource::new()
            .env_prefix("APP")
            .toml("[http]\nhost = \"h\"")
            .unwrap()
            .load::<Http>()
            .unwrap_err();
        assert!(error.is_missing_field());
        let message = error.to_string();
        assert!(message.starts_with("http.port: missing"), "{message}");
        assert!(message.contains("APP_HTTP_PORT"), "{message}");
    });
}

#[test]
fn unknown_keys_are_warnings_by_default() {
    jail(|jail| {
        jail.create_file("app.toml", "[http]\nhost = \"h\"\nport = 1\nportt = 2\n")
            .unwrap();
        let source = ConfigSource::new().file("app.toml").unwrap();
        assert!(source.load::<Http>().is_ok());
        let unknown = source.unknown_keys().unwrap();
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].key(), "http.portt");
        assert!(
            unknown[0].origin().ends_with("app.toml line 4"),
            "{}",
            unknown[0].origin()
        );
        assert!(
            unknown[0].to_string().contains("did you mean `port`?"),
            "{}",
            unknown[0]
        );
    });
}

#[test]
fn unknown_keys_are_errors_when_denied() {
    let error = ConfigSource::new()
        .deny_unknown_keys(true)
        .toml("[http]\nhost = \"h\"\nport = 1\nextra = true")
        .unwrap()
        .load::<Http>()
        .unwrap_err();
    assert!(error.is_unknown_key());
    assert!(
        error
            .to_string()
            .starts_with("http.extra: unknown key, from TOML text"),
        "{error}"
    );
}

#[test]
fn root_sections_do_not_report_other_sections_as_unknown() {
    let source = ConfigSource::new()
        .deny_unknown_keys(true)
        .toml("log_level = \"info\"\nplugins = []\n[http]\nport = 1")
        .unwrap();
    assert!(source.load::<RootWithLogLevel>().is_ok());
    let error = source
        .toml("stray = 1")
        .unwrap()
        .load::<RootWithLogLevel>()
        .unwrap_err();
    assert!(
        error.to_string().starts_with("stray: unknown key"),
        "{error}"
    );
}

#[derive(Debug, Deserialize)]
struct Db {
    url: String,
}
buvar_kit::section!(Db, "db");

#[test]
fn tables_of_nested_known_sections_are_not_unknown_keys() {
    let source = ConfigSource::new()
        .deny_unknown_keys(true)
        .toml("[db]\nurl = \"pg\"\n[db.replica]\nread_only = true\n[db.stray]\nx = 1")
        .unwrap();
    source.register::<Replica>().unwrap();
    let error = source.load::<Db>().unwrap_err();
    assert!(
        error.to_string().starts_with("db.stray: unknown key"),
        "{error}"
    );
    let source = ConfigSource::new()
        .deny_unknown_keys(true)
        .toml("[db]\nurl = \"pg\"\n[db.replica]\nread_only = true")
        .unwrap();
    source.register::<Replica>().unwrap();
    assert_eq!(source.load::<Db>().unwrap().url, "pg");
}

#[test]
fn unknown_variables_are_warned_about_with_the_closest_field() {
    jail(|jail| {
        jail.set_env("T_WARN_HTTP_PORTT", "1");
        jail.set_env("T_WARN_CONFIG", "");
        jail.set_env("T_WARN_HTTP_PORT", "1");
        let source = ConfigSource::new().env_prefix("T_WARN");
        let source = source.file_from_env("T_WARN_UNSET_FILE").unwrap();
        source.register::<Http>().unwrap();
        let warnings = source.env_warnings();
        let names: Vec<&str> = warnings.iter().map(|warning| warning.var()).collect();
        assert_eq!(names, ["T_WARN_CONFIG", "T_WARN_HTTP_PORTT"]);
        assert_eq!(warnings[1].suggestion(), Some("T_WARN_HTTP_PORT"));
        assert!(
            warnings[1]
                .to_string()
                .ends_with("did you mean T_WARN_HTTP_PORT?"),
            "{}",
            warnings[1]
        );
    });
}

#[derive(Debug, Deserialize)]
struct Opaque {
    #[allow(dead_code)]
    anything: serde_json::Value,
}
buvar_kit::section!(Opaque, "opaque");

#[test]
fn types_that_cannot_be_reflected_fail_only_when_a_variable_targets_them() {
    jail(|jail| {
        let source = ConfigSource::new()
            .env_prefix("T_REFL")
            .toml("[opaque]\nanything = 1")
            .unwrap();
        assert!(source.load::<Opaque>().is_ok());
        jail.set_env("T_REFL_OPAQUE_ANYTHING", "2");
        let error = source.load::<Opaque>().unwrap_err();
        assert!(error.is_reflection());
        assert!(
            error.to_string().contains("T_REFL_OPAQUE_ANYTHING"),
            "{error}"
        );
    });
}

// ---- plugins ----

#[test]
fn plugins_come_from_the_root_list() {
    let source = ConfigSource::new()
        .toml("plugins = [\"app\", \"metrics\"]")
        .unwrap();
    assert_eq!(source.plugins().unwrap(), ["app", "metrics"]);
}

#[test]
fn plugins_are_empty_when_absent() {
    assert!(
        ConfigSource::new()
            .toml("[http]\nport = 1")
            .unwrap()
            .plugins()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn plugins_that_are_not_a_list_of_strings_name_the_source() {
    jail(|jail| {
        jail.create_file("app.toml", "plugins = \"app\"\n").unwrap();
        let error = ConfigSource::new()
            .file("app.toml")
            .unwrap()
            .plugins()
            .unwrap_err();
        assert!(error.is_invalid_value());
        assert!(error.to_string().contains("app.toml line 1"), "{error}");
        let error = ConfigSource::new()
            .toml("plugins = [\"a\", 1]")
            .unwrap()
            .plugins()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("found signed int `1`, from TOML text"),
            "{error}"
        );
    });
}

#[test]
fn plugins_can_be_set_from_the_environment() {
    jail(|jail| {
        jail.set_env("T_PLUG_PLUGINS", "a,b");
        let source = ConfigSource::new()
            .env_prefix("T_PLUG")
            .toml("plugins = [\"file\"]")
            .unwrap();
        assert_eq!(source.plugins().unwrap(), ["a", "b"]);
    });
}

// ---- help and dump ----

#[test]
fn env_help_lists_every_variable_with_type_and_default() {
    let help = env_help::<Types>("APP");
    let names: Vec<&str> = help.vars().iter().map(|var| var.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "APP_TYPES_FLAG",
            "APP_TYPES_COUNT",
            "APP_TYPES_RATIO",
            "APP_TYPES_NAME",
            "APP_TYPES_TAGS",
            "APP_TYPES_PORTS",
            "APP_TYPES_LIMIT",
            "APP_TYPES_LABELS",
            "APP_TYPES_TOKEN",
        ]
    );
    let text = help.to_string();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["APP_TYPES_FLAG", "bool", "default", "false"]);
    assert_eq!(
        lines[5],
        ["APP_TYPES_PORTS", "list", "of", "u16", "default", "[]"]
    );
    assert_eq!(
        lines[6],
        ["APP_TYPES_LIMIT", "optional", "u32", "no", "default"]
    );
    assert_eq!(
        lines[8],
        ["APP_TYPES_TOKEN", "secret", "string", "default", "***"]
    );
    assert_eq!(text.lines().count(), 9);
}

#[test]
fn source_env_help_lists_every_known_section_sorted() {
    jail(|_| {
        let source = ConfigSource::new()
            .env_prefix("APP")
            .file_from_env("APP_CONFIG")
            .unwrap();
        source.register::<Http>().unwrap();
        source.register::<LogConfig>().unwrap();
        let help = source.env_help();
        let names: Vec<&str> = help.vars().iter().map(|var| var.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "APP_CONFIG",
                "APP_HTTP_HOST",
                "APP_HTTP_PORT",
                "APP_LOG_FORMAT",
                "APP_LOG_LEVEL",
                "APP_PLUGINS"
            ]
        );
        let format = &help.vars()[3];
        assert_eq!(
            (format.key.as_str(), format.default.as_deref()),
            ("log.format", Some("\"auto\""))
        );
    });
}

#[test]
fn dump_shows_the_effective_config_with_secrets_redacted() {
    jail(|jail| {
        jail.set_env("T_DUMP_TYPES_TOKEN", "from-env-secret");
        jail.set_env("T_DUMP_TYPES_COUNT", "7");
        let source = ConfigSource::new()
            .env_prefix("T_DUMP")
            .toml("plugins = [\"app\"]\n[types]\nname = \"n\"\ntoken = \"file-secret\"")
            .unwrap();
        source.register::<Types>().unwrap();
        let dump = source.dump().unwrap();
        assert!(!dump.contains("secret\""), "{dump}");
        let parsed: toml::Table = toml::from_str(&dump).unwrap();
        assert_eq!(parsed["types"]["token"].as_str(), Some("***"));
        assert_eq!(parsed["types"]["count"].as_integer(), Some(7));
        assert_eq!(parsed["types"]["name"].as_str(), Some("n"));
        assert_eq!(parsed["types"]["flag"].as_bool(), Some(false));
        assert_eq!(parsed["plugins"][0].as_str(), Some("app"));
    });
}

#[derive(Debug, Deserialize)]
struct Vault {
    #[allow(dead_code)]
    pin: buvar_kit::Secret<u32>,
}
buvar_kit::section!(Vault, "vault");

#[test]
fn a_malformed_secret_is_reported_without_its_value() {
    jail(|jail| {
        let error = ConfigSource::new()
            .toml("[vault]\npin = \"SEKRIT-file\"")
            .unwrap()
            .load::<Vault>()
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("vault.pin: expected u32, found a value that is not shown"),
            "{message}"
        );
        assert!(!message.contains("SEKRIT"), "{message}");

        jail.set_env("APP_VAULT_PIN", "SEKRIT-env");
        let error = ConfigSource::new()
            .env_prefix("APP")
            .toml("[vault]\npin = 1")
            .unwrap()
            .load::<Vault>()
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("APP_VAULT_PIN"), "{message}");
        assert!(!message.contains("SEKRIT"), "{message}");
    });
}
