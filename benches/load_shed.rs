//! Placeholder: the load_shed benchmarks are being written.

fn main() {}
