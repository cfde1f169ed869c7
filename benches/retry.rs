//! Placeholder: the retry benchmarks are being written.

fn main() {}
