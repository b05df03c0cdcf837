//! Settings of the authoritative scaler. The names users know from the seed
//! (`VOTING_STRATEGY`, `DECISION_WINDOW_SEC`) are kept as they are.

use clap::{ArgAction, Parser, ValueEnum};
use decision::{Guardrails, Strategy};
use fleet::config::{Validate, positive_secs};
use fleet::kafka::KafkaArgs;
use fleet::telemetry::LogArgs;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How votes are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyName {
    /// More than half of the votes agree.
    Majority,
    /// Every vote agrees.
    Unanimous,
    /// Largest sum of weight x confidence (VOTING_WEIGHTS, else held-out F1 from EVALUATION_JSON).
    Weighted,
}

/// What replica changes go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// Docker Compose services: replicas created and removed as Compose does.
    Compose,
    /// Docker Swarm services: the service's replica count is updated.
    Swarm,
    /// No Docker: the count the models observed is taken as current, and changes are logged,
    /// not made.
    Log,
}

/// A service's replica bounds, `SERVICE=MIN:MAX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLimit {
    pub service: String,
    pub min: u32,
    pub max: u32,
}

fn parse_limit(s: &str) -> Result<ServiceLimit, String> {
    let (service, range) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not SERVICE=MIN:MAX"))?;
    let (min, max) = range
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not SERVICE=MIN:MAX"))?;
    let (min, max): (u32, u32) = (
        min.trim()
            .parse()
            .map_err(|_| format!("{s:?}: {min:?} is not a count"))?,
        max.trim()
            .parse()
            .map_err(|_| format!("{s:?}: {max:?} is not a count"))?,
    );
    if min == 0 || max < min {
        return Err(format!("{s:?}: need 1 <= MIN <= MAX"));
    }
    Ok(ServiceLimit {
        service: service.trim().to_owned(),
        min,
        max,
    })
}

fn parse_weight(s: &str) -> Result<(String, f64), String> {
    let (model, weight) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not MODEL=WEIGHT"))?;
    let weight: f64 = weight
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: not a number"))?;
    if !(weight.is_finite() && weight >= 0.0) {
        return Err(format!("{s:?}: a weight is 0 or more"));
    }
    Ok((model.trim().to_owned(), weight))
}

