//! Golden files: each file format as the fleet writes it, pinned. A change that writes other
//! bytes, or cannot read a file an earlier version wrote, fails here: it is a change of format,
//! made with a reader for the old one, not an edit of the golden file. `FORMATS_BLESS=1` writes
//! the golden files of a new format once, to be reviewed and committed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::{DateTime, Utc};
use contract::{
    Action, DecisionOutcome, DecisionRecord, FEATURE_COUNT, FeatureVector, Features, Vote,
    VoteSummary, feature_index,
};
use formats::experiments::ExperimentRecord;
use formats::{dev_csv, evaluation, experiments, journal, predictions};
use std::path::PathBuf;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// The golden file `name` holds exactly `written`.
fn assert_golden(name: &str, written: &[u8]) {
    let path = path(name);
    if std::env::var_os("FORMATS_BLESS").is_some() {
        std::fs::write(&path, written).unwrap();
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        String::from_utf8_lossy(written),
        String::from_utf8_lossy(&golden),
        "{name}: the writer's bytes changed"
    );
}

/// Rows written with `header` through the csv crate, as every writer of the fleet does.
fn csv_bytes(header: &[&str], rows: &[Vec<String>]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).unwrap();
    for row in rows {
        w.write_record(row).unwrap();
    }
    w.into_inner().unwrap()
}

fn vector(service: &str, window_id: u64, rate: f64, replicas: f64) -> FeatureVector {
    let mut values = [f64::NAN; FEATURE_COUNT];
    let mut set = |name: &str, v: f64| values[feature_index(name).unwrap()] = v;
    set("request_rate", rate);
    set("request_rate_per_replica", rate / replicas);
    set("error_ratio", 0.004);
    set("replicas", replicas);
    set("latency_p50", 0.061);
    set("latency_p95", 0.243);
    set("latency_p99", 0.481);
    set("rate_max_recent", 1.12);
    set("capacity_per_replica", 120.0);
    set("capacity_utilization", 0.7604);
    let end = DateTime::from_timestamp(window_id as i64, 0).unwrap();
    FeatureVector {
        service: service.into(),
        window_id,
        window_start: end - chrono::Duration::seconds(10),
        window_end: end,
        poll_interval_sec: 10,
        produced_at: end + chrono::Duration::milliseconds(412),
        features: Features::from_values(&values).unwrap(),
        consumer_group: None,
    }
}

fn vectors() -> Vec<FeatureVector> {
    vec![
        vector("orders", 1_775_305_800, 182.5, 2.0),
        vector("carts", 1_775_305_810, 40.0, 1.0),
    ]
}

#[test]
fn the_development_csv() {
    let rows: Vec<Vec<String>> = vectors().iter().map(dev_csv::row).collect();
    assert_golden(
        "sockshop_metrics.csv",
        &csv_bytes(&dev_csv::header(), &rows),
    );
    assert_eq!(
        dev_csv::read(&path("sockshop_metrics.csv")).unwrap(),
        vectors()
    );
}

#[test]
fn a_development_csv_of_the_first_version_still_reads() {
    let read = dev_csv::read(&path("sockshop_metrics_v1.csv")).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read[0].service, "demo1");
    assert_eq!(read[0].features.request_rate, 23.68565);
    assert_eq!(
        read[0].features.capacity_per_replica, None,
        "a later feature"
    );
}

fn experiment(name: &str, replicas: Option<u32>) -> ExperimentRecord {
    ExperimentRecord {
        run_id: format!("{name}-20260404T120000Z"),
        name: name.into(),
        service: "orders".into(),
        pattern: "ramp".into(),
        description: "ramp 10 -> 200 rps, then \"down\"".into(),
        scenario: "url".into(),
        replicas,
        started_at: at("2026-04-04T12:00:00.123456789Z"),
        ended_at: at("2026-04-04T12:30:00Z"),
        sent: 123_456,
        errors: 7,
        dropped: 0,
        p95_ms: 212.5,
    }
}

