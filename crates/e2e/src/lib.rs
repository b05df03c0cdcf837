//! Deployment tests live in `tests/`: the compose files and the Grafana provisioning checked on
//! every run, the end-to-end run of the whole system on the Docker engine
//! (`cargo test -p e2e --test end_to_end -- --ignored`, which `scripts/test.sh` runs), and the
//! live trace replay (`scripts/live-replay.sh`). This library holds what they share: the
//! repository's location, the dashboards' queries and the compose [`project`].

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

pub mod project;

pub use project::Project;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Metric names a PromQL expression selects: what is left of its identifiers once label
/// matchers, strings, ranges and grouping lists are removed, minus functions and keywords.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 9] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
    ];
    let mut rest = expr.to_owned();
    for pattern in [
        r#""[^"]*""#,
        r"\{[^}]*\}",
        r"\[[^\]]*\]",
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
    ] {
        rest = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&rest, " ")
            .into_owned();
    }
    let identifier = regex::Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?").unwrap();
    identifier
        .find_iter(&rest)
        .map(|m| m.as_str())
        .filter(|m| !m.ends_with('('))
        .filter(|m| !KEYWORDS.contains(m) && !m.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

/// Every PromQL expression of every dashboard, with its dashboard and panel.
/// Every dashboard query.
pub fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    let dir = repo().join("grafana/dashboards");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let dashboard: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                queries.push((
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    panel["title"].as_str().unwrap_or("").to_owned(),
                    target["expr"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }
    queries
}
