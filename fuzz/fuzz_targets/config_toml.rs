//! Configuration files: TOML into every `*Config` the crates expose under `serde` (through
//! `weir`'s `config` feature), and `ConfigDuration`'s text.
//!
//! Properties:
//! - a config that deserializes builds (every `build*` method) or returns a `ConfigError`, never
//!   panics; building is deterministic (twice, the same answer), and an error names its field
//!   and says something;
//! - a duration that parses, written back in its largest exact unit, parses to the same duration.
#![no_main]

use std::fmt::Debug;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use weir::ConfigError;
use weir::bulkhead::PartitionedConfig;
use weir::circuit_breaker::CircuitBreakerConfig;
use weir::core::config::ConfigDuration;
use weir::load_shed::LoadShedConfig;
use weir::rate_limit::RateLimitConfig;
use weir::retry::RetryConfig;
use weir::timeout::TimeoutConfig;
use weir::{ClientConfig, ServerConfig};

fuzz_target!(|input: (u8, &str)| {
    let (which, text) = input;
    match which % 9 {
        0 => check::<CircuitBreakerConfig>(text, &[&|c| ok(c.build()), &|c| ok(c.build_keyed())]),
        1 => check::<PartitionedConfig>(text, &[&|c| ok(c.build()), &|c| ok(c.build_http())]),
        2 => check::<LoadShedConfig>(text, &[&|c| ok(c.build()), &|c| ok(c.build_http())]),
        3 => check::<RateLimitConfig>(text, &[&|c| ok(c.build())]),
        4 => check::<RetryConfig>(
            text,
            &[&|c| ok(c.build()), &|c| ok(c.build_http()), &|c| {
                ok(c.build_grpc())
            }],
        ),
        5 => check::<TimeoutConfig>(text, &[&|c| ok(c.build())]),
        6 => check::<ServerConfig>(text, &[&|c| ok(c.build())]),
        7 => check::<ClientConfig>(text, &[&|c| ok(c.build())]),
        _ => duration(text),
    }
});

/// A build's outcome, without the layer (layers are not comparable).
fn ok<T>(built: Result<T, ConfigError>) -> Result<(), ConfigError> {
    built.map(drop)
}

fn check<C: DeserializeOwned + Debug>(
    text: &str,
    builds: &[&dyn Fn(&C) -> Result<(), ConfigError>],
) {
    let Ok(config) = toml::from_str::<C>(text) else {
        return;
    };
    for build in builds {
        let first = build(&config);
        let second = build(&config);
        match (&first, &second) {
            (Ok(()), Ok(())) => {}
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{config:?}");
                assert!(!a.field().is_empty(), "{a} ({config:?})");
                assert!(!a.to_string().is_empty());
            }
            _ => panic!("two builds of {config:?} disagree: {first:?} then {second:?}"),
        }
    }
}

fn duration(text: &str) {
    let Ok(parsed) = ConfigDuration::parse(text) else {
        return;
    };
    let d = parsed.get();
    let micros = d.as_micros();
    assert_eq!(d, Duration::from_micros(u64::try_from(micros).unwrap()));
    let units = [
        (86_400_000_000, "d"),
        (3_600_000_000, "h"),
        (60_000_000, "m"),
        (1_000_000, "s"),
        (1_000, "ms"),
        (1, "us"),
    ];
    let (per, unit) = units
        .into_iter()
        .find(|(per, _)| micros % per == 0)
        .expect("us divides everything");
    let written = format!("{}{unit}", micros / per);
    assert_eq!(
        ConfigDuration::parse(&written),
        Ok(parsed),
        "{text:?} written as {written}"
    );
}
