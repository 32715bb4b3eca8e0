// A section type taken as it is, where `Config<T>` was meant.
use buvar_kit::Context;

#[derive(serde::Deserialize)]
struct TodosConfig {
    limit: u32,
}
buvar_kit::section!(TodosConfig, "todos");

struct Repo(u32);

fn repo(config: TodosConfig) -> Repo {
    Repo(config.limit)
}

fn main() {
    Context::new().adapters().register_infallible(repo);
}
