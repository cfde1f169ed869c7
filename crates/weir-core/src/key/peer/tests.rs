use std::fmt;

use super::*;
use crate::key::CidrError;
use crate::key::test_util::{ip, request};
use http::HeaderValue;
use proptest::prelude::*;

fn xff(n: usize) -> PeerIp {
    PeerIp::new().trusted_proxies(n).ipv6_prefix(128)
}

fn fwd(n: usize) -> PeerIp {
    PeerIp::new()
        .trusted_proxies(n)
        .ipv6_prefix(128)
        .forwarded_header(ForwardedHeader::Forwarded)
}

#[test]
fn one_trusted_proxy_keys_on_the_entry_it_appended_not_the_spoofed_one() {
    let req = request(
        Some("10.0.0.1:50000"),
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.7")],
    );
    let key = xff(1).extract(&req);
    assert_eq!(key, Some(ip("203.0.113.7")));
    assert_ne!(key, Some(ip("6.6.6.6")));
}

#[test]
fn no_trusted_proxy_ignores_forwarding_headers() {
    let req = request(
        Some("198.51.100.9:443"),
        &[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("forwarded", "for=6.6.6.6"),
        ],
    );
    assert_eq!(PeerIp::new().extract(&req), Some(ip("198.51.100.9")));
    assert_eq!(fwd(0).extract(&req), Some(ip("198.51.100.9")));
}

#[test]
fn two_trusted_proxies_skip_both_appended_entries() {
    // Client 203.0.113.7 -> CDN (appends the client) -> LB 10.0.0.1 (appends the CDN) -> us.
    let req = request(
        Some("10.0.0.1:50000"),
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 172.16.0.5")],
    );
    assert_eq!(xff(2).extract(&req), Some(ip("203.0.113.7")));
    assert_eq!(xff(1).extract(&req), Some(ip("172.16.0.5")));
    assert_eq!(xff(3).extract(&req), Some(ip("6.6.6.6")));
}

#[test]
fn a_chain_shorter_than_the_trust_count_uses_its_leftmost_hop() {
    let req = request(
        Some("10.0.0.1:50000"),
        &[("x-forwarded-for", "203.0.113.7, 172.16.0.5")],
    );
    assert_eq!(xff(3).extract(&req), Some(ip("203.0.113.7")));
    assert_eq!(xff(10).extract(&req), Some(ip("203.0.113.7")));
    let direct = request(Some("10.0.0.1:50000"), &[]);
    assert_eq!(xff(2).extract(&direct), Some(ip("10.0.0.1")));
}

#[test]
fn header_lines_are_joined_in_order_and_empty_entries_skipped() {
    let req = request(
        Some("10.0.0.1:50000"),
        &[
            ("x-forwarded-for", "6.6.6.6, 1.1.1.1"),
            ("x-forwarded-for", " ,203.0.113.7,, "),
            ("x-forwarded-for", "172.16.0.5"),
        ],
    );
    assert_eq!(xff(1).extract(&req), Some(ip("172.16.0.5")));
    assert_eq!(xff(2).extract(&req), Some(ip("203.0.113.7")));
    assert_eq!(xff(3).extract(&req), Some(ip("1.1.1.1")));
    assert_eq!(xff(4).extract(&req), Some(ip("6.6.6.6")));
}

