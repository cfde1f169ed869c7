//! A running bulkhead's new settings through its handle (issue #25), on paused time: a shrink
//! mid-traffic lets the running calls finish and admits nobody above the new size, a growth
//! admits waiters at once, a shorter queue keeps its waiters and refuses newcomers, a refused
//! setting names its field and changes nothing.

use std::convert::Infallible;
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_bulkhead::{BulkheadHandle, BulkheadLayer, BulkheadSettings};
use weir_core::reconfigure::Reconfigure;
use weir_core::{BoxError, Error};
use weir_test::{Probe, ProbeHandle};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn weir_error(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

/// A bulkhead of `max` with a queue of `queue` waiting at most 10 s, over a gated probe.
fn gated(
    max: usize,
    queue: usize,
) -> (
    impl Service<u32, Response = u32, Error = BoxError, Future: Unpin> + Clone,
    BulkheadHandle,
    ProbeHandle,
) {
    let (layer, handle) = BulkheadLayer::queueing(max, queue, Duration::from_secs(10))
        .build_with_handle()
        .unwrap();
    let (probe, gate) = Probe::gated(Ok::<u32, Infallible>);
    (layer.layer(probe), handle, gate)
}

fn with(handle: &BulkheadHandle, change: impl FnOnce(&mut BulkheadSettings)) -> BulkheadSettings {
    let mut settings = handle.settings();
    change(&mut settings);
    settings
}

#[tokio::test(start_paused = true)]
async fn a_shrink_lets_running_calls_finish_and_admits_nobody_above_the_new_size() {
    let (mut svc, handle, gate) = gated(4, 8);
    let mut running: Vec<_> = Vec::new();
    for n in 0..4 {
        let mut call = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(call.poll());
        running.push(call);
    }
    let mut waiting: Vec<_> = Vec::new();
    for n in 10..12 {
        let mut call = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(call.poll());
        waiting.push(call);
    }
    assert_eq!((gate.in_flight(), handle.stats().queued), (4, 2));

    handle
        .apply(with(&handle, |s| s.max_concurrent = 2))
        .unwrap();
    let stats = handle.stats();
    assert_eq!(
        (stats.max_concurrent, stats.in_flight, stats.available),
        (2, 4, 0)
    );
    // A newcomer joins the line: nothing is free at the new size.
    let mut late = task::spawn(svc.ready().await.unwrap().call(20));
    assert_pending!(late.poll());
    assert_eq!(handle.stats().queued, 3);

    // The running calls finish one by one; the count at the service never exceeds
    // max(4 running at the shrink, new size 2) and is never raised by a returned permit
    // while it is at or above the new size.
    let mut bound = 4;
    let mut reached = gate.calls();
    let mut finished = 0;
    for mut call in running {
        gate.release(1);
        assert_ready!(call.poll()).unwrap();
        finished += 1;
        for waiter in waiting.iter_mut().chain([&mut late]) {
            let _ = waiter.poll();
        }
        let in_flight = gate.in_flight();
        assert!(in_flight <= bound, "{in_flight} in flight, bound {bound}");
        let old_left = 4 - finished;
        if old_left >= 2 {
            assert_eq!(
                gate.calls(),
                reached,
                "a waiter was admitted above the new size"
            );
        }
        assert!(handle.stats().in_flight <= bound);
        bound = bound.min(old_left.max(2));
        reached = gate.calls();
    }
    // All four old calls are done: the two oldest waiters run now, the newcomer still waits.
    assert_eq!(gate.calls(), 6);
    assert_eq!(gate.in_flight(), 2);
    assert_eq!(handle.stats().queued, 1);
    gate.open_gate();
    for mut call in waiting.into_iter().chain([late]) {
        assert!(call.poll().is_ready() || call.await.is_ok());
    }
    let stats = handle.stats();
    assert_eq!(
        (stats.in_flight, stats.available, stats.queued),
        (0, 2, 0),
        "no permit lost or doubled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_growth_admits_as_many_waiters_as_it_has_room_for_at_once() {
    let (mut svc, handle, gate) = gated(1, 4);
    let mut first = task::spawn(svc.ready().await.unwrap().call(0));
    assert_pending!(first.poll());
    let mut waiting: Vec<_> = Vec::new();
    for n in 1..4 {
        let mut call = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(call.poll());
        waiting.push(call);
    }
    assert_eq!(gate.calls(), 1);

    handle
        .apply(with(&handle, |s| s.max_concurrent = 3))
        .unwrap();
    // No time passes and no call finishes: the two oldest waiters were handed a permit.
    assert!(waiting[0].is_woken() && waiting[1].is_woken());
    assert!(!waiting[2].is_woken());
    for call in &mut waiting {
        assert_pending!(call.poll());
    }
    assert_eq!(gate.calls(), 3, "two waiters admitted at once");
    assert_eq!(handle.stats().queued, 1);
    assert_eq!(handle.stats().in_flight, 3);
    drop(first);
    assert_pending!(waiting[2].poll());
    assert_eq!(gate.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_queue_keeps_its_waiters_and_refuses_newcomers() {
    let (mut svc, handle, gate) = gated(1, 3);
    let mut first = task::spawn(svc.ready().await.unwrap().call(0));
    assert_pending!(first.poll());
    let mut waiting: Vec<_> = Vec::new();
    for n in 1..4 {
        let mut call = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(call.poll());
        waiting.push(call);
    }
    handle
        .apply(with(&handle, |s| {
            s.max_queue = 1;
            s.retry_after = Duration::from_secs(7);
        }))
        .unwrap();
    let err = svc.ready().await.unwrap().call(9).await.unwrap_err();
    let weir = weir_error(&err);
    assert!(weir.is_bulkhead_full());
    assert_eq!(weir.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(handle.stats().queued, 3, "the three already waiting stay");
    gate.open_gate();
    assert_eq!(assert_ready!(first.poll()).unwrap(), 0);
    for (n, call) in (1..).zip(waiting) {
        assert_eq!(call.await.unwrap(), n);
    }
    assert_eq!(handle.stats().queued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_new_max_wait_bounds_the_next_waits() {
    let (mut svc, handle, _gate) = gated(1, 2);
    let mut first = task::spawn(svc.ready().await.unwrap().call(0));
    assert_pending!(first.poll());
    handle
        .apply(with(&handle, |s| s.max_wait = Some(ms(50))))
        .unwrap();
    let mut waiter = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(waiter.poll());
    tokio::time::advance(ms(49)).await;
    assert_pending!(waiter.poll());
    tokio::time::advance(ms(2)).await;
    let err = assert_ready!(waiter.poll()).unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());
}

#[test]
fn a_refused_setting_names_its_field_and_changes_nothing() {
    let (_layer, handle) = BulkheadLayer::queueing(4, 2, ms(100))
        .name("db")
        .build_with_handle()
        .unwrap();
    let before = handle.settings();
    let stats = handle.stats();
    let cases: [(fn(&mut BulkheadSettings), &str); 6] = [
        (|s| s.max_concurrent = 0, "max_concurrent"),
        (|s| s.max_concurrent = usize::MAX, "max_concurrent"),
        (|s| s.max_queue = 0, "max_wait"),
        (|s| s.retry_after = Duration::ZERO, "retry_after"),
        (|s| s.name = "other".into(), "name"),
        (|s| s.backpressure = true, "backpressure"),
    ];
    for (change, field) in cases {
        // A valid new size alongside the broken field: none of it is applied.
        let err = handle
            .apply(with(&handle, |s| {
                s.max_concurrent = 9;
                change(s);
            }))
            .unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert_eq!(handle.settings(), before);
        assert_eq!(handle.stats(), stats);
    }
    let err = handle
        .apply(with(&handle, |s| s.release_at_head = true))
        .unwrap_err();
    assert!(
        err.is_conflict() && err.field() == "release_at_head",
        "{err}"
    );
    assert_eq!(handle.settings(), before);
}

#[test]
fn settings_read_back_what_was_applied() {
    let (_layer, handle) = BulkheadLayer::builder()
        .max_concurrent(4)
        .build_with_handle()
        .unwrap();
    let mut wanted = handle.settings();
    wanted.max_concurrent = 16;
    wanted.max_queue = 32;
    wanted.max_wait = Some(ms(250));
    wanted.retry_after = Duration::from_secs(2);
    handle.apply(wanted.clone()).unwrap();
    assert_eq!(handle.settings(), wanted);
    assert_eq!(handle.stats().max_concurrent, 16);
    assert_eq!(handle.stats().available, 16);
}

/// A request for a tenant: `(tenant, n)`.
type Req = (u8, u32);

fn tenant(req: &Req) -> Option<u8> {
    Some(req.0)
}

#[tokio::test(start_paused = true)]
async fn a_shrunk_partition_admits_nobody_above_its_new_size() {
    let layer = BulkheadLayer::partitioned(tenant)
        .partition(b'a', 3)
        .per_key(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let (probe, gate) = Probe::gated(|req: Req| Ok::<u32, Infallible>(req.1));
    let mut svc = layer.layer(probe);
    let mut running = Vec::new();
    for n in 0..3 {
        let mut call = task::spawn(svc.ready().await.unwrap().call((b'a', n)));
        assert_pending!(call.poll());
        running.push(call);
    }
    let mut keyed = task::spawn(svc.ready().await.unwrap().call((b'k', 0)));
    assert_pending!(keyed.poll());

    let mut tuning = handle.settings();
    tuning.partitions = vec![(b'a', 1)];
    tuning.per_key = 1;
    handle.apply(tuning).unwrap();
    let a = handle.stats(&b'a').unwrap();
    assert_eq!((a.max_concurrent, a.in_flight, a.available), (1, 3, 0));
    assert_eq!(handle.stats(&b'k').unwrap().max_concurrent, 1);

    for (left, mut call) in (0..3).rev().zip(running) {
        let err = svc
            .ready()
            .await
            .unwrap()
            .call((b'a', 9))
            .await
            .unwrap_err();
        assert!(weir_error(&err).is_bulkhead_full(), "{left} old calls left");
        gate.release(1);
        assert_ready!(call.poll()).unwrap();
        assert_eq!(handle.stats(&b'a').unwrap().in_flight, left);
    }
    // Back under the new size: one call of `a` is admitted, a second is not.
    let mut one = task::spawn(svc.ready().await.unwrap().call((b'a', 10)));
    assert_pending!(one.poll());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call((b'a', 11))
        .await
        .unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());
    // The keyed partition holds its one call; a key made after the change has the new size.
    let err = svc
        .ready()
        .await
        .unwrap()
        .call((b'k', 1))
        .await
        .unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());
    let mut new_key = task::spawn(svc.ready().await.unwrap().call((b'n', 0)));
    assert_pending!(new_key.poll());
    assert_eq!(handle.stats(&b'n').unwrap().max_concurrent, 1);
}

#[tokio::test(start_paused = true)]
async fn a_larger_pool_and_cap_lend_at_once() {
    let layer = BulkheadLayer::partitioned(tenant)
        .per_key(1)
        .borrow(2, 1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let (probe, _gate) = Probe::gated(|req: Req| Ok::<u32, Infallible>(req.1));
    let mut svc = layer.layer(probe);
    let mut running = Vec::new();
    // One own permit and one loan (the cap), then refused.
    for n in 0..2 {
        let mut call = task::spawn(svc.ready().await.unwrap().call((b'a', n)));
        assert_pending!(call.poll());
        running.push(call);
    }
    let err = svc
        .ready()
        .await
        .unwrap()
        .call((b'a', 2))
        .await
        .unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());

    let mut tuning = handle.settings();
    assert_eq!(tuning.borrow, Some((2, 1)));
    tuning.borrow = Some((4, 3));
    handle.apply(tuning).unwrap();
    assert_eq!(handle.pool_stats().unwrap().max_concurrent, 4);
    for n in 3..5 {
        let mut call = task::spawn(svc.ready().await.unwrap().call((b'a', n)));
        assert_pending!(call.poll());
        running.push(call);
    }
    let err = svc
        .ready()
        .await
        .unwrap()
        .call((b'a', 5))
        .await
        .unwrap_err();
    assert!(
        weir_error(&err).is_bulkhead_full(),
        "the new cap of 3 loans is reached"
    );
    assert_eq!(handle.pool_stats().unwrap().in_flight, 3);
}

#[test]
fn a_refused_partition_setting_names_its_field_and_changes_nothing() {
    let layer = BulkheadLayer::partitioned(tenant)
        .partition(b'a', 3)
        .per_key(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let before = handle.settings();
    type Change = fn(&mut weir_bulkhead::PartitionedTuning<u8>);
    let cases: [(Change, &str); 5] = [
        (|t| t.partitions = vec![(b'z', 4)], "partition"),
        (|t| t.partitions = vec![(b'a', 0)], "partition"),
        (|t| t.per_key = 0, "per_key"),
        (|t| t.borrow = Some((4, 2)), "borrow"),
        (|t| t.max_wait = Some(ms(10)), "max_wait"),
    ];
    for (change, field) in cases {
        let mut tuning = handle.settings();
        tuning.per_key = 7;
        tuning.retry_after = Duration::from_secs(5);
        change(&mut tuning);
        let err = handle.apply(tuning).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert_eq!(handle.settings(), before);
        assert_eq!(handle.stats(&b'a').unwrap().max_concurrent, 3);
    }
}

/// Adding or removing a partition is a restart: a new key is unknown, one left out a
/// conflict, both naming `partition`; resizing every partition there is applies.
#[test]
fn partitions_are_resized_at_run_time_but_not_added_or_removed() {
    let layer = BulkheadLayer::partitioned(tenant)
        .partition(b'a', 3)
        .partition(b'b', 2)
        .per_key(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let before = handle.settings();
    let mut added = handle.settings();
    added.partitions.push((b'c', 4));
    let err = handle.apply(added).unwrap_err();
    assert_eq!(
        (err.field(), err.is_unknown()),
        ("partition", true),
        "{err}"
    );
    let mut removed = handle.settings();
    removed.partitions.retain(|(key, _)| *key == b'a');
    removed.per_key = 9;
    let err = handle.apply(removed).unwrap_err();
    assert_eq!(
        (err.field(), err.is_conflict()),
        ("partition", true),
        "{err}"
    );
    assert_eq!(
        handle.settings(),
        before,
        "a refused setting changes nothing"
    );

    let mut resized = handle.settings();
    resized.partitions = vec![(b'b', 5), (b'a', 1)];
    handle.apply(resized).unwrap();
    assert_eq!(handle.stats(&b'a').unwrap().max_concurrent, 1);
    assert_eq!(handle.stats(&b'b').unwrap().max_concurrent, 5);
}

#[test]
fn a_builder_gives_the_settings_a_running_layer_takes() {
    let layer = BulkheadLayer::partitioned(tenant)
        .partition(b'a', 3)
        .per_key(2)
        .borrow(2, 1)
        .build()
        .unwrap();
    let handle = layer.handle();
    // The same layer described again with other sizes, as a configuration file read again.
    let wanted = BulkheadLayer::partitioned(tenant)
        .partition(b'a', 6)
        .per_key(4)
        .borrow(8, 3)
        .max_queue(5)
        .max_wait(ms(20))
        .tuning();
    handle.apply(wanted.clone()).unwrap();
    assert_eq!(handle.settings(), wanted);
    assert_eq!(handle.stats(&b'a').unwrap().max_concurrent, 6);
}
