//! gRPC with tonic on the kit's router (feature `grpc`): services served on the same listeners
//! and through the same layers as the routes, with the kit's injection inside their methods and
//! `grpc.health.v1` answering from readiness.
//!
//! ```
//! use buvar_axum::{GrpcRequestExt, PrepareGrpcExt};
//! use buvar_kit::{BoxError, Prepare};
//! use tonic::{Request, Response, Status};
//! // What tonic generates from a `.proto` (see the `grpc` example and its build script).
//! use proto::greeter_server::{Greeter, GreeterServer};
//! use proto::{HelloReply, HelloRequest};
//! # mod proto {
//! #     pub struct HelloRequest { pub name: String }
//! #     pub struct HelloReply { pub message: String }
//! #     pub mod greeter_server {
//! #         use std::task::{Context, Poll};
//! #         #[tonic::async_trait]
//! #         pub trait Greeter: Send + Sync + 'static {
//! #             async fn say_hello(&self, request: tonic::Request<super::HelloRequest>)
//! #                 -> Result<tonic::Response<super::HelloReply>, tonic::Status>;
//! #         }
//! #         pub struct GreeterServer<T>(std::sync::Arc<T>);
//! #         impl<T> GreeterServer<T> {
//! #             pub fn new(inner: T) -> Self { Self(std::sync::Arc::new(inner)) }
//! #         }
//! #         impl<T> Clone for GreeterServer<T> {
//! #             fn clone(&self) -> Self { Self(self.0.clone()) }
//! #         }
//! #         impl<T> tonic::server::NamedService for GreeterServer<T> {
//! #             const NAME: &'static str = "greeter.v1.Greeter";
//! #         }
//! #         impl<T: Send + Sync + 'static> tower::Service<http::Request<axum::body::Body>>
//! #             for GreeterServer<T>
//! #         {
//! #             type Response = http::Response<tonic::body::Body>;
//! #             type Error = std::convert::Infallible;
//! #             type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
//! #             fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
//! #                 Poll::Ready(Ok(()))
//! #             }
//! #             fn call(&mut self, _: http::Request<axum::body::Body>) -> Self::Future {
//! #                 std::future::ready(Ok(tonic::Status::unimplemented("").into_http()))
//! #             }
//! #         }
//! #     }
//! # }
//!
//! struct Greeting(&'static str);
//!
//! struct Greetings;
//!
//! #[tonic::async_trait]
//! impl Greeter for Greetings {
//!     async fn say_hello(
//!         &self,
//!         request: Request<HelloRequest>,
//!     ) -> Result<Response<HelloReply>, Status> {
//!         // The kit's components and adapters, from the call's own context.
//!         let greeting = request.component::<Greeting>()?;
//!         let message = format!("{}, {}", greeting.0, request.get_ref().name);
//!         Ok(Response::new(HelloReply { message }))
//!     }
//! }
//!
//! async fn prepare(cx: Prepare) -> Result<(), BoxError> {
//!     cx.context().add(Greeting("hello"));
//!     cx.grpc(GreeterServer::new(Greetings));
//!     Ok(())
//! }
//! ```
//!
//! # What a gRPC call goes through
//!
//! A service is a route of the server's router (`/{package.Service}/{*method}`), so a call goes
//! through every layer a request does: the request id (`x-request-id`, answered in the response
//! headers), the trace span, the metrics, panics caught, `[http] body_limit` on the request's
//! messages (a call whose messages exceed it ends with `RESOURCE_EXHAUSTED`), the per-request
//! context, and `max_requests` (one call counts as one request).
//! HTTP/2 is what gRPC needs: the server speaks it on every listener (h2c with prior knowledge,
//! or ALPN `h2` with `[http.tls]`).
//!
//! # Deadlines
//!
//! A client's deadline (the `grpc-timeout` header) bounds the call on the server as well: the
//! call gets the shorter of its deadline and `[http] request_timeout`, and at the end of it
//! the method's future is dropped and the client gets `DEADLINE_EXCEEDED`. A deadline never
//! lengthens the kit's request timeout, so a client cannot hold a worker longer than the
//! operator allows; and a call without a deadline gets `DEADLINE_EXCEEDED` (not the HTTP
//! `408` a route gets) at `request_timeout`. Both bound the time until the response's headers,
//! which for a unary call is the whole call; a streaming response runs on after them, bounded
//! by the graceful drain at shutdown. A malformed `grpc-timeout` is answered `INTERNAL` naming
//! the header, as grpc-go does.
//!
//! # Health
//!
//! The first service a plugin adds brings `grpc.health.v1.Health` with it (tonic-health's
//! generated server, answered from the kit's readiness): `SERVING` while `/readyz` would answer
//! 200 (the worker accepts connections and every readiness check passes), `NOT_SERVING` while
//! it starts, while a check fails and once it drains. The service name `""`, the health
//! service's own and every added service's name are known; any other is `NOT_FOUND` (`Check`)
//! or `SERVICE_UNKNOWN` (`Watch`). `Watch` sends the status at once, then each change (it looks
//! again every `[readiness] cache` seconds, at least every second, and at once when the worker
//! starts draining), and ends after sending `NOT_SERVING` for the drain, so that an open watch
//! does not hold the drain up.

