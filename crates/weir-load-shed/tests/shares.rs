//! #27.4: the limit a user sets is the number admitted for the default priority; a share only
//! narrows a priority the user's classifier gives.

use std::convert::Infallible;
use std::time::Duration;

use tokio::task::JoinHandle;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Error};
use weir_load_shed::{LoadShedLayer, Priority};

/// Starts `n` calls that each hold their slot for a second; returns how many were refused.
async fn start<S>(svc: &mut S, requests: &[u8]) -> (Vec<JoinHandle<Result<(), BoxError>>>, usize)
where
    S: Service<u8, Response = (), Error = BoxError>,
    S::Future: Send + 'static,
{
    let mut running = Vec::new();
    let mut refused = 0;
    for &req in requests {
        let future = svc.ready().await.expect("ready").call(req);
        let task = tokio::spawn(future);
        tokio::task::yield_now().await;
        if task.is_finished() {
            let err = task.await.expect("joined").expect_err("refused");
            assert!(Error::find(&*err).is_some_and(Error::is_overloaded));
            refused += 1;
        } else {
            running.push(task);
        }
    }
    (running, refused)
}

fn slow() -> impl Service<u8, Response = (), Error = Infallible, Future: Send + 'static> + Clone {
    service_fn(|_: u8| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(())
    })
}

/// #27.4: `max_in_flight(10)` admits 10 requests of the default priority, not 8.
#[tokio::test(start_paused = true)]
async fn max_in_flight_admits_that_many_requests_of_the_default_priority() {
    for layer in [
        LoadShedLayer::new(10),
        LoadShedLayer::builder()
            .max_in_flight(10)
            .build()
            .expect("valid"),
    ] {
        let mut svc = layer.layer(slow());
        let (running, refused) = start(&mut svc, &[0; 11]).await;
        assert_eq!(running.len(), 10);
        assert_eq!(refused, 1);
        for task in running {
            task.await.expect("joined").expect("served");
        }
    }
}

/// #27.4: shares apply to the priorities the classifier declares: sheddable requests get half
/// of the limit by default, normal ones all of it, and a lowered normal share keeps room for
/// critical ones.
#[tokio::test(start_paused = true)]
async fn shares_narrow_only_the_declared_priorities() {
    let by_byte = |req: &u8| match req {
        0 => Priority::Sheddable,
        1 => Priority::Normal,
        _ => Priority::Critical,
    };
    let layer = LoadShedLayer::builder()
        .max_in_flight(10)
        .priority(by_byte)
        .build()
        .expect("valid");
    let mut svc = layer.layer(slow());
    let (sheddable, refused) = start(&mut svc, &[0; 6]).await;
    assert_eq!((sheddable.len(), refused), (5, 1));
    let (normal, refused) = start(&mut svc, &[1; 6]).await;
    assert_eq!((normal.len(), refused), (5, 1), "normal fills the limit");

    // With room kept for critical requests.
    let layer = LoadShedLayer::builder()
        .max_in_flight(10)
        .priority(by_byte)
        .share(Priority::Normal, 0.8)
        .build()
        .expect("valid");
    let mut svc = layer.layer(slow());
    let (normal, refused) = start(&mut svc, &[1; 9]).await;
    assert_eq!((normal.len(), refused), (8, 1));
    let (critical, refused) = start(&mut svc, &[2; 3]).await;
    assert_eq!((critical.len(), refused), (2, 1));
}
