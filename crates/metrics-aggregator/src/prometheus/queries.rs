//! The PromQL behind each measurement, and the assembly of the answers into one
//! [`Observation`] per service.
//!
//! Every query aggregates `by (job)`, so one poll costs the same sixteen queries whatever the
//! number of services: the window's measures, and the request rate a day and a week ago with
//! the peak of the windows that followed it then (`offset`), where Prometheus keeps data that
//! old. The request histograms are matched by name (`LATENCY_HISTOGRAMS`): every Sock Shop
//! service at the tags `docker-compose.yml` pins exports `request_duration_seconds`;
//! `http_request_duration_seconds` is there for other services (many HTTP frameworks' default).
//! Prometheus' own scrapes are not traffic: catalogue, payment and user wrap their whole router,
//! `/metrics` included, in their instrumentation and record every scrape as
//! `route="metrics"`, so every histogram selector leaves that route out (as upstream's
//! dashboard does). Services are Prometheus jobs: Sock Shop's jobs are not all named as
//! their `service` label (job `cart`, service `carts`), and with DNS or Docker service discovery
//! every replica of a service is a target of the same job.

use super::client::{PrometheusClient, QueryError, Sample};
use features::{Observation, Quantiles, SEASON_RISE_WINDOWS, SeasonPoint};
use std::collections::{BTreeMap, HashMap};

/// What one query measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Measure {
    RequestRate,
    ErrorRate,
    P50,
    P95,
    P99,
    Replicas,
    /// Targets whose scrape failed.
    Unscraped,
    CpuContainer,
    CpuProcess,
    MemoryContainer,
    MemoryProcess,
    /// The request rate one period ago (0: a day, 1: a week)...
    SeasonRate(usize),
    /// ...and the highest of the windows after it.
    SeasonPeak(usize),
}

/// What the queries are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    /// Seconds each rate and percentile is computed over.
    pub window_secs: u64,
    /// Seconds between windows (the poll interval).
    pub interval_secs: u64,
    /// Names of the request histograms, without suffix.
    pub histograms: Vec<String>,
    /// What "a day ago" and "a week ago" are, in seconds.
    pub seasons: [u64; 2],
}

/// cAdvisor's label for the compose service of a container, renamed to `job`.
const COMPOSE_SERVICE: &str = "container_label_com_docker_compose_service";

/// The `route` label value Sock Shop's Go services give their own `/metrics`: a scrape, not a
/// request (a series without a `route` label is kept).
const SCRAPE_ROUTE: &str = "metrics";

/// The series of the request histograms, scrapes left out: `names` (without suffix) followed by
/// `suffix`, e.g.
/// `{__name__=~"(request_duration_seconds|http_request_duration_seconds)_count", route!="metrics"}`.
fn series(names: &[String], suffix: &str, extra: &str) -> String {
    format!(
        r#"{{__name__=~"({})_{suffix}", route!="{SCRAPE_ROUTE}"{extra}}}"#,
        names.join("|")
    )
}

