//! Gathering votes per service and window.
//!
//! A window opens with its first vote and closes when every expected model has voted, or
//! `window` after it opened, whichever comes first. Each window closes once: a vote for a closed
//! window (late, or replayed after a restart) is counted and ignored, so a replayed vote never
//! scales twice. A vote whose feature vector is older than `max_vote_age` is ignored too: it
//! describes a past the scaler must not act on. The clock is a parameter, so the same code runs
//! on wall time in the service and on simulated time in the trace replay.
//!
//! Memory is bounded whatever arrives: a closed window is remembered only while a vote for it
//! could still be fresh (`max_vote_age` after it closed; any later vote for it is stale anyway),
//! and at most `remember` of them across all services; at most `max_open` windows are open at
//! once, and a vote that would open another is refused (`overflow`). Of these, at most
//! `max_open_new` belong to services not known: a service is known once a window of it closed
//! with votes of two models or more (all of them, if fewer are expected), for [`KNOWN_FOR`]
//! `max_vote_age`s after (at most `remember` services are known so; one voter down does not make
//! every service unknown). Made-up names, forged votes of one model and a service's first
//! windows share that budget. A flood
//! of made-up service names or window ids costs little memory and delays nothing known past
//! `window`; a new service's first windows are refused only while such a flood fills its budget. The
//! tables give back what a flood made them grow once it is over, and ballots are handed out in
//! bounded batches ([`Tally::expire`]), so that the memory a flood takes is returned.
//!
//! A window forgotten because of the count, while its votes could still be fresh, leaves its
//! service a floor: votes for that window or an older one of the service are late, so a backlog
//! of more than `remember` windows (a burst, a stalled scaler) does not decide one twice. The
//! floors are bounded the same way (at most `remember`, each for `max_vote_age`); only a flood
//! of made-up windows larger than that can push a real service's floor out. Each service name is
//! held once, shared by its windows and floor, and dropped with the last of them.

use chrono::{DateTime, Duration, Utc};
use contract::{Action, Vote, VoteSummary};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

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
    /// Most closed windows remembered in all (across services), to refuse their votes.
    pub remember: usize,
    /// Most windows open at once.
    pub max_open: usize,
    /// Most of these for services not known (no window of theirs closed with votes of two
    /// models or more lately).
    pub max_open_new: usize,
}

/// A service is known for this many `max_vote_age`s after a window of it closed with votes of
/// two models or more.
pub const KNOWN_FOR: i32 = 10;

/// The votes of one closed window, ready for a decision: what a decision reads of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Ballot {
    pub service: String,
    pub window_id: u64,
    /// One per model that voted, in the order of [`TallyConfig::expected_models`].
    pub votes: Vec<VoteSummary>,
    /// The replica count the models saw (the most common among the votes).
    pub observed_replicas: u32,
    /// When the window's feature vector was produced (the earliest the votes report).
    pub features_produced_at: DateTime<Utc>,
    /// Every expected model voted (else the window timed out).
    pub complete: bool,
}

impl Ballot {
    /// The ballot of `votes`, all for `service` and `window_id`.
    pub fn of(service: &str, window_id: u64, votes: &[Vote], complete: bool) -> Self {
        let kept: Vec<(&str, Kept)> = votes
            .iter()
            .map(|v| (v.model.as_str(), Kept::of(v)))
            .collect();
        Self::from_kept(service.to_owned(), window_id, &kept, complete)
    }

    fn from_kept(service: String, window_id: u64, kept: &[(&str, Kept)], complete: bool) -> Self {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for (_, k) in kept {
            *counts.entry(k.current_replicas).or_default() += 1;
        }
        Ballot {
            service,
            window_id,
            votes: kept
                .iter()
                .map(|(model, k)| VoteSummary {
                    model: (*model).to_owned(),
                    action: k.action,
                    confidence: k.confidence,
                    safe_replicas: k.safe_replicas,
                })
                .collect(),
            observed_replicas: counts
                .into_iter()
                .max_by_key(|(r, n)| (*n, *r))
                .map_or(1, |(r, _)| r),
            features_produced_at: kept
                .iter()
                .map(|(_, k)| k.features_produced_at)
                .min()
                .unwrap_or_default(),
            complete,
        }
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
    /// It would open a window beyond `max_open`: ignored.
    Overflow,
}

impl Added {
    /// Every value [`Added::as_str`] can take.
    pub const OUTCOMES: [&'static str; 7] = [
        "pending",
        "complete",
        "duplicate",
        "late",
        "stale",
        "unexpected_model",
        "overflow",
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
            Added::Overflow => "overflow",
        }
    }
}

