//! {{project-name}}: flags, config, logging, sockets and workers come from `buvar_axum::Service`;
//! what the service does lives in its plugins, one line each here.

use std::process::ExitCode;

use buvar_axum::Service;

use {{crate_name}}::plugins;

fn main() -> ExitCode {
    let service = Service::new("{{env_prefix}}");
    let service = plugins::greeter::install(service);
    service.run()
}
