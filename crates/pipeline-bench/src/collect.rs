//! The harness's reading side: an [`AtLeastOnceConsumer`] (the services' own consumer, with their
//! client configuration) on a thread of its own, stamping each message with the instant its
//! handler saw it and passing what the measure needs on a channel. Its own thread (with a
//! single-threaded runtime) keeps the stamps from waiting behind the harness's producing tasks,
//! and asks nothing of the consumer's future (it need not be `Send`).

use anyhow::Context;
use contract::Message;
use service_runtime::kafka::{AtLeastOnceConsumer, KafkaArgs};
use std::collections::HashMap;
use std::hash::Hash;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One message as the harness saw it.
pub struct Arrival<T> {
    /// What the measure kept of the message.
    pub item: T,
    /// When the consumer handed it over.
    pub at: Instant,
}

/// What one phase read: the first arrival of each key, and how many arrivals repeated a key.
pub struct Gathered<K, T> {
    pub first: HashMap<K, Arrival<T>>,
    /// Arrivals of a key already seen (a redelivery, or a second decision on one window).
    pub repeats: u64,
    /// When the last new key arrived.
    pub last_at: Option<Instant>,
}

/// How often a long wait says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A running consumer of one topic; stopped when dropped.
pub struct Collector<T> {
    /// The arrivals, in consumption order.
    arrivals: mpsc::UnboundedReceiver<Arrival<T>>,
    /// Stops the consumer.
    stop: CancellationToken,
    /// The consumer's thread, to report why it ended (taken when it is joined).
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl<T: Send + 'static> Collector<T> {
    /// Subscribes to `topic` in a new consumer group `group` and keeps `extract(message)` of
    /// every message that decodes as `M`.
    pub fn start<M, F>(
        args: &KafkaArgs,
        topic: &str,
        group: &str,
        extract: F,
    ) -> anyhow::Result<Self>
    where
        M: Message,
        F: Fn(&M) -> T + Send + 'static,
    {
        let consumer =
            AtLeastOnceConsumer::new(args, "pipeline-bench", group, topic, crate::kafka_metrics())
                .with_context(|| format!("cannot create a consumer of {topic}"))?;
        let (sender, arrivals) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let topic = topic.to_owned();
        let thread = std::thread::Builder::new()
            .name("harness-consumer".into())
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot build the consumer's runtime")?;
                let consume = consumer.run(&token, move |message: &M| {
                    let at = Instant::now();
                    // The receiver is gone only when the measure is over.
                    let _ = sender.send(Arrival {
                        item: extract(message),
                        at,
                    });
                    std::future::ready(Ok(()))
                });
                runtime
                    .block_on(consume)
                    .with_context(|| format!("consuming {topic}"))
            })
            .context("cannot start the consumer's thread")?;
        Ok(Self {
            arrivals,
            stop,
            thread: Some(thread),
        })
    }

    /// The next arrival, or `None` when `deadline` passed first.
    pub async fn next_before(&mut self, deadline: Instant) -> anyhow::Result<Option<Arrival<T>>> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, self.arrivals.recv()).await {
            Ok(Some(arrival)) => Ok(Some(arrival)),
            Ok(None) => Err(self.failure().await),
            Err(_) => Ok(None),
        }
    }

    /// Reads until `want` distinct keys arrived or `deadline` passed. `key` picks the arrivals
    /// of this phase (`None`: not one of them, dropped). Logs progress under `what`.
    pub async fn gather<K, F>(
        &mut self,
        what: &str,
        want: usize,
        deadline: Instant,
        key: F,
    ) -> anyhow::Result<Gathered<K, T>>
    where
        K: Hash + Eq,
        F: Fn(&T) -> Option<K>,
    {
        let mut gathered = Gathered {
            first: HashMap::with_capacity(want),
            repeats: 0,
            last_at: None,
        };
        let mut report_at = Instant::now() + PROGRESS_EVERY;
        while gathered.first.len() < want {
            let until = deadline.min(report_at);
            match self.next_before(until).await? {
                Some(arrival) => {
                    let Some(k) = key(&arrival.item) else {
                        continue;
                    };
                    if gathered.first.contains_key(&k) {
                        gathered.repeats += 1;
                    } else {
                        gathered.last_at = Some(arrival.at);
                        gathered.first.insert(k, arrival);
                    }
                }
                None if Instant::now() >= deadline => break,
                None => {}
            }
            if Instant::now() >= report_at {
                tracing::info!("{what}: {} of {want} so far", gathered.first.len());
                report_at = Instant::now() + PROGRESS_EVERY;
            }
        }
        Ok(gathered)
    }

    /// Reads and drops whatever arrives for `quiet`.
    pub async fn discard_for(&mut self, quiet: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + quiet;
        let mut dropped = 0;
        while self.next_before(deadline).await?.is_some() {
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Stops the consumer and waits until it has left its group and closed its connections
    /// (before the broker goes away, which librdkafka would report as an error).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.join().await.unwrap_or(Ok(()))
    }

    /// Why the consumer ended early.
    async fn failure(&mut self) -> anyhow::Error {
        match self.join().await {
            Some(Err(e)) => e.context("the harness's consumer stopped"),
            _ => anyhow::anyhow!("the harness's consumer stopped"),
        }
    }

    /// Waits for the consumer's thread to end, off the async threads; `None` if already joined.
    async fn join(&mut self) -> Option<anyhow::Result<()>> {
        let thread = self.thread.take()?;
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        Some(match joined {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(anyhow::anyhow!("the harness's consumer thread panicked")),
            Err(e) => Err(anyhow::anyhow!(
                "cannot join the harness's consumer thread: {e}"
            )),
        })
    }
}

impl<T> Drop for Collector<T> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
