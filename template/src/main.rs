//! {{project-name}}: flags, config, logging, sockets and workers come from `buvar_axum::Service`;
//! what the service does lives in its plugins.

use std::process::ExitCode;

use buvar_axum::Service;

{% if database == "postgres" -%}
use {{crate_name}}::plugins::{database, greeter, notes};
{%- else -%}
use {{crate_name}}::plugins::greeter;
{%- endif %}

fn main() -> ExitCode {
    Service::new("{{env_prefix}}")
        .section::<greeter::GreeterConfig>()
        .load(greeter::plugin())
{%- if database == "postgres" %}
        .section::<database::DatabaseConfig>()
        .before_fork("migrate", database::migrate)
        .load(database::plugin())
        .load(notes::plugin())
{%- endif %}
        .run()
}
