//! Settings of the authoritative scaler. The names users know from the seed
//! (`VOTING_STRATEGY`, `DECISION_WINDOW_SEC`) are kept as they are.

use clap::{ArgAction, Parser, ValueEnum};
use decision::{Guardrails, Strategy};
use service_runtime::config::{Secs, Validate, comma_list, positive_secs, secs};
use service_runtime::kafka::KafkaArgs;
use service_runtime::telemetry::LogArgs;
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

/// `SERVICE_LIMITS`, parsed once: at most one entry per service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceLimits(Vec<ServiceLimit>);

fn service_limits(s: &str) -> Result<ServiceLimits, String> {
    let limits = comma_list(s, parse_limit)?;
    if let Some(twice) = limits
        .iter()
        .enumerate()
        .find(|(i, l)| limits[..*i].iter().any(|m| m.service == l.service))
    {
        return Err(format!("{:?} is given twice", twice.1.service));
    }
    Ok(ServiceLimits(limits))
}

/// `VOTING_WEIGHTS`, parsed once (or read from `EVALUATION_JSON` at start, see
/// [`ScalerConfig::resolve`]): model to weight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights(pub BTreeMap<String, f64>);

fn weights(s: &str) -> Result<Weights, String> {
    let mut weights = BTreeMap::new();
    for (model, weight) in comma_list(s, parse_weight)? {
        if weights.insert(model.clone(), weight).is_some() {
            return Err(format!("{model:?} is given twice"));
        }
    }
    Ok(Weights(weights))
}

/// A comma-separated list of names (services, models), parsed once; empty entries dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

fn names(s: &str) -> Result<Names, String> {
    comma_list(s, |name| {
        if name.contains(char::is_whitespace) {
            Err(format!("{name:?} is not a name"))
        } else {
            Ok(name.to_owned())
        }
    })
    .map(Names)
}

