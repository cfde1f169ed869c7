//! End to end over real sockets on 127.0.0.1: a tonic client (tonic-health, no protoc) behind a
//! weir client stack (total deadline → gRPC retry → circuit breaker → attempt timeout writing
//! `grpc-timeout`), built by hand and with the gRPC preset (`ClientStack::builder().grpc()`),
//! against a real tonic server whose calls fail on demand.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::Code;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::{Layer, ServiceBuilder};
use weir::circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, State};
use weir::retry::{ReplayBody, RetryLayer};
use weir::timeout::TimeoutLayer;
use weir::{
    ClientBuilder, ClientStack, Grpc, GrpcClient, ServiceBuilderExt, core::backoff::Backoff,
    core::classify::GrpcStatus, core::response::ErrorResponseLayer,
};
use weir_test::grpc::{GrpcProbe, GrpcServer, HealthClient, ServingStatus, check};

/// A health server whose first `failures` calls fail with `UNAVAILABLE` ("injected"); its probe
/// records every call.
async fn server(failures: usize) -> (GrpcServer, GrpcProbe) {
    let probe = GrpcProbe::new().fail_first(failures, Code::Unavailable);
    (GrpcServer::health_with(probe.clone()).await, probe)
}

/// The `grpc-timeout` each call carried (calls without one are left out).
fn grpc_timeouts(probe: &GrpcProbe) -> Vec<Duration> {
    probe
        .header("grpc-timeout")
        .into_iter()
        .flatten()
        .filter_map(|v| weir::core::wire::decode_grpc_timeout(v.as_bytes()).ok())
        .collect()
}

async fn client(
    addr: SocketAddr,
) -> (
    HealthClient<
        impl tonic::client::GrpcService<
            Body,
            ResponseBody = impl hyper::body::Body<
                Data = bytes::Bytes,
                Error = impl Into<weir::BoxError> + Send,
            > + Send
                           + 'static,
        > + Clone,
    >,
    CircuitBreakerHandle,
) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let (breaker, handle) = CircuitBreakerLayer::consecutive_failures(3)
        .classifier(GrpcStatus::new())
        .open_duration(Duration::from_secs(30))
        .build_with_handle()
        .expect("valid breaker");
    let service = ServiceBuilder::new()
        // Outermost on the client too: weir's refusals reach tonic as gRPC statuses
        // (UNAVAILABLE for an open circuit, with its pushback), not as an opaque UNKNOWN.
        .layer(ErrorResponseLayer::new().grpc())
        .weir_timeout(Duration::from_secs(2))
        .layer(
            RetryLayer::grpc()
                .max_attempts(3)
                // Real sockets run on the wall clock: retry at once.
                .backoff(Backoff::constant(Duration::ZERO))
                .build()
                .expect("valid retry"),
        )
        .layer(breaker)
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_millis(500))
                .propagate(Duration::from_millis(10))
                .build()
                .expect("valid timeout"),
        )
        .map_request(|req: http::Request<ReplayBody<Body>>| req.map(Body::new))
        .service(channel);
    (HealthClient::new(service), handle)
}

#[tokio::test]
async fn retries_unavailable_and_propagates_the_deadline_as_grpc_timeout() {
    let (server, probe) = server(2).await;
    let (mut client, handle) = client(server.addr()).await;

    let response = client
        .check(check())
        .await
        .expect("served on the third call");
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    assert_eq!(probe.calls(), 3);
    let timeouts = grpc_timeouts(&probe);
    assert_eq!(timeouts.len(), 3, "every attempt carried grpc-timeout");
    assert!(
        timeouts
            .iter()
            .all(|t| *t > Duration::from_millis(400) && *t <= Duration::from_millis(490)),
        "{timeouts:?}"
    );
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test]
async fn the_breaker_opens_and_the_server_sees_no_more_calls() {
    let (server, probe) = server(usize::MAX).await;
    let (mut client, handle) = client(server.addr()).await;

    // Three attempts, three UNAVAILABLEs: the third opens the breaker, retry returns it.
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(probe.calls(), 3);
    assert_eq!(handle.state(), State::Open);

    // While open: refused in the client, as UNAVAILABLE with a pushback of the open time left.
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "circuit open");
    let pushback: u64 = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a pushback");
    assert!((29_000..=30_000).contains(&pushback), "{pushback}");
    assert_eq!(probe.calls(), 3);
}

/// The gRPC client preset around a lazily connected `Channel` to `addr`, configured by
/// `configure`; the stack keeps the handles.
fn preset(
    addr: SocketAddr,
    configure: impl FnOnce(ClientBuilder<Grpc>) -> ClientBuilder<Grpc>,
) -> (HealthClient<GrpcClient<Channel>>, ClientStack<Grpc>) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    let builder = ClientStack::builder()
        .grpc()
        .total_timeout(Duration::from_secs(2))
        .attempt_timeout(Duration::from_millis(500))
        .sampling_window(Duration::from_secs(1));
    let stack = configure(builder).build().expect("valid preset");
    (HealthClient::new(stack.layer(channel)), stack)
}

