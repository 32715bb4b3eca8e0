//! {{project-name}}, a buvar service: its plugins, for `main` and the tests.

pub mod plugins;