#[test]
fn x_forwarded_for_entries_with_ports_and_ipv6() {
    let cases = [
        ("203.0.113.7:51234", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("\"203.0.113.7\"", "203.0.113.7"),
    ];
    for (entry, expected) in cases {
        let header = format!("6.6.6.6, {entry}");
        let req = request(Some("10.0.0.1:1"), &[("x-forwarded-for", &header)]);
        assert_eq!(xff(1).extract(&req), Some(ip(expected)), "entry {entry}");
    }
}

#[test]
fn forwarded_reads_for_in_any_case_quoted_ipv6_with_port() {
    let req = request(
        Some("10.0.0.1:1"),
        &[(
            "forwarded",
            "for=6.6.6.6;proto=http, proto=https;For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
        )],
    );
    assert_eq!(fwd(1).extract(&req), Some(ip("2001:db8:cafe::17")));
    assert_eq!(fwd(2).extract(&req), Some(ip("6.6.6.6")));

    let cases = [
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ("FOR = 198.51.100.17", "198.51.100.17"),
        ("for=\"203.0.113.7:8080\"", "203.0.113.7"),
        ("for=203.0.113.7:_hidden", "203.0.113.7"),
        ("for=\"[2001:db8::1]\"", "2001:db8::1"),
    ];
    for (element, expected) in cases {
        let header = format!("for=6.6.6.6, {element}");
        let req = request(Some("10.0.0.1:1"), &[("forwarded", &header)]);
        assert_eq!(
            fwd(1).extract(&req),
            Some(ip(expected)),
            "element {element}"
        );
    }
}

#[test]
fn forwarded_unknown_obfuscated_or_missing_for_is_a_missing_key() {
    for element in [
        "for=unknown",
        "for=\"_hidden\"",
        "for=_SEVKISEK",
        "proto=https;by=10.0.0.1",
        "for=",
    ] {
        let header = format!("for=203.0.113.7, {element}");
        let req = request(Some("10.0.0.1:1"), &[("forwarded", &header)]);
        assert_eq!(fwd(1).extract(&req), None, "element {element}");
    }
}

#[test]
fn each_mode_reads_only_its_own_header() {
    let req = request(
        Some("10.0.0.1:1"),
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=198.51.100.17"),
        ],
    );
    assert_eq!(xff(1).extract(&req), Some(ip("203.0.113.7")));
    assert_eq!(fwd(1).extract(&req), Some(ip("198.51.100.17")));
}

#[test]
fn an_unparseable_chosen_hop_is_a_missing_key_never_another_hop() {
    for entry in [
        "not-an-ip",
        "203.0.113.7:99999",
        "203.0.113.7:",
        "[2001:db8::1",
        "[2001:db8::1]443",
        "1.2.3.4.5",
        "unknown",
        "[203.0.113.7]",
        "fe80::1%eth0",
    ] {
        let header = format!("6.6.6.6, {entry}");
        let req = request(Some("10.0.0.1:1"), &[("x-forwarded-for", &header)]);
        assert_eq!(xff(1).extract(&req), None, "entry {entry}");
    }
    let mut req = request(Some("10.0.0.1:1"), &[]);
    let not_utf8 = HeaderValue::from_bytes(b"6.6.6.6, \xff\xfe").expect("obs-text is valid");
    req.headers_mut().insert(X_FORWARDED_FOR, not_utf8);
    assert_eq!(xff(1).extract(&req), None);
}

#[test]
fn ipv4_mapped_ipv6_is_one_key_with_ipv4() {
    let v4 = Some(ip("203.0.113.7"));
    let mapped_peer = request(Some("[::ffff:203.0.113.7]:443"), &[]);
    assert_eq!(PeerIp::new().extract(&mapped_peer), v4);
    let mapped_xff = request(
        Some("10.0.0.1:1"),
        &[("x-forwarded-for", "::ffff:203.0.113.7")],
    );
    assert_eq!(xff(1).extract(&mapped_xff), v4);
    let mapped_fwd = request(
        Some("10.0.0.1:1"),
        &[("forwarded", "for=\"[::ffff:203.0.113.7]:80\"")],
    );
    assert_eq!(fwd(1).extract(&mapped_fwd), v4);
    // A real IPv6 client stays IPv6.
    let v6 = request(Some("[2001:db8::7]:443"), &[]);
    assert_eq!(
        PeerIp::new().ipv6_prefix(128).extract(&v6),
        Some(ip("2001:db8::7"))
    );
}

