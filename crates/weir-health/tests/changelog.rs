//! The changelog keeps Keep a Changelog's shape: `## [Unreleased]` on top, and within each
//! release every kind of change (`### Added`, `### Changed`, ...) under one heading.

use std::collections::HashSet;

#[test]
fn each_release_has_each_heading_once() {
    let changelog = include_str!("../CHANGELOG.md");
    let releases: Vec<&str> = changelog
        .lines()
        .filter(|line| line.starts_with("## "))
        .collect();
    assert_eq!(releases.first(), Some(&"## [Unreleased]"));
    let mut release = "";
    let mut seen = HashSet::new();
    for line in changelog.lines() {
        if line.starts_with("## ") {
            release = line;
            seen.clear();
        } else if line.starts_with("### ") {
            assert!(seen.insert(line), "{release} has `{line}` twice");
        }
    }
}
