//! {{project-name}}: flags, config, logging, sockets and workers come from `buvar_axum::Service`;
//! what the service does lives in its plugins.

use std::process::ExitCode;

use buvar_axum::Service;

use {{crate_name}}::plugins::greeter;

fn main() -> ExitCode {
    Service::new("{{env_prefix}}")
        .section::<greeter::GreeterConfig>()
        .load(greeter::plugin())
        .run()
}
