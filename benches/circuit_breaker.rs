//! Placeholder: the circuit_breaker benchmarks are being written.

fn main() {}
