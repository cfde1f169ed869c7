//! The gRPC health protocol, `grpc.health.v1.Health`, answered from the registry (feature
//! `tonic`), with tonic-health's generated server.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use futures_util::stream::unfold;
use tonic::{Request, Response, Status as GrpcStatus};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health as HealthProto, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::registry::HealthRegistry;
use crate::tag::Tag;

/// How often a `Watch` re-reads the registry, by default.
pub const DEFAULT_WATCH_PERIOD: Duration = Duration::from_secs(1);

/// `grpc.health.v1.Health` from a [`HealthRegistry`]: serve it with [`into_server`](Self::into_server).
///
/// - The empty service name is the whole server: the readiness probe (its checks and the
///   lifecycle), `SERVING` unless unhealthy.
/// - Any other name is the check registered under it: `SERVING` unless it is unhealthy.
/// - An unknown name: `Check` fails with `NOT_FOUND`; `Watch` sends `SERVICE_UNKNOWN` (and
///   keeps watching: the check may be registered later).
/// - `Watch` sends the status at once, then each change, re-reading the registry every period
///   (its caching still holds: a check runs at most once per caching period).
#[derive(Clone)]
pub struct GrpcHealth {
    registry: HealthRegistry,
    period: Duration,
}

impl fmt::Debug for GrpcHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcHealth")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl GrpcHealth {
    /// The health service of `registry`; `Watch` re-reads it every second.
    #[must_use]
    pub const fn new(registry: HealthRegistry) -> Self {
        Self {
            registry,
            period: DEFAULT_WATCH_PERIOD,
        }
    }

    /// How often a `Watch` re-reads the registry (a zero period is taken as one millisecond).
    #[must_use]
    pub fn watch_period(mut self, period: Duration) -> Self {
        self.period = period.max(Duration::from_millis(1));
        self
    }

    /// The tonic server to add to a router (`Server::builder().add_service(...)`).
    #[must_use]
    pub fn into_server(self) -> HealthServer<Self> {
        HealthServer::new(self)
    }

    /// The status of `service` now; `None` when no check has that name. From cache alone,
    /// allocating nothing, while the checks' results are fresh.
    async fn status_of(&self, service: &str) -> Option<ServingStatus> {
        let up = if service.is_empty() {
            self.registry.status(&Tag::Ready).await.is_up()
        } else {
            self.registry.check(service).await?.status().is_up()
        };
        Some(if up {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        })
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

/// The stream of a `Watch`; boxed because it is built from an `async` closure (one allocation
/// per watch call, never per request of the service).
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, GrpcStatus>> + Send + 'static>>;

#[tonic::async_trait]
impl HealthProto for GrpcHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, GrpcStatus> {
        let service = &request.get_ref().service;
        match self.status_of(service).await {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(GrpcStatus::not_found(format!(
                "no health check named {service:?}"
            ))),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, GrpcStatus> {
        let service = request.into_inner().service;
        let this = self.clone();
        let stream = unfold(
            (this, service, None::<ServingStatus>),
            |(this, service, last)| async move {
                loop {
                    if last.is_some() {
                        tokio::time::sleep(this.period).await;
                    }
                    let now = this
                        .status_of(&service)
                        .await
                        .unwrap_or(ServingStatus::ServiceUnknown);
                    if last != Some(now) {
                        return Some((Ok(response(now)), (this, service, Some(now))));
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
