//! `X-Forwarded-For` / `Forwarded` walking ([`PeerIp`] with trusted proxies), structure-aware.
//!
//! The input is a deployment: a client `C`, a chain of reverse proxies `P_k .. P_1` (`P_1` is
//! the peer of this server's connection), a trusted set, and header lines the client wrote
//! itself (arbitrary bytes). Each proxy appends the address of its own peer (the first one
//! appends `C`), in one of the address forms the headers allow, to the last line or as a new
//! line. So the request reaches us from `P_1` with the lines `client junk.., C, P_k, .., P_2`.
//!
//! Property (from `PeerIp`'s "Trusted proxies" documentation): whatever the client wrote,
//! - trusted by address (every proxy trusted, `C` not), the key is `C`: the walk stops at the
//!   first untrusted hop from the right, and never reads an entry left of it; with a hop count
//!   `n` as well, it is the hop `min(n, k)` places from the right (`C` once `n >= k`);
//! - trusted by count `n <= k` alone, the key is the hop `n` places from the right;
//! - a client that connects directly (untrusted peer) is keyed by its own address, whatever
//!   header it sends;
//!
//! and the key is that address after the IPv6 prefix is applied.
#![no_main]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use arbitrary::Arbitrary;
use http::{HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use weir_core::KeyExtractor;
use weir_core::key::{Cidr, ForwardedHeader, PeerIp};

#[derive(Arbitrary, Debug)]
struct Input {
    forwarded: bool,
    /// Trusted networks besides the proxies' own addresses: address and prefix.
    networks: Vec<(IpAddr, u8)>,
    client: Hop,
    /// `P_k .. P_1`; the last is the peer. At least one.
    proxies: Vec<Hop>,
    /// Header lines the client sent (invalid header bytes are dropped).
    client_lines: Vec<Vec<u8>>,
    /// A hop count to set besides the trusted set (0: none).
    count: u8,
    /// Trust by count alone (`PeerIp::trusted_proxies`), no addresses.
    by_count_only: bool,
    /// The client connects directly, with its lines only.
    direct: bool,
    ipv6_prefix: u8,
}

#[derive(Arbitrary, Debug)]
struct Hop {
    addr: IpAddr,
    port: u16,
    form: Form,
    /// Appended as a new header line rather than to the last one.
    new_line: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Form {
    Bare,
    WithPort,
    Bracketed,
    Quoted,
    QuotedWithPort,
    /// `Forwarded` only: extra parameters around `for=`, `For=` spelled differently.
    Params,
}

fuzz_target!(|input: Input| {
    let Some(peer) = input.proxies.last() else {
        return;
    };
    let header = if input.forwarded {
        ForwardedHeader::Forwarded
    } else {
        ForwardedHeader::XForwardedFor
    };
    let mut trusted: Vec<Cidr> = input
        .networks
        .iter()
        .filter_map(|&(addr, prefix)| Cidr::new(addr, prefix).ok())
        .collect();
    trusted.extend(input.proxies.iter().map(|hop| Cidr::host(hop.addr)));
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let k = input.proxies.len();

    // The client's own lines, then what each proxy appends.
    let mut lines: Vec<Vec<u8>> = input
        .client_lines
        .iter()
        .map(|line| {
            line.iter()
                .copied()
                .filter(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
                .collect()
        })
        .collect();
    let name = if input.forwarded {
        HeaderName::from_static("forwarded")
    } else {
        HeaderName::from_static("x-forwarded-for")
    };
    let (peer_addr, expected) = if input.direct {
        // The client is the peer; nobody appended anything.
        (input.client.addr, input.client.addr)
    } else {
        let mut appended_by = std::iter::once(&input.client).chain(&input.proxies);
        // chain_from_right[i]: the hop i places from the right (0: the peer).
        let mut chain: Vec<IpAddr> = Vec::with_capacity(k + 1);
        for proxy in &input.proxies[..] {
            let hop = appended_by.next().expect("one more hop than proxies");
            chain.push(hop.addr);
            let entry = render(hop, input.forwarded);
            match lines.last_mut() {
                Some(line) if !proxy.new_line => {
                    line.extend_from_slice(b", ");
                    line.extend_from_slice(&entry);
                }
                _ => lines.push(entry),
            }
        }
        chain.push(peer.addr);
        chain.reverse(); // now [P_1, P_2, .., P_k, C]
        let expected = if input.by_count_only {
            let n = usize::from(input.count).clamp(1, k);
            chain[n]
        } else {
            if is_trusted(input.client.addr) {
                return; // a trusted client is walked past, to what it wrote: not this property
            }
            match usize::from(input.count) {
                0 => chain[k],
                n => chain[n.min(k)],
            }
        };
        (peer.addr, expected)
    };

    let mut ip = PeerIp::new()
        .forwarded_header(header)
        .ipv6_prefix(input.ipv6_prefix);
    if input.by_count_only && !input.direct {
        ip = ip.trusted_proxies(usize::from(input.count).clamp(1, k));
    } else {
        ip = ip
            .trust(trusted.iter().copied())
            .trusted_proxies(usize::from(input.count));
        if input.direct && is_trusted(input.client.addr) {
            return;
        }
    }

    let mut req = Request::new(());
    for line in lines {
        let value = HeaderValue::from_bytes(&line).expect("filtered to valid header bytes");
        req.headers_mut().append(name.clone(), value);
    }
    req.extensions_mut()
        .insert(SocketAddr::new(peer_addr, 4711));

    let key = ip.extract(&req);
    assert_eq!(key, Some(keyed(expected, input.ipv6_prefix)), "{req:?}");
});

/// A hop as a proxy writes it.
fn render(hop: &Hop, forwarded: bool) -> Vec<u8> {
    let port = hop.port;
    let node = match (hop.addr, hop.form) {
        (IpAddr::V4(v4), Form::Bare | Form::Bracketed | Form::Params) => v4.to_string(),
        (IpAddr::V4(v4), Form::WithPort) => format!("{v4}:{port}"),
        (IpAddr::V4(v4), Form::Quoted) => format!("\"{v4}\""),
        (IpAddr::V4(v4), Form::QuotedWithPort) => format!("\"{v4}:{port}\""),
        // RFC 7239 quotes every IPv6 node; X-Forwarded-For writes it bare or bracketed.
        (IpAddr::V6(v6), Form::Bare) if !forwarded => v6.to_string(),
        (IpAddr::V6(v6), Form::Bracketed) if !forwarded => format!("[{v6}]"),
        (IpAddr::V6(v6), Form::WithPort) if !forwarded => format!("[{v6}]:{port}"),
        (IpAddr::V6(v6), Form::Bare | Form::Bracketed | Form::Params | Form::Quoted) => {
            format!("\"[{v6}]\"")
        }
        (IpAddr::V6(v6), Form::WithPort | Form::QuotedWithPort) => format!("\"[{v6}]:{port}\""),
    };
    if !forwarded {
        return node.into_bytes();
    }
    match hop.form {
        Form::Params => format!("proto=https;For={node};by=_hidden").into_bytes(),
        _ => format!("for={node}").into_bytes(),
    }
}

/// The key `PeerIp` gives for `ip`: IPv4-mapped IPv6 as IPv4, IPv6 cut to its prefix.
fn keyed(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u32::from(prefix.clamp(32, 128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}