/// #27.5 and #27.3: the gRPC preset wraps a tonic `Channel` as it is, retries `UNAVAILABLE`
/// (once told the calls are idempotent) and sends each attempt's time left as `grpc-timeout`.
#[tokio::test]
async fn the_grpc_preset_retries_unavailable_and_propagates_grpc_timeout() {
    let (server, probe) = server(2).await;
    let (mut client, stack) = preset(server.addr(), ClientBuilder::retry_non_idempotent);

    let response = client
        .check(check())
        .await
        .expect("served on the third call");
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    assert_eq!(probe.calls(), 3);
    assert_eq!(stack.retry_handle().retries(), 2);
    let timeouts = grpc_timeouts(&probe);
    assert_eq!(timeouts.len(), 3, "every attempt carried grpc-timeout");
    assert!(
        timeouts
            .iter()
            .all(|t| *t > Duration::from_millis(300) && *t <= Duration::from_millis(500)),
        "{timeouts:?}"
    );
}

/// #27.1: gRPC calls are POSTs; without the opt-in the preset sends a call once and returns the
/// server's own status.
#[tokio::test]
async fn the_grpc_preset_sends_a_call_once_by_default() {
    let (server, probe) = server(1).await;
    let (mut client, _stack) = preset(server.addr(), |builder| builder);

    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "injected");
    assert_eq!(probe.calls(), 1);
}

/// #27.5: a refused connection reaches the tonic client as `UNAVAILABLE`, not `UNKNOWN` or
/// `INTERNAL "internal error"`.
#[tokio::test]
async fn the_grpc_preset_reports_a_refused_connection_as_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (mut client, _stack) = preset(addr, |builder| builder);

    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

/// #27.5 and #16.8: the preset classifies gRPC statuses (two `UNAVAILABLE`s open its breaker,
/// read through its handle), and its own refusal reaches tonic as `UNAVAILABLE` with a pushback
/// of the open time left, never `UNKNOWN`.
#[tokio::test]
async fn the_grpc_preset_opens_its_breaker_and_refuses_with_unavailable() {
    let (server, probe) = server(usize::MAX).await;
    let (mut client, stack) = preset(server.addr(), |builder| {
        builder
            .minimum_calls(2)
            .failure_rate(50.0)
            .open_duration(Duration::from_secs(30))
    });

    for _ in 0..2 {
        let status = client.check(check()).await.unwrap_err();
        assert_eq!(status.message(), "injected");
    }
    assert_eq!(stack.breaker_handle().state(), State::Open);

    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "circuit open");
    let pushback: u64 = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a pushback");
    assert!((29_000..=30_000).contains(&pushback), "{pushback}");
    assert_eq!(probe.calls(), 2);
}

/// #16.5: the gRPC preset's breaker classifies each call by the `grpc-status` of its trailers,
/// at the end of the body: calls whose `200` head looks fine but whose trailers say
/// `UNAVAILABLE` (a failure after the first message) open it, and the next call is refused in
/// the client. Classified by the head, they were successes and the breaker stayed closed.
#[tokio::test]
async fn the_grpc_preset_breaker_counts_unavailable_in_the_trailers() {
    let probe = GrpcProbe::new().fail_in_trailers(usize::MAX, Code::Unavailable);
    let server = GrpcServer::health_with(probe.clone()).await;
    let (mut client, stack) = preset(server.addr(), |builder| {
        builder
            .minimum_calls(2)
            .failure_rate(50.0)
            .open_duration(Duration::from_secs(30))
    });

    for _ in 0..2 {
        let status = client.check(check()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(status.message(), "injected");
    }
    assert_eq!(stack.breaker_handle().state(), State::Open);

    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.message(), "circuit open", "{status:?}");
    assert_eq!(probe.calls(), 2);
}

/// #16.5: a call that ends with `OK` in its trailers is a success for the gRPC preset's breaker,
/// recorded when its body ends (nothing is left in flight).
#[tokio::test]
async fn the_grpc_preset_breaker_counts_ok_in_the_trailers_as_a_success() {
    let (server, probe) = server(0).await;
    let (mut client, stack) = preset(server.addr(), |builder| builder);

    for _ in 0..3 {
        let response = client.check(check()).await.expect("served");
        assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    }
    assert_eq!(probe.calls(), 3);
    let breaker = stack.breaker_handle().snapshot();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!((breaker.calls(), breaker.failures()), (3, 0));
}
