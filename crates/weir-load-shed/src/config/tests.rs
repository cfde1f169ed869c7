use std::convert::Infallible;
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Error};
use weir_test::Probe;

use super::*;
use crate::limit::Sample;
use crate::state::{LoadLevel, Priority};

fn parse(text: &str) -> LoadShedConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn weir_error(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

const FULL: &str = r#"
    name = "api"
    max_ready_wait = "50ms"
    retry_after = "3s"
    share = { sheddable = 0.25, normal = 0.5, critical = 1.0 }
    levels = { elevated_at = 0.5, critical_at = 0.75 }

    [limit.aimd]
    initial = 10
    bounds = [5, 50]
    backoff = 0.5
    timeout = "100ms"
"#;

#[test]
fn a_full_file_reads_every_field() {
    let config = parse(FULL);
    let settings = &config.settings;
    assert_eq!(settings.name.as_ref(), "api");
    assert_eq!(settings.max_ready_wait, Some(Duration::from_millis(50)));
    assert_eq!(settings.retry_after, Duration::from_secs(3));
    let share = settings.share;
    assert_eq!(
        (share.sheddable, share.normal, share.critical),
        (0.25, 0.5, 1.0)
    );
    let levels = settings.levels;
    assert_eq!((levels.elevated_at, levels.critical_at), (0.5, 0.75));
    assert_eq!(
        config.limit.unwrap().build().unwrap(),
        ConfigLimit::Aimd(
            Aimd::new()
                .bounds(5, 50)
                .initial(10)
                .backoff(0.5)
                .timeout(Duration::from_millis(100))
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_file_builds_a_layer_with_every_setting() {
    let (layer, handle) = parse(FULL)
        .builder()
        .unwrap()
        .priority(|p: &Priority| *p)
        .build_with_handle()
        .unwrap();
    assert_eq!(handle.limit(), 10, "limit.aimd.initial");

    let mut svc = layer.layer(service_fn(|_: Priority| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(())
    }));
    let mut running = Vec::new();
    let mut admit = async |svc: &mut _, p| {
        let svc: &mut crate::LoadShed<_, _, _, _, _> = svc;
        let call = svc.ready().await.unwrap().call(p);
        running.push(tokio::spawn(call));
        tokio::task::yield_now().await;
    };
    // share: sheddable 25 % of 10 (3 calls), normal 50 % (5), critical 100 % (10).
    for _ in 0..3 {
        admit(&mut svc, Priority::Sheddable).await;
    }
    let err = svc.ready().await.unwrap().call(Priority::Sheddable).await;
    let err = err.unwrap_err();
    let err = weir_error(&err);
    assert!(err.is_overloaded());
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(3)),
        "retry_after"
    );
    assert_eq!(err.layer(), Some("api"), "name");
    assert_eq!(handle.load_level(), LoadLevel::Normal, "3 of 10");

    for _ in 0..2 {
        admit(&mut svc, Priority::Normal).await;
    }
    assert_eq!(handle.load_level(), LoadLevel::Elevated, "levels: 5 of 10");
    let err = svc.ready().await.unwrap().call(Priority::Normal).await;
    assert!(weir_error(&err.unwrap_err()).is_overloaded());
    for _ in 0..3 {
        admit(&mut svc, Priority::Critical).await;
    }
    assert_eq!(handle.load_level(), LoadLevel::Critical, "levels: 8 of 10");
    assert_eq!(handle.stats().in_flight, 8);
    assert_eq!(handle.stats().shed, 2);

    // Every call succeeds after 1 s, over AIMD's 100 ms timeout: to AIMD each is a drop,
    // which halves the limit (backoff 0.5), down to the floor of 5 (bounds).
    for call in running {
        call.await.unwrap().unwrap();
    }
    assert_eq!(handle.stats().succeeded, 8);
    assert_eq!(handle.limit(), 5);

    // max_ready_wait: an inner service unready for 50 ms makes the next call be refused.
    let (probe, control) = Probe::new(|p: Priority| Ok::<_, Infallible>(p));
    control.set_ready(false);
    let mut svc = layer.layer(probe);
    let started = tokio::time::Instant::now();
    svc.ready().await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    let err = svc.call(Priority::Critical).await.unwrap_err();
    assert!(weir_error(&err).is_overloaded());
    assert_eq!(control.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_fixed_limit_from_a_file_admits_exactly_that_many() {
    let layer = parse("max_in_flight = 2").build().unwrap();
    let handle = layer.handle();
    assert_eq!(handle.limit(), 2);
    let mut svc = layer.layer(service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(())
    }));
    // Default normal share: all of the limit (#27.4).
    let a = tokio::spawn(svc.ready().await.unwrap().call(()));
    let b = tokio::spawn(svc.ready().await.unwrap().call(()));
    tokio::task::yield_now().await;
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(weir_error(&err).is_overloaded());
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    // A fixed limit does not move, however slow the calls were.
    assert_eq!(handle.limit(), 2);
    assert_eq!(handle.stats().succeeded, 2);
}

#[tokio::test(start_paused = true)]
async fn http_mode_keeps_the_call_in_flight_until_the_body_ends() {
    let layer = parse("max_in_flight = 3").build_http().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(String::from("body")))
    }));
    let response = svc.oneshot(http::Request::new(())).await.unwrap();
    assert_eq!(handle.stats().in_flight, 1, "the body holds the slot");
    drop(response);
    assert_eq!(handle.stats().in_flight, 0);
    assert_eq!(handle.stats().succeeded, 1);
}