mod call;
mod health;
mod request;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use buvar_kit::{Context, Prepare};
use http::{Request, Response};
use tonic::server::NamedService;
use tower::Service;

use crate::{HttpConfig, PrepareExt};
use call::GrpcCall;
pub use request::GrpcRequestExt;

/// Lets plugins add tonic services to the server's router, beside their routes.
pub trait PrepareGrpcExt {
    /// Adds `service` (a tonic server: `GreeterServer::new(greeter)`) at
    /// `/{package.Service}/*`; the first one also adds `grpc.health.v1.Health`. See the
    /// [module docs](self) for the layers, deadlines and health.
    ///
    /// A service added twice, or a health service of one's own beside the kit's, clashes:
    /// the server does not start and names the plugin that added the second.
    fn grpc<S>(&self, service: S)
    where
        S: NamedService
            + Service<
                Request<Body>,
                Response = Response<tonic::body::Body>,
                Error = Infallible,
                Future: Send + 'static,
            > + Clone
            + Send
            + Sync
            + 'static;
}

impl PrepareGrpcExt for Prepare {
    fn grpc<S>(&self, service: S)
    where
        S: NamedService
            + Service<
                Request<Body>,
                Response = Response<tonic::body::Body>,
                Error = Infallible,
                Future: Send + 'static,
            > + Clone
            + Send
            + Sync
            + 'static,
    {
        // An invalid `[http]` section fails the server plugin's own prepare step first, so the
        // default here is never served.
        let http = crate::server::http_config(self.context())
            .unwrap_or_else(|_| Arc::new(HttpConfig::default()));
        let mut router = route(S::NAME, service, &http);
        if GrpcServices::of(self.context()).add(S::NAME) {
            router = router.merge(route(health::SERVICE_NAME, health::service(), &http));
        }
        self.routes(router);
    }
}

/// `service` at the paths of its methods, each call with its deadline and the body limit.
fn route<S>(name: &str, service: S, http: &HttpConfig) -> Router
where
    S: Service<
            Request<Body>,
            Response = Response<tonic::body::Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    Router::new().route_service(
        &format!("/{name}/{{*method}}"),
        GrpcCall::new(service, http.request_timeout(), http.body_limit),
    )
}

/// The names of the gRPC services plugins added, which the health service knows.
#[derive(Debug, Default)]
pub(crate) struct GrpcServices {
    names: Mutex<Vec<&'static str>>,
}

impl GrpcServices {
    fn of(context: &Context) -> Arc<Self> {
        match context.try_get::<Self>() {
            Some(services) => services,
            None => context.add(Self::default()),
        }
    }

    /// Records `name`; true for the first service.
    fn add(&self, name: &'static str) -> bool {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names.push(name);
        names.len() == 1
    }

    fn knows(&self, name: &str) -> bool {
        name.is_empty()
            || name == health::SERVICE_NAME
            || self
                .names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&name)
    }
}

#[cfg(test)]
mod tests;