#[test]
fn without_a_peer_address_the_header_is_read_at_the_same_position() {
    let none = request(None, &[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
    assert_eq!(PeerIp::new().extract(&none), None);
    assert_eq!(xff(1).extract(&none), Some(ip("203.0.113.7")));
    assert_eq!(xff(1).extract(&request(None, &[])), None);
}

#[cfg(feature = "axum")]
#[test]
fn peer_from_axum_connect_info() {
    let mut req = Request::new(());
    let addr: SocketAddr = "203.0.113.7:4000".parse().expect("address");
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    assert_eq!(PeerIp::new().extract(&req), Some(ip("203.0.113.7")));
}

/// Bytes a header value may hold, biased towards the ones the parsers care about.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\"".to_vec()),
        Just(b" ".to_vec()),
        Just(b"for=".to_vec()),
        Just(b"FoR =".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b":".to_vec()),
        Just(b"unknown".to_vec()),
        Just(b"_x".to_vec()),
        any::<u32>().prop_map(|v4| Ipv4Addr::from(v4).to_string().into_bytes()),
        any::<u128>().prop_map(|v6| Ipv6Addr::from(v6).to_string().into_bytes()),
        any::<u16>().prop_map(|port| port.to_string().into_bytes()),
        prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff].prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(fragment, 0..16).prop_map(|parts| parts.concat())
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v4| IpAddr::V4(Ipv4Addr::from(v4))),
        any::<u128>().prop_map(|v6| IpAddr::V6(Ipv6Addr::from(v6))),
    ]
}

fn header_kind() -> impl Strategy<Value = ForwardedHeader> {
    prop_oneof![
        Just(ForwardedHeader::XForwardedFor),
        Just(ForwardedHeader::Forwarded)
    ]
}

fn request_with(peer: IpAddr, header: ForwardedHeader, lines: &[Vec<u8>]) -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut().insert(SocketAddr::new(peer, 4000));
    for line in lines {
        let value = HeaderValue::from_bytes(line).expect("valid header bytes");
        req.headers_mut().append(header.name(), value);
    }
    req
}

/// How a proxy writes one hop, in one of the forms seen in the wild.
fn render_hop(ip: IpAddr, header: ForwardedHeader, style: u8) -> String {
    let node = match (ip, style % 3) {
        (IpAddr::V4(v4), 0) => v4.to_string(),
        (IpAddr::V4(v4), 1) => format!("{v4}:4711"),
        (IpAddr::V4(v4), _) => format!("{}", v4.to_ipv6_mapped()),
        (IpAddr::V6(v6), 0) => v6.to_string(),
        (IpAddr::V6(v6), _) => format!("[{v6}]:4711"),
    };
    match header {
        ForwardedHeader::XForwardedFor => node,
        ForwardedHeader::Forwarded if style.is_multiple_of(2) => {
            format!("for=\"{node}\";proto=https")
        }
        ForwardedHeader::Forwarded => format!("proto=https;For=\"{node}\""),
    }
}

proptest! {
    /// Arbitrary bytes never panic, and the key is exactly the model's hop
    /// `hops[len - 1 - n]` (clamped to 0), so always one of the rightmost `n + 1` hops.
    #[test]
    fn peer_ip_picks_a_trusted_position_on_any_bytes(
        lines in proptest::collection::vec(header_bytes(), 0..4),
        peer in any_ip(),
        n in 0usize..5,
        header in header_kind(),
    ) {
        let req = request_with(peer, header, &lines);
        let key = PeerIp::new()
            .trusted_proxies(n)
            .ipv6_prefix(128)
            .forwarded_header(header)
            .extract(&req);

        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        if n > 0 {
            for line in &lines {
                for entry in line.split(|&b| b == b',') {
                    let entry = entry.trim_ascii();
                    if !entry.is_empty() {
                        hops.push(header.parse_hop(entry));
                    }
                }
            }
        }
        hops.push(Some(peer.to_canonical()));
        let rightmost = &hops[hops.len().saturating_sub(n + 1)..];
        prop_assert!(key.is_none() || rightmost.contains(&key));
        prop_assert_eq!(key, hops[(hops.len() - 1).saturating_sub(n)]);
    }

    /// Whatever the client writes into the header, `n` appending proxies in front of us
    /// make the key the client's real address.
    #[test]
    fn spoofed_header_never_changes_the_client(
        spoof in proptest::option::of(header_bytes()),
        client in any_ip(),
        proxies in proptest::collection::vec((any_ip(), any::<u8>(), any::<bool>()), 1..5),
        header in header_kind(),
    ) {
        let mut lines: Vec<Vec<u8>> = spoof.into_iter().collect();
        // Proxy i appends whoever connected to it: the client, then proxy i - 1.
        let mut from = client;
        for &(proxy, style, new_line) in &proxies {
            let hop = render_hop(from, header, style);
            match lines.last_mut() {
                Some(line) if !new_line => line.extend_from_slice(format!(", {hop}").as_bytes()),
                _ => lines.push(hop.into_bytes()),
            }
            from = proxy;
        }
        let req = request_with(from, header, &lines);
        let key = PeerIp::new()
            .trusted_proxies(proxies.len())
            .ipv6_prefix(128)
            .forwarded_header(header)
            .extract(&req);
        prop_assert_eq!(key, Some(client.to_canonical()));
    }

    /// Every form a proxy writes a hop in parses back to the address.
    #[test]
    fn parse_node_round_trips_rendered_hops(client in any_ip(), style in any::<u8>()) {
        let hop = render_hop(client, ForwardedHeader::XForwardedFor, style);
        prop_assert_eq!(parse_node(hop.as_bytes()), Some(client.to_canonical()));
    }
}