fn promql(measure: Measure, plan: &QueryPlan) -> String {
    let histograms = &plan.histograms;
    let w = format!("{}s", plan.window_secs);
    let count = series(histograms, "count", "");
    let bucket = series(histograms, "bucket", "");
    let quantile =
        |q: f64| format!("histogram_quantile({q}, sum by (job, le) (rate({bucket}[{w}])))");
    let by_compose_service = |expr: String| {
        format!(
            r#"label_replace(avg by ({COMPOSE_SERVICE}) ({expr}), "job", "$1", "{COMPOSE_SERVICE}", "(.+)")"#
        )
    };
    match measure {
        Measure::RequestRate => format!("sum by (job) (rate({count}[{w}]))"),
        Measure::ErrorRate => format!(
            "sum by (job) (rate({}[{w}]))",
            series(histograms, "count", r#", status_code=~"5..""#)
        ),
        Measure::P50 => quantile(0.5),
        Measure::P95 => quantile(0.95),
        Measure::P99 => quantile(0.99),
        Measure::Replicas => "count by (job) (up == 1)".into(),
        Measure::Unscraped => "count by (job) (up == 0)".into(),
        Measure::CpuContainer => by_compose_service(format!(
            r#"rate(container_cpu_usage_seconds_total{{{COMPOSE_SERVICE}!=""}}[{w}])"#
        )),
        Measure::CpuProcess => format!("avg by (job) (rate(process_cpu_seconds_total[{w}]))"),
        Measure::MemoryContainer => by_compose_service(format!(
            r#"container_memory_working_set_bytes{{{COMPOSE_SERVICE}!=""}}"#
        )),
        Measure::MemoryProcess => "avg by (job) (process_resident_memory_bytes)".into(),
        Measure::SeasonRate(i) => {
            format!(
                "sum by (job) (rate({count}[{w}] offset {}s))",
                plan.seasons[i]
            )
        }
        Measure::SeasonPeak(i) => {
            // The windows in (then, then + rise]: a subquery over the rise, stepped like the
            // polls, ending rise seconds after then.
            let rise = plan.interval_secs * SEASON_RISE_WINDOWS;
            format!(
                "max_over_time(sum by (job) (rate({count}[{w}]))[{rise}s:{}s] offset {}s)",
                plan.interval_secs,
                plan.seasons[i].saturating_sub(rise)
            )
        }
    }
}

const MEASURES: [Measure; 15] = [
    Measure::RequestRate,
    Measure::ErrorRate,
    Measure::P50,
    Measure::P95,
    Measure::P99,
    Measure::Replicas,
    Measure::Unscraped,
    Measure::CpuContainer,
    Measure::CpuProcess,
    Measure::MemoryContainer,
    Measure::MemoryProcess,
    Measure::SeasonRate(0),
    Measure::SeasonPeak(0),
    Measure::SeasonRate(1),
    Measure::SeasonPeak(1),
];

/// The request rate of every service at `at_secs` (what the aggregator reads back at start for
/// the history features).
pub async fn request_rates(
    client: &PrometheusClient,
    at_secs: u64,
    plan: &QueryPlan,
) -> Result<HashMap<String, f64>, QueryError> {
    let samples = client
        .query(&promql(Measure::RequestRate, plan), at_secs)
        .await?;
    Ok(by_job(samples))
}

/// The PromQL of one service's request rate over `window_secs` (what `replay history` reads a
/// user's traffic with).
pub fn service_request_rate(job: &str, window_secs: u64, histograms: &[String]) -> String {
    let count = series(
        histograms,
        "count",
        &format!(
            r#", job="{}""#,
            job.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    );
    format!("sum(rate({count}[{window_secs}s]))")
}

/// Jobs that export one of the request histograms.
fn discovery(histograms: &[String]) -> String {
    format!("count by (job) ({})", series(histograms, "count", ""))
}

/// Why a service has no observation this window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No request-rate series: the service exports no request histogram (yet).
    RequestRate,
}

impl Missing {
    pub fn reason(self) -> &'static str {
        match self {
            Missing::RequestRate => "missing_series",
        }
    }
}

/// One service's window as Prometheus answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The measures the features are built from.
    pub observation: Observation,
    /// Which resources came from the process metrics because cAdvisor had none for the service
    /// (not deployed, or its scrape failed or timed out): the process' own usage, not the
    /// container's, so operators are told.
    pub fallbacks: Fallbacks,
}

/// CPU and memory read from the process metrics in place of cAdvisor's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fallbacks {
    pub cpu: bool,
    pub memory: bool,
}

impl Fallbacks {
    /// The `resource` label values of the fallback counter.
    pub const RESOURCES: [&'static str; 2] = ["cpu", "memory"];

    /// The resources that fell back, as label values.
    pub fn resources(self) -> impl Iterator<Item = &'static str> {
        [self.cpu, self.memory]
            .into_iter()
            .zip(Self::RESOURCES)
            .filter_map(|(fell_back, resource)| fell_back.then_some(resource))
    }

    pub fn any(self) -> bool {
        self.cpu || self.memory
    }
}

/// A window of every service: its observation, or why there is none.
pub type Window = BTreeMap<String, Result<Observed, Missing>>;

