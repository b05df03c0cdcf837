//! Gathering votes per service and window.
//!
//! A window opens with its first vote and closes when every expected model has voted, or
//! `window` after it opened, whichever comes first. Each window closes once: a vote for a closed
//! window (late, or replayed after a restart) is counted and ignored, so a replayed vote never
//! scales twice. A vote whose feature vector is older than `max_vote_age` is ignored too: it
//! describes a past the scaler must not act on. The clock is a parameter, so the same code runs
//! on wall time in the service and on simulated time in the trace replay.

use chrono::{DateTime, Duration, Utc};
use contract::Vote;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// The settings of a tally.
#[derive(Debug, Clone, PartialEq)]
pub struct TallyConfig {
    /// The models that vote, in the order the decision log lists them; a window closes early
    /// once all of them have voted.
    pub expected_models: Vec<String>,
    /// How long a window waits for its votes (`DECISION_WINDOW_SEC`).
    pub window: Duration,
    /// Votes on feature vectors older than this are ignored.
    pub max_vote_age: Duration,
    /// Closed windows remembered per service, to refuse their votes.
    pub remember: usize,
}

/// The votes of one closed window, ready for a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Ballot {
    pub service: String,
    pub window_id: u64,
    /// One vote per model, in the order of [`TallyConfig::expected_models`].
    pub votes: Vec<Vote>,
    /// Every expected model voted (else the window timed out).
    pub complete: bool,
}

impl Ballot {
    /// When the window's feature vector was produced (the earliest the votes report).
    pub fn features_produced_at(&self) -> DateTime<Utc> {
        self.votes
            .iter()
            .map(|v| v.features_produced_at)
            .min()
            .unwrap_or_default()
    }

    /// The replica count the models saw (the most common among the votes).
    pub fn observed_replicas(&self) -> u32 {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for v in &self.votes {
            *counts.entry(v.current_replicas).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(r, n)| (*n, *r))
            .map_or(1, |(r, _)| r)
    }
}

/// What became of one vote.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// Counted; the window waits for more.
    Pending,
    /// Counted, and it completed the window.
    Complete(Ballot),
    /// This model already voted in this window (a redelivery): ignored.
    Duplicate,
    /// The window was already decided: ignored.
    Late,
    /// The feature vector is older than the age limit: ignored.
    Stale,
    /// A model that is not expected: ignored.
    Unexpected,
}

impl Added {
    /// Every value [`Added::as_str`] can take.
    pub const OUTCOMES: [&'static str; 6] = [
        "pending",
        "complete",
        "duplicate",
        "late",
        "stale",
        "unexpected_model",
    ];

    /// A bounded label for counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Added::Pending => "pending",
            Added::Complete(_) => "complete",
            Added::Duplicate => "duplicate",
            Added::Late => "late",
            Added::Stale => "stale",
            Added::Unexpected => "unexpected_model",
        }
    }
}

#[derive(Debug, Clone)]
struct Open {
    opened_at: DateTime<Utc>,
    votes: BTreeMap<String, Vote>,
}

/// Votes of open windows, and the windows already closed.
#[derive(Debug, Clone)]
pub struct Tally {
    config: TallyConfig,
    open: HashMap<(String, u64), Open>,
    /// Closed windows per service: a set to look up, a queue to forget the oldest.
    closed: HashMap<String, (BTreeSet<u64>, VecDeque<u64>)>,
}

impl Tally {
    pub fn new(config: TallyConfig) -> Self {
        Self {
            config,
            open: HashMap::new(),
            closed: HashMap::new(),
        }
    }

    /// Marks a window as closed (decided before a restart).
    pub fn mark_closed(&mut self, service: &str, window_id: u64) {
        let remember = self.config.remember.max(1);
        let (set, order) = self.closed.entry(service.to_owned()).or_default();
        if set.insert(window_id) {
            order.push_back(window_id);
            while order.len() > remember {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }

    fn is_closed(&self, service: &str, window_id: u64) -> bool {
        self.closed
            .get(service)
            .is_some_and(|(set, _)| set.contains(&window_id))
    }

    /// Counts one vote at time `now`.
    pub fn add(&mut self, vote: Vote, now: DateTime<Utc>) -> Added {
        if !self.config.expected_models.contains(&vote.model) {
            return Added::Unexpected;
        }
        if self.is_closed(&vote.service, vote.window_id) {
            return Added::Late;
        }
        if now - vote.features_produced_at > self.config.max_vote_age {
            return Added::Stale;
        }
        let key = (vote.service.clone(), vote.window_id);
        let open = self.open.entry(key.clone()).or_insert_with(|| Open {
            opened_at: now,
            votes: BTreeMap::new(),
        });
        if open.votes.contains_key(&vote.model) {
            return Added::Duplicate;
        }
        open.votes.insert(vote.model.clone(), vote);
        if open.votes.len() >= self.config.expected_models.len() {
            Added::Complete(self.close(key, true))
        } else {
            Added::Pending
        }
    }

    fn close(&mut self, key: (String, u64), complete: bool) -> Ballot {
        let mut open = self.open.remove(&key).map(|o| o.votes).unwrap_or_default();
        self.mark_closed(&key.0, key.1);
        let votes = self
            .config
            .expected_models
            .iter()
            .filter_map(|model| open.remove(model))
            .collect();
        Ballot {
            service: key.0,
            window_id: key.1,
            votes,
            complete,
        }
    }

    /// Closes the windows that waited their full time by `now`, oldest first.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<Ballot> {
        let mut due: Vec<((String, u64), DateTime<Utc>)> = self
            .open
            .iter()
            .filter(|(_, o)| now - o.opened_at >= self.config.window)
            .map(|(k, o)| (k.clone(), o.opened_at))
            .collect();
        due.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        due.into_iter()
            .map(|(key, _)| self.close(key, false))
            .collect()
    }

    /// When the next open window times out.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.open
            .values()
            .map(|o| o.opened_at + self.config.window)
            .min()
    }