#[test]
fn vegas_and_gradient2_read_every_parameter() {
    let vegas = parse(
        "limit = { vegas = { initial = 40, bounds = [10, 400], smoothing = 0.5, probe_every = 99 } }",
    );
    assert_eq!(
        vegas.limit.unwrap().build().unwrap(),
        ConfigLimit::Vegas(
            Vegas::new()
                .bounds(10, 400)
                .initial(40)
                .smoothing(0.5)
                .probe_every(99)
        )
    );
    let gradient = parse(
        "[limit.gradient2]\ninitial = 30\nbounds = [25, 300]\nsmoothing = 0.4\ntolerance = 2.0\nqueue = 7\nshort_window = 3\nlong_window = 50\n",
    );
    assert_eq!(
        gradient.limit.unwrap().build().unwrap(),
        ConfigLimit::Gradient2(
            Gradient2::new()
                .bounds(25, 300)
                .initial(30)
                .smoothing(0.4)
                .tolerance(2.0)
                .queue(7)
                .short_window(3)
                .long_window(50)
        )
    );
    // An empty table is the algorithm's defaults.
    assert_eq!(
        parse("limit = { vegas = {} }")
            .limit
            .unwrap()
            .build()
            .unwrap(),
        ConfigLimit::Vegas(Vegas::new())
    );
}

#[test]
fn the_dispatch_enum_moves_exactly_as_the_algorithm_it_holds() {
    let samples = (0..2_000_u64).map(|i| {
        let rtt = Duration::from_millis(10 + (i * 7) % 40);
        if i % 97 == 0 {
            Sample::dropped(rtt, 20)
        } else {
            Sample::success(rtt, 15 + (i % 10) as usize)
        }
    });
    let mut vegas = Vegas::new();
    let mut gradient = Gradient2::new().short_window(2);
    let mut aimd = Aimd::new();
    let mut as_config = [
        ConfigLimit::Vegas(vegas.clone()),
        ConfigLimit::Gradient2(gradient.clone()),
        ConfigLimit::Aimd(aimd.clone()),
    ];
    let mut moved = [false; 3];
    for sample in samples {
        let direct = [
            vegas.update(sample),
            gradient.update(sample),
            aimd.update(sample),
        ];
        for (i, limit) in as_config.iter_mut().enumerate() {
            assert_eq!(limit.update(sample), direct[i]);
            assert_eq!(limit.limit(), direct[i]);
            moved[i] |= direct[i] != 20;
        }
    }
    assert_eq!(
        moved, [true; 3],
        "every algorithm moved: the comparison means something"
    );
    let mut fixed = ConfigLimit::Fixed(Fixed::new(7));
    assert_eq!(fixed.update(Sample::dropped(Duration::ZERO, 7)), 7);
}

