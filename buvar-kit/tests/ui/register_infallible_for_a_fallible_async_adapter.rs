// `register_infallible` given an async function that cannot be an adapter: it is not `Send`.
use std::rc::Rc;

use buvar_kit::Context;

struct Repo;

async fn repo() -> Result<Repo, std::io::Error> {
    let not_send = Rc::new(());
    std::future::ready(()).await;
    drop(not_send);
    Ok(Repo)
}

fn main() {
    Context::new().adapters().register(repo);
}
