//! Golden files: the JSON users see on the topics, pinned. A change to a message type that
//! changes its wire form fails here and needs a new version, not an edit of the golden file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::{DateTime, Utc};
use contract::{
    Action, Anomaly, AnomalyKind, ConsumerGroup, DecisionOutcome, DecisionRecord, DecodeError,
    FeatureVector, Features, Message, Vote, VoteSummary,
};
use serde_json::Value;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decoding the golden file gives `expected`, and encoding `expected` gives the golden JSON.
fn assert_golden<M: Message + PartialEq + std::fmt::Debug>(name: &str, expected: &M) {
    let bytes = golden(name);
    let decoded = M::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&decoded, expected, "{name} decodes to the expected value");
    let encoded: Value = serde_json::from_slice(&expected.encode()).unwrap();
    let file: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(encoded, file, "{name}: encoding changed the wire form");
}

fn feature_vector() -> FeatureVector {
    FeatureVector {
        service: "orders".into(),
        window_id: 1_775_305_800,
        window_start: at("2026-04-04T12:29:30Z"),
        window_end: at("2026-04-04T12:30:00Z"),
        poll_interval_sec: 30,
        produced_at: at("2026-04-04T12:30:00.412Z"),
        features: Features {
            request_rate: 182.5,
            request_rate_per_replica: 91.25,
            error_ratio: 0.004,
            replicas: 2.0,
            latency_p50: Some(0.061),
            latency_p95: Some(0.243),
            latency_p99: Some(0.481),
            cpu_per_replica: Some(0.31),
            memory_per_replica: Some(52_428_800.0),
            request_rate_trend: Some(0.18),
            latency_p95_trend: Some(0.42),
            cpu_per_replica_trend: None,
            rate_max_recent: None,
            rate_min_recent: None,
            rate_mean_long: None,
            rate_max_long: None,
            rate_cv_long: None,
            rate_trend_long: None,
            day_ago_ratio: None,
            day_ago_rise: None,
            week_ago_ratio: None,
            week_ago_rise: None,
            capacity_per_replica: None,
            capacity_utilization: None,
        },
        consumer_group: None,
    }
}

/// Version 2: the history features and the capacity estimate.
fn feature_vector_v2() -> FeatureVector {
    let mut v = feature_vector();
    v.features = Features {
        rate_max_recent: Some(1.12),
        rate_min_recent: Some(0.91),
        rate_mean_long: Some(0.97),
        rate_max_long: Some(1.3),
        rate_cv_long: Some(0.08),
        rate_trend_long: Some(0.05),
        day_ago_ratio: Some(0.88),
        day_ago_rise: Some(1.21),
        week_ago_ratio: None,
        week_ago_rise: None,
        capacity_per_replica: Some(120.0),
        capacity_utilization: Some(0.7604),
        ..v.features
    };
    v
}

/// Version 3: a consumer group's vector (production rate, members, one consumer's capacity).
fn feature_vector_v3() -> FeatureVector {
    let mut v = feature_vector_v2();
    v.service = "shipping-workers".into();
    v.features = Features {
        request_rate: 1_400.0,
        request_rate_per_replica: 175.0,
        error_ratio: 0.0,
        replicas: 8.0,
        latency_p50: None,
        latency_p95: None,
        latency_p99: None,
        cpu_per_replica: None,
        memory_per_replica: None,
        latency_p95_trend: None,
        capacity_per_replica: Some(160.0),
        capacity_utilization: Some(1.09375),
        ..v.features
    };
    v.consumer_group = Some(ConsumerGroup {
        group: "shipping".into(),
        topic: "orders.v1".into(),
        partitions: 40,
        lag_messages: 21_000.0,
        lag_max_partition: 900.0,
        consumption_rate: 1_280.0,
        lag_target_sec: 60.0,
    });
    v
}

fn vote() -> Vote {
    Vote {
        service: "orders".into(),
        window_id: 1_775_305_800,
        model: "xgboost".into(),
        model_version: "xgboost-3f2a9c1e-20260404".into(),
        action: Action::ScaleUp,
        confidence: 0.87,
        violation_probability: 0.87,
        current_replicas: 2,
        safe_replicas: 3,
        inference_us: 4.2,
        features_produced_at: at("2026-04-04T12:30:00.412Z"),
        voted_at: at("2026-04-04T12:30:00.431Z"),
    }
}

#[test]
fn feature_vector_v1_still_decodes() {
    let decoded = FeatureVector::decode(&golden("feature_vector_v1.json")).unwrap();
    assert_eq!(decoded, feature_vector(), "the v2 fields read as missing");
}

#[test]
fn feature_vector_v2_golden() {
    assert_golden("feature_vector_v2.json", &feature_vector_v2());
}

#[test]
fn feature_vector_v3_golden() {
    let v = feature_vector_v3();
    assert_golden("feature_vector_v3.json", &v);
    let group = v.consumer_group.as_ref().unwrap();
    assert_eq!(group.lag_seconds(v.features.request_rate), 15.0);
    // An HTTP service's vector stays at version 2; version 3 needs the group.
    let http: Value = serde_json::from_slice(&feature_vector_v2().encode()).unwrap();
    assert_eq!(http["version"], "2");
    let mut bytes: Value = serde_json::from_slice(&golden("feature_vector_v3.json")).unwrap();
    bytes.as_object_mut().unwrap().remove("consumer_group");
    let err = FeatureVector::decode(&serde_json::to_vec(&bytes).unwrap()).unwrap_err();
    assert!(err.to_string().contains("needs consumer_group"), "{err}");
    let mut more_than_the_bound = v.clone();
    more_than_the_bound
        .consumer_group
        .as_mut()
        .unwrap()
        .partitions = 1_000_000;
    let err = FeatureVector::decode(&more_than_the_bound.encode()).unwrap_err();
    assert!(err.to_string().contains("partitions is 1000000"), "{err}");
}

