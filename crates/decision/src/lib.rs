//! The authoritative scaler's decision logic, with no Kafka, HTTP or Docker inside, so that the
//! scaler service and the offline trace replay decide with the same code:
//!
//! - [`tally`]: votes gathered per service and window, each window closed once.
//! - [`voting`]: majority, unanimous and weighted strategies.
//! - [`target`]: the proportional replica count the vote asks for.
//! - [`guardrails`]: bounds, step limits, cooldowns, scale-down stabilization.
//! - [`plan`]: the three above in order, for one window: what the scaler and the replay run.
//! - [`block`]: the decision block of the decision log.

pub mod block;
pub mod guardrails;
pub mod plan;
pub mod tally;
pub mod target;
pub mod voting;

pub use guardrails::{Guardrails, Held, History, Verdict};
pub use plan::{AnomalyHolds, Plan, plan};
pub use tally::{Added, Ballot, Tally, TallyConfig};
pub use voting::{Strategy, Tallied};