#[derive(Debug, Clone)]
struct Open {
    opened_at: DateTime<Utc>,
    /// Counted in the budget of services not known (`max_open_new`).
    new: bool,
    /// One slot per expected model, in their order. Open windows are most of the scaler's
    /// memory in a burst (the pipeline benchmark holds tens of thousands open): a map of whole
    /// votes here cost about a kilobyte per window, slots of whole votes a quarter of that, the
    /// slots of what a decision reads about a tenth.
    votes: Box<[Option<Kept>]>,
}

/// A vote as an open window keeps it: what a decision reads of it (the service is the window's,
/// the model its slot's), 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Kept {
    action: Action,
    confidence: f64,
    current_replicas: u32,
    safe_replicas: u32,
    features_produced_at: DateTime<Utc>,
}

impl Kept {
    fn of(vote: &Vote) -> Self {
        Kept {
            action: vote.action,
            confidence: vote.confidence,
            current_replicas: vote.current_replicas,
            safe_replicas: vote.safe_replicas,
            features_produced_at: vote.features_produced_at,
        }
    }
}

/// A service name, held once by the tally however many windows name it.
type Name = Arc<str>;

/// Votes of open windows, and the windows already closed.
#[derive(Debug, Clone)]
pub struct Tally {
    config: TallyConfig,
    /// Every service name the structures below hold, once: a window shares its service's name
    /// instead of holding a copy. A name is dropped with the last window, closed window, floor
    /// or known service that holds it ([`Tally::release`]), so this is bounded as they are.
    names: HashSet<Name>,
    open: HashMap<(Name, u64), Open>,
    /// Closed windows, to look up (a set per service cost a tree node each, most of the
    /// memory of a flood of made-up names).
    closed: HashSet<(Name, u64)>,
    /// The same windows with when they closed, oldest first, to forget them.
    closed_order: VecDeque<(DateTime<Utc>, Name, u64)>,
    /// Per service, the newest window forgotten while its votes could be fresh, and its key in
    /// `floors_order`: that window and older ones are closed.
    floors: HashMap<Name, (u64, (DateTime<Utc>, u64))>,
    /// The floors by when their window closed (and a sequence number), oldest first, to
    /// forget them.
    floors_order: BTreeMap<(DateTime<Utc>, u64), Name>,
    floors_set: u64,
    /// Services known (a window closed with votes of two models or more), and when they last
    /// were (at most `remember`).
    known: HashMap<Name, DateTime<Utc>>,
    /// When `known` was last cleared of services not seen for [`KNOWN_FOR`].
    known_pruned_at: Option<DateTime<Utc>>,
    /// Open windows of services not known.
    open_new: usize,
}

/// A table that can give back the room a flood made it take.
trait Shrink {
    fn len_and_capacity(&self) -> (usize, usize);
    fn shrink(&mut self, to: usize);

    /// Gives back most of the room once three quarters of it are unused.
    fn give_back(&mut self) {
        let (len, capacity) = self.len_and_capacity();
        if capacity > 1_024 && len < capacity / 4 {
            self.shrink(len * 2);
        }
    }
}

impl<K: std::hash::Hash + Eq, V> Shrink for HashMap<K, V> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink(&mut self, to: usize) {
        self.shrink_to(to);
    }
}

impl<K: std::hash::Hash + Eq> Shrink for HashSet<K> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink(&mut self, to: usize) {
        self.shrink_to(to);
    }
}

impl<T> Shrink for VecDeque<T> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink(&mut self, to: usize) {
        self.shrink_to(to);
    }
}

impl Tally {
    pub fn new(config: TallyConfig) -> Self {
        Self {
            config,
            names: HashSet::new(),
            open: HashMap::new(),
            closed: HashSet::new(),
            closed_order: VecDeque::new(),
            floors: HashMap::new(),
            floors_order: BTreeMap::new(),
            floors_set: 0,
            known: HashMap::new(),
            known_pruned_at: None,
            open_new: 0,
        }
    }

    /// Counts `service` as known at `at` (one that decided windows before a restart, say), so
    /// that its windows open in the budget of known services.
    pub fn mark_known(&mut self, service: &str, at: DateTime<Utc>) {
        let name = self.name(service);
        self.know(name, at);
    }

