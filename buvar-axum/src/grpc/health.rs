//! `grpc.health.v1.Health` (tonic-health's generated server) answered from the kit's readiness:
//! the verdict `/readyz` gives.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use buvar_kit::Cancel;
use futures_util::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::GrpcServices;
use super::request::GrpcRequestExt;
use crate::server::{Readiness, ReadyVerdict};

/// The health service's own name.
pub(super) const SERVICE_NAME: &str = "grpc.health.v1.Health";

/// How often an open `Watch` looks at the checks again.
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub(super) fn service() -> HealthServer<ReadinessHealth> {
    HealthServer::new(ReadinessHealth)
}

/// The health service; it reads the server's state from each call's context.
#[derive(Debug)]
pub(super) struct ReadinessHealth;

/// What a status is computed from, taken from a call's context.
#[derive(Clone)]
struct Sources {
    readiness: Arc<Readiness>,
    cancel: Arc<Cancel>,
    verdict: Arc<ReadyVerdict>,
    known: bool,
}

impl Sources {
    fn of(request: &Request<HealthCheckRequest>) -> Result<Self, Status> {
        let services = request.component::<GrpcServices>()?;
        Ok(Self {
            readiness: request.component::<Readiness>()?,
            cancel: request.component::<Cancel>()?,
            verdict: request.component::<ReadyVerdict>()?,
            known: services.knows(&request.get_ref().service),
        })
    }

    /// The status of the asked-for service, for `Watch`: `SERVICE_UNKNOWN` for a name no
    /// plugin added.
    async fn status(&self) -> ServingStatus {
        if !self.known {
            ServingStatus::ServiceUnknown
        } else if self.verdict.ready(&self.readiness, &self.cancel).await {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }

    /// Until the next look: at once when the worker starts serving or draining.
    async fn changes(&self) {
        let interval = self
            .verdict
            .cache
            .clamp(Duration::from_millis(100), WATCH_EVERY);
        tokio::select! {
            () = self.cancel.cancelled() => {}
            _ = self.readiness.wait(), if !self.readiness.is_ready() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for ReadinessHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let sources = Sources::of(&request)?;
        if !sources.known {
            return Err(Status::not_found(format!(
                "no gRPC service {:?} here",
                request.get_ref().service
            )));
        }
        Ok(Response::new(answer(sources.status().await)))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        // The stream runs after this method returned, outside of the call's context: it keeps
        // what it reads.
        let sources = Sources::of(&request)?;
        let stream = futures_util::stream::unfold(
            (sources, None::<ServingStatus>, false),
            |(sources, last, ended)| {
                async move {
                    if ended {
                        return None;
                    }
                    loop {
                        let draining = sources.cancel.is_stopping();
                        let status = sources.status().await;
                        if last != Some(status) {
                            // After the drain's status, the watch ends: the server is
                            // going away, and an open watch would hold the drain up.
                            return Some((Ok(answer(status)), (sources, Some(status), draining)));
                        }
                        if draining {
                            return None;
                        }
                        sources.changes().await;
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
