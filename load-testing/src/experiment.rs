//! Experiments: a load run recorded in `output/experiments.csv`, so that the trainer can tell
//! which development-CSV rows belong to which run (by time) and hold whole runs out for testing.
//!
//! Before the load, an optional scale command sets the replica count the run is made at; after
//! it, the development CSV is read back to report what the aggregator collected meanwhile.

use crate::cli::ExperimentArgs;
use crate::progress;
use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use formats::experiments::{self, EXPERIMENTS_CSV, ExperimentRecord};
use std::collections::BTreeMap;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// Scales, runs, records, reports.
pub async fn run(args: &ExperimentArgs, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let load = &args.load;
    let pattern = load.pattern()?;
    let service = service_of(args)?;
    if let (Some(replicas), Some(command)) = (args.replicas, &args.scale_command) {
        scale(command, replicas).await?;
        tracing::info!(replicas, settle = %humantime::format_duration(args.settle), "scaled; letting it settle");
        tokio::time::sleep(args.settle).await;
    }
    let started_at = Utc::now();
    let (summary, took) = crate::run_load(load, shutdown).await?;
    let ended_at = Utc::now();
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| pattern.name().to_owned());
    let record = ExperimentRecord {
        run_id: format!("{name}-{}", started_at.format("%Y%m%dT%H%M%SZ")),
        name,
        service,
        pattern: pattern.name().into(),
        description: pattern.describe(),
        scenario: load.traffic_name().into(),
        replicas: args.replicas,
        started_at,
        ended_at,
        sent: summary.sent,
        errors: summary.errors(),
        dropped: summary.dropped,
        p95_ms: summary.p95_ms,
    };
    let path = args.output_dir.join(EXPERIMENTS_CSV);
    experiments::append(&path, &record)?;
    println!("{}", progress::summary_of(load, &summary, took));
    println!("recorded run {} in {}", record.run_id, path.display());
    report_collected(&args.dev_csv_path, &record.service, started_at, ended_at);
    Ok(())
}

/// The service under load: `--service`, else the `job` label of the first targets file, else
/// the host of the first target URL.
fn service_of(args: &ExperimentArgs) -> anyhow::Result<String> {
    if let Some(service) = &args.service {
        return Ok(service.clone());
    }
    if let Some(file) = args.load.targets_files.first() {
        let groups: serde_json::Value = serde_json::from_slice(&std::fs::read(file)?)?;
        if let Some(job) = groups[0]["labels"]["job"].as_str() {
            return Ok(job.to_owned());
        }
    }
    args.load
        .targets
        .first()
        .and_then(|t| reqwest::Url::parse(t).ok()?.host_str().map(str::to_owned))
        .context("cannot tell which service is under load: give --service")
}

/// Runs the scale command through `sh -c` with `{replicas}` replaced.
async fn scale(command: &str, replicas: u32) -> anyhow::Result<()> {
    let command = command.replace("{replicas}", &replicas.to_string());
    tracing::info!(%command, "setting the replica count");
    let status = tokio::process::Command::new("sh")
        .args(["-c", &command])
        .status()
        .await
        .with_context(|| format!("cannot run the scale command {command:?}"))?;
    if !status.success() {
        bail!("the scale command {command:?} failed ({status})");
    }
    Ok(())
}

/// Rows, smallest and largest p95 latency collected per service between two times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    pub rows: usize,
    pub p95_min: Option<f64>,
    pub p95_max: Option<f64>,
}

/// What the development CSV holds for windows ending between `from` and `to`.
pub fn collected(
    dev_csv: &Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<String, Collected>> {
    let mut reader = csv::Reader::from_path(dev_csv)?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no {name} column", dev_csv.display()))
    };
    let (t, service, p95) = (
        column("timestamp")?,
        column("service")?,
        column("latency_p95")?,
    );
    let mut out: BTreeMap<String, Collected> = BTreeMap::new();
    for record in reader.records() {
        let record = record?;
        let Ok(at) = record[t].parse::<DateTime<Utc>>() else {
            continue;
        };
        if at < from || at > to {
            continue;
        }
        let entry = out.entry(record[service].to_owned()).or_default();
        entry.rows += 1;
        if let Ok(v) = record[p95].parse::<f64>() {
            entry.p95_min = Some(entry.p95_min.map_or(v, |m| m.min(v)));
            entry.p95_max = Some(entry.p95_max.map_or(v, |m| m.max(v)));
        }
    }
    Ok(out)
}

fn report_collected(dev_csv: &Path, service: &str, from: DateTime<Utc>, to: DateTime<Utc>) {
    match collected(dev_csv, from, to).map(|mut all| all.remove(service)) {
        Ok(Some(c)) => {
            let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0}", v * 1000.0));
            println!(
                "collected {} rows for {service} (p95 {} .. {} ms)",
                c.rows,
                ms(c.p95_min),
                ms(c.p95_max)
            );
        }
        Ok(None) => tracing::warn!(csv = %dev_csv.display(), %service,
            from = %from.to_rfc3339_opts(SecondsFormat::Secs, true),
            "no rows were collected during the run: is the metrics-aggregator running with MODE=development?"),
        Err(e) => tracing::warn!(csv = %dev_csv.display(), error = %format!("{e:#}"),
            "cannot read the development CSV: is the metrics-aggregator running with MODE=development?"),
    }
}
