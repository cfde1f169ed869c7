//! Placeholder: the rate_limit benchmarks are being written.

fn main() {}
