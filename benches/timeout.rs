//! Placeholder: the timeout benchmarks are being written.

fn main() {}
