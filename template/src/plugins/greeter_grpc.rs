//! The greeter over gRPC: `{{crate_name}}.greeter.v1.Greeter/Greet` (`proto/greeter.proto`)
//! answers what `GET /greet/{name}` answers, on the same port, from the same injected
//! [`Greeter`]. buvar adds `grpc.health.v1.Health` with the first gRPC service, answered from
//! the readiness `/readyz` reports.
//!
//! ```sh
//! grpcurl -plaintext -import-path proto -proto greeter.proto -d '{"name": "ada"}' \
//!     localhost:{{http_port}} {{crate_name}}.greeter.v1.Greeter/Greet
//! ```
//!
//! A call goes through the same layers as a request (request id, tracing, metrics, body limit);
//! its deadline (`grpc-timeout`) is the shorter of the client's and `[http] request_timeout`.

use buvar_axum::{BoxError, GrpcRequestExt, Plugin, Prepare, PrepareGrpcExt};
use tonic::{Request, Response, Status};

use super::greeter::Greeter;

/// The code protoc and tonic generate from `proto/greeter.proto`.
pub mod proto {
    #![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    tonic::include_proto!("{{crate_name}}.greeter.v1");
}

use proto::greeter_server::GreeterServer;
use proto::{GreetReply, GreetRequest};

/// The gRPC service; what it needs comes from each call's context.
#[derive(Debug)]
pub struct GreeterService;

#[tonic::async_trait]
impl proto::greeter_server::Greeter for GreeterService {
    async fn greet(&self, request: Request<GreetRequest>) -> Result<Response<GreetReply>, Status> {
        // Made by the greeter plugin's adapter, as the route's `Inject<Greeter>` is.
        let greeter = request.nject::<Greeter>().await?;
        let name = &request.get_ref().name;
        if name.is_empty() {
            return Err(Status::invalid_argument(
                "`name` is empty: say who to greet",
            ));
        }
        Ok(Response::new(GreetReply {
            greeting: greeter.greet(name),
        }))
    }
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    cx.grpc(GreeterServer::new(GreeterService));
    Ok(())
}

/// The plugin, named `greeter-grpc`; load it with the greeter plugin, whose adapter it uses.
pub fn plugin() -> Plugin {
    Plugin::new("greeter-grpc", prepare)
}

#[cfg(test)]
mod tests {
    use buvar_axum::testing::TestApp;
    use tonic::Code;
    use tonic::transport::Channel;

    use super::proto::greeter_client::GreeterClient;
    use super::*;

    #[tokio::test]
    async fn a_grpc_client_is_greeted_on_the_services_port() {
        let server = TestApp::new()
            .load(super::super::greeter::plugin())
            .load(plugin())
            .serve()
            .await
            .unwrap();
        // The server speaks HTTP/2 without TLS (h2c) on the same socket as HTTP/1.1.
        let channel = Channel::from_shared(server.url(""))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = GreeterClient::new(channel);
        let reply = client
            .greet(GreetRequest {
                name: "ada".to_owned(),
            })
            .await
            .unwrap();
        assert_eq!(reply.into_inner().greeting, "Hello, ada!");

        let refused = client.greet(GreetRequest::default()).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

        let report = server.stop().await;
        assert!(report.is_success(), "{report:?}");
    }
}