#[test]
fn the_experiment_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("output/experiments.csv");
    let records = [experiment("ramp-r2", Some(2)), experiment("ramp", None)];
    for r in &records {
        experiments::append(&log, r).unwrap();
    }
    assert_golden("experiments.csv", &std::fs::read(&log).unwrap());
    assert_eq!(
        experiments::read(&path("experiments.csv")).unwrap(),
        records
    );
}

#[test]
fn the_predictions_csv() {
    let v = &vectors()[0];
    let vote = Vote {
        service: v.service.clone(),
        window_id: v.window_id,
        model: "xgboost".into(),
        model_version: "xgboost-3f2a9c1e-20260404".into(),
        action: Action::ScaleUp,
        confidence: 0.87,
        violation_probability: 0.87,
        current_replicas: 2,
        safe_replicas: 3,
        inference_us: 4.2,
        features_produced_at: v.produced_at,
        voted_at: v.produced_at + chrono::Duration::milliseconds(19),
    };
    let row = predictions::row(&vote, 231.25, v);
    assert_golden(
        "predictions_xgboost.csv",
        &csv_bytes(&predictions::header(), std::slice::from_ref(&row)),
    );
    let mut reader = csv::Reader::from_path(path("predictions_xgboost.csv")).unwrap();
    let first = reader.records().next().unwrap().unwrap();
    let cells: Vec<&str> = first.iter().collect();
    assert_eq!(&predictions::parse_vector(&cells).unwrap(), v);
}

#[test]
fn the_decision_journal() {
    let summary = |model: &str, action, confidence, safe_replicas| VoteSummary {
        model: model.into(),
        action,
        confidence,
        safe_replicas,
    };
    let applied = DecisionRecord {
        decision_id: 41,
        service: "orders".into(),
        window_id: 1_775_305_800,
        strategy: "majority".into(),
        votes: vec![
            summary("xgboost", Action::ScaleUp, 0.87, 3),
            summary("random_forest", Action::ScaleUp, 0.8125, 3),
            summary("logistic_regression", Action::NoAction, 0.55, 2),
        ],
        action: Action::ScaleUp,
        average_confidence: 0.7442,
        current_replicas: 2,
        target_replicas: 3,
        outcome: DecisionOutcome::Applied,
        reason: "majority: 2 of 3 for SCALE_UP, sized for 3".into(),
        features_produced_at: at("2026-04-04T12:30:00.412Z"),
        decided_at: at("2026-04-04T12:30:00.457Z"),
    };
    let held = DecisionRecord {
        decision_id: 42,
        votes: Vec::new(),
        action: Action::ScaleDown,
        average_confidence: 0.0,
        target_replicas: 2,
        outcome: DecisionOutcome::Held,
        reason: "cooldown, \"scale-down\": 20s".into(),
        ..applied.clone()
    };
    let records = [applied, held];
    let rows: Vec<Vec<String>> = records.iter().map(journal::row).collect();
    assert_golden("decisions.csv", &csv_bytes(&journal::COLUMNS, &rows));
    let mut reader = csv::Reader::from_path(path("decisions.csv")).unwrap();
    let read: Vec<DecisionRecord> = reader
        .records()
        .map(|r| journal::parse(&r.unwrap()).unwrap())
        .collect();
    assert_eq!(read, records);
}

#[test]
fn the_trainers_evaluation_report() {
    let report = std::fs::read(path("evaluation.json")).unwrap();
    let weights = evaluation::held_out_f1(&report).unwrap();
    let models: Vec<&str> = weights.keys().map(String::as_str).collect();
    assert_eq!(
        models,
        ["logistic_regression", "random_forest", "xgboost"],
        "every model of the report has a weight"
    );
    assert!(weights.values().all(|f1| (0.0..=1.0).contains(f1)));
}
