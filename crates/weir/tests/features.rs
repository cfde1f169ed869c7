//! #27.9: the feature flags match the docs: the features a Quick start shows are enough for its
//! code, and `full` does not pull in Redis.

use std::collections::BTreeSet;

/// The umbrella crate's features, from its manifest.
fn features() -> toml::Table {
    let manifest = include_str!("../Cargo.toml");
    let manifest: toml::Table = toml::from_str(manifest).expect("a valid manifest");
    manifest["features"].as_table().expect("[features]").clone()
}

/// Every feature `name` turns on, itself included, following the umbrella's own features.
fn closure(features: &toml::Table, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    while let Some(next) = todo.pop() {
        if !seen.insert(next.clone()) {
            continue;
        }
        if let Some(list) = features.get(&next).and_then(toml::Value::as_array) {
            todo.extend(list.iter().filter_map(|v| v.as_str()).map(str::to_owned));
        }
    }
    seen
}

/// #27.9: `features = ["presets"]` (the Quick start's line) gives `ServerBuilder::rate_limit`
/// and `weir::rate_limit`; without `rate-limit` it failed with a misleading "private field".
#[test]
fn presets_include_the_rate_limit_the_server_preset_takes() {
    let presets = closure(&features(), "presets");
    for needed in [
        "rate-limit",
        "load-shed",
        "timeout",
        "retry",
        "circuit-breaker",
        "bulkhead",
    ] {
        assert!(
            presets.contains(needed),
            "presets lacks {needed}: {presets:?}"
        );
    }
}

/// #27.9: `full` is every pattern that needs nothing outside the process; Redis is its own
/// feature.
#[test]
fn full_does_not_pull_in_redis() {
    let features = features();
    let full = closure(&features, "full");
    assert!(!full.contains("redis"), "{full:?}");
    assert!(!full.contains("dep:weir-redis"), "{full:?}");
    for pattern in ["rate-limit", "retry", "presets", "config", "health"] {
        assert!(full.contains(pattern), "full lacks {pattern}");
    }
    assert!(closure(&features, "redis").contains("dep:weir-redis"));
}

/// The Quick start's code, compiled with the features it shows (`presets`): run with
/// `cargo test -p weir --no-default-features --features presets` it proves that line is enough.
#[cfg(feature = "presets")]
#[test]
fn the_quick_start_compiles_with_presets_alone() {
    use std::time::Duration;

    use weir::rate_limit::{Quota, RateLimitLayer};
    use weir::{ServerStack, core::key::ApiKey, core::key::KeyExtractorExt, core::key::PeerIp};

    let per_client = RateLimitLayer::builder()
        .quota(Quota::per_second(100))
        .key(ApiKey::new().or(PeerIp::new()))
        .http()
        .build()
        .unwrap();
    let stack = ServerStack::builder()
        .rate_limit(per_client)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(stack.timeout(), Duration::from_secs(10));
}

/// Every feature of the manifest has its row in the README's "Feature flags" table (`hedge`
/// had none), and the README's "Ordering" places every pattern that is a layer or a service.
#[test]
fn every_feature_is_documented() {
    let readme = include_str!("../README.md");
    let section = |title: &str| {
        let start = readme.find(title).expect(title);
        let rest = &readme[start + title.len()..];
        &rest[..rest.find("\n# ").unwrap_or(rest.len())]
    };
    let table = section("# Feature flags");
    for feature in features().keys().filter(|f| *f != "default") {
        assert!(
            table.contains(&format!("| `{feature}` |")),
            "no row for `{feature}` in the README's feature table"
        );
    }
    let ordering = section("# Ordering");
    for pattern in ["**Hedge**", "**Fallback**", "**Health**"] {
        assert!(ordering.contains(pattern), "the Ordering lacks {pattern}");
    }
}
