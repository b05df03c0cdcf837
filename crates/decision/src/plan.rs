//! One window's decision, from its votes to the replica count to go to: the voting strategy, the
//! proportional target, then the guardrails. The scaler runs this for every closed window and
//! then acts on the result; the offline trace replay runs the same function on simulated time.

use crate::guardrails::{Guardrails, Held, History, Verdict};
use crate::target;
use crate::voting::{self, Strategy, Tallied};
use chrono::{DateTime, Utc};
use contract::{AnomalyKind, VoteSummary};

/// What the votes of one window ask for, and what the guardrails allow.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The strategy's action and vote counts.
    pub tallied: Tallied,
    /// The proportional count the votes ask for, before guardrails.
    pub desired: u32,
    /// The count to go to.
    pub verdict: Verdict,
    /// Why, in one line: the vote, the target, the guardrails.
    pub reason: String,
}

/// Decides one window: `votes` under `strategy` (fewer than `quorum` votes: NO_ACTION), the
/// target from the agreeing votes' safe counts, and the guardrails from `current` at `now`.
/// `history` remembers the recommendation; call [`History::record_change`] once the change is
/// made.
pub fn plan(
    strategy: &Strategy,
    quorum: usize,
    votes: &[VoteSummary],
    current: u32,
    guardrails: &Guardrails,
    history: &mut History,
    now: DateTime<Utc>,
) -> Plan {
    let tallied = voting::tally(strategy, votes, quorum);
    let (desired, why) = target::desired(tallied.action, votes, current);
    let verdict = guardrails.apply(history, current, desired, now);
    let reason = format!("{}; {why}; {}", tallied.reason, verdict.reason);
    Plan {
        tallied,
        desired,
        verdict,
        reason,
    }
}

/// What the window's anomalies hold, whatever the votes ask for (`features::anomaly` finds
/// them; each hold can be switched off).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnomalyHolds {
    /// Why more replicas would not help: latency or errors that are not load.
    pub up: Option<String>,
    /// Why the load read may not be real: lost traffic or scrapes.
    pub down: Option<String>,
}

impl AnomalyHolds {
    /// The holds of a window's anomalies (`kind`, `detail`), with holding scale-up on latency
    /// that is not load (`hold_up`) and scale-down on suspect telemetry (`hold_down`) on or off.
    pub fn from_anomalies<'a>(
        anomalies: impl IntoIterator<Item = (AnomalyKind, &'a str)>,
        hold_up: bool,
        hold_down: bool,
    ) -> Self {
        let mut holds = AnomalyHolds::default();
        for (kind, detail) in anomalies {
            let slot = if kind.not_load() && hold_up {
                &mut holds.up
            } else if kind.suspect_telemetry() && hold_down {
                &mut holds.down
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(format!("{} ({detail})", kind.as_str()));
            }
        }
        holds
    }
}

