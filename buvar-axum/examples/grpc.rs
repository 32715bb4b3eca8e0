//! REST and gRPC on one port: `cargo run --example grpc --features grpc` (protoc compiles
//! `proto/greeter.proto`; Debian: `apt-get install protobuf-compiler`), then
//!
//! ```text
//! curl localhost:8080/greet/Ada
//! grpcurl -plaintext -import-path buvar-axum/proto -proto greeter.proto \
//!     -d '{"name": "Ada"}' localhost:8080 buvar.example.greeter.v1.Greeter/SayHello
//! grpcurl -plaintext -import-path ... localhost:8080 grpc.health.v1.Health/Check
//! ```
//!
//! Both answer from one injected `Greeting` component, made by an adapter from the
//! `[greeter]` section (`APP_GREETER_GREETING=Servus` changes it). gRPC calls go through the
//! kit's layers as routes do: request id, trace span, metrics, the request timeout (as the
//! call's deadline), the body limit. Flags: `--config FILE`, `--check`, `--print-config`,
//! `--env-help`.

use std::process::ExitCode;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use buvar_axum::{App, GrpcRequestExt, Inject, PrepareExt, PrepareGrpcExt};
use buvar_kit::{BoxError, Config, Plugin, Prepare};
use tonic::{Request, Response, Status};

/// The code protoc and tonic made from `proto/greeter.proto`.
mod proto {
    #![allow(missing_docs, unreachable_pub, missing_debug_implementations)]
    tonic::include_proto!("buvar.example.greeter.v1");
}

use proto::greeter_server::{Greeter, GreeterServer};
use proto::{HelloReply, HelloRequest};

/// The `[greeter]` section.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
struct GreeterConfig {
    /// The word before the name.
    greeting: String,
}

impl Default for GreeterConfig {
    fn default() -> Self {
        Self {
            greeting: "Hello".into(),
        }
    }
}

buvar_kit::section!(GreeterConfig, "greeter", default);

/// What both protocols answer from.
struct Greeting {
    word: String,
}

impl Greeting {
    fn to(&self, name: &str) -> String {
        format!("{}, {name}", self.word)
    }
}

/// An adapter: the component, made from the config section.
fn greeting(config: Config<GreeterConfig>) -> Greeting {
    Greeting {
        word: config.greeting.clone(),
    }
}

async fn greet(Inject(greeting): Inject<Greeting>, Path(name): Path<String>) -> String {
    greeting.to(&name)
}

/// The gRPC service.
struct Greetings;

#[tonic::async_trait]
impl Greeter for Greetings {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let greeting = request.nject::<Greeting>().await?;
        let name = &request.get_ref().name;
        if name.is_empty() {
            return Err(Status::invalid_argument(
                "`name` is empty: say who to greet",
            ));
        }
        Ok(Response::new(HelloReply {
            message: greeting.to(name),
            pid: std::process::id(),
        }))
    }
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    cx.adapters().register_infallible(greeting);
    cx.routes(Router::new().route("/greet/{name}", get(greet)));
    cx.grpc(GreeterServer::new(Greetings));
    Ok(())
}

fn main() -> ExitCode {
    App::new("APP")
        .section::<GreeterConfig>()
        .load(Plugin::new("greeter", prepare))
        .run()
}
