//! A running load shedder's new settings through its handle (issue #25), on paused time: a
//! lower limit mid-traffic lets the calls in flight finish and admits nobody above it, a higher
//! one admits at once, new shares and load-level thresholds take effect, an adaptive
//! algorithm's estimate is clamped into new bounds, a refused setting names its field and
//! changes nothing.

use std::convert::Infallible;
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_core::reconfigure::Reconfigure;
use weir_core::{BoxError, Error};
use weir_load_shed::{
    Aimd, ConfigLimit, Event, Fixed, Gradient2, Limit, LoadLevel, LoadShedHandle, LoadShedLayer,
    LoadShedTuning, Priority, Sample, Vegas,
};
use weir_test::Probe;

fn weir_error(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

fn with(handle: &LoadShedHandle, change: impl FnOnce(&mut LoadShedTuning)) -> LoadShedTuning {
    let mut tuning = handle.settings();
    change(&mut tuning);
    tuning
}

fn fixed(limit: usize) -> Option<ConfigLimit> {
    Some(ConfigLimit::Fixed(Fixed::new(limit)))
}

#[tokio::test(start_paused = true)]
async fn a_lower_limit_lets_calls_finish_and_admits_nobody_above_it() {
    let (layer, handle) = LoadShedLayer::builder()
        .max_in_flight(4)
        .build_with_handle()
        .unwrap();
    let (probe, gate) = Probe::gated(Ok::<u32, Infallible>);
    let mut svc = layer.layer(probe);
    let mut running: Vec<_> = Vec::new();
    for n in 0..4 {
        let mut call = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(call.poll());
        running.push(call);
    }
    handle.apply(with(&handle, |t| t.limit = fixed(2))).unwrap();
    assert_eq!((handle.limit(), handle.stats().in_flight), (2, 4));

    // Each time a call finishes, one newcomer tries: refused while 2 or more are in flight,
    // admitted once fewer are; the count never exceeds max(4 at the change, new limit 2).
    let mut bound = 4;
    let mut admitted = Vec::new();
    for (finished, (n, mut call)) in (1_usize..).zip((100..).zip(running)) {
        gate.release(1);
        assert_ready!(call.poll()).unwrap();
        let mut next = task::spawn(svc.ready().await.unwrap().call(n));
        let in_flight_before = 4 - finished + admitted.len();
        if in_flight_before >= 2 {
            let err = assert_ready!(next.poll()).unwrap_err();
            assert!(weir_error(&err).is_overloaded());
        } else {
            assert_pending!(next.poll());
            admitted.push(next);
        }
        let in_flight = gate.in_flight();
        assert!(in_flight <= bound, "{in_flight} in flight, bound {bound}");
        bound = bound.min(in_flight.max(2));
    }
    // Admitted once fewer than 2 were in flight: after the third and the fourth finished.
    assert_eq!(admitted.len(), 2);
    assert_eq!(handle.stats().in_flight, 2);
}

#[tokio::test(start_paused = true)]
async fn a_higher_limit_admits_at_once() {
    let (layer, handle) = LoadShedLayer::builder()
        .max_in_flight(1)
        .build_with_handle()
        .unwrap();
    let (probe, _gate) = Probe::gated(Ok::<u32, Infallible>);
    let mut svc = layer.layer(probe);
    let mut first = task::spawn(svc.ready().await.unwrap().call(0));
    assert_pending!(first.poll());
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(weir_error(&err).is_overloaded());
    handle.apply(with(&handle, |t| t.limit = fixed(3))).unwrap();
    let mut admitted = Vec::new();
    for n in 2..4 {
        let mut call = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(call.poll());
        admitted.push(call);
    }
    assert_eq!(handle.stats().in_flight, 3);
    let err = svc.ready().await.unwrap().call(4).await.unwrap_err();
    assert!(weir_error(&err).is_overloaded(), "3 is the new limit");
}

#[tokio::test(start_paused = true)]
async fn new_shares_thresholds_and_retry_after_take_effect() {
    let (layer, handle) = LoadShedLayer::builder()
        .max_in_flight(10)
        .priority(|n: &u32| {
            if *n >= 100 {
                Priority::Critical
            } else {
                Priority::Normal
            }
        })
        .build_with_handle()
        .unwrap();
    let (probe, _gate) = Probe::gated(Ok::<u32, Infallible>);
    let mut svc = layer.layer(probe);
    let mut running = Vec::new();
    for n in 0..5 {
        let mut call = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(call.poll());
        running.push(call);
    }
    assert_eq!(handle.load_level(), LoadLevel::Normal);
    handle
        .apply(with(&handle, |t| {
            t.settings.share.normal = 0.5;
            t.settings.levels.elevated_at = 0.4;
            t.settings.levels.critical_at = 0.5;
            t.settings.retry_after = Duration::from_secs(9);
        }))
        .unwrap();
    assert_eq!(
        handle.load_level(),
        LoadLevel::Critical,
        "5 of 10 is critical now"
    );
    // Normal requests may use half of the limit now: 5 are in flight, the next is refused.
    let err = svc.ready().await.unwrap().call(5).await.unwrap_err();
    assert_eq!(weir_error(&err).retry_after(), Some(Duration::from_secs(9)));
    // A critical request still has the whole limit.
    let mut critical = task::spawn(svc.ready().await.unwrap().call(100));
    assert_pending!(critical.poll());
}

#[test]
fn an_adaptive_estimate_is_clamped_into_new_bounds() {
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&events);
    let (_layer, handle) = LoadShedLayer::adaptive(Aimd::new().bounds(10, 100).initial(50))
        .observer(move |event: &Event<'_>| {
            if let Event::LimitChanged { from, to, .. } = event {
                seen.lock().unwrap().push((*from, *to));
            }
        })
        .build_with_handle()
        .unwrap();
    assert_eq!(handle.limit(), 50);
    let aimd = |min, max| Some(ConfigLimit::Aimd(Aimd::new().bounds(min, max)));
    handle
        .apply(with(&handle, |t| t.limit = aimd(5, 30)))
        .unwrap();
    assert_eq!(handle.limit(), 30, "clamped down to the new ceiling");
    handle
        .apply(with(&handle, |t| t.limit = aimd(40, 80)))
        .unwrap();
    assert_eq!(handle.limit(), 40, "clamped up to the new floor");
    handle
        .apply(with(&handle, |t| t.limit = aimd(1, 200)))
        .unwrap();
    assert_eq!(
        handle.limit(),
        40,
        "inside the bounds: kept, not reset to `initial`"
    );
    assert_eq!(*events.lock().unwrap(), [(50, 30), (30, 40)]);
    let Some(ConfigLimit::Aimd(running)) = handle.settings().limit else {
        panic!("an AIMD limit reads back as one");
    };
    assert_eq!(running.limit(), 40);
    // The bounds hold for later samples too: drops take it to the new floor and no lower.
    let mut after = running;
    for _ in 0..100 {
        after.update(Sample::dropped(Duration::from_millis(1), 1));
    }
    assert_eq!(after.limit(), 1);
}