/// The services of `CONSUMER_GROUPS` (`service=group@topic`, as the aggregator reads it).
fn group_services(s: &str) -> Result<Names, String> {
    comma_list(s, |entry| {
        service_runtime::config::group_target(entry).map(|(service, _, _)| service)
    })
    .map(Names)
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
    /// Weights for the weighted strategy, MODEL=WEIGHT comma-separated, one for each expected
    /// model (empty: the held-out F1 scores in EVALUATION_JSON, read once at start).
    #[arg(long, env = "VOTING_WEIGHTS", default_value = "", value_parser = weights)]
    pub voting_weights: Weights,
    /// Where held-out F1 scores are read as weights when VOTING_WEIGHTS is empty.
    #[arg(
        long,
        env = "EVALUATION_JSON",
        default_value = "models/evaluation.json"
    )]
    pub evaluation_json: PathBuf,
    /// Seconds a window waits for its votes after the first (sooner when all have voted).
    #[arg(long, env = "DECISION_WINDOW_SEC", default_value = "5", value_parser = positive_secs)]
    pub decision_window_sec: Secs,
    /// The models expected to vote, comma-separated.
    #[arg(
        long,
        env = "EXPECTED_MODELS",
        default_value = "xgboost,random_forest,logistic_regression",
        value_parser = names
    )]
    pub expected_models: Names,
    /// Votes a window needs to be decided; fewer means NO ACTION.
    #[arg(long, env = "MIN_VOTES", default_value_t = 2)]
    pub min_votes: usize,
    /// Votes on feature vectors older than this many seconds are ignored.
    #[arg(long, env = "MAX_VOTE_AGE_SEC", default_value = "120", value_parser = positive_secs)]
    pub max_vote_age_sec: Secs,

    /// Fewest replicas of any service.
    #[arg(long, env = "MIN_REPLICAS", default_value_t = 1)]
    pub min_replicas: u32,
    /// Most replicas of any service.
    #[arg(long, env = "MAX_REPLICAS", default_value_t = 10)]
    pub max_replicas: u32,
    /// Per-service bounds, SERVICE=MIN:MAX comma-separated (container labels
    /// `autoscaler.min_replicas` / `autoscaler.max_replicas` also set them).
    #[arg(long, env = "SERVICE_LIMITS", default_value = "", value_parser = service_limits)]
    pub service_limits: ServiceLimits,
    /// Most replicas added by one decision (or MAX_STEP_UP_PERCENT of the count, if more); not
    /// for the services of CONSUMER_GROUPS, whose scale-ups go the whole way in one.
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
    #[arg(long, env = "SCALE_UP_COOLDOWN_SEC", default_value_t = secs_of(Guardrails::default().scale_up_cooldown), value_parser = secs)]
    pub scale_up_cooldown_sec: Secs,
    /// No scale-down within this many seconds of the last change.
    #[arg(long, env = "SCALE_DOWN_COOLDOWN_SEC", default_value_t = secs_of(Guardrails::default().scale_down_cooldown), value_parser = secs)]
    pub scale_down_cooldown_sec: Secs,
    /// Scale down only to the highest count desired within this many seconds (HPA's
    /// scale-down stabilization window; 300 s there, 20 s here, since the votes already size a
    /// scale-down for the next 90 s: see docs/EVALUATION.md).
    #[arg(long, env = "STABILIZATION_WINDOW_SEC", default_value_t = secs_of(Guardrails::default().stabilization), value_parser = secs)]
    pub stabilization_window_sec: Secs,
    /// Narrows scaling to these services, comma-separated. Only services opted in by their
    /// label autoscaler.enable=true are ever changed, listed here or not; empty: every
    /// opted-in service.
    #[arg(long, env = "SCALED_SERVICES", default_value = "", value_parser = names)]
    pub scaled_services: Names,
    /// The consumer groups the aggregator sizes, as service=group@topic, comma-separated (the
    /// aggregator's setting): a scale-up of these services goes to the voted count in one
    /// decision, whatever MAX_STEP_UP, since each change is a rebalance that stops the group.
    #[arg(long, env = "CONSUMER_GROUPS", default_value = "", value_parser = group_services)]
    pub consumer_groups: Names,
    /// Seconds between the controller's rounds: on its own schedule, whatever the votes, it
    /// brings every opted-in service back within its bounds and applies NO_VOTES_AFTER_SEC.
    #[arg(long, env = "RECONCILE_INTERVAL_SEC", default_value = "15", value_parser = positive_secs)]
    pub reconcile_interval_sec: Secs,
    /// A service with no ballot for this many seconds is without votes (the models or the
    /// metrics are gone): held where it is and flagged, or set to FALLBACK_REPLICAS.
    #[arg(long, env = "NO_VOTES_AFTER_SEC", default_value = "300", value_parser = positive_secs)]
    pub no_votes_after_sec: Secs,
    /// Replicas a service without votes goes to, within its bounds (KEDA's fallback); unset:
    /// it is held where it is.
    #[arg(long, env = "FALLBACK_REPLICAS")]
    pub fallback_replicas: Option<u32>,
    /// Hold a scale-up while the aggregator finds latency or errors that the service's load
    /// does not explain (anomalies `latency_without_load`, `errors_without_load`): more replicas
    /// would not help a slow or failing dependency.
    #[arg(long, env = "HOLD_SCALE_UP_ON_ANOMALY", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub hold_scale_up_on_anomaly: bool,
    /// Hold a scale-down while the service's telemetry is suspect (anomalies `traffic_loss`,
    /// `scrape_loss`): a quiet reading may not be a quiet service.
    #[arg(long, env = "HOLD_SCALE_DOWN_ON_SUSPECT_TELEMETRY", default_value_t = true,
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub hold_scale_down_on_suspect_telemetry: bool,
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
    #[arg(long, env = "DOCKER_TIMEOUT_SEC", default_value_t = Secs::new(crate::backend::DEFAULT_TIMEOUT_SEC), value_parser = positive_secs)]
    pub docker_timeout_sec: Secs,
    /// Compose project whose services are scaled (default: any project with that service).
    #[arg(long, env = "COMPOSE_PROJECT_NAME")]
    pub compose_project: Option<String>,
    /// Seconds a removed replica gets to stop before it is killed (default: its own stop timeout).
    #[arg(long, env = "STOP_TIMEOUT_SEC", value_parser = secs)]
    pub stop_timeout_sec: Option<Secs>,

    /// Topic of the votes.
    #[arg(long, env = "VOTES_TOPIC", default_value = contract::VOTES_TOPIC)]
    pub votes_topic: String,
    /// Topic the decision records are published to.
    #[arg(long, env = "DECISIONS_TOPIC", default_value = contract::DECISIONS_TOPIC)]
    pub decisions_topic: String,
    /// Topic of the aggregator's anomalies (read with the group CONSUMER_GROUP-anomalies).
    #[arg(long, env = "ANOMALIES_TOPIC", default_value = contract::ANOMALIES_TOPIC)]
    pub anomalies_topic: String,
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