/// Tallies the models' votes per service and window, applies the voting strategy, prints the
/// decision block, and changes the service's replica count through the Docker Engine API within
/// guardrails (bounds, cooldowns, scale-down stabilization, step limits).
#[derive(Debug, Clone, Parser)]
#[command(name = "authoritative-scaler", version)]
pub struct ScalerConfig {
    /// How votes are combined.
    #[arg(long, env = "VOTING_STRATEGY", value_enum, default_value = "majority")]
    pub voting_strategy: StrategyName,
    /// Weights for the weighted strategy, MODEL=WEIGHT comma-separated.
    #[arg(long, env = "VOTING_WEIGHTS", value_delimiter = ',')]
    pub voting_weights: Vec<String>,
    /// Where held-out F1 scores are read as weights when VOTING_WEIGHTS is empty.
    #[arg(
        long,
        env = "EVALUATION_JSON",
        default_value = "models/evaluation.json"
    )]
    pub evaluation_json: PathBuf,
    /// Seconds a window waits for its votes after the first (sooner when all have voted).
    #[arg(long, env = "DECISION_WINDOW_SEC", default_value = "5", value_parser = positive_secs)]
    pub decision_window_sec: u64,
    /// The models expected to vote, comma-separated.
    #[arg(
        long,
        env = "EXPECTED_MODELS",
        value_delimiter = ',',
        default_value = "xgboost,random_forest,logistic_regression"
    )]
    pub expected_models: Vec<String>,
    /// Votes a window needs to be decided; fewer means NO ACTION.
    #[arg(long, env = "MIN_VOTES", default_value_t = 2)]
    pub min_votes: usize,
    /// Votes on feature vectors older than this many seconds are ignored.
    #[arg(long, env = "MAX_VOTE_AGE_SEC", default_value = "120", value_parser = positive_secs)]
    pub max_vote_age_sec: u64,

    /// Fewest replicas of any service.
    #[arg(long, env = "MIN_REPLICAS", default_value_t = 1)]
    pub min_replicas: u32,
    /// Most replicas of any service.
    #[arg(long, env = "MAX_REPLICAS", default_value_t = 10)]
    pub max_replicas: u32,
    /// Per-service bounds, SERVICE=MIN:MAX comma-separated (container labels
    /// `autoscaler.min_replicas` / `autoscaler.max_replicas` also set them).
    #[arg(long, env = "SERVICE_LIMITS", value_delimiter = ',')]
    pub service_limits: Vec<String>,
    /// Most replicas added by one decision (or MAX_STEP_UP_PERCENT of the count, if more).
    #[arg(long, env = "MAX_STEP_UP", default_value_t = Guardrails::default().max_step_up)]
    pub max_step_up: u32,
    /// Share of the current count one decision may add, when more than MAX_STEP_UP (HPA: 100).
    #[arg(long, env = "MAX_STEP_UP_PERCENT", default_value_t = Guardrails::default().max_step_up_percent)]
    pub max_step_up_percent: u32,
    /// Most replicas removed by one decision (or MAX_STEP_DOWN_PERCENT of the count, if more).
    #[arg(long, env = "MAX_STEP_DOWN", default_value_t = Guardrails::default().max_step_down)]
    pub max_step_down: u32,
    /// Share of the current count one decision may remove, when more than MAX_STEP_DOWN.
    #[arg(long, env = "MAX_STEP_DOWN_PERCENT", default_value_t = Guardrails::default().max_step_down_percent)]
    pub max_step_down_percent: u32,
    /// No scale-up within this many seconds of the last scale-up.
    #[arg(long, env = "SCALE_UP_COOLDOWN_SEC", default_value_t = Guardrails::default().scale_up_cooldown.num_seconds() as u64)]
    pub scale_up_cooldown_sec: u64,
    /// No scale-down within this many seconds of the last change.
    #[arg(long, env = "SCALE_DOWN_COOLDOWN_SEC", default_value_t = Guardrails::default().scale_down_cooldown.num_seconds() as u64)]
    pub scale_down_cooldown_sec: u64,
    /// Scale down only to the highest count desired within this many seconds (HPA's
    /// scale-down stabilization window; 300 s there, 20 s here, since the votes already size a
    /// scale-down for the next 90 s: see docs/EVALUATION.md).
    #[arg(long, env = "STABILIZATION_WINDOW_SEC", default_value_t = Guardrails::default().stabilization.num_seconds() as u64)]
    pub stabilization_window_sec: u64,
    /// Narrows scaling to these services, comma-separated. Only services opted in by their
    /// label autoscaler.enable=true are ever changed, listed here or not; empty: every
    /// opted-in service.
    #[arg(long, env = "SCALED_SERVICES", value_delimiter = ',')]
    pub scaled_services: Vec<String>,
    /// Seconds between the controller's rounds: on its own schedule, whatever the votes, it
    /// brings every opted-in service back within its bounds and applies NO_VOTES_AFTER_SEC.
    #[arg(long, env = "RECONCILE_INTERVAL_SEC", default_value = "15", value_parser = positive_secs)]
    pub reconcile_interval_sec: u64,
    /// A service with no ballot for this many seconds is without votes (the models or the
    /// metrics are gone): held where it is and flagged, or set to FALLBACK_REPLICAS.
    #[arg(long, env = "NO_VOTES_AFTER_SEC", default_value = "300", value_parser = positive_secs)]
    pub no_votes_after_sec: u64,
    /// Replicas a service without votes goes to, within its bounds (KEDA's fallback); unset:
    /// it is held where it is.
    #[arg(long, env = "FALLBACK_REPLICAS")]
    pub fallback_replicas: Option<u32>,
    /// Decide and log, but change nothing.
    #[arg(long, env = "DRY_RUN", default_value_t = false, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub dry_run: bool,

    /// What replica changes go through.
    #[arg(long, env = "SCALER_BACKEND", value_enum, default_value = "compose")]
    pub scaler_backend: BackendName,
    /// Docker Engine API: unix:///var/run/docker.sock, or tcp://host:port (a socket proxy).
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Seconds one Engine API request may take before it fails (and is retried): an engine that
    /// hangs holds the decisions no longer. More than STOP_TIMEOUT_SEC.
    #[arg(long, env = "DOCKER_TIMEOUT_SEC", default_value_t = crate::backend::DEFAULT_TIMEOUT_SEC, value_parser = positive_secs)]
    pub docker_timeout_sec: u64,
    /// Compose project whose services are scaled (default: any project with that service).
    #[arg(long, env = "COMPOSE_PROJECT_NAME")]
    pub compose_project: Option<String>,
    /// Seconds a removed replica gets to stop before it is killed (default: its own stop timeout).
    #[arg(long, env = "STOP_TIMEOUT_SEC")]
    pub stop_timeout_sec: Option<i64>,

    /// Topic of the votes.
    #[arg(long, env = "VOTES_TOPIC", default_value = contract::VOTES_TOPIC)]
    pub votes_topic: String,
    /// Topic the decision records are published to.
    #[arg(long, env = "DECISIONS_TOPIC", default_value = contract::DECISIONS_TOPIC)]
    pub decisions_topic: String,
    /// Consumer group.
    #[arg(long, env = "CONSUMER_GROUP", default_value = "authoritative-scaler")]
    pub consumer_group: String,
    /// Every decision is appended here.
    #[arg(long, env = "DECISIONS_CSV", default_value = "output/decisions.csv")]
    pub decisions_csv: PathBuf,
    /// Address of the /metrics and /healthz endpoints.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:9105")]
    pub listen_addr: SocketAddr,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The non-empty entries of a comma-separated setting (`VAR=` is no entry).
