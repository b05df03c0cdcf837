//! What the aggregator found abnormal (the `anomalies` topic, issue 15), kept for the decisions:
//! per service and kind, the newest window it was seen in and why. A decision on a window holds
//! a scale-up while the service shows latency or errors that are not load, and a scale-down
//! while its telemetry is suspect, when an anomaly of that kind was seen within
//! [`HOLD_SPAN_SEC`] of the window (the anomaly of the window itself may arrive just after its
//! votes).

use contract::{Anomaly, AnomalyKind};
use decision::AnomalyHolds;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// An anomaly holds decisions on windows this many seconds before or after its own.
pub const HOLD_SPAN_SEC: u64 = 30;
/// Services remembered at most: anomalies of further services (forged names) are dropped.
const MAX_SERVICES: usize = 10_000;
/// An anomaly of a window further ahead of the clock than this is dropped: it would otherwise
/// pin its kind's slot and hide the real ones until then.
const MAX_AHEAD_SEC: u64 = 3_600;

/// Per kind, the newest window it was seen in and its detail.
type Seen = BTreeMap<AnomalyKind, (u64, String)>;

/// The newest anomalies per service and kind.
#[derive(Debug, Default)]
pub struct Anomalies {
    seen: Mutex<HashMap<String, Seen>>,
}

impl Anomalies {
    /// Keeps `anomaly` if it is the newest of its service and kind; false when it was dropped
    /// (a new service beyond [`MAX_SERVICES`], or a window far ahead of `now_secs`).
    pub fn note(&self, anomaly: &Anomaly, now_secs: u64) -> bool {
        if anomaly.window_id > now_secs.saturating_add(MAX_AHEAD_SEC) {
            return false;
        }
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if !seen.contains_key(&anomaly.service) && seen.len() >= MAX_SERVICES {
            return false;
        }
        let kinds = seen.entry(anomaly.service.clone()).or_default();
        let newer = kinds
            .get(&anomaly.kind)
            .is_none_or(|(window, _)| *window <= anomaly.window_id);
        if newer {
            kinds.insert(anomaly.kind, (anomaly.window_id, anomaly.detail.clone()));
        }
        true
    }

    /// The holds for a decision on `service`'s window `window_id`, with each hold on or off.
    pub fn holds(&self, service: &str, window_id: u64, up: bool, down: bool) -> AnomalyHolds {
        let Ok(seen) = self.seen.lock() else {
            return AnomalyHolds::default();
        };
        let Some(kinds) = seen.get(service) else {
            return AnomalyHolds::default();
        };
        let near = |w: u64| w.abs_diff(window_id) <= HOLD_SPAN_SEC;
        AnomalyHolds::from_anomalies(
            kinds
                .iter()
                .filter(|(_, (w, _))| near(*w))
                .map(|(kind, (_, detail))| (*kind, detail.as_str())),
            up,
            down,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anomaly(service: &str, window_id: u64, kind: AnomalyKind) -> Anomaly {
        Anomaly {
            service: service.into(),
            window_id,
            kind,
            observed: 0.9,
            expected: 0.15,
            score: 12.0,
            utilization: 0.3,
            detail: format!("{} at {window_id}", kind.as_str()),
            detected_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn an_anomaly_holds_the_windows_near_it_only() {
        let a = Anomalies::default();
        let now = 1000;
        assert!(a.note(
            &anomaly("orders", 1000, AnomalyKind::LatencyWithoutLoad),
            now
        ));
        assert!(a.note(&anomaly("orders", 990, AnomalyKind::ScrapeLoss), now));
        // A forged one far ahead is dropped and hides nothing.
        assert!(!a.note(
            &anomaly("orders", 90_000, AnomalyKind::LatencyWithoutLoad),
            now
        ));
        let holds = a.holds("orders", 1010, true, true);
        assert_eq!(
            holds.up.as_deref(),
            Some("latency_without_load (latency_without_load at 1000)")
        );
        assert!(holds.down.is_some());
        assert_eq!(
            a.holds("orders", 1040, true, true).up,
            None,
            "30 s later: over"
        );
        assert_eq!(a.holds("carts", 1000, true, true), AnomalyHolds::default());
        assert_eq!(
            a.holds("orders", 1000, false, false),
            AnomalyHolds::default()
        );
        // An older anomaly does not replace a newer one.
        a.note(
            &anomaly("orders", 900, AnomalyKind::LatencyWithoutLoad),
            now,
        );
        assert!(a.holds("orders", 1000, true, true).up.is_some());
    }
}