/// A guardrail's default duration as a setting (whole seconds, within [`Secs::MAX`]).
fn secs_of(duration: chrono::TimeDelta) -> Secs {
    Secs::new(u32::try_from(duration.num_seconds()).unwrap_or(u32::MAX))
}

impl Validate for ScalerConfig {
    fn validate(&self) -> Result<(), String> {
        if self.min_replicas == 0 || self.max_replicas < self.min_replicas {
            return Err(format!(
                "MIN_REPLICAS ({}) and MAX_REPLICAS ({}): need 1 <= MIN_REPLICAS <= MAX_REPLICAS",
                self.min_replicas, self.max_replicas
            ));
        }
        let models = self.expected_models.0.len();
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
            && stop >= self.docker_timeout_sec
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
        let expected = &self.expected_models.0;
        if let Some(stray) = self.voting_weights.0.keys().find(|m| !expected.contains(m)) {
            return Err(format!(
                "VOTING_WEIGHTS (--voting-weights): {stray:?} is not one of EXPECTED_MODELS ({})",
                expected.join(",")
            ));
        }
        if !self.voting_weights.0.is_empty()
            && let Some(missing) = expected
                .iter()
                .find(|m| !self.voting_weights.0.contains_key(*m))
        {
            return Err(format!(
                "VOTING_WEIGHTS (--voting-weights): no weight for {missing:?}; give every expected \
                 model one (0 ignores its votes)"
            ));
        }
        self.kafka.validate()
    }

