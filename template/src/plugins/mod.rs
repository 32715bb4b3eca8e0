//! The service's plugins: each adds its config section, components, adapters, routes and tasks
//! to the stage. Add one file per concept, declare it here, and install it in `main`; README.md's
//! "Add your own plugin" walks through one.
//!
//! Every worker process stages its own plugins: what a plugin keeps in memory is per worker.

{% if database == "postgres" -%}
pub mod database;
{% endif -%}
pub mod greeter;
{%- if grpc %}
pub mod greeter_grpc;
{%- endif %}
{%- if database == "postgres" %}
pub mod notes;
{%- endif %}