    fn know(&mut self, name: Name, at: DateTime<Utc>) {
        if let Some(last) = self.known.get_mut(&*name) {
            *last = (*last).max(at);
            self.release(name);
        } else if self.known.len() < self.config.remember.max(1) {
            self.known.insert(name, at);
        } else {
            self.release(name);
        }
    }

    /// Services known now.
    pub fn known_services(&self) -> usize {
        self.known.len()
    }

    /// The shared name of `service`.
    fn name(&mut self, service: &str) -> Name {
        if let Some(name) = self.names.get(service) {
            return name.clone();
        }
        let name: Name = Arc::from(service);
        self.names.insert(name.clone());
        name
    }

    /// Lets go of one holder of `name`, and of the name itself once nothing else holds it (the
    /// tally's structures hold every other reference; the set and `name` are these two).
    fn release(&mut self, name: Name) {
        if Arc::strong_count(&name) <= 2 {
            self.names.remove(&*name);
        }
    }

    /// Marks a window as closed at `at` (also one decided before a restart, at its decision).
    pub fn mark_closed(&mut self, service: &str, window_id: u64, at: DateTime<Utc>) {
        let name = self.name(service);
        self.mark_name_closed(name, window_id, at);
    }

    fn mark_name_closed(&mut self, name: Name, window_id: u64, at: DateTime<Utc>) {
        if self.closed.insert((name.clone(), window_id)) {
            self.closed_order.push_back((at, name, window_id));
        } else {
            self.release(name);
        }
        while self.closed_order.len() > self.config.remember.max(1) {
            if let Some((at, service, window_id)) = self.forget_oldest() {
                self.raise_floor(service, window_id, at);
            }
        }
    }

    /// Closes `window_id` and older windows of `service` for good (until `max_vote_age` after
    /// `at`, when their votes are stale).
    fn raise_floor(&mut self, service: Name, window_id: u64, at: DateTime<Utc>) {
        self.floors_set += 1;
        let mut key = (at, self.floors_set);
        let mut floor = window_id;
        if let Some((old_floor, old_key)) = self.floors.get(&*service).copied() {
            self.floors_order.remove(&old_key);
            floor = floor.max(old_floor);
            key.0 = key.0.max(old_key.0);
        }
        self.floors.insert(service.clone(), (floor, key));
        self.floors_order.insert(key, service);
        while self.floors_order.len() > self.config.remember.max(1) {
            self.forget_oldest_floor();
        }
    }

    fn forget_oldest_floor(&mut self) {
        if let Some((_, service)) = self.floors_order.pop_first() {
            self.floors.remove(&*service);
            self.release(service);
        }
    }

    /// Forgets the closed windows no fresh vote can be for any more.
    fn forget_past(&mut self, now: DateTime<Utc>) {
        while self
            .closed_order
            .front()
            .is_some_and(|(at, _, _)| now - *at > self.config.max_vote_age)
        {
            if let Some((_, service, _)) = self.forget_oldest() {
                self.release(service);
            }
        }
        while self
            .floors_order
            .first_key_value()
            .is_some_and(|((at, _), _)| now - *at > self.config.max_vote_age)
        {
            self.forget_oldest_floor();
        }
        let known_for = self.config.max_vote_age * KNOWN_FOR;
        if self
            .known_pruned_at
            .is_none_or(|at| now - at >= self.config.max_vote_age)
        {
            self.known_pruned_at = Some(now);
            let mut gone = Vec::new();
            self.known.retain(|name, at| {
                let keep = now - *at <= known_for;
                if !keep {
                    gone.push(name.clone());
                }
                keep
            });
            for name in gone {
                self.release(name);
            }
        }
        self.give_back();
    }

    /// Gives back the room of tables a flood made grow.
    fn give_back(&mut self) {
        self.names.give_back();
        self.open.give_back();
        self.closed.give_back();
        self.closed_order.give_back();
        self.floors.give_back();
        self.known.give_back();
    }

    /// Forgets the oldest closed window; which it was.
    fn forget_oldest(&mut self) -> Option<(DateTime<Utc>, Name, u64)> {
        let (at, service, window_id) = self.closed_order.pop_front()?;
        self.closed.remove(&(service.clone(), window_id));
        Some((at, service, window_id))
    }