    /// Windows still open.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::Action;
    use proptest::prelude::*;

    const MODELS: [&str; 3] = ["xgboost", "random_forest", "logistic_regression"];

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn config() -> TallyConfig {
        TallyConfig {
            expected_models: MODELS.iter().map(|m| m.to_string()).collect(),
            window: Duration::seconds(5),
            max_vote_age: Duration::seconds(60),
            remember: 100,
        }
    }

    fn vote(model: &str, service: &str, window_id: u64) -> Vote {
        Vote {
            service: service.into(),
            window_id,
            model: model.into(),
            model_version: "v".into(),
            action: Action::ScaleUp,
            confidence: 0.9,
            violation_probability: 0.9,
            current_replicas: 2,
            safe_replicas: 3,
            inference_us: 5.0,
            features_produced_at: t(0),
            voted_at: t(10),
        }
    }

    #[test]
    fn closes_when_all_voted_and_refuses_replays() {
        let mut tally = Tally::new(config());
        assert_eq!(
            tally.add(vote(MODELS[0], "orders", 10), t(100)),
            Added::Pending
        );
        assert_eq!(
            tally.add(vote(MODELS[0], "orders", 10), t(110)),
            Added::Duplicate
        );
        assert_eq!(
            tally.add(vote(MODELS[1], "orders", 10), t(120)),
            Added::Pending
        );
        let Added::Complete(ballot) = tally.add(vote(MODELS[2], "orders", 10), t(130)) else {
            panic!("the third vote completes the window")
        };
        let order: Vec<&str> = ballot.votes.iter().map(|v| v.model.as_str()).collect();
        assert_eq!(
            order, MODELS,
            "in the configured order, as the decision log lists them"
        );
        assert!(ballot.complete);
        assert_eq!(
            tally.add(vote(MODELS[1], "orders", 10), t(140)),
            Added::Late
        );
        assert_eq!(
            tally.add(vote("lstm", "orders", 11), t(140)),
            Added::Unexpected
        );
    }

    #[test]
    fn times_out_with_the_votes_it_has() {
        let mut tally = Tally::new(config());
        tally.add(vote(MODELS[0], "orders", 10), t(0));
        tally.add(vote(MODELS[2], "carts", 10), t(1_000));
        assert_eq!(tally.next_deadline(), Some(t(5_000)));
        assert!(tally.expire(t(4_999)).is_empty());
        let closed = tally.expire(t(6_000));
        assert_eq!(closed.len(), 2);
        assert_eq!(
            (closed[0].service.as_str(), closed[0].complete),
            ("orders", false)
        );
        assert_eq!(
            tally.add(vote(MODELS[1], "orders", 10), t(7_000)),
            Added::Late
        );
    }

    #[test]
    fn stale_votes_and_remembered_decisions_are_ignored() {
        let mut tally = Tally::new(config());
        assert_eq!(
            tally.add(vote(MODELS[0], "orders", 10), t(61_000)),
            Added::Stale
        );
        tally.mark_closed("orders", 20);
        assert_eq!(
            tally.add(vote(MODELS[0], "orders", 20), t(100)),
            Added::Late
        );
    }

    proptest! {
        /// However votes are replayed, each window closes at most once.
        #[test]
        fn each_window_is_decided_at_most_once(
            arrivals in proptest::collection::vec((0usize..3, 0u64..4, 0i64..20_000), 1..200)
        ) {
            let mut tally = Tally::new(config());
            let mut arrivals = arrivals;
            arrivals.sort_by_key(|a| a.2);
            let mut decided: Vec<u64> = Vec::new();
            for (model, window, at) in arrivals {
                let mut v = vote(MODELS[model], "orders", window);
                v.features_produced_at = t(at);
                if let Added::Complete(b) = tally.add(v, t(at)) {
                    decided.push(b.window_id);
                }
                decided.extend(tally.expire(t(at)).into_iter().map(|b| b.window_id));
            }
            let mut unique = decided.clone();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), decided.len(), "{:?}", decided);
        }
    }
}