fn entries(raw: &[String]) -> impl Iterator<Item = &str> {
    raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl Validate for ScalerConfig {
    fn validate(&self) -> Result<(), String> {
        for entry in entries(&self.service_limits) {
            parse_limit(entry).map_err(|e| format!("SERVICE_LIMITS (--service-limits): {e}"))?;
        }
        for entry in entries(&self.voting_weights) {
            parse_weight(entry).map_err(|e| format!("VOTING_WEIGHTS (--voting-weights): {e}"))?;
        }
        if self.min_replicas == 0 || self.max_replicas < self.min_replicas {
            return Err(format!(
                "MIN_REPLICAS ({}) and MAX_REPLICAS ({}): need 1 <= MIN_REPLICAS <= MAX_REPLICAS",
                self.min_replicas, self.max_replicas
            ));
        }
        let models = self.expected_models().len();
        if models == 0 {
            return Err("EXPECTED_MODELS (--expected-models) is empty".into());
        }
        if self.min_votes == 0 || self.min_votes > models {
            return Err(format!(
                "MIN_VOTES (--min-votes) must be between 1 and the {models} expected models"
            ));
        }
        if self.fallback_replicas == Some(0) {
            return Err(
                "FALLBACK_REPLICAS (--fallback-replicas) must be at least 1, or unset to hold"
                    .into(),
            );
        }
        if self.max_step_up == 0 || self.max_step_down == 0 {
            return Err("MAX_STEP_UP and MAX_STEP_DOWN must be at least 1".into());
        }
        if let Some(stop) = self.stop_timeout_sec
            && stop >= self.docker_timeout_sec as i64
        {
            return Err(format!(
                "DOCKER_TIMEOUT_SEC ({}) must be more than STOP_TIMEOUT_SEC ({stop}): stopping a replica takes that long",
                self.docker_timeout_sec
            ));
        }
        let host = &self.docker_host;
        if self.scaler_backend != BackendName::Log
            && !(host.starts_with("unix://")
                || host.starts_with("tcp://")
                || host.starts_with("http://"))
        {
            return Err(format!(
                "DOCKER_HOST (--docker-host): {host:?} is not unix://PATH or tcp://HOST:PORT"
            ));
        }
        self.kafka.validate()
    }
}

impl ScalerConfig {
    /// The guardrails every service starts from.
    pub fn guardrails(&self) -> Guardrails {
        Guardrails {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            max_step_up: self.max_step_up,
            max_step_up_percent: self.max_step_up_percent,
            max_step_down: self.max_step_down,
            max_step_down_percent: self.max_step_down_percent,
            scale_up_cooldown: chrono::Duration::seconds(self.scale_up_cooldown_sec as i64),
            scale_down_cooldown: chrono::Duration::seconds(self.scale_down_cooldown_sec as i64),
            stabilization: chrono::Duration::seconds(self.stabilization_window_sec as i64),
        }
    }

    /// The strategy, with weights from VOTING_WEIGHTS or else the held-out F1 scores.
    pub fn strategy(&self) -> Strategy {
        match self.voting_strategy {
            StrategyName::Majority => Strategy::Majority,
            StrategyName::Unanimous => Strategy::Unanimous,
            StrategyName::Weighted => {
                let mut weights: BTreeMap<String, f64> = entries(&self.voting_weights)
                    .filter_map(|w| parse_weight(w).ok())
                    .collect();
                if weights.is_empty() {
                    weights = held_out_f1(&self.evaluation_json);
                }
                Strategy::Weighted(weights)
            }
        }
    }

    /// The configured bounds of a service, if any.
    pub fn limit_of(&self, service: &str) -> Option<ServiceLimit> {
        entries(&self.service_limits)
            .filter_map(|l| parse_limit(l).ok())
            .find(|l| l.service == service)
    }

    /// Whether `SCALED_SERVICES` lets the scaler change this service (empty: no further
    /// restriction; the service must still be opted in by its label).
    pub fn may_scale(&self, service: &str) -> bool {
        let mut allowed = entries(&self.scaled_services).peekable();
        allowed.peek().is_none() || allowed.any(|s| s == service)
    }

    /// The expected models, in order, without empty entries.
    pub fn expected_models(&self) -> Vec<String> {
        entries(&self.expected_models).map(str::to_owned).collect()
    }
}

/// The held-out F1 scores in the trainer's evaluation.json; empty when unreadable.
fn held_out_f1(path: &std::path::Path) -> BTreeMap<String, f64> {
    std::fs::read(path)
        .map(|bytes| decision::voting::held_out_f1(&bytes))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_settings_are_unset() {
        let config = ScalerConfig::try_parse_from([
            "s",
            "--service-limits",
            "",
            "--scaled-services",
            "",
            "--voting-weights",
            "",
        ])
        .unwrap();
        assert!(config.validate().is_ok());
        assert!(
            config.may_scale("orders"),
            "an empty SCALED_SERVICES narrows nothing (the opt-in label still decides)"
        );
        assert_eq!(config.limit_of("orders"), None);
        let config = ScalerConfig::try_parse_from([
            "s",
            "--service-limits",
            "orders=2:6,",
            "--scaled-services",
            "carts",
        ])
        .unwrap();
        assert_eq!(
            config.limit_of("orders").map(|l| (l.min, l.max)),
            Some((2, 6))
        );
        assert!(!config.may_scale("orders") && config.may_scale("carts"));
        let bad = ScalerConfig::try_parse_from(["s", "--service-limits", "orders=6:2"]).unwrap();
        assert!(bad.validate().unwrap_err().contains("SERVICE_LIMITS"));
    }

    #[test]
    fn limits_and_weights_parse() {
        assert_eq!(
            parse_limit("orders=2:6").unwrap(),
            ServiceLimit {
                service: "orders".into(),
                min: 2,
                max: 6
            }
        );
        assert!(parse_limit("orders=6:2").is_err());
        assert!(parse_limit("orders=0:2").is_err());
        assert!(parse_limit("orders").is_err());
        assert_eq!(
            parse_weight("xgboost=0.9").unwrap(),
            ("xgboost".into(), 0.9)
        );
        assert!(parse_weight("xgboost=-1").is_err());
    }

    #[test]
    fn weights_fall_back_to_held_out_f1() {
        let dir = std::env::temp_dir().join(format!("scaler-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("evaluation.json");
        std::fs::write(
            &path,
            r#"{"models":[{"model":"xgboost","held_out":[{"classification":{"f1":0.8}}]}]}"#,
        )
        .unwrap();
        let config = ScalerConfig::try_parse_from([
            "s",
            "--voting-strategy",
            "weighted",
            "--evaluation-json",
            path.to_str().unwrap(),
        ])
        .unwrap();
        assert_eq!(
            config.strategy(),
            Strategy::Weighted(BTreeMap::from([("xgboost".into(), 0.8)]))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
