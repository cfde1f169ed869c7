//! Placeholder: the bulkhead benchmarks are being written.

fn main() {}