/// Everything Prometheus says about each service at `at_secs`.
pub async fn observe(
    client: &PrometheusClient,
    at_secs: u64,
    plan: &QueryPlan,
    fixed_services: &[String],
) -> Result<Window, QueryError> {
    let histograms = &plan.histograms;
    let queries = MEASURES.map(|m| promql(m, plan));
    let answers = futures::future::try_join_all(queries.iter().map(|q| client.query(q, at_secs)));
    let services = async {
        if fixed_services.is_empty() {
            let found = client.query(&discovery(histograms), at_secs).await?;
            Ok(found
                .iter()
                .filter_map(|s| s.labels.get("job").cloned())
                .collect())
        } else {
            Ok(fixed_services.to_vec())
        }
    };
    let (answers, services): (Vec<Vec<Sample>>, Vec<String>) =
        futures::try_join!(answers, services)?;
    let by_job: HashMap<Measure, HashMap<String, f64>> = MEASURES
        .iter()
        .zip(answers)
        .map(|(m, samples)| (*m, by_job(samples)))
        .collect();
    Ok(services
        .into_iter()
        .map(|service| {
            let observation = assemble(&by_job, &service, at_secs);
            (service, observation)
        })
        .collect())
}

fn by_job(samples: Vec<Sample>) -> HashMap<String, f64> {
    samples
        .into_iter()
        .filter_map(|s| s.labels.get("job").map(|job| (job.clone(), s.value)))
        .collect()
}

fn assemble(
    by_job: &HashMap<Measure, HashMap<String, f64>>,
    service: &str,
    at_secs: u64,
) -> Result<Observed, Missing> {
    let get = |m: Measure| {
        by_job
            .get(&m)
            .and_then(|values| values.get(service))
            .copied()
    };
    let request_rate = get(Measure::RequestRate).ok_or(Missing::RequestRate)?;
    let season = |i| {
        Some(SeasonPoint {
            rate: get(Measure::SeasonRate(i))?,
            peak_after: get(Measure::SeasonPeak(i))?,
        })
    };
    let latency = match (get(Measure::P50), get(Measure::P95), get(Measure::P99)) {
        (Some(p50), Some(p95), Some(p99)) => Some(Quantiles { p50, p95, p99 }),
        _ => None,
    };
    let (cpu_per_replica, cpu) =
        container_else_process(get(Measure::CpuContainer), get(Measure::CpuProcess));
    let (memory_per_replica, memory) =
        container_else_process(get(Measure::MemoryContainer), get(Measure::MemoryProcess));
    Ok(Observed {
        observation: Observation {
            at_secs,
            request_rate,
            // No 5xx series at all means no 5xx answers.
            error_rate: get(Measure::ErrorRate).unwrap_or(0.0),
            latency,
            replicas: get(Measure::Replicas).map_or(0, |r| r.max(0.0) as u32),
            replicas_unscraped: get(Measure::Unscraped).map_or(0, |r| r.max(0.0) as u32),
            cpu_per_replica,
            memory_per_replica,
            day_ago: season(0),
            week_ago: season(1),
        },
        fallbacks: Fallbacks { cpu, memory },
    })
}

