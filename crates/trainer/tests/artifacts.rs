//! Artifacts: trained, saved, loaded back, and predicting the same; refused when they do not
//! match the contract.

use chrono::DateTime;
use contract::{FEATURE_COUNT, FeatureVector, Features, feature_index};
use indicatif::ProgressBar;
use models::{LoadError, ModelKind, Sla, Thresholds, TrainingInfo};
use smartcore::linalg::basic::matrix::DenseMatrix;
use trainer::Hyper;
use trainer::dataset::Example;
use trainer::fit::{Plan, fit};

/// A service at `rate` req/s per replica on `replicas`; violations above 60 req/s per replica.
fn example(i: usize) -> Example {
    let rate = (i * 37 % 100) as f64;
    let replicas = (i % 4 + 1) as f64;
    let mut values = [0.0; FEATURE_COUNT];
    let mut set = |name: &str, v: f64| values[feature_index(name).unwrap()] = v;
    set("request_rate", rate * replicas);
    set("request_rate_per_replica", rate);
    set("replicas", replicas);
    set("latency_p95", 0.1 + (rate / 100.0).powi(4));
    set("cpu_per_replica", f64::NAN);
    let at = DateTime::from_timestamp(1_000 + i as i64 * 10, 0).unwrap();
    Example {
        run: 0,
        vector: FeatureVector {
            service: "demo".into(),
            window_id: at.timestamp() as u64,
            window_start: at,
            window_end: at,
            poll_interval_sec: 10,
            produced_at: at,
            features: Features::from_values(&values).unwrap(),
        },
        label: rate > 60.0,
        violating_now: rate > 60.0,
    }
}

fn features() -> Vec<String> {
    [
        "request_rate_per_replica",
        "replicas",
        "latency_p95",
        "cpu_per_replica",
    ]
    .map(String::from)
    .to_vec()
}

fn train(kind: ModelKind, dir: &std::path::Path, examples: &[Example]) -> models::LoadedModel {
    let refs: Vec<&Example> = examples.iter().collect();
    let features = features();
    let hyper = Hyper {
        xgb_rounds: 30,
        rf_trees: 25,
        ..Hyper::default()
    };
    let plan = Plan {
        kind,
        features: &features,
        thresholds: Thresholds {
            scale_up: 0.5,
            scale_down: 0.2,
        },
        training: TrainingInfo {
            data_sha256: "abcdef0123".into(),
            rows: refs.len(),
            positives: 0,
            runs: vec![],
            held_out_patterns: vec![],
            trained_at: chrono::Utc::now(),
            parameters: serde_json::Value::Null,
        },
        sla: Sla {
            p95_seconds: 0.25,
            error_ratio: 0.05,
        },
        window_sec: 10,
        hyper: &hyper,
    };
    fit(plan, &refs, dir, &ProgressBar::hidden()).unwrap()
}

#[test]
fn every_model_round_trips_and_separates_the_classes() {
    let examples: Vec<Example> = (0..400).map(example).collect();
    let vectors: Vec<Features> = examples.iter().map(|e| e.vector.features).collect();
    for kind in ModelKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let trained = train(kind, dir.path(), &examples);
        let reloaded = models::load(dir.path(), kind).unwrap();
        let a = trained.probabilities(&vectors).unwrap();
        let b = reloaded.probabilities(&vectors).unwrap();
        assert_eq!(
            a, b,
            "{kind}: the saved artifact predicts what the trained model did"
        );
        let correct = examples
            .iter()
            .zip(&a)
            .filter(|(e, p)| e.label == (**p >= 0.5))
            .count();
        assert!(
            correct as f64 / examples.len() as f64 > 0.9,
            "{kind}: {correct}/400"
        );
        assert_eq!(reloaded.metadata().features, features());
        assert!(
            reloaded
                .metadata()
                .model_version
                .starts_with(&format!("{kind}-abcdef01-"))
        );
    }
}