    /// Closed windows remembered now.
    pub fn closed_windows(&self) -> usize {
        self.closed_order.len()
    }

    fn is_closed(&self, service: &str, window_id: u64) -> bool {
        let Some(name) = self.names.get(service) else {
            return false;
        };
        self.closed.contains(&(name.clone(), window_id))
            || self
                .floors
                .get(service)
                .is_some_and(|(floor, _)| window_id <= *floor)
    }

    /// Counts one vote at time `now`.
    pub fn add(&mut self, vote: &Vote, now: DateTime<Utc>) -> Added {
        let Some(slot) = self
            .config
            .expected_models
            .iter()
            .position(|m| *m == vote.model)
        else {
            return Added::Unexpected;
        };
        self.forget_past(now);
        if self.is_closed(&vote.service, vote.window_id) {
            return Added::Late;
        }
        if now - vote.features_produced_at > self.config.max_vote_age {
            return Added::Stale;
        }
        let name = self.name(&vote.service);
        let key = (name.clone(), vote.window_id);
        if !self.open.contains_key(&key) {
            let new = !self.known.contains_key(&*name);
            if self.open.len() >= self.config.max_open
                || (new && self.open_new >= self.config.max_open_new)
            {
                drop(key);
                self.release(name);
                return Added::Overflow;
            }
            let models = self.config.expected_models.len();
            self.open_new += usize::from(new);
            self.open.insert(
                key.clone(),
                Open {
                    opened_at: now,
                    new,
                    votes: vec![None; models].into_boxed_slice(),
                },
            );
        }
        let Some(open) = self.open.get_mut(&key) else {
            return Added::Overflow;
        };
        if open.votes[slot].is_some() {
            return Added::Duplicate;
        }
        open.votes[slot] = Some(Kept::of(vote));
        if open.votes.iter().all(Option::is_some) {
            Added::Complete(self.close(name, vote.window_id, true, now))
        } else {
            Added::Pending
        }
    }

    fn close(&mut self, name: Name, window_id: u64, complete: bool, now: DateTime<Utc>) -> Ballot {
        let open = self.open.remove(&(name.clone(), window_id));
        if open.as_ref().is_some_and(|o| o.new) {
            self.open_new -= 1;
        }
        let votes = open
            .as_ref()
            .map_or(0, |o| o.votes.iter().filter(|v| v.is_some()).count());
        if votes >= self.config.expected_models.len().min(2) {
            self.know(name.clone(), now);
        }
        let kept: Vec<(&str, Kept)> = open
            .map(|o| {
                o.votes
                    .iter()
                    .zip(&self.config.expected_models)
                    .filter_map(|(kept, model)| Some((model.as_str(), (*kept)?)))
                    .collect()
            })
            .unwrap_or_default();
        let ballot = Ballot::from_kept(name.to_string(), window_id, &kept, complete);
        self.mark_name_closed(name, window_id, now);
        ballot
    }

    /// Closes the windows that waited their full time by `now`, oldest first, at most `max` of
    /// them (call again while it returns `max`): a flood's windows, timing out together, are
    /// handed out in batches rather than all copied at once.
    pub fn expire(&mut self, now: DateTime<Utc>, max: usize) -> Vec<Ballot> {
        self.forget_past(now);
        let mut due: BinaryHeap<(DateTime<Utc>, Name, u64)> = BinaryHeap::new();
        for ((name, window_id), open) in &self.open {
            if now - open.opened_at >= self.config.window {
                due.push((open.opened_at, name.clone(), *window_id));
                if due.len() > max {
                    due.pop();
                }
            }
        }
        let ballots = due
            .into_sorted_vec()
            .into_iter()
            .map(|(_, name, window_id)| self.close(name, window_id, false, now))
            .collect();
        self.give_back();
        ballots
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

    /// Of these, windows of services not known.
    pub fn open_new_windows(&self) -> usize {
        self.open_new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            max_open: 10,
            max_open_new: 10,
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
            tally.add(&vote(MODELS[0], "orders", 10), t(100)),
            Added::Pending
        );
        assert_eq!(
            tally.add(&vote(MODELS[0], "orders", 10), t(110)),
            Added::Duplicate
        );
        assert_eq!(
            tally.add(&vote(MODELS[1], "orders", 10), t(120)),
            Added::Pending
        );
        let Added::Complete(ballot) = tally.add(&vote(MODELS[2], "orders", 10), t(130)) else {
            panic!("the third vote completes the window")
        };
        let order: Vec<&str> = ballot.votes.iter().map(|v| v.model.as_str()).collect();
        assert_eq!(
            order, MODELS,
            "in the configured order, as the decision log lists them"
        );
        assert!(ballot.complete);
        assert_eq!(
            tally.add(&vote(MODELS[1], "orders", 10), t(140)),
            Added::Late
        );
        assert_eq!(
            tally.add(&vote("lstm", "orders", 11), t(140)),
            Added::Unexpected
        );
    }

