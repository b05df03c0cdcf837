//! Where feature vectors go: Kafka in production mode, the CSV in development mode.

use contract::{Anomaly, FeatureVector};
use service_runtime::csv_log::CsvLog;
use service_runtime::kafka::JsonProducer;

/// The destination of one mode.
#[derive(Clone)]
pub enum Sink {
    /// Publish each vector to the topic, keyed by service.
    Kafka {
        producer: JsonProducer,
        topic: String,
        /// Where anomalies go.
        anomalies_topic: String,
    },
    /// Append rows to the development CSV.
    Csv(CsvLog),
}

impl Sink {
    /// A bounded label for counters.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Kafka { .. } => "kafka",
            Sink::Csv(_) => "csv",
        }
    }

    /// Publishes the window's anomalies (Kafka only: the development CSV has no place for
    /// them; they are logged and counted in both modes); returns the errors.
    pub async fn publish_anomalies(&self, anomalies: &[Anomaly]) -> Vec<String> {
        let Sink::Kafka {
            producer,
            anomalies_topic,
            ..
        } = self
        else {
            return Vec::new();
        };
        let mut sends = Vec::with_capacity(anomalies.len());
        for a in anomalies {
            sends.push(producer.queue(anomalies_topic, a).await);
        }
        futures::future::join_all(sends)
            .await
            .into_iter()
            .zip(anomalies)
            .filter_map(|(result, a)| {
                result
                    .err()
                    .map(|e| format!("anomaly of {} window {}: {e}", a.service, a.window_id))
            })
            .collect()
    }

    /// Delivers the vectors; returns how many were delivered and the errors of the others.
    pub async fn publish(&self, vectors: Vec<FeatureVector>) -> (usize, Vec<String>) {
        match self {
            Sink::Kafka {
                producer, topic, ..
            } => {
                // Queued in order: a service's windows (a backfill sends several) reach their
                // partition in order, which sends racing for room in a full queue would not keep.
                let mut sends = Vec::with_capacity(vectors.len());
                for v in &vectors {
                    sends.push(producer.queue(topic, v).await);
                }
                let results = futures::future::join_all(sends).await;
                let mut errors = Vec::new();
                for (vector, result) in vectors.iter().zip(results) {
                    if let Err(e) = result {
                        errors.push(format!(
                            "{} window {}: {e}",
                            vector.service, vector.window_id
                        ));
                    }
                }
                (vectors.len() - errors.len(), errors)
            }
            Sink::Csv(csv) => {
                let n = vectors.len();
                match csv
                    .append(vectors.iter().map(formats::dev_csv::row).collect())
                    .await
                {
                    Ok(()) => (n, Vec::new()),
                    Err(e) => (0, vec![format!("{}: {e:#}", csv.path().display())]),
                }
            }
        }
    }
}
