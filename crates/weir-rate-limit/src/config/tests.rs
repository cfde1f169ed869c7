use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response};
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};
use tower_layer::Layer;
use weir_core::{BoxError, Error, KeyExtractor, keyed::KeyedConfig};

use super::*;
use crate::shared::Mode;

fn parse(text: &str) -> RateLimitConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn parse_error(text: &str) -> String {
    toml::from_str::<RateLimitConfig>(text)
        .expect_err(text)
        .to_string()
}

fn build_error(text: &str) -> String {
    parse(text).build().expect_err(text).to_string()
}

fn ok()
-> impl Service<Request<()>, Response = Response<()>, Error = Infallible, Future = impl Send> + Clone
{
    service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) })
}

fn request(tenant: Option<&str>) -> Request<()> {
    let mut req = Request::get("/");
    if let Some(tenant) = tenant {
        req = req.header("x-tenant", tenant);
    }
    req.body(()).expect("a valid request")
}

/// Sends one request; returns its result and how long it waited (paused time).
async fn send<S>(svc: &mut S, tenant: Option<&str>) -> (Result<Response<()>, BoxError>, Duration)
where
    S: Service<Request<()>, Response = Response<()>, Error = BoxError>,
{
    let start = Instant::now();
    let result = match svc.ready().await {
        Ok(svc) => svc.call(request(tenant)).await,
        Err(e) => Err(e),
    };
    (result, start.elapsed())
}

fn field<'a>(res: &'a Response<()>, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn refusal(result: Result<Response<()>, BoxError>) -> (String, String, Duration) {
    let err = result.expect_err("refused");
    let err = Error::find(&*err).expect("a weir error");
    assert!(err.is_rate_limited(), "{err}");
    let policy = err.rate_limit().map(|i| i.policy().to_owned());
    (
        err.layer().unwrap_or("").to_owned(),
        policy.unwrap_or_default(),
        err.retry_after().unwrap_or_default(),
    )
}

const FULL: &str = r#"
        name = "api"
        algorithm = "token_bucket"
        key = { header = "x-tenant" }
        quota = [
            { rate = 3, per = "1s", name = "second" },
            { rate = 1000, per = "1d", burst = 5, name = "daily" },
        ]
        mode = { wait = { max_wait = "1s" } }
        missing_key = "reject"
        max_keys = 1
        idle_timeout = "2m"
        response_headers = "x_rate_limit"

        [tier]
        gold = { rate = 10, per = "1s", name = "gold" }

        [tier_of]
        acme = "gold"
    "#;

#[test]
fn a_full_file_sets_every_field_of_the_builder() {
    let config = parse(FULL);
    let b = config.builder().expect("valid");
    assert_eq!(b.name.as_str(), "api");
    assert_eq!(b.algorithm, ConfigAlgorithm::TokenBucket);
    assert_eq!(
        b.extractor,
        KeySpec::Header(http::HeaderName::from_static("x-tenant").into())
    );
    assert_eq!(
        b.quotas,
        [
            Quota::new(3, Duration::from_secs(1)).named("second"),
            Quota::new(1000, Duration::from_secs(86_400))
                .burst(5)
                .named("daily"),
        ]
    );
    assert_eq!(
        b.tiers,
        [(Name::new("gold"), vec![Quota::per_second(10).named("gold")])]
    );
    assert_eq!(b.tier_of.len(), 1);
    assert_eq!(b.mode, Mode::Wait(Duration::from_secs(1)));
    assert_eq!(b.missing, MissingKey::Reject);
    assert_eq!(
        b.keyed,
        KeyedConfig::new()
            .max_keys(1)
            .idle_timeout(Duration::from_secs(120))
    );
    assert_eq!(b.protocol.style(), HeaderStyle::XRateLimit);
}

