//! On an axum `Router` (called in process, paused time): per-route timeouts by matched route
//! template, and a timeout answered as 504 or 408 through weir-core's `ErrorResponseLayer`.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt};
use weir_core::response::ErrorResponseLayer;
use weir_timeout::TimeoutLayer;

async fn get_body(app: Router, uri: &str) -> (StatusCode, String) {
    let res = app
        .oneshot(Request::get(uri).body(Body::empty()).expect("valid"))
        .await
        .expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn slow_app(errors: ErrorResponseLayer) -> Router {
    Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                "too late"
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(errors)
                .layer(TimeoutLayer::new(Duration::from_millis(100))),
        )
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_a_504_or_a_408() {
    let (status, _) = get_body(slow_app(ErrorResponseLayer::new()), "/slow").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);

    let errors = ErrorResponseLayer::new().timeout_status(StatusCode::REQUEST_TIMEOUT);
    let (status, _) = get_body(slow_app(errors), "/slow").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
}

#[cfg(feature = "axum")]
mod routes {
    use super::*;
    use axum::Extension;
    use weir_core::Deadline;
    use weir_timeout::RouteTimeouts;

    async fn remaining_ms(Extension(deadline): Extension<Deadline>) -> String {
        deadline.remaining().as_millis().to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_template_picks_its_timeout() {
        let table = RouteTimeouts::new(Some(Duration::from_secs(5)))
            .route("/users/{id}", Some(Duration::from_millis(50)))
            .prefix("/reports/", Some(Duration::from_secs(60)));
        let app = Router::new()
            .route("/users/{id}", get(remaining_ms))
            .route("/reports/{year}", get(remaining_ms))
            .route("/other", get(remaining_ms))
            .layer(
                ServiceBuilder::new()
                    .layer(ErrorResponseLayer::new())
                    .layer(
                        TimeoutLayer::builder()
                            .routes(table)
                            .build()
                            .expect("valid"),
                    ),
            );
        assert_eq!(get_body(app.clone(), "/users/7").await.1, "50");
        assert_eq!(get_body(app.clone(), "/users/8").await.1, "50");
        assert_eq!(get_body(app.clone(), "/reports/2026").await.1, "60000");
        assert_eq!(get_body(app, "/other").await.1, "5000");
    }
}