fn net(text: &str) -> Cidr {
    text.parse().expect("test network")
}

fn trusting(networks: &[&str]) -> PeerIp {
    PeerIp::new()
        .ipv6_prefix(128)
        .trust(networks.iter().map(|text| net(text)))
}

/// #15.11: a client that connects directly keys on its own address, whatever forwarding
/// headers it writes, once proxies are trusted by address.
#[test]
fn a_direct_client_never_chooses_its_key_with_trusted_addresses() {
    let req = request(
        Some("198.51.100.9:4000"),
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.7"),
        ],
    );
    let lb = trusting(&["10.0.0.0/8"]);
    assert_eq!(lb.extract(&req), Some(ip("198.51.100.9")));
    let lb = lb.forwarded_header(ForwardedHeader::Forwarded);
    assert_eq!(lb.extract(&req), Some(ip("198.51.100.9")));
    // The same request through the load balancer reads the header.
    let via_lb = request(Some("10.0.0.1:4000"), &[("forwarded", "for=203.0.113.7")]);
    assert_eq!(lb.extract(&via_lb), Some(ip("203.0.113.7")));
}

/// #15.11: the chain is walked from the right over trusted hops only; the first untrusted
/// hop is the client, whatever the client wrote left of it.
#[test]
fn the_trusted_walk_stops_at_the_first_untrusted_hop() {
    let proxies = trusting(&["10.0.0.0/8", "172.16.0.0/12", "2001:db8:ffff::/48"]);
    let key = |peer: &str, chain: &str| {
        proxies.extract(&request(Some(peer), &[("x-forwarded-for", chain)]))
    };
    let peer = "10.0.0.1:1";
    assert_eq!(
        key(peer, "6.6.6.6, 203.0.113.7, 172.16.0.5, 10.0.0.2"),
        Some(ip("203.0.113.7"))
    );
    // A spoofed trusted-looking entry left of the client changes nothing.
    assert_eq!(
        key(peer, "10.9.9.9, 203.0.113.7, 172.16.0.5"),
        Some(ip("203.0.113.7"))
    );
    assert_eq!(
        key(peer, "[2001:db8::7]:1, 2001:db8:ffff::1"),
        Some(ip("2001:db8::7"))
    );
    // Every hop trusted: the leftmost.
    assert_eq!(key(peer, "10.0.0.3, 10.0.0.2"), Some(ip("10.0.0.3")));
    assert_eq!(key(peer, ""), Some(ip("10.0.0.1")));
    // A hop the walk must read does not parse: no key, never a hop further left or right.
    assert_eq!(key(peer, "203.0.113.7, garbage, 10.0.0.2"), None);
    // Garbage left of the client is never read.
    assert_eq!(key(peer, "garbage, 203.0.113.7"), Some(ip("203.0.113.7")));
    // A count bounds the walk.
    let bounded = proxies.clone().trusted_proxies(1);
    let req = request(Some(peer), &[("x-forwarded-for", "203.0.113.7, 10.0.0.2")]);
    assert_eq!(bounded.extract(&req), Some(ip("10.0.0.2")));
    // Lines are joined in order.
    let lines = request(
        Some(peer),
        &[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ],
    );
    assert_eq!(proxies.extract(&lines), Some(ip("203.0.113.7")));
    // No peer address: nothing to check the header against.
    let no_peer = request(None, &[("x-forwarded-for", "203.0.113.7")]);
    assert_eq!(proxies.extract(&no_peer), None);
}