    #[test]
    fn times_out_with_the_votes_it_has() {
        let mut tally = Tally::new(config());
        tally.add(&vote(MODELS[0], "orders", 10), t(0));
        tally.add(&vote(MODELS[2], "carts", 10), t(1_000));
        assert_eq!(tally.next_deadline(), Some(t(5_000)));
        assert!(tally.expire(t(4_999), usize::MAX).is_empty());
        let closed = tally.expire(t(6_000), usize::MAX);
        assert_eq!(closed.len(), 2);
        assert_eq!(
            (closed[0].service.as_str(), closed[0].complete),
            ("orders", false)
        );
        assert_eq!(
            tally.add(&vote(MODELS[1], "orders", 10), t(7_000)),
            Added::Late
        );
    }

    #[test]
    fn stale_votes_and_remembered_decisions_are_ignored() {
        let mut tally = Tally::new(config());
        assert_eq!(
            tally.add(&vote(MODELS[0], "orders", 10), t(61_000)),
            Added::Stale
        );
        tally.mark_closed("orders", 20, t(50));
        assert_eq!(
            tally.add(&vote(MODELS[0], "orders", 20), t(100)),
            Added::Late
        );
    }

    #[test]
    fn a_flood_of_made_up_windows_costs_bounded_memory() {
        let mut tally = Tally::new(config());
        // Open windows: ten at most; the eleventh is refused, a vote in an open one is not.
        for service in 0..10 {
            let v = vote(MODELS[0], &format!("made-up-{service}"), 1);
            assert_eq!(tally.add(&v, t(100)), Added::Pending);
        }
        assert_eq!(
            tally.add(&vote(MODELS[0], "orders", 1), t(100)),
            Added::Overflow
        );
        assert_eq!(
            tally.names.len(),
            10,
            "a refused vote leaves no name behind"
        );
        assert_eq!(
            tally.add(&vote(MODELS[1], "made-up-0", 1), t(100)),
            Added::Pending
        );
        assert_eq!(tally.expire(t(5_100), usize::MAX).len(), 10);
        // Closed windows: a hundred at most, however many names.
        for i in 0..1_000u64 {
            tally.mark_closed(&format!("made-up-{i}"), i, t(6_000));
        }
        assert_eq!(tally.closed_windows(), 100);
        assert_eq!(
            tally.closed.len(),
            100,
            "services with nothing left are forgotten"
        );
        assert_eq!(tally.floors.len(), 100, "and their floors as many at most");
        assert_eq!(
            tally.names.len(),
            201,
            "names only of what is held (and made-up-0, known: two models voted in its window)"
        );
        // And none once no vote for them could be fresh: a minute after they closed.
        tally.expire(t(66_001), usize::MAX);
        assert_eq!(tally.closed_windows(), 0);
        assert!(tally.closed.is_empty());
        assert!(tally.floors.is_empty() && tally.floors_order.is_empty());
        assert_eq!(tally.known_services(), 1);
        assert_eq!(tally.names.len(), 1, "{:?}", tally.names);
        assert_eq!(
            tally.add(&vote(MODELS[0], "orders", 1), t(66_001)),
            Added::Stale,
            "a vote for a forgotten window is stale anyway"
        );
    }