#[test]
fn flattened_forest_and_logistic_agree_with_smartcore() {
    let examples: Vec<Example> = (0..300).map(example).collect();
    for kind in [ModelKind::RandomForest, ModelKind::LogisticRegression] {
        let dir = tempfile::tempdir().unwrap();
        let model = train(kind, dir.path(), &examples);
        let rows: Vec<Vec<f64>> = examples
            .iter()
            .map(|e| model.input().row(&e.vector.features))
            .collect();
        let ours = model.probabilities_of_rows(&rows.concat()).unwrap();
        let bytes = std::fs::read(dir.path().join("model.json")).unwrap();
        let x = DenseMatrix::from_2d_vec(&rows).unwrap();
        let theirs: Vec<i32> = match kind {
            ModelKind::RandomForest => serde_json::from_slice::<models::SmartcoreForest>(&bytes)
                .unwrap()
                .predict(&x)
                .unwrap(),
            _ => serde_json::from_slice::<models::SmartcoreLogistic>(&bytes)
                .unwrap()
                .predict(&x)
                .unwrap(),
        };
        for (i, (p, c)) in ours.iter().zip(&theirs).enumerate() {
            // smartcore's forest breaks an exact tie towards class 0.
            if (p - 0.5).abs() > 1e-9 {
                assert_eq!(
                    *p > 0.5,
                    *c == 1,
                    "{kind} row {i}: P={p}, smartcore says {c}"
                );
            }
        }
    }
}

#[test]
fn broken_artifacts_are_refused_with_the_reason() {
    let examples: Vec<Example> = (0..200).map(example).collect();
    let dir = tempfile::tempdir().unwrap();
    train(ModelKind::RandomForest, dir.path(), &examples);
    let metadata_path = dir.path().join("metadata.json");
    let original = std::fs::read_to_string(&metadata_path).unwrap();

    assert!(matches!(
        models::load(dir.path(), ModelKind::Xgboost),
        Err(LoadError::WrongKind { .. })
    ));

    // The feature order of the model no longer matches: a renamed feature.
    std::fs::write(
        &metadata_path,
        original.replace("\"latency_p95\"", "\"latency_p90\""),
    )
    .unwrap();
    let err = models::load(dir.path(), ModelKind::RandomForest).unwrap_err();
    assert!(matches!(err, LoadError::FeatureMismatch { .. }), "{err}");
    assert!(err.to_string().contains("latency_p90"), "{err}");

    // A feature dropped from the list: the trees split on an input that no longer exists.
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    m["features"].as_array_mut().unwrap().truncate(1);
    m["imputation"].as_array_mut().unwrap().truncate(1);
    std::fs::write(&metadata_path, m.to_string()).unwrap();
    let err = models::load(dir.path(), ModelKind::RandomForest).unwrap_err();
    assert!(matches!(err, LoadError::FeatureMismatch { .. }), "{err}");

    std::fs::write(&metadata_path, &original).unwrap();
    std::fs::write(dir.path().join("model.json"), b"{\"trees\": 3}").unwrap();
    assert!(matches!(
        models::load(dir.path(), ModelKind::RandomForest),
        Err(LoadError::Corrupt { .. })
    ));

    std::fs::remove_file(dir.path().join("model.json")).unwrap();
    assert!(matches!(
        models::load(dir.path(), ModelKind::RandomForest),
        Err(LoadError::Missing(_))
    ));
}

#[test]
fn xgboost_with_another_feature_order_is_refused() {
    let examples: Vec<Example> = (0..200).map(example).collect();
    let dir = tempfile::tempdir().unwrap();
    train(ModelKind::Xgboost, dir.path(), &examples);
    let path = dir.path().join("metadata.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["features"].as_array_mut().unwrap().swap(0, 1);
    std::fs::write(&path, m.to_string()).unwrap();
    let err = models::load(dir.path(), ModelKind::Xgboost).unwrap_err();
    assert!(matches!(err, LoadError::FeatureMismatch { .. }), "{err}");
}
