// `register` where `register_infallible` was meant.
use std::sync::Arc;

use buvar_kit::Context;

struct Pool;
struct Repo(Arc<Pool>);

fn repo(pool: Arc<Pool>) -> Repo {
    Repo(pool)
}

fn main() {
    Context::new().adapters().register(repo);
}