/// cAdvisor's measure where it has one, else the process'; true when the process' was taken.
fn container_else_process(container: Option<f64>, process: Option<f64>) -> (Option<f64>, bool) {
    match container {
        Some(value) => (Some(value), false),
        None => (process, process.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(Measure, f64)]) -> HashMap<Measure, HashMap<String, f64>> {
        entries
            .iter()
            .map(|(m, v)| (*m, HashMap::from([("orders".to_owned(), *v)])))
            .collect()
    }

    #[test]
    fn container_metrics_win_over_process_metrics() {
        let t = table(&[
            (Measure::RequestRate, 10.0),
            (Measure::Replicas, 2.0),
            (Measure::CpuContainer, 0.5),
            (Measure::CpuProcess, 0.1),
            (Measure::MemoryProcess, 1e6),
        ]);
        let observed = assemble(&t, "orders", 60).unwrap();
        let o = &observed.observation;
        assert_eq!(o.cpu_per_replica, Some(0.5));
        assert_eq!(o.memory_per_replica, Some(1e6));
        assert_eq!(
            observed.fallbacks,
            Fallbacks {
                cpu: false,
                memory: true
            },
            "memory only from the process"
        );
        assert_eq!(
            observed.fallbacks.resources().collect::<Vec<_>>(),
            ["memory"]
        );
        let bare = assemble(&table(&[(Measure::RequestRate, 1.0)]), "orders", 60).unwrap();
        assert!(!bare.fallbacks.any(), "no measure at all is not a fallback");
        assert_eq!(o.error_rate, 0.0);
        assert_eq!(o.latency, None);
        assert_eq!(o.replicas, 2);
    }

    #[test]
    fn a_service_without_request_rate_is_missing() {
        let t = table(&[(Measure::Replicas, 2.0)]);
        assert_eq!(assemble(&t, "orders", 60), Err(Missing::RequestRate));
        assert_eq!(assemble(&t, "carts", 60), Err(Missing::RequestRate));
    }

    fn plan(window_secs: u64) -> QueryPlan {
        QueryPlan {
            window_secs,
            interval_secs: 10,
            histograms: vec![
                "request_duration_seconds".to_owned(),
                "http_request_duration_seconds".to_owned(),
            ],
            seasons: [86_400, 604_800],
        }
    }

    #[test]
    fn queries_use_the_window_and_every_histogram_name() {
        let p95 = promql(Measure::P95, &plan(30));
        assert!(p95.contains("[30s]"), "{p95}");
        assert!(
            p95.contains(
                r#"{__name__=~"(request_duration_seconds|http_request_duration_seconds)_bucket", route!="metrics"}"#
            ),
            "{p95}"
        );
        let errors = promql(Measure::ErrorRate, &plan(30));
        assert!(
            errors.contains(r#"_count", route!="metrics", status_code=~"5.."}"#),
            "{errors}"
        );
        assert!(promql(Measure::CpuContainer, &plan(15)).contains(r#""job", "$1""#));
    }

    #[test]
    fn no_request_histogram_query_counts_scrapes() {
        let histograms = &plan(10).histograms;
        let queries = MEASURES
            .iter()
            .filter(|m| {
                !matches!(
                    m,
                    Measure::Replicas
                        | Measure::Unscraped
                        | Measure::CpuContainer
                        | Measure::CpuProcess
                        | Measure::MemoryContainer
                        | Measure::MemoryProcess
                )
            })
            .map(|m| promql(*m, &plan(10)))
            .chain([
                discovery(histograms),
                service_request_rate("orders", 60, histograms),
            ]);
        for q in queries {
            let selectors = q.matches("__name__").count();
            assert!(selectors > 0, "{q}");
            assert_eq!(
                q.matches(r#"route!="metrics""#).count(),
                selectors,
                "every histogram selector leaves scrapes out: {q}"
            );
        }
    }

    #[test]
    fn one_service_s_rate() {
        let q = service_request_rate("orders", 60, &plan(10).histograms);
        assert!(q.starts_with("sum(rate({__name__=~"), "{q}");
        assert!(
            q.ends_with(r#"_count", route!="metrics", job="orders"}[60s]))"#),
            "{q}"
        );
        let q = service_request_rate(r#"a"b"#, 60, &plan(10).histograms);
        assert!(q.contains(r#"job="a\"b""#), "{q}");
    }

    #[test]
    fn a_day_ago_is_an_offset_and_the_rise_a_subquery_after_it() {
        let rate = promql(Measure::SeasonRate(0), &plan(10));
        assert!(rate.ends_with("[10s] offset 86400s))"), "{rate}");
        let peak = promql(Measure::SeasonPeak(1), &plan(10));
        // Nine 10-second windows after the same time a week ago.
        assert!(peak.contains("[90s:10s] offset 604710s"), "{peak}");
        let t = table(&[
            (Measure::RequestRate, 10.0),
            (Measure::SeasonRate(0), 8.0),
            (Measure::SeasonPeak(0), 12.0),
            (Measure::SeasonRate(1), 8.0),
        ]);
        let o = assemble(&t, "orders", 60).unwrap().observation;
        assert_eq!(
            o.day_ago,
            Some(SeasonPoint {
                rate: 8.0,
                peak_after: 12.0
            })
        );
        assert_eq!(o.week_ago, None, "no peak a week ago: no point");
    }
}
