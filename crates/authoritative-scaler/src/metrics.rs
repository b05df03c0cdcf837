//! The scaler's own metrics. Labels are bounded: actions, outcomes, error kinds, and the
//! services of the deployment.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct ScalerMetrics {
    /// Votes by what the tally did with them (`pending`, `complete`, `duplicate`, `late`,
    /// `stale`, `unexpected_model`).
    pub votes: IntCounterVec,
    /// Decisions by action and outcome.
    pub decisions: IntCounterVec,
    /// Backend failures by kind.
    pub backend_errors: IntCounterVec,
    /// Windows whose service the scaler refused to touch, by reason (`Refused::REASONS`).
    pub refused: IntCounterVec,
    /// 1 for a service without votes for `NO_VOTES_AFTER_SEC`, 0 once they come again.
    pub without_votes: IntGaugeVec,
    /// 1 while this scaler holds the journal's lock and decides; 0 while it stands by.
    pub active: IntGauge,
    /// Changes left in flight by a stopped scaler, settled at start, by outcome.
    pub reconciled: IntCounterVec,
    /// Replicas each service was set to (or kept at) by its last decision.
    pub target_replicas: IntGaugeVec,
    /// Replicas each opted-in service has, as the controller last saw them, by state
    /// (`counted`, `starting`, `restarting`).
    pub replicas: IntGaugeVec,
    /// From the feature vector's production to the decision.
    pub decision_latency: Histogram,
    /// Windows the tally holds: `open` (waiting for votes) and `closed` (remembered to refuse
    /// their replayed votes); both bounded.
    pub windows: IntGaugeVec,
    /// Changes held because an anomaly said they would not help or rested on suspect
    /// telemetry, by hold.
    pub anomaly_holds: IntCounterVec,
    /// Anomalies read from the aggregator, by kind.
    pub anomalies: IntCounterVec,
}

impl ScalerMetrics {
    /// Sets the gauges that follow the tally.
    pub fn tally(&self, tally: &decision::Tally) {
        self.windows
            .with_label_values(&["open"])
            .set(tally.open_windows() as i64);
        self.windows
            .with_label_values(&["open_new"])
            .set(tally.open_new_windows() as i64);
        self.windows
            .with_label_values(&["closed"])
            .set(tally.closed_windows() as i64);
    }

    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let votes = IntCounterVec::new(
            Opts::new(
                "scaler_votes_total",
                "Votes by what the tally did with them",
            ),
            &["outcome"],
        )?;
        let decisions = IntCounterVec::new(
            Opts::new(
                "scaler_decisions_total",
                "Decisions by voted action and outcome",
            ),
            &["action", "outcome"],
        )?;
        let backend_errors = IntCounterVec::new(
            Opts::new(
                "scaler_backend_errors_total",
                "Docker backend failures by kind",
            ),
            &["kind"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "scaler_refused_total",
                "Decided windows whose service may not be scaled, by reason",
            ),
            &["reason"],
        )?;
        let without_votes = IntGaugeVec::new(
            Opts::new(
                "scaler_without_votes",
                "1 while an opted-in service has had no votes for NO_VOTES_AFTER_SEC (held, or at FALLBACK_REPLICAS)",
            ),
            &["service"],
        )?;
        let active = IntGauge::new(
            "scaler_active",
            "1 while this scaler is the active one on its journal, 0 while it stands by",
        )?;
        let reconciled = IntCounterVec::new(
            Opts::new(
                "scaler_reconciled_total",
                "Replica changes in flight when the scaler stopped, settled against the engine at start",
            ),
            &["outcome"],
        )?;
        let target_replicas = IntGaugeVec::new(
            Opts::new(
                "scaler_target_replicas",
                "Replicas set or kept by the service's last decision",
            ),
            &["service"],
        )?;
        let replicas = IntGaugeVec::new(
            Opts::new(
                "scaler_replicas",
                "Replicas of an opted-in service at the controller's last look: counted (running, restarting, or created by Compose and about to start), starting (about to start, or health check not passed), restarting",
            ),
            &["service", "state"],
        )?;
        let decision_latency = Histogram::with_opts(
            HistogramOpts::new(
                "scaler_decision_latency_seconds",
                "Feature vector produced to decision made",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        let windows = IntGaugeVec::new(
            Opts::new(
                "scaler_windows",
                "Windows the tally holds: open (waiting for votes), open_new (of these, of services that have not completed a window lately), closed (remembered to refuse replayed votes)",
            ),
            &["state"],
        )?;
        registry.register(Box::new(votes.clone()))?;
        registry.register(Box::new(windows.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(backend_errors.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(active.clone()))?;
        registry.register(Box::new(without_votes.clone()))?;
        registry.register(Box::new(reconciled.clone()))?;
        registry.register(Box::new(target_replicas.clone()))?;
        registry.register(Box::new(replicas.clone()))?;
        registry.register(Box::new(decision_latency.clone()))?;
        let anomaly_holds = IntCounterVec::new(
            Opts::new(
                "scaler_anomaly_holds_total",
                "Changes held because an anomaly said a scale-up would not help (anomaly_not_load) or a scale-down rested on suspect telemetry (anomaly_suspect_telemetry)",
            ),
            &["hold"],
        )?;
        let anomalies = IntCounterVec::new(
            Opts::new(
                "scaler_anomalies_total",
                "Anomalies read from ANOMALIES_TOPIC, by kind",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(anomaly_holds.clone()))?;
        registry.register(Box::new(anomalies.clone()))?;
        for hold in [decision::Held::NotLoad, decision::Held::SuspectTelemetry] {
            anomaly_holds.with_label_values(&[hold.as_str()]);
        }
        for kind in contract::AnomalyKind::ALL {
            anomalies.with_label_values(&[kind.as_str()]);
        }
        for state in ["open", "closed"] {
            windows.with_label_values(&[state]);
        }
        for outcome in decision::Added::OUTCOMES {
            votes.with_label_values(&[outcome]);
        }
        for action in contract::Action::ALL {
            for outcome in contract::DecisionOutcome::ALL {
                decisions.with_label_values(&[action.as_str(), outcome.as_str()]);
            }
        }
        for kind in crate::backend::BackendError::KINDS {
            backend_errors.with_label_values(&[kind]);
        }
        for reason in crate::decider::Refused::REASONS {
            refused.with_label_values(&[reason]);
        }
        for outcome in [
            contract::DecisionOutcome::Applied,
            contract::DecisionOutcome::Failed,
        ] {
            reconciled.with_label_values(&[outcome.as_str()]);
        }
        Ok(Self {
            votes,
            decisions,
            backend_errors,
            refused,
            active,
            without_votes,
            reconciled,
            target_replicas,
            replicas,
            decision_latency,
            windows,
            anomaly_holds,
            anomalies,
        })
    }
}
