//! The kit's components and injection inside a gRPC method.

use std::future::Future;
use std::sync::Arc;

use buvar_kit::extract::MissingRequestContext;
use buvar_kit::{Context, RequestContext};
use tonic::Status;

/// Components and injected values in a gRPC method, from the call's own context (a child of
/// the plugin context, as a route's request has).
///
/// A failure answers `INTERNAL` with a generic message and logs the reason (the type, and for
/// injection the whole chain), as the extractors answer `500`: `?` passes it on.
///
/// ```
/// use std::sync::Arc;
/// use buvar_axum::GrpcRequestExt;
/// use tonic::{Request, Status};
///
/// struct Greeting(String);
///
/// async fn greeting_of<M>(request: &Request<M>) -> Result<Arc<Greeting>, Status> {
///     request.nject::<Greeting>().await
/// }
/// ```
///
/// The ambient forms work as well: a unary method runs as part of the call's request, so
/// `buvar_kit::get::<T>()` and `buvar_kit::nject::<T>()` read the call's context. A streaming
/// response's items are made after the method returned, outside of it: carry what they need
/// into the stream, or spawn with [`buvar_kit::spawn`] from the method.
pub trait GrpcRequestExt {
    /// The call's own context, to add to (made now if it does not exist yet).
    fn context(&self) -> Result<Context, Status>;

    /// The component of type `T`: in the call's context, else in the plugin context.
    fn component<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, Status>;

    /// A `T` resolved by dependency injection in the call's context: a component, else the
    /// first adapter for `T` whose own dependencies resolve. Adapters may depend on the
    /// request's head (`Arc<http::request::Parts>`, without its extensions).
    fn nject<T: Send + Sync + 'static>(
        &self,
    ) -> impl Future<Output = Result<Arc<T>, Status>> + Send;
}

impl<M> GrpcRequestExt for tonic::Request<M> {
    fn context(&self) -> Result<Context, Status> {
        Ok(request_context(self)?.context().clone())
    }

    fn component<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, Status> {
        request_context(self)?
            .nearest()
            .get::<T>()
            .map_err(|err| internal("component", &err))
    }

    fn nject<T: Send + Sync + 'static>(
        &self,
    ) -> impl Future<Output = Result<Arc<T>, Status>> + Send {
        let context = request_context(self).cloned();
        async move {
            let context = context?;
            if let Some(value) = context.nearest().try_get::<T>() {
                return Ok(value);
            }
            context
                .context()
                .nject::<T>()
                .await
                .map_err(|err| internal("nject", &err))
        }
    }
}

fn request_context<M>(request: &tonic::Request<M>) -> Result<&RequestContext, Status> {
    request
        .extensions()
        .get::<RequestContext>()
        .ok_or_else(|| internal("context", &MissingRequestContext))
}

/// `INTERNAL` for the client; the reason, which names internal types, for the log.
fn internal(what: &'static str, reason: &dyn std::error::Error) -> Status {
    tracing::error!(lookup = what, %reason, "gRPC call: the kit's lookup failed");
    Status::internal("internal error")
}