#[test]
fn trust_adds_networks_and_clones_share_them() {
    let ip = PeerIp::new()
        .trust([net("10.0.0.0/8")])
        .trust([net("192.0.2.1")]);
    assert_eq!(ip.trusted(), [net("10.0.0.0/8"), net("192.0.2.1/32")]);
    assert_eq!(ip.clone(), ip);
    assert!(PeerIp::new().trust([]).trusted().is_empty());
    assert_eq!(PeerIp::new().trust([]), PeerIp::new());
}

#[test]
fn cidr_parses_networks_and_hosts_and_refuses_the_rest() {
    assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
    assert_eq!(net("10.1.2.3").to_string(), "10.1.2.3/32");
    assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
    assert_eq!(net("2001:db8::1").prefix_len(), 128);
    assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"));
    assert_eq!(net("::ffff:10.0.0.7"), net("10.0.0.7/32"));
    assert_eq!(net("0.0.0.0/0").addr(), ip("0.0.0.0"));
    for (text, err) in [
        ("10.0.0.0/33", CidrError::Prefix { v4: true }),
        ("2001:db8::/129", CidrError::Prefix { v4: false }),
        ("10.0.0.0/", CidrError::Prefix { v4: true }),
        ("10.0.0.0/+8", CidrError::Prefix { v4: true }),
        ("10.0.0.0/ 8", CidrError::Prefix { v4: true }),
        ("10.0.0/8", CidrError::Address),
        ("", CidrError::Address),
        ("fe80::1%eth0/64", CidrError::Address),
        (" 10.0.0.0/8", CidrError::Address),
    ] {
        assert_eq!(text.parse::<Cidr>(), Err(err), "{text:?}");
    }
    assert!(
        CidrError::Prefix { v4: true }
            .to_string()
            .contains("0 to 32")
    );
}

#[test]
fn cidr_contains() {
    let private = net("10.0.0.0/8");
    assert!(private.contains(ip("10.255.0.1")));
    assert!(private.contains(ip("::ffff:10.0.0.1")));
    assert!(!private.contains(ip("11.0.0.0")));
    assert!(!private.contains(ip("2001:db8::1")));
    let doc = net("2001:db8::/32");
    assert!(doc.contains(ip("2001:db8:1::1")));
    assert!(!doc.contains(ip("2001:db9::1")));
    assert!(!doc.contains(ip("10.0.0.1")));
    assert!(net("::/0").contains(ip("10.0.0.1")));
    assert!(net("0.0.0.0/0").contains(ip("203.0.113.7")));
    assert!(net("203.0.113.7").contains(ip("203.0.113.7")));
    assert!(!net("203.0.113.7").contains(ip("203.0.113.8")));
}

/// #15.12: IPv6 clients are keyed by their /64 by default, settable from /32 to /128;
/// IPv4 and IPv4-mapped clients by their full IPv4 address.
#[test]
fn ipv6_clients_are_keyed_by_a_prefix() {
    let key = |extractor: &PeerIp, peer: &str| extractor.extract(&request(Some(peer), &[]));
    let default = PeerIp::new();
    let a = key(&default, "[2001:db8:1:2:aaaa::1]:1");
    assert_eq!(a, Some(ip("2001:db8:1:2::")));
    assert_eq!(key(&default, "[2001:db8:1:2:ffff:1:2:3]:1"), a);
    assert_ne!(key(&default, "[2001:db8:1:3::1]:1"), a);
    let site = PeerIp::new().ipv6_prefix(48);
    assert_eq!(key(&site, "[2001:db8:1:2::1]:1"), Some(ip("2001:db8:1::")));
    let full = PeerIp::new().ipv6_prefix(128);
    assert_eq!(key(&full, "[2001:db8::1]:1"), Some(ip("2001:db8::1")));
    // Clamped to 32..=128.
    assert_eq!(PeerIp::new().ipv6_prefix(0), PeerIp::new().ipv6_prefix(32));
    assert_eq!(
        key(&PeerIp::new().ipv6_prefix(8), "[2001:db8:1::1]:1"),
        Some(ip("2001:db8::"))
    );
    assert_eq!(PeerIp::new().ipv6_prefix(200), full);
    // IPv4 (and mapped IPv4) keep every bit.
    assert_eq!(key(&site, "203.0.113.7:1"), Some(ip("203.0.113.7")));
    assert_eq!(
        key(&default, "[::ffff:203.0.113.7]:1"),
        Some(ip("203.0.113.7"))
    );
    // A forwarded IPv6 client too.
    let req = request(
        Some("10.0.0.1:1"),
        &[("x-forwarded-for", "2001:db8:1:2:3:4:5:6")],
    );
    let behind = PeerIp::new().trust([net("10.0.0.0/8")]);
    assert_eq!(behind.extract(&req), Some(ip("2001:db8:1:2::")));
}

