//! {{project-name}}: flags, config, logging, sockets and workers come from `buvar_axum::App`;
//! what the service does lives in its plugins, one line each here.

use std::process::ExitCode;

use buvar_axum::App;

{% if database == "postgres" -%}
use {{crate_name}}::plugins::{self, database, notes};
{%- else -%}
use {{crate_name}}::plugins;
{%- endif %}

fn main() -> ExitCode {
    let service = App::new("{{env_prefix}}");
    let service = plugins::greeter::install(service);
{%- if grpc %}
    let service = service.load(plugins::greeter_grpc::plugin());
{%- endif %}
{%- if database == "postgres" %}
    let service = service
        .section::<database::DatabaseConfig>()
        .before_fork("migrate", database::migrate)
        .load(database::plugin())
        .load(notes::plugin());
{%- endif %}
    service.run()
}
