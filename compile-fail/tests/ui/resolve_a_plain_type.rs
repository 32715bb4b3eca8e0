// `resolve` of a type that is not a dependency: a section type instead of `Config<T>`.
use buvar_kit::Context;

#[derive(serde::Deserialize)]
struct TodosConfig {
    limit: u32,
}
buvar_kit::section!(TodosConfig, "todos");

async fn read(ctx: Context) -> u32 {
    ctx.resolve::<TodosConfig>().await.map_or(0, |config| config.limit)
}

fn main() {
    drop(read(Context::new()));
}