/// Collects the messages of `warn` events.
#[derive(Clone, Default)]
struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().expect("lock").push(message.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// #15.13: a request without a peer address is logged once at warn level, with the fix,
/// not once per request; a request with one logs nothing.
#[test]
fn a_missing_peer_address_warns_once_with_the_fix() {
    let warnings = Warnings::default();
    let warned = AtomicBool::new(false);
    let headers = HeaderMap::new();
    let peer = Some(ip("203.0.113.7"));
    tracing::subscriber::with_default(warnings.clone(), || {
        let plain = PeerIp::new();
        assert_eq!(plain.walk().key(peer, &headers, &warned), peer);
        for extractor in [plain, xff(1), trusting(&["10.0.0.0/8"])] {
            for _ in 0..3 {
                assert_eq!(extractor.walk().key(None, &headers, &warned), None);
            }
        }
    });
    let logged = warnings.0.lock().expect("lock");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].contains("into_make_service_with_connect_info"),
        "{logged:?}"
    );
}

/// #15.13: axum's `MockConnectInfo` is read as the peer address, and a real `ConnectInfo`
/// wins over it (as in axum's own extractor).
#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_mock_connect_info_is_the_peer_address() {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::routing::get;
    use tower::ServiceExt;

    let mock: SocketAddr = "203.0.113.7:4000".parse().expect("address");
    let app = Router::new()
        .route(
            "/",
            get(|req: axum::extract::Request| async move {
                format!("{:?}", PeerIp::new().extract(&req))
            }),
        )
        .layer(MockConnectInfo(mock));
    let res = app
        .oneshot(Request::new(Body::empty()))
        .await
        .expect("infallible");
    let body = axum::body::to_bytes(res.into_body(), 1024)
        .await
        .expect("body");
    assert_eq!(body, "Some(203.0.113.7)");

    let mut req = Request::new(());
    req.extensions_mut().insert(MockConnectInfo(mock));
    let real: SocketAddr = "198.51.100.9:1".parse().expect("address");
    req.extensions_mut().insert(ConnectInfo(real));
    assert_eq!(PeerIp::new().extract(&req), Some(ip("198.51.100.9")));
}

/// A small pool of addresses, so that random chains and trusted sets overlap.
fn pool() -> impl Strategy<Value = Vec<IpAddr>> {
    proptest::collection::vec(any_ip(), 6)
}

