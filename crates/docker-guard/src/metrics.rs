//! The guard's counters. Labels are bounded: the allowed calls (and `other`), outcomes, rules.

use crate::policy::Rule;
use crate::policy::route::ROUTE_NAMES;
use prometheus::{IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct GuardMetrics {
    /// Requests by call and outcome (`forwarded`, `refused`, `engine_error`).
    pub requests: IntCounterVec,
    /// Refused requests by call and the rule that refused them.
    pub refusals: IntCounterVec,
}

/// Every outcome of a request.
const OUTCOMES: [&str; 3] = ["forwarded", "refused", "engine_error"];

impl GuardMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "docker_guard_requests_total",
                "Engine API requests by call and outcome",
            ),
            &["call", "outcome"],
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "docker_guard_refusals_total",
                "Refused Engine API requests by call and the rule that refused them",
            ),
            &["call", "rule"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        for call in ROUTE_NAMES {
            for outcome in OUTCOMES {
                requests.with_label_values(&[call, outcome]);
            }
            for rule in Rule::ALL {
                refusals.with_label_values(&[call, rule.as_str()]);
            }
        }
        Ok(Self { requests, refusals })
    }
}
