//! The snapshot as JSON, written by hand: the schema is small and fixed (the README documents
//! it), so a serializer would be a dependency for a few dozen lines.

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use weir_core::inspect::{Inspect, Registry, Snapshot};

/// The whole document: `{"actions_enabled": bool, "layers": [...]}`, every registered layer in
/// registration order.
pub(crate) fn document(registry: &Registry, actions_enabled: bool) -> String {
    let handles = registry.handles();
    let mut out = String::with_capacity(128 + 256 * handles.len());
    out.push_str("{\"actions_enabled\":");
    out.push_str(if actions_enabled { "true" } else { "false" });
    out.push_str(",\"layers\":[");
    for (i, handle) in handles.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        layer(&mut out, handle.as_ref(), &handle.snapshot());
    }
    out.push_str("]}");
    out
}

/// One layer: pattern, layer, state, gauges, counters, recent, actions.
fn layer(out: &mut String, handle: &dyn Inspect, snapshot: &Snapshot) {
    out.push_str("{\"pattern\":");
    string(out, snapshot.pattern);
    out.push_str(",\"layer\":");
    string(out, snapshot.layer.as_str());
    out.push_str(",\"state\":");
    match snapshot.state {
        Some(state) => {
            out.push_str("{\"name\":");
            string(out, state.name);
            let _ = write!(out, ",\"value\":{}}}", state.value);
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"gauges\":{");
    for (i, (name, value)) in snapshot.gauges.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, name);
        out.push(':');
        number(out, *value);
    }
    out.push_str("},\"counters\":{");
    for (i, (name, value)) in snapshot.counters.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, name);
        let _ = write!(out, ":{value}");
    }
    out.push_str("},\"recent\":[");
    recent(out, snapshot);
    out.push_str("],\"actions\":[");
    for (i, action) in handle.actions().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, action);
    }
    out.push_str("]}");
}

/// The layer's recent transitions, oldest first.
fn recent(out: &mut String, snapshot: &Snapshot) {
    for (i, transition) in snapshot.recent.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Before 1970 (a clock set wrong) reads as 0; no clock reaches `u64::MAX` ms.
        let at_ms = transition.at.duration_since(UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        let _ = write!(out, "{{\"at_ms\":{at_ms},\"from\":");
        string(out, transition.from);
        out.push_str(",\"to\":");
        string(out, transition.to);
        out.push_str(",\"reason\":");
        match transition.reason {
            Some(reason) => string(out, reason),
            None => out.push_str("null"),
        }
        out.push('}');
    }
}

/// A finite number as JSON; NaN and the infinities, which JSON cannot say, as `null`.
fn number(out: &mut String, value: f64) {
    if value.is_finite() {
        // `Display` of an `f64` never uses an exponent and prints integers without a fraction:
        // both valid JSON.
        let _ = write!(out, "{value}");
    } else {
        out.push_str("null");
    }
}

/// A JSON string, escaped: quotes, backslashes, control characters, and `<`, `>` and `&` (so the
/// text is inert even if someone pastes it into HTML).
pub(crate) fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}<e>&");
        assert_eq!(out, r#""a\"b\\c\nd\u0001\u003ce\u003e\u0026""#);
    }

    #[test]
    fn numbers_that_json_cannot_say_are_null() {
        let mut out = String::new();
        for v in [3.0, 0.25, -1.5, f64::NAN, f64::INFINITY, 1e21] {
            number(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "3 0.25 -1.5 null null 1000000000000000000000 ");
    }
}