proptest! {
    /// #15.11: whatever the client writes, behind any number of trusted proxies (named by
    /// address), the key is the address the first proxy saw: the client's own.
    #[test]
    fn trusted_walk_finds_the_client_behind_any_spoof(
        spoof in proptest::option::of(header_bytes()),
        client in any_ip(),
        proxies in proptest::collection::vec((any_ip(), any::<u8>(), any::<bool>()), 0..5),
        header in header_kind(),
    ) {
        let trusted: Vec<Cidr> = proxies.iter().map(|&(proxy, _, _)| Cidr::host(proxy)).collect();
        prop_assume!(!trusted.iter().any(|net| net.contains(client)));
        let mut lines: Vec<Vec<u8>> = spoof.into_iter().collect();
        let mut from = client;
        for &(proxy, style, new_line) in &proxies {
            let hop = render_hop(from, header, style);
            match lines.last_mut() {
                Some(line) if !new_line => line.extend_from_slice(format!(", {hop}").as_bytes()),
                _ => lines.push(hop.into_bytes()),
            }
            from = proxy;
        }
        let req = request_with(from, header, &lines);
        let key = PeerIp::new()
            .trust(trusted)
            .ipv6_prefix(128)
            .forwarded_header(header)
            .extract(&req);
        prop_assert_eq!(key, Some(client.to_canonical()));
    }

    /// #15.11: over random chains and trusted sets, the key is exactly the first untrusted
    /// hop from the right (or the leftmost when all are trusted), and never an address left
    /// of it: nothing a client could have written.
    #[test]
    fn trusted_walk_never_reads_left_of_the_first_untrusted_hop(
        pool in pool(),
        trusted_mask in any::<u8>(),
        network in proptest::option::of((any_ip(), any::<u8>())),
        chain in proptest::collection::vec((0usize..6, any::<u8>()), 0..6),
        garbage in proptest::collection::vec(header_bytes(), 0..2),
        peer in 0usize..6,
        header in header_kind(),
        hops in 0usize..4,
    ) {
        let mut trusted: Vec<Cidr> = pool
            .iter()
            .enumerate()
            .filter(|&(i, _)| trusted_mask & (1 << i) != 0)
            .map(|(_, &ip)| Cidr::host(ip))
            .collect();
        if let Some((addr, prefix)) = network {
            let max = if addr.is_ipv4() { 33 } else { 129 };
            trusted.push(Cidr::new(addr, prefix % max).expect("prefix in range"));
        }
        // An empty set is no address trust at all (the hop count alone, if any).
        prop_assume!(!trusted.is_empty());
        // Client-written garbage first, then rendered hops.
        let mut entries: Vec<Vec<u8>> = garbage;
        entries.extend(chain.iter().map(|&(i, style)| render_hop(pool[i], header, style).into_bytes()));
        let line = entries.join(&b", "[..]);
        let peer = pool[peer];
        let req = request_with(peer, header, std::slice::from_ref(&line));
        let extractor = PeerIp::new()
            .trust(trusted.clone())
            .trusted_proxies(hops)
            .ipv6_prefix(128)
            .forwarded_header(header);
        let key = extractor.extract(&req);

        // The model: hops from the right, peer first.
        let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
        let mut right_to_left: Vec<Option<IpAddr>> = vec![Some(peer.to_canonical())];
        for entry in line.rsplit(|&b| b == b',') {
            let entry = entry.trim_ascii();
            if !entry.is_empty() {
                right_to_left.push(header.parse_hop(entry));
            }
        }
        let limit = if hops == 0 { usize::MAX } else { hops };
        let stop = right_to_left
            .iter()
            .position(|hop| hop.is_none_or(|ip| !is_trusted(ip)))
            .unwrap_or(right_to_left.len() - 1)
            .min(limit)
            .min(right_to_left.len() - 1);
        let expected = right_to_left[stop];
        prop_assert_eq!(key, expected);
        if let Some(key) = key {
            // Never from a hop left of the first untrusted one.
            prop_assert!(right_to_left[..=stop].contains(&Some(key)));
        }
        // A peer that is not trusted is the key, whatever the header says.
        if !is_trusted(peer) {
            prop_assert_eq!(key, Some(peer.to_canonical()));
        }
    }

    /// `Cidr::contains` is a comparison of the first `prefix` bits.
    #[test]
    fn cidr_contains_compares_prefix_bits(net in any::<u32>(), ip in any::<u32>(), prefix in 0u8..=32) {
        let cidr = Cidr::new(IpAddr::V4(Ipv4Addr::from(net)), prefix).expect("prefix");
        let shift = 32 - u32::from(prefix);
        let same = u64::from(net) >> shift == u64::from(ip) >> shift;
        prop_assert_eq!(cidr.contains(IpAddr::V4(Ipv4Addr::from(ip))), same);
    }

    /// Any text parses to a network or an error, never a panic; what parses prints back.
    #[test]
    fn cidr_from_str_never_panics(text in "[0-9a-f:./%]{0,48}") {
        if let Ok(cidr) = text.parse::<Cidr>() {
            prop_assert_eq!(cidr.to_string().parse::<Cidr>(), Ok(cidr));
        }
    }
}
