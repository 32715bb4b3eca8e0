//! The service's plugins: each adds its components, adapters, routes and tasks to the stage.
//! Add one per concept, and load it in `main` (and in the tests that need it).

{% if database == "postgres" -%}
pub mod database;
{% endif -%}
pub mod greeter;
{%- if database == "postgres" %}
pub mod notes;
{%- endif %}