#[test]
fn vote_v1_golden() {
    assert_golden("vote_v1.json", &vote());
}

#[test]
fn decision_v1_golden() {
    let summary = |model: &str, action, confidence, safe_replicas| VoteSummary {
        model: model.into(),
        action,
        confidence,
        safe_replicas,
    };
    let record = DecisionRecord {
        decision_id: 1,
        service: "orders".into(),
        window_id: 1_775_305_800,
        strategy: "majority".into(),
        votes: vec![
            summary("xgboost", Action::ScaleUp, 0.87, 3),
            summary("random_forest", Action::ScaleUp, 0.82, 3),
            summary("logistic_regression", Action::NoAction, 0.55, 2),
        ],
        action: Action::ScaleUp,
        average_confidence: 0.7467,
        current_replicas: 2,
        target_replicas: 3,
        outcome: DecisionOutcome::Applied,
        reason: "majority SCALE_UP; target is the largest safe replica count among SCALE_UP votes"
            .into(),
        features_produced_at: at("2026-04-04T12:30:00.412Z"),
        decided_at: at("2026-04-04T12:30:02.004Z"),
    };
    assert_golden("decision_v1.json", &record);
}

#[test]
fn anomaly_v1_golden() {
    let anomaly = Anomaly {
        service: "orders".into(),
        window_id: 1_775_305_800,
        kind: AnomalyKind::LatencyWithoutLoad,
        observed: 0.912,
        expected: 0.181,
        score: 14.2,
        utilization: 0.31,
        detail: "p95 0.912 s where 0.181 s is normal at 25-50 % of capacity".into(),
        detected_at: at("2026-04-04T12:30:00.413Z"),
    };
    assert_golden("anomaly_v1.json", &anomaly);
    let negative = with_field("anomaly_v1.json", "score", serde_json::json!(-1.0));
    assert!(matches!(
        Anomaly::decode(&negative),
        Err(DecodeError::Invalid { .. })
    ));
    let unknown = with_field("anomaly_v1.json", "kind", serde_json::json!("gremlins"));
    assert!(Anomaly::decode(&unknown).is_err());
}

/// Replaces one top-level field of a golden message.
fn with_field(name: &str, field: &str, value: Value) -> Vec<u8> {
    let mut json: Value = serde_json::from_slice(&golden(name)).unwrap();
    json[field] = value;
    serde_json::to_vec(&json).unwrap()
}

#[test]
fn malformed_messages_are_errors_with_bounded_reasons() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"{not json".to_vec(), "malformed_json"),
        ("empty", Vec::new(), "malformed_json"),
        ("a number", b"42".to_vec(), "malformed_json"),
        (
            "no version",
            br#"{"service":"orders"}"#.to_vec(),
            "missing_version",
        ),
        (
            "future version",
            with_field("feature_vector_v1.json", "version", "4".into()),
            "unsupported_version",
        ),
        (
            "missing feature",
            {
                let mut json: Value =
                    serde_json::from_slice(&golden("feature_vector_v1.json")).unwrap();
                json["features"]
                    .as_object_mut()
                    .unwrap()
                    .remove("request_rate");
                serde_json::to_vec(&json).unwrap()
            },
            "invalid",
        ),
        (
            "empty service",
            with_field("feature_vector_v1.json", "service", "".into()),
            "invalid",
        ),
        (
            "zero replicas",
            {
                let mut json: Value =
                    serde_json::from_slice(&golden("feature_vector_v1.json")).unwrap();
                json["features"]["replicas"] = 0.0.into();
                serde_json::to_vec(&json).unwrap()
            },
            "invalid",
        ),
        (
            "window id as text",
            with_field("feature_vector_v1.json", "window_id", "soon".into()),
            "invalid",
        ),
    ];
    for (what, bytes, reason) in cases {
        let err = FeatureVector::decode(&bytes).expect_err(what);
        assert_eq!(err.reason(), reason, "{what}: {err}");
    }
}

#[test]
fn vote_outside_unit_interval_is_invalid() {
    let bytes = with_field("vote_v1.json", "confidence", 1.5.into());
    let err = Vote::decode(&bytes).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { .. }), "{err}");
    let bytes = with_field("vote_v1.json", "action", "SCALE_SIDEWAYS".into());
    assert_eq!(Vote::decode(&bytes).unwrap_err().reason(), "invalid");
}

#[test]
fn a_vote_is_not_a_feature_vector() {
    let err = FeatureVector::decode(&golden("vote_v1.json")).unwrap_err();
    assert_eq!(err.reason(), "invalid", "{err}");
}

#[test]
fn action_forms() {
    assert_eq!(Action::ScaleUp.to_string(), "SCALE UP");
    assert_eq!(Action::NoAction.as_str(), "NO_ACTION");
    assert_eq!(
        serde_json::to_string(&Action::ScaleDown).unwrap(),
        "\"SCALE_DOWN\""
    );
}
