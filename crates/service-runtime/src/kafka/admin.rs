//! Topic creation at start: topics are created explicitly rather than by the broker's
//! auto-creation, with the partitions and replication the operator configured.

use super::KafkaArgs;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Creates the topics that do not exist yet. Existing topics are left as they are.
///
/// Does nothing when topic creation is turned off (`KAFKA_CREATE_TOPICS=false`).
pub async fn ensure_topics(args: &KafkaArgs, topics: &[&str]) -> Result<(), KafkaError> {
    if !args.kafka_create_topics || topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = args.admin_config("topic-admin").create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                args.kafka_topic_partitions,
                TopicReplication::Fixed(args.kafka_topic_replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(topic) => tracing::info!(%topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(%topic, error = %code, "cannot create topic");
                });
            }
        }
    }
    Ok(())
}