impl Plan {
    /// Keeps `current` instead of the planned change when the window's anomalies say a scale-up
    /// would not help or a scale-down rests on suspect telemetry; a change to reach the bounds
    /// of `guardrails` from outside them is never held. Call after [`plan`], before acting.
    pub fn hold_for(&mut self, current: u32, holds: &AnomalyHolds, guardrails: &Guardrails) {
        let forced = !(guardrails.min_replicas..=guardrails.max_replicas).contains(&current);
        let target = self.verdict.target;
        let (held, why) = match target {
            t if t > current && !forced => (Some(Held::NotLoad), holds.up.as_ref()),
            t if t < current && !forced => (Some(Held::SuspectTelemetry), holds.down.as_ref()),
            _ => (None, None),
        };
        if let (Some(held), Some(why)) = (held, why) {
            let what = if held == Held::NotLoad {
                "a scale-up would not help"
            } else {
                "a scale-down would rest on suspect telemetry"
            };
            self.verdict.target = current;
            self.verdict.applied.push(held);
            self.reason = format!("{}; held at {current}: {what}: {why}", self.reason);
            self.verdict.reason = format!("{}; held: {}", self.verdict.reason, held.as_str());
            return;
        }
        // Nothing to hold: the anomalies are still said, so the log shows what the scaler
        // would not do now.
        if let Some(why) = &holds.up {
            self.reason = format!("{}; anomaly: {why}: a scale-up would be held", self.reason);
        }
        if let Some(why) = &holds.down {
            self.reason = format!(
                "{}; anomaly: {why}: a scale-down would be held",
                self.reason
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::Action;

    fn v(model: &str, action: Action, safe_replicas: u32) -> VoteSummary {
        VoteSummary {
            model: model.into(),
            action,
            confidence: 0.9,
            safe_replicas,
        }
    }

    #[test]
    fn votes_to_a_guarded_count() {
        let votes = [
            v("a", Action::ScaleUp, 6),
            v("b", Action::ScaleUp, 9),
            v("c", Action::NoAction, 2),
        ];
        let (g, mut h) = (Guardrails::default(), History::default());
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let p = plan(&Strategy::Majority, 2, &votes, 2, &g, &mut h, now);
        assert_eq!(p.tallied.action, Action::ScaleUp);
        assert_eq!(p.desired, 9);
        assert_eq!(p.verdict.target, 6, "at most 4 more at once: {p:?}");
        assert!(p.reason.contains("majority SCALE UP"), "{}", p.reason);
        assert!(p.reason.contains("step limit"), "{}", p.reason);
        let p = plan(&Strategy::Unanimous, 2, &votes, 2, &g, &mut h, now);
        assert_eq!((p.tallied.action, p.verdict.target), (Action::NoAction, 2));
    }

    #[test]
    fn anomalies_hold_what_they_say_would_not_help() {
        let up = [
            v("a", Action::ScaleUp, 6),
            v("b", Action::ScaleUp, 6),
            v("c", Action::NoAction, 2),
        ];
        let (g, mut h) = (Guardrails::default(), History::default());
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let slow = [(AnomalyKind::LatencyWithoutLoad, "p95 0.9 s at 30 %")];
        let holds = AnomalyHolds::from_anomalies(slow, true, true);
        let mut p = plan(&Strategy::Majority, 2, &up, 2, &g, &mut h, now);
        p.hold_for(2, &holds, &g);
        assert_eq!((p.desired, p.verdict.target), (6, 2));
        assert!(
            p.reason.contains(
                "held at 2: a scale-up would not help: latency_without_load (p95 0.9 s at 30 %)"
            ),
            "{}",
            p.reason
        );
        // Nothing asked for: the anomaly is said all the same.
        let none = [v("a", Action::NoAction, 2), v("b", Action::NoAction, 2)];
        let mut p = plan(&Strategy::Majority, 2, &none, 2, &g, &mut h, now);
        p.hold_for(2, &holds, &g);
        assert_eq!(p.verdict.target, 2);
        assert!(
            p.reason.contains(
                "anomaly: latency_without_load (p95 0.9 s at 30 %): a scale-up would be held"
            ),
            "{}",
            p.reason
        );
        // Switched off, or of the other kind: the change stands.
        for holds in [
            AnomalyHolds::from_anomalies(slow, false, true),
            AnomalyHolds::from_anomalies([(AnomalyKind::ScrapeLoss, "1 of 2")], true, true),
        ] {
            let mut p = plan(&Strategy::Majority, 2, &up, 2, &g, &mut h, now);
            p.hold_for(2, &holds, &g);
            assert_eq!(p.verdict.target, 6, "{holds:?}");
        }
        // Suspect telemetry holds a scale-down.
        let down = [v("a", Action::ScaleDown, 3), v("b", Action::ScaleDown, 3)];
        let lost =
            AnomalyHolds::from_anomalies([(AnomalyKind::TrafficLoss, "0 req/s")], true, true);
        let mut h = History::default();
        let g = Guardrails {
            stabilization: chrono::Duration::zero(),
            ..Guardrails::default()
        };
        let mut p = plan(&Strategy::Majority, 2, &down, 4, &g, &mut h, now);
        assert!(p.verdict.target < 4, "{p:?}");
        p.hold_for(4, &lost, &g);
        assert_eq!(p.verdict.target, 4);
        assert!(p.reason.contains("suspect telemetry"), "{}", p.reason);
        // Votes beyond the bounds are clamped, and the clamped change is held all the same;
        // from outside the bounds, the change back into them is not.
        let g = Guardrails {
            max_replicas: 4,
            ..Guardrails::default()
        };
        let mut h = History::default();
        let mut p = plan(&Strategy::Majority, 2, &up, 3, &g, &mut h, now);
        assert_eq!(p.verdict.target, 4, "{p:?}");
        p.hold_for(3, &holds, &g);
        assert_eq!(p.verdict.target, 3);
        let both = AnomalyHolds::from_anomalies(
            [
                (AnomalyKind::LatencyWithoutLoad, "slow"),
                (AnomalyKind::ScrapeLoss, "1 of 6"),
            ],
            true,
            true,
        );
        let mut p = plan(&Strategy::Majority, 2, &up, 6, &g, &mut h, now);
        p.hold_for(6, &both, &g);
        assert_eq!(p.verdict.target, 4, "back within the bounds: {p:?}");
    }
}