#[test]
fn an_empty_table_builds_the_builder_defaults() {
    let config = parse("");
    assert_eq!(config, LoadShedConfig::default());
    let from_file = config.build().unwrap();
    let from_code = LoadShedLayer::builder().build().unwrap();
    // The layer's Debug shows the name, the limit, the caps of each priority and the levels.
    assert_eq!(format!("{from_file:?}"), format!("{from_code:?}"));
    assert_eq!(from_file.handle().limit(), DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(from_file.handle().stats(), from_code.handle().stats());
}

#[test]
fn unknown_fields_and_algorithms_are_refused_by_name() {
    let read_err = |text: &str| {
        toml::from_str::<LoadShedConfig>(text)
            .unwrap_err()
            .to_string()
    };
    let text = read_err("max_in_flight = 5\npriority = \"critical\"\n");
    assert!(text.contains("unknown field `priority`"), "{text}");
    let text = read_err("limit = { aimd = { ratio = 0.5 } }");
    assert!(text.contains("unknown field `ratio`"), "{text}");
    let text = read_err("limit = { bbr = {} }");
    assert!(text.contains("unknown variant `bbr`"), "{text}");
    assert!(text.contains("gradient2"), "the choices are listed: {text}");
    let text = read_err("share = { background = 0.1 }");
    assert!(text.contains("unknown field `background`"), "{text}");
}

#[test]
fn bad_values_name_their_field() {
    let build_err = |text: &str| parse(text).build().unwrap_err().to_string();
    let read_err = |text: &str| {
        toml::from_str::<LoadShedConfig>(text)
            .unwrap_err()
            .to_string()
    };

    assert_eq!(
        build_err("max_in_flight = 0"),
        "load shed: `max_in_flight` must be at least 1"
    );
    assert!(
        build_err("max_in_flight = 5\nlimit = { vegas = {} }")
            .starts_with("load shed: `max_in_flight` cannot be combined with `limit`")
    );
    assert_eq!(
        build_err("share = { sheddable = 1.5 }"),
        "load shed: `share.sheddable` must be above 0 and at most 1"
    );
    assert!(build_err("levels = { elevated_at = 0.9, critical_at = 0.5 }").contains("`levels`"));
    assert!(build_err(r#"retry_after = "0s""#).contains("`retry_after`"));
    assert!(build_err(r#"max_ready_wait = "0ms""#).contains("`max_ready_wait`"));

    for (text, message) in [
        (
            "limit = { aimd = { backoff = 1.2 } }",
            "load shed: `limit.aimd.backoff` must be between 0.5 and 0.99",
        ),
        (
            "limit = { aimd = { timeout = \"0s\" } }",
            "load shed: `limit.aimd.timeout` must be more than zero",
        ),
        (
            "limit = { aimd = { bounds = [0, 10] } }",
            "load shed: `limit.aimd.bounds` must be [min, max] with 1 <= min <= max",
        ),
        (
            "limit = { vegas = { bounds = [50, 10] } }",
            "load shed: `limit.vegas.bounds` must be [min, max] with 1 <= min <= max",
        ),
        (
            "limit = { vegas = { smoothing = 0.0 } }",
            "load shed: `limit.vegas.smoothing` must be between 0.01 and 1",
        ),
        (
            "limit = { vegas = { probe_every = 0 } }",
            "load shed: `limit.vegas.probe_every` must be at least 1",
        ),
        (
            "limit = { gradient2 = { tolerance = 0.5 } }",
            "load shed: `limit.gradient2.tolerance` must be at least 1",
        ),
        (
            "limit = { gradient2 = { long_window = 0 } }",
            "load shed: `limit.gradient2.long_window` must be at least 1",
        ),
        (
            "limit = { gradient2 = { short_window = 0 } }",
            "load shed: `limit.gradient2.short_window` must be at least 1",
        ),
    ] {
        assert_eq!(build_err(text), message, "{text}");
    }
    // Outside the default bounds of Gradient2 (20..=200), and outside given bounds.
    assert!(
        build_err("limit = { gradient2 = { initial = 5 } }")
            .starts_with("load shed: `limit.gradient2.initial` must lie within `bounds`")
    );
    assert!(
        build_err("limit = { aimd = { initial = 60, bounds = [5, 50] } }")
            .starts_with("load shed: `limit.aimd.initial` must lie within `bounds`")
    );

    let text = read_err(r#"max_ready_wait = "soon""#);
    assert!(text.contains("max_ready_wait"), "{text}");
    assert!(text.contains(r#"invalid duration "soon""#), "{text}");
    let text = read_err("levels = { elevated_at = 0.5 }");
    assert!(text.contains("missing field `critical_at`"), "{text}");
    let text = read_err("max_in_flight = -1");
    assert!(text.contains("max_in_flight"), "{text}");
}
