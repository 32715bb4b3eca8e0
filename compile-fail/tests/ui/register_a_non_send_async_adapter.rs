// An async adapter whose future is not `Send` (it holds an `Rc` across an await).
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
