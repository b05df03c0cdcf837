//! Where feature vectors go: Kafka in production mode, the CSV in development mode.

use contract::FeatureVector;
use service_runtime::csv_log::CsvLog;
use service_runtime::kafka::JsonProducer;

/// The destination of one mode.
#[derive(Clone)]
pub enum Sink {
    /// Publish each vector to the topic, keyed by service.
    Kafka {
        producer: JsonProducer,
        topic: String,
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

    /// Delivers the vectors; returns how many were delivered and the errors of the others.
    pub async fn publish(&self, vectors: Vec<FeatureVector>) -> (usize, Vec<String>) {
        match self {
            Sink::Kafka { producer, topic } => {
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