    /// Forged votes that never complete a window, under names never seen: they fill the budget
    /// of services not known, and a known service's windows still open.
    #[test]
    fn votes_for_unknown_services_have_a_budget_of_their_own() {
        let mut tally = Tally::new(TallyConfig {
            max_open: 10,
            max_open_new: 3,
            ..config()
        });
        for model in MODELS {
            tally.add(&vote(model, "orders", 1), t(0));
        }
        assert_eq!(tally.known_services(), 1, "orders completed a window");
        let outcomes: Vec<Added> = (0..5)
            .map(|i| tally.add(&vote(MODELS[0], &format!("forged-{i}"), 1), t(10)))
            .collect();
        assert_eq!(outcomes.iter().filter(|a| **a == Added::Pending).count(), 3);
        assert_eq!(outcomes[3..], [Added::Overflow, Added::Overflow]);
        assert_eq!(tally.open_new_windows(), 3);
        for window in 2..=8 {
            assert_eq!(
                tally.add(&vote(MODELS[0], "orders", window), t(20)),
                Added::Pending,
                "window {window} of a known service"
            );
        }
        assert_eq!(
            tally.add(&vote(MODELS[0], "orders", 9), t(20)),
            Added::Overflow,
            "all ten open"
        );
        // Once the forged windows time out, a new service's window opens again.
        assert_eq!(tally.expire(t(5_010), 2).len(), 2, "in batches of two");
        assert_eq!(tally.expire(t(5_010), 2).len(), 1);
        assert_eq!(tally.open_new_windows(), 0);
        assert_eq!(
            tally.add(&vote(MODELS[0], "carts", 1), t(5_010)),
            Added::Pending
        );
        // A service is known for KNOWN_FOR vote ages after its last complete window.
        let later = 60_000 * i64::from(KNOWN_FOR) + 1;
        tally.expire(t(later), usize::MAX);
        assert_eq!(tally.known_services(), 0);
        tally.expire(t(later + 60_001), usize::MAX);
        assert!(tally.names.is_empty(), "{:?}", tally.names);
    }

    /// The tables give back the room a flood made them take.
    #[test]
    fn a_flood_over_gives_its_memory_back() {
        let mut tally = Tally::new(TallyConfig {
            max_open: 100_000,
            max_open_new: 100_000,
            remember: 100_000,
            ..config()
        });
        for i in 0..20_000 {
            tally.add(&vote(MODELS[0], &format!("forged-{i}"), 1), t(0));
        }
        assert!(tally.open.capacity() >= 20_000);
        while tally.expire(t(5_000), 256).len() == 256 {}
        assert_eq!(tally.open_windows(), 0);
        assert!(tally.open.capacity() < 1_024, "{}", tally.open.capacity());
        tally.expire(t(66_000), usize::MAX);
        assert!(tally.closed.capacity() < 1_024 && tally.names.capacity() < 1_024);
    }

    /// More windows closed than remembered, while their votes are fresh (a backlog): a late vote
    /// for a forgotten one, or an older one, is refused, not decided again.
    #[test]
    fn a_backlog_beyond_the_memory_decides_no_window_twice() {
        let mut tally = Tally::new(TallyConfig {
            remember: 2,
            ..config()
        });
        for window in 1..=3 {
            assert_eq!(
                tally.add(&vote(MODELS[0], "orders", window), t(100)),
                Added::Pending
            );
        }
        assert_eq!(tally.expire(t(5_100), usize::MAX).len(), 3);
        assert_eq!(tally.closed_windows(), 2, "window 1 forgotten");
        for (service, window, expected) in [
            ("orders", 1, Added::Late),
            ("orders", 0, Added::Late),
            ("orders", 3, Added::Late),
            ("orders", 4, Added::Pending),
            ("shipping", 1, Added::Pending),
        ] {
            let added = tally.add(&vote(MODELS[1], service, window), t(5_200));
            assert_eq!(added, expected, "{service} window {window}");
        }
    }

    proptest! {
        /// However votes are replayed, each window closes at most once.
        #[test]
        fn each_window_is_decided_at_most_once(
            arrivals in proptest::collection::vec((0usize..3, 0u64..4, 0i64..20_000), 1..200),
            remember in 1usize..5,
        ) {
            let mut tally = Tally::new(TallyConfig { remember, ..config() });
            let mut arrivals = arrivals;
            arrivals.sort_by_key(|a| a.2);
            let mut decided: Vec<u64> = Vec::new();
            for (model, window, at) in arrivals {
                let mut v = vote(MODELS[model], "orders", window);
                v.features_produced_at = t(at);
                if let Added::Complete(b) = tally.add(&v, t(at)) {
                    decided.push(b.window_id);
                }
                decided.extend(tally.expire(t(at), usize::MAX).into_iter().map(|b| b.window_id));
            }
            let mut unique = decided.clone();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), decided.len(), "{:?}", decided);
        }
    }
}
