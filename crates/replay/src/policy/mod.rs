//! Scaling policies compared on the same trace. Each is a plain type with no I/O: it sees what
//! its real counterpart would see at its decision times and answers a replica count.
//!
//! - [`Static`]: a fixed count.
//! - [`Threshold`]: the seed's scaler (mean latency over 30 s: up above 0.6 s, down below 0.2 s,
//!   one replica at a time).
//! - [`Hpa`]: the Kubernetes HPA algorithm on utilization.
//! - [`Predictive`]: a Holt-Winters forecast sizing replicas ahead beside the reactive HPA (the
//!   non-ML predictive baseline).
//! - [`Voters`]: one model, or the three under a voting strategy, through the scaler's own
//!   decision core ([`decision::plan`](mod@decision::plan)) with its default guardrails.
//! - [`Oracle`]: the fewest replicas that meet the SLA, knowing the future load.

mod hpa;
mod oracle;
mod predictive;
mod threshold;
mod voters;

pub use hpa::Hpa;
pub use oracle::{Capacities, Oracle};
pub use predictive::{HoltWinters, Predictive};
pub use threshold::Threshold;
pub use voters::{Ballot, Voters};

use crate::service::Window;
use contract::Features;
use features::Finding;

/// The replica counts every policy stays within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    pub fn clamp(&self, replicas: u32) -> u32 {
        replicas.clamp(self.min.max(1), self.max.max(self.min.max(1)))
    }
}

/// What a policy sees when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Seconds since the start of the run.
    pub now: f64,
    /// The latest poll windows, oldest first.
    pub windows: &'a [Window],
    /// The aggregator's feature vector of the newest window.
    pub features: Option<&'a Features>,
    /// What the anomaly detector found in that window (only for anomaly-aware policies).
    pub anomalies: &'a [Finding],
    /// Replicas that exist, starting ones included (what the Docker engine lists).
    pub existing: u32,
}

/// A scaling policy.
pub trait Policy: Send {
    /// The name in tables and plots.
    fn name(&self) -> String;
    /// Seconds between decisions.
    fn period(&self) -> f64;
    /// The replica count to go to.
    fn decide(&mut self, context: &Context<'_>) -> u32;
    /// Whether the simulated aggregator looks for anomalies for it (their windows then teach
    /// the capacity estimate nothing) and it reads them.
    fn anomaly_aware(&self) -> bool {
        false
    }
    /// The count to start with, where the policy has its own (a static count); the others
    /// start where the oracle does.
    fn initial(&self) -> Option<u32> {
        None
    }
}

/// A fixed replica count.
#[derive(Debug, Clone)]
pub struct Static {
    pub replicas: u32,
    /// Poll interval (it never changes anything, so any period does).
    pub period: f64,
}

impl Policy for Static {
    fn name(&self) -> String {
        format!("static {}", self.replicas)
    }

    fn period(&self) -> f64 {
        self.period
    }

    fn decide(&mut self, _: &Context<'_>) -> u32 {
        self.replicas
    }

    fn initial(&self) -> Option<u32> {
        Some(self.replicas)
    }
}