    /// The weighted strategy without VOTING_WEIGHTS takes the held-out F1 scores: read here,
    /// once, and refused when they cannot be read (`weighted` never quietly becomes `majority`).
    fn resolve(&mut self) -> Result<(), String> {
        if self.voting_strategy != StrategyName::Weighted || !self.voting_weights.0.is_empty() {
            return Ok(());
        }
        let path = &self.evaluation_json;
        let f1 = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| formats::evaluation::held_out_f1(&bytes))
            .map_err(|e| {
                format!(
                    "VOTING_STRATEGY=weighted without VOTING_WEIGHTS reads the held-out F1 in \
                     EVALUATION_JSON ({}): {e}; set VOTING_WEIGHTS=MODEL=WEIGHT,...",
                    path.display()
                )
            })?;
        let missing: Vec<&str> = (self.expected_models.0.iter())
            .filter(|m| !f1.contains_key(*m))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "VOTING_STRATEGY=weighted: EVALUATION_JSON ({}) has no held-out F1 for {}; set \
                 VOTING_WEIGHTS=MODEL=WEIGHT,...",
                path.display(),
                missing.join(",")
            ));
        }
        self.voting_weights = Weights(
            f1.into_iter()
                .filter(|(m, _)| self.expected_models.0.contains(m))
                .collect(),
        );
        Ok(())
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
            scale_up_cooldown: self.scale_up_cooldown_sec.delta(),
            scale_down_cooldown: self.scale_down_cooldown_sec.delta(),
            stabilization: self.stabilization_window_sec.delta(),
        }
    }

    /// The strategy, with the weights in force (VOTING_WEIGHTS, or the held-out F1 scores
    /// once [`Validate::resolve`] has read them).
    pub fn strategy(&self) -> Strategy {
        match self.voting_strategy {
            StrategyName::Majority => Strategy::Majority,
            StrategyName::Unanimous => Strategy::Unanimous,
            StrategyName::Weighted => Strategy::Weighted(self.voting_weights.0.clone()),
        }
    }

    /// The configured bounds of a service, if any.
    pub fn limit_of(&self, service: &str) -> Option<&ServiceLimit> {
        self.service_limits.0.iter().find(|l| l.service == service)
    }

    /// Whether `service` runs a consumer group (`CONSUMER_GROUPS`).
    pub fn is_consumer_group(&self, service: &str) -> bool {
        self.consumer_groups.0.iter().any(|s| s == service)
    }

    /// Whether `SCALED_SERVICES` lets the scaler change this service (empty: no further
    /// restriction; the service must still be opted in by its label).
    pub fn may_scale(&self, service: &str) -> bool {
        let allowed = &self.scaled_services.0;
        allowed.is_empty() || allowed.iter().any(|s| s == service)
    }
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
        for (flag, value, says) in [
            ("--service-limits", "orders=6:2", "need 1 <= MIN <= MAX"),
            ("--service-limits", "orders=1:2,orders=2:3", "given twice"),
            ("--voting-weights", "xgboost=-1", "0 or more"),
            ("--scaled-services", "a b", "not a name"),
            ("--decision-window-sec", "99999999999", "more than a year"),
            ("--scale-up-cooldown-sec", "-1", "0 or more"),
        ] {
            let e = ScalerConfig::try_parse_from(["s", &format!("{flag}={value}")]).unwrap_err();
            let line = service_runtime::config::one_line(&e);
            assert!(line.contains(flag) && line.contains(says), "{line}");
        }
        let zero = ScalerConfig::try_parse_from(["s", "--scale-up-cooldown-sec", "0"]).unwrap();
        assert_eq!(
            zero.guardrails().scale_up_cooldown,
            chrono::TimeDelta::zero()
        );
    }

    #[test]
    fn consumer_groups_name_their_services() {
        let config = ScalerConfig::try_parse_from([
            "s",
            "--consumer-groups",
            "demo-consumer=demo-consumer@demo-work, ,orders=orders-group@orders",
        ])
        .unwrap();
        assert!(config.is_consumer_group("demo-consumer") && config.is_consumer_group("orders"));
        assert!(!config.is_consumer_group("demo-work"));
        let bad = ScalerConfig::try_parse_from(["s", "--consumer-groups", "demo-consumer"])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("is not service=group@topic"), "{bad}");
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

    fn weighted(args: &[&str]) -> Result<ScalerConfig, String> {
        let mut config =
            ScalerConfig::try_parse_from(["s", "--voting-strategy", "weighted"].iter().chain(args))
                .map_err(|e| e.to_string())?;
        config.validate()?;
        config.resolve()?;
        Ok(config)
    }

    #[test]
    fn weights_fall_back_to_held_out_f1_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evaluation.json");
        std::fs::write(
            &path,
            r#"{"models":[{"model":"xgboost","held_out":[{"classification":{"f1":0.8}}]},
                {"model":"random_forest","held_out":[{"classification":{"f1":0.7}}]},
                {"model":"logistic_regression","held_out":[{"classification":{"f1":0.6}}]}]}"#,
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let config = weighted(&["--evaluation-json", path]).unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!(
            config.strategy(),
            Strategy::Weighted(BTreeMap::from([
                ("xgboost".into(), 0.8),
                ("random_forest".into(), 0.7),
                ("logistic_regression".into(), 0.6),
            ])),
            "the weights are read at start, not when the strategy is asked for"
        );
        let gone = weighted(&["--evaluation-json", path]).unwrap_err();
        assert!(
            gone.contains("EVALUATION_JSON") && gone.contains("VOTING_WEIGHTS"),
            "{gone}"
        );
        std::fs::write(path, "{not json").unwrap();
        assert!(weighted(&["--evaluation-json", path]).is_err());
        std::fs::write(path, r#"{"models":[{"model":"xgboost","held_out":[]}]}"#).unwrap();
        let partial = weighted(&["--evaluation-json", path]).unwrap_err();
        assert!(partial.contains("random_forest"), "{partial}");
    }

    #[test]
    fn explicit_weights_name_every_expected_model_and_no_other() {
        let all = "xgboost=1,random_forest=0.5,logistic_regression=0";
        let config = weighted(&["--voting-weights", all, "--evaluation-json", "/nonexistent"]);
        assert_eq!(config.unwrap().voting_weights.0.len(), 3);
        let stray = weighted(&["--voting-weights", &format!("{all},xgb=1")]).unwrap_err();
        assert!(
            stray.contains("\"xgb\" is not one of EXPECTED_MODELS"),
            "{stray}"
        );
        let missing = weighted(&["--voting-weights", "xgboost=1"]).unwrap_err();
        assert!(
            missing.contains("no weight for \"random_forest\""),
            "{missing}"
        );
    }
}