#[test]
fn each_algorithm_keeps_its_estimate_within_new_bounds() {
    let cases = [
        (
            ConfigLimit::Vegas(Vegas::new().initial(500)),
            ConfigLimit::Vegas(Vegas::new().bounds(1, 100)),
        ),
        (
            ConfigLimit::Gradient2(Gradient2::new().initial(150)),
            ConfigLimit::Gradient2(Gradient2::new().bounds(20, 60)),
        ),
    ];
    for (start, to) in cases {
        let (_layer, handle) = LoadShedLayer::adaptive(start).build_with_handle().unwrap();
        handle
            .apply(with(&handle, |t| t.limit = Some(to.clone())))
            .unwrap();
        let ceiling = match &to {
            ConfigLimit::Vegas(_) => 100,
            _ => 60,
        };
        assert_eq!(handle.limit(), ceiling, "{to:?}");
    }
    // A layer built with a `ConfigLimit` may change algorithm: the new one starts from the
    // current estimate, clamped into its bounds.
    let (_layer, handle) = LoadShedLayer::adaptive(ConfigLimit::Fixed(Fixed::new(70)))
        .build_with_handle()
        .unwrap();
    let aimd = ConfigLimit::Aimd(Aimd::new().bounds(10, 50));
    handle
        .apply(with(&handle, |t| t.limit = Some(aimd)))
        .unwrap();
    assert_eq!(handle.limit(), 50);
    assert!(matches!(
        handle.settings().limit,
        Some(ConfigLimit::Aimd(_))
    ));
}

#[test]
fn a_refused_setting_names_its_field_and_changes_nothing() {
    let (_layer, handle) = LoadShedLayer::adaptive(Aimd::new().bounds(10, 100).initial(50))
        .name("edge")
        .build_with_handle()
        .unwrap();
    let before = handle.settings();
    let stats = handle.stats();
    let level = handle.load_level();
    let cases: [(fn(&mut LoadShedTuning), &str); 5] = [
        (|t| t.settings.share.normal = 0.0, "share.normal"),
        (|t| t.settings.levels.elevated_at = 2.0, "levels"),
        (|t| t.settings.retry_after = Duration::ZERO, "retry_after"),
        (|t| t.settings.name = "other".into(), "name"),
        // Another algorithm than the one the layer was built with (an `Aimd`).
        (
            |t| t.limit = Some(ConfigLimit::Vegas(Vegas::new())),
            "limit",
        ),
    ];
    for (change, field) in cases {
        // Valid changes alongside the broken one: none of them is applied.
        let err = handle
            .apply(with(&handle, |t| {
                t.settings.share.sheddable = 0.25;
                t.settings.max_ready_wait = Some(Duration::from_millis(5));
                change(t);
            }))
            .unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert_eq!(handle.settings(), before);
        assert_eq!(handle.stats(), stats);
        assert_eq!(handle.load_level(), level);
    }
}

#[test]
fn settings_read_back_what_was_applied() {
    let (_layer, handle) = LoadShedLayer::builder()
        .max_in_flight(8)
        .build_with_handle()
        .unwrap();
    assert_eq!(handle.settings().limit, fixed(8));
    let wanted = with(&handle, |t| {
        t.limit = fixed(12);
        t.settings.share.sheddable = 0.3;
        t.settings.levels.elevated_at = 0.5;
        t.settings.max_ready_wait = Some(Duration::from_millis(20));
        t.settings.retry_after = Duration::from_secs(4);
    });
    handle.apply(wanted.clone()).unwrap();
    assert_eq!(handle.settings(), wanted);
    // `None` keeps the running limit.
    handle.apply(with(&handle, |t| t.limit = None)).unwrap();
    assert_eq!(handle.limit(), 12);
}

#[test]
fn a_builder_gives_the_settings_a_running_layer_takes() {
    let (_layer, handle) = LoadShedLayer::adaptive(ConfigLimit::Fixed(Fixed::new(8)))
        .build_with_handle()
        .unwrap();
    // The same layer described again, as a configuration file read again.
    let wanted = LoadShedLayer::adaptive(ConfigLimit::Aimd(Aimd::new().bounds(2, 6)))
        .share(Priority::Sheddable, 0.25)
        .tuning();
    handle.apply(wanted).unwrap();
    assert_eq!(
        handle.limit(),
        6,
        "the running 8, clamped into the new bounds"
    );
    assert_eq!(handle.settings().settings.share.sheddable, 0.25);
}
