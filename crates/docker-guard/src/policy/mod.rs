//! What the guard lets through, as plain functions on paths, queries and JSON: no sockets, so
//! every rule is unit-tested on its own and the proxy (`crate::proxy`) only fetches what the
//! rules need from the engine and applies them.
//!
//! - [`route`]: the calls the scaler makes, and their query parameters; everything else is
//!   refused.
//! - [`list`]: container listings are narrowed to opted-in containers by the engine's own
//!   label filter.
//! - [`replica`]: a container create must be a replica of an existing container of an opted-in
//!   service: its image, user, binds, mounts, capabilities, devices, namespaces and security
//!   options.
//! - [`service`]: a Swarm service update may change the replica count and nothing else.

pub mod json;
pub mod list;
pub mod replica;
pub mod route;
pub mod service;

#[cfg(test)]
mod fuzz;

use serde_json::Value;
pub use service_runtime::labels::{OPT_IN_LABEL, OPT_IN_VALUE};

/// Why a request was refused, as a bounded label for the refusal counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A call the scaler never makes.
    Endpoint,
    /// A query parameter the scaler never sends.
    Query,
    /// A body or name that cannot be read.
    Malformed,
    /// A body larger than the guard reads.
    TooLarge,
    /// A container, network or service of a service not opted in.
    NotOptedIn,
    /// A container create that is not a replica of the service's containers.
    NotAReplica,
    /// A service update that changes more than the replica count.
    SpecChanged,
}

impl Rule {
    /// Every rule, for the counter's labels.
    pub const ALL: [Rule; 7] = [
        Rule::Endpoint,
        Rule::Query,
        Rule::Malformed,
        Rule::TooLarge,
        Rule::NotOptedIn,
        Rule::NotAReplica,
        Rule::SpecChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Endpoint => "endpoint",
            Rule::Query => "query",
            Rule::Malformed => "malformed",
            Rule::TooLarge => "too_large",
            Rule::NotOptedIn => "not_opted_in",
            Rule::NotAReplica => "not_a_replica",
            Rule::SpecChanged => "spec_changed",
        }
    }
}

/// A refused request: the rule and a one-line reason for the caller and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    pub reason: String,
}

impl Refusal {
    pub fn new(rule: Rule, reason: String) -> Self {
        Self { rule, reason }
    }
}

/// Whether a label object (`Config.Labels`, `Spec.Labels`, a listing's `Labels`) opts in.
pub fn opted_in(labels: Option<&Value>) -> bool {
    service_runtime::labels::opted_in(|key| labels?.get(key)?.as_str())
}

/// A label's value, `""` when absent.
pub fn label<'a>(labels: Option<&'a Value>, key: &str) -> &'a str {
    labels
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}
