//! Artifacts: trained, saved, loaded back, and predicting the same; refused when they do not
//! match the contract.

use contract::Features;
use models::{LoadError, ModelKind};
use smartcore::linalg::basic::matrix::DenseMatrix;
use trainer::dataset::Example;
use trainer::synthetic;

fn example(i: usize) -> Example {
    synthetic::examples(i + 1).pop().unwrap()
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

fn train(kind: ModelKind, dir: &std::path::Path) -> models::LoadedModel {
    synthetic::train(kind, dir, &features()).unwrap()
}

#[test]
fn every_model_round_trips_and_separates_the_classes() {
    let examples: Vec<Example> = (0..400).map(example).collect();
    let vectors: Vec<Features> = examples.iter().map(|e| e.vector.features).collect();
    for kind in ModelKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let trained = train(kind, dir.path());
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
                .starts_with(&format!("{kind}-5e7e71c0-"))
        );
    }
}

#[test]
fn flattened_forest_and_logistic_agree_with_smartcore() {
    let examples: Vec<Example> = (0..300).map(example).collect();
    for kind in [ModelKind::RandomForest, ModelKind::LogisticRegression] {
        let dir = tempfile::tempdir().unwrap();
        let model = train(kind, dir.path());
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
    let dir = tempfile::tempdir().unwrap();
    train(ModelKind::RandomForest, dir.path());
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
    let dir = tempfile::tempdir().unwrap();
    train(ModelKind::Xgboost, dir.path());
    let path = dir.path().join("metadata.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["features"].as_array_mut().unwrap().swap(0, 1);
    std::fs::write(&path, m.to_string()).unwrap();
    let err = models::load(dir.path(), ModelKind::Xgboost).unwrap_err();
    assert!(matches!(err, LoadError::FeatureMismatch { .. }), "{err}");
}

#[test]
fn votes_on_a_batch_are_the_votes_one_by_one() {
    let vectors: Vec<Features> = (0..60).map(|i| example(i * 7).vector.features).collect();
    for kind in ModelKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let model = train(kind, dir.path());
        let batch = model.votes(&vectors).unwrap();
        let single: Vec<_> = vectors.iter().map(|v| model.vote(v).unwrap()).collect();
        assert_eq!(batch, single, "{kind}");
        assert!(model.votes(&[]).unwrap().is_empty());
    }
}