#[tokio::test(start_paused = true)]
async fn a_full_file_builds_a_layer_that_behaves_as_written() {
    let (layer, handle) = parse(FULL)
        .builder()
        .expect("valid")
        .build_with_handle()
        .expect("valid");
    assert_eq!(layer.name(), "api");
    assert_eq!(handle.store().algorithm(), &ConfigAlgorithm::TokenBucket);
    let mut svc = layer.layer(ok());
    // The token bucket refills at period boundaries counted from the store's epoch: start
    // 1 ms after a day's boundary (a second's too), so the daily quota's refill is a day away.
    const DAY: u64 = 86_400_000_000_000;
    let into_day = crate::store::nanos(Instant::now()) % DAY;
    tokio::time::advance(Duration::from_nanos(DAY - into_day + 1_000_000)).await;

    // `tier_of` puts acme in the gold tier. It is the one key stored (`max_keys = 1`).
    let (res, _) = send(&mut svc, Some("acme")).await;
    let res = res.expect("admitted");
    assert_eq!(field(&res, "x-ratelimit-limit"), "10");
    assert_eq!(field(&res, "x-ratelimit-remaining"), "9");
    assert_eq!(handle.keys(), 1);

    // The default tier (zeta shares the overflow state, shaped like it): 3 at once (burst =
    // rate), fields in the legacy style.
    for left in ["2", "1", "0"] {
        let (res, waited) = send(&mut svc, Some("zeta")).await;
        let res = res.expect("admitted");
        assert_eq!(waited, Duration::ZERO);
        assert_eq!(field(&res, "x-ratelimit-limit"), "3");
        assert_eq!(field(&res, "x-ratelimit-remaining"), left);
        assert_eq!(field(&res, "ratelimit"), "");
    }
    // Wait mode: the 4th waits for the token bucket's next refill, within `max_wait`.
    let (res, waited) = send(&mut svc, Some("zeta")).await;
    assert!(res.is_ok());
    let (from, to) = (Duration::from_millis(999), Duration::from_secs(1));
    assert!(waited >= from && waited <= to, "{waited:?}");
    // Stacked: the 5th unit empties the daily quota's burst, which is then reported...
    let (res, waited) = send(&mut svc, Some("zeta")).await;
    let res = res.expect("admitted");
    assert_eq!(waited, Duration::ZERO);
    assert_eq!(field(&res, "x-ratelimit-limit"), "1000");
    assert_eq!(field(&res, "x-ratelimit-remaining"), "0");
    // ... and refuses the 6th at once: its refill is beyond `max_wait`.
    let (res, waited) = send(&mut svc, Some("zeta")).await;
    let (layer_name, policy, retry_after) = refusal(res);
    assert_eq!((layer_name.as_str(), policy.as_str()), ("api", "daily"));
    assert!(retry_after > Duration::from_secs(1));
    assert_eq!(waited, Duration::ZERO);

    // `missing_key = "reject"`: refused as a missing key (a 401), not as a rate limit.
    let (res, _) = send(&mut svc, None).await;
    let err = res.expect_err("refused");
    let err = Error::find(&*err).expect("a weir error");
    assert!(err.is_missing_key(), "{err}");
    assert_eq!(err.layer(), Some("api"));

    // `max_keys = 1`: another new key is not stored either; it shares the overflow state,
    // which zeta emptied.
    let (res, _) = send(&mut svc, Some("omega")).await;
    assert_eq!(refusal(res).1, "daily");
    assert_eq!(handle.keys(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_empty_table_gives_the_builders_defaults() {
    let config = parse("");
    assert_eq!(config, RateLimitConfig::default());
    let b = config.builder().expect("valid");
    let defaults = RateLimitLayer::builder();
    assert_eq!(b.name, defaults.name);
    assert_eq!(b.quotas, defaults.quotas);
    assert_eq!(b.tiers, defaults.tiers);
    assert_eq!(b.mode, defaults.mode);
    assert_eq!(b.missing, defaults.missing);
    assert_eq!(b.keyed, defaults.keyed);
    assert_eq!(b.algorithm, ConfigAlgorithm::Gcra);
    assert_eq!(b.extractor, KeySpec::Global);
    assert!(b.tier_of.is_empty());
    assert_eq!(b.protocol.style(), HeaderStyle::None);
    // No quota: refused by `build` exactly as the builder refuses it.
    assert_eq!(config.build().err(), defaults.build().err());
    assert!(config.build().err().is_some_and(|e| e.is_missing()));

    // With a quota from code it limits as the builder's default layer does: GCRA, reject
    // mode, one state for every request, no response field.
    let (layer, handle) = b
        .quota(Quota::per_second(2))
        .build_with_handle()
        .expect("valid");
    assert_eq!(layer.name(), "rate_limit");
    let mut svc = layer.layer(ok());
    for tenant in [Some("a"), Some("b")] {
        let (res, _) = send(&mut svc, tenant).await;
        assert!(res.expect("admitted").headers().is_empty());
    }
    // `global` keeps its one state as the builder's `Global` does: no map, no key stored.
    assert_eq!(handle.keys(), 0);
    let (res, waited) = send(&mut svc, Some("c")).await;
    let (name, policy, retry_after) = refusal(res);
    assert_eq!((name.as_str(), policy.as_str()), ("rate_limit", "default"));
    assert_eq!(retry_after, Duration::from_millis(500));
    assert_eq!(waited, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn shadow_mode_counts_but_never_refuses_and_reject_refuses() {
    let quota = "quota = { rate = 1, per = \"1m\" }\n";
    let shadow = parse(&format!("{quota}mode = \"shadow\""));
    assert_eq!(shadow.builder().expect("valid").mode, Mode::Shadow);
    let mut svc = shadow.build().expect("valid").layer(ok());
    for _ in 0..3 {
        assert!(send(&mut svc, None).await.0.is_ok());
    }
    let reject = parse(&format!("{quota}mode = \"reject\""));
    let mut svc = reject.build().expect("valid").layer(ok());
    assert!(send(&mut svc, None).await.0.is_ok());
    assert_eq!(
        refusal(send(&mut svc, None).await.0).2,
        Duration::from_secs(60)
    );
}

#[test]
fn a_single_quota_a_table_or_a_list_read_the_same() {
    let inline = parse(r#"quota = { rate = 5, per = "2m", burst = 7, name = "q" }"#);
    let table = parse("[quota]\nrate = 5\nper = \"2m\"\nburst = 7\nname = \"q\"\n");
    let list = parse("[[quota]]\nrate = 5\nper = \"2m\"\nburst = 7\nname = \"q\"\n");
    assert_eq!(inline, table);
    assert_eq!(inline, list);
    let quotas = inline.quota.expect("one quota");
    assert_eq!(
        quotas.iter().map(QuotaConfig::quota).collect::<Vec<_>>(),
        [Quota::new(5, Duration::from_secs(120)).burst(7).named("q")]
    );
    // Burst defaults to the rate, as in `Quota::new`.
    let q = QuotaConfig::new(4, Duration::from_secs(1)).quota();
    assert_eq!((q.burst_size(), q.name()), (4, "default"));
}

#[test]
fn every_algorithm_mode_and_header_style_reads_by_name() {
    for (name, algorithm) in [
        ("gcra", ConfigAlgorithm::Gcra),
        ("token_bucket", ConfigAlgorithm::TokenBucket),
        ("leaky_bucket", ConfigAlgorithm::LeakyBucket),
        ("fixed_window", ConfigAlgorithm::FixedWindow),
        ("sliding_window", ConfigAlgorithm::SlidingWindow),
        ("sliding_log", ConfigAlgorithm::SlidingLog),
    ] {
        let config = parse(&format!("algorithm = \"{name}\""));
        assert_eq!(config.algorithm, Some(algorithm), "{name}");
    }
    for (name, style) in [
        ("none", HeaderStyle::None),
        ("ietf", HeaderStyle::Ietf),
        ("x_rate_limit", HeaderStyle::XRateLimit),
        ("both", HeaderStyle::Both),
    ] {
        let config = parse(&format!("response_headers = \"{name}\""));
        let b = config.builder().expect("valid");
        assert_eq!(b.protocol.style(), style, "{name}");
    }
    for (name, missing) in [
        ("shared", MissingKey::Shared),
        ("reject", MissingKey::Reject),
        ("bypass", MissingKey::Bypass),
    ] {
        let config = parse(&format!("missing_key = \"{name}\""));
        assert_eq!(config.missing_key, Some(missing), "{name}");
    }
    let wait = parse(r#"mode = { wait = { max_wait = "250ms" } }"#);
    let b = wait.builder().expect("valid");
    assert_eq!(b.mode, Mode::Wait(Duration::from_millis(250)));
    // The state a file-chosen algorithm keeps per quota and key.
    assert_eq!(size_of::<ConfigAlgorithmState>(), 16);
}

#[test]
fn the_config_layer_and_its_service_are_send_sync_and_clone() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
    let layer = parse("quota = { rate = 1, per = \"1s\" }")
        .build()
        .expect("valid");
    assert_shareable(&layer);
    assert_shareable(&layer.layer(ok()));
}

fn tiers_of(text: &str) -> (KeySpec, ConfigTiers) {
    let b = parse(text)
        .builder()
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    (b.extractor, b.tier_of)
}

fn tier_of_request(text: &str, req: &Request<()>) -> Option<String> {
    let (spec, tiers) = tiers_of(text);
    let key = spec.extract(req)?;
    tiers.tier(&key).map(str::to_owned)
}

#[test]
fn tier_of_reads_each_kind_of_key_as_its_extractor_produces_it() {
    let tier = "[tier]\ngold = { rate = 9, per = \"1s\" }\n";
    let gold = Some("gold".to_owned());

    let mut req = Request::get("http://inventory:8080/login")
        .body(())
        .expect("valid");
    let peer: SocketAddr = "10.0.0.7:5000".parse().expect("valid");
    req.extensions_mut().insert(peer);
    let ip = format!("key = \"peer_ip\"\n{tier}[tier_of]\n\"10.0.0.7\" = \"gold\"\n");
    assert_eq!(tier_of_request(&ip, &req), gold);
    let other_ip = ip.replace("10.0.0.7\"", "10.0.0.8\"");
    assert_eq!(tier_of_request(&other_ip, &req), None);

    let authority =
        format!("key = \"authority\"\n{tier}[tier_of]\n\"inventory:8080\" = \"gold\"\n");
    assert_eq!(tier_of_request(&authority, &req), gold);

    let route = format!("key = \"method_path\"\n{tier}[tier_of]\n\"GET /login\" = \"gold\"\n");
    assert_eq!(tier_of_request(&route, &req), gold);
    let post = Request::post("/login").body(()).expect("valid");
    assert_eq!(tier_of_request(&route, &post), None);

    let bearer = Request::get("/")
        .header("authorization", "Bearer pk_live_1")
        .header("x-tenant", "acme")
        .body(())
        .expect("valid");
    let token = format!("key = \"bearer\"\n{tier}[tier_of]\npk_live_1 = \"gold\"\n");
    assert_eq!(tier_of_request(&token, &bearer), gold);
    let header = format!("key = {{ header = \"x-tenant\" }}\n{tier}[tier_of]\nacme = \"gold\"\n");
    assert_eq!(tier_of_request(&header, &bearer), gold);
    assert_eq!(tier_of_request(&header, &req), None);
}

/// #15.15: a key listed in `tier_of` above the extractor's `max_len` is kept as the digest its
/// requests get, so its tier still applies (it never could when compared verbatim).
#[test]
fn tier_of_matches_a_listed_key_longer_than_the_cap() {
    let tier = "[tier]\ngold = { rate = 9, per = \"1s\" }\n";
    let gold = Some("gold".to_owned());
    let long = "k".repeat(weir_core::key::DEFAULT_MAX_KEY_LEN + 100);
    let req = Request::get("/")
        .header("x-tenant", long.as_str())
        .header("authorization", format!("Bearer {long}"))
        .body(())
        .expect("valid");
    let header = format!("key = {{ header = \"x-tenant\" }}\n{tier}[tier_of]\n{long} = \"gold\"\n");
    assert_eq!(tier_of_request(&header, &req), gold);
    let capped = format!(
        "key = {{ header = {{ name = \"x-tenant\", max_len = 16 }} }}\n{tier}[tier_of]\n{} = \"gold\"\n",
        &long[..17]
    );
    let seventeen = Request::get("/")
        .header("x-tenant", &long[..17])
        .body(())
        .expect("valid");
    assert_eq!(tier_of_request(&capped, &seventeen), gold);
    assert_eq!(tier_of_request(&capped, &req), None, "another key");
    let bearer = format!("key = \"bearer\"\n{tier}[tier_of]\n{long} = \"gold\"\n");
    assert_eq!(tier_of_request(&bearer, &req), gold);
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    for (text, field) in [
        ("max_key = 5", "max_key"),
        ("quota = { rate = 1, per = \"1s\", brust = 2 }", "brust"),
        ("[[quota]]\nrate = 1\nperiod = \"1s\"", "period"),
        (
            "[tier]\ngold = [{ rate = 1, per = \"1s\", bursts = 1 }]",
            "bursts",
        ),
        ("mode = { wait = { max = \"1s\" } }", "max"),
        ("key = { forwarded_ip = { proxies = 1 } }", "proxies"),
    ] {
        let error = parse_error(text);
        // serde's words for a struct, toml's for an enum's struct variant.
        let named = error.contains(&format!("unknown field `{field}`"))
            || error.contains(&format!("unexpected keys in table: {field},"));
        assert!(named, "{text}: {error}");
    }
}

#[test]
fn a_bad_value_is_refused_with_its_field_named() {
    for (text, field, rule) in [
        (
            "quota = { rate = 1, per = \"0s\" }",
            "per",
            "quota.per must be longer than zero",
        ),
        (
            "quota = { rate = 1, per = \"1 sec\" }",
            "per",
            "invalid duration",
        ),
        ("quota = { rate = -1, per = \"1s\" }", "rate", "rate"),
        ("quota = { per = \"1s\" }", "quota", "missing field `rate`"),
        (
            "idle_timeout = \"10 minutes\"",
            "idle_timeout",
            "invalid duration",
        ),
        (
            "algorithm = \"gcra2\"",
            "algorithm",
            "unknown variant `gcra2`",
        ),
        ("mode = \"drop\"", "mode", "unknown variant `drop`"),
        (
            "missing_key = \"drop\"",
            "missing_key",
            "unknown variant `drop`",
        ),
        (
            "response_headers = \"draft\"",
            "response_headers",
            "unknown variant `draft`",
        ),
        ("max_keys = 0", "max_keys", "nonzero"),
        ("key = \"cookie\"", "key", "unknown variant `cookie`"),
    ] {
        let error = parse_error(text);
        assert!(
            error.contains(field) && error.contains(rule),
            "{text}: {error}"
        );
    }
    for (text, error) in [
        (
            "quota = { rate = 0, per = \"1s\" }",
            "rate limit: `quota.rate` must be at least 1",
        ),
        (
            "quota = { rate = 1, per = \"1s\", burst = 0 }",
            "rate limit: `quota.burst` must be at least 1",
        ),
        (
            "quota = { rate = 1, per = \"1s\" }\n[tier]\ngold = { rate = 0, per = \"1s\" }",
            "rate limit: `tier.gold.rate` must be at least 1",
        ),
        (
            "quota = { rate = 1, per = \"1s\" }\n[tier]\ngold = []",
            "rate limit: `tier.gold` needs at least one quota",
        ),
        (
            "quota = { rate = 1, per = \"1d\", burst = 200000 }",
            "rate limit: `quota.per` and `burst` × the emission interval must span at most 500 years",
        ),
    ] {
        assert_eq!(build_error(text), error, "{text}");
    }
    let unknown_tier = "key = \"api_key\"\n[tier]\ngold = { rate = 9, per = \"1s\" }\n\
                            [tier_of]\nk1 = \"silver\"";
    assert!(
        parse(unknown_tier)
            .builder()
            .err()
            .is_some_and(|e| e.is_unknown() && e.field() == "tier_of")
    );
    assert!(build_error(unknown_tier).contains("`silver`"));
    for bad_key in [
        "key = \"peer_ip\"\n[tier]\ngold = { rate = 9, per = \"1s\" }\n[tier_of]\n\"10.0.0\" = \"gold\"",
        "key = \"method_path\"\n[tier]\ngold = { rate = 9, per = \"1s\" }\n[tier_of]\n\"/login\" = \"gold\"",
        "[tier]\ngold = { rate = 9, per = \"1s\" }\n[tier_of]\nanyone = \"gold\"",
    ] {
        assert!(
            parse(bad_key)
                .builder()
                .err()
                .is_some_and(|e| e.is_invalid() && e.field() == "tier_of"),
            "{bad_key}"
        );
        assert!(
            build_error(bad_key).starts_with("rate limit: `tier_of`"),
            "{bad_key}"
        );
    }
}

/// Drives `concrete` and `config` through the same decisions and checks every answer.
fn decides_the_same<A: Algorithm>(
    concrete: &A,
    config: ConfigAlgorithm,
    quota: &Quota,
    ops: &[(u64, u32, bool, bool)],
) -> Result<(), TestCaseError> {
    let a = concrete.new_state(quota);
    let b = config.new_state(quota);
    let mut now = 0;
    for &(dt, cost, wait, release) in ops {
        now += dt;
        let max_wait = if wait { 1_000_000_000 } else { 0 };
        prop_assert_eq!(
            concrete.peek(&a, quota, cost, now),
            config.peek(&b, quota, cost, now)
        );
        let verdict = concrete.acquire(&a, quota, cost, now, max_wait);
        prop_assert_eq!(verdict, config.acquire(&b, quota, cost, now, max_wait));
        if release && verdict.is_admitted() {
            concrete.release(&a, quota, cost, now);
            config.release(&b, quota, cost, now);
        }
        prop_assert_eq!(A::rest_at(&a), ConfigAlgorithm::rest_at(&b));
    }
    Ok(())
}

proptest! {
    #[test]
    fn a_config_algorithm_decides_as_the_algorithm_it_names(
        rate in 1u32..6,
        burst in 1u32..8,
        ops in proptest::collection::vec(
            (0u64..600_000_000, 1u32..4, any::<bool>(), any::<bool>()),
            1..80,
        ),
    ) {
        let quota = Quota::per_second(rate).burst(burst);
        decides_the_same(&Gcra, ConfigAlgorithm::Gcra, &quota, &ops)?;
        decides_the_same(&TokenBucket, ConfigAlgorithm::TokenBucket, &quota, &ops)?;
        decides_the_same(&LeakyBucket, ConfigAlgorithm::LeakyBucket, &quota, &ops)?;
        decides_the_same(&FixedWindow, ConfigAlgorithm::FixedWindow, &quota, &ops)?;
        decides_the_same(&SlidingWindow, ConfigAlgorithm::SlidingWindow, &quota, &ops)?;
        decides_the_same(&SlidingLog, ConfigAlgorithm::SlidingLog, &quota, &ops)?;
    }
}
