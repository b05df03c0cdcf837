//! Experiments: a load run recorded in `output/experiments.csv`, so that the trainer can tell
//! which development-CSV rows belong to which run (by time) and hold whole runs out for testing.
//!
//! Before the load, an optional scale command sets the replica count the run is made at; after
//! it, the development CSV is read back to report what the aggregator collected meanwhile.

use crate::cli::ExperimentArgs;
use crate::progress;
use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// One line of `experiments.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// `<name>-<start time>`, unique per run.
    pub run_id: String,
    pub name: String,
    /// The service (Prometheus job) the load went to.
    pub service: String,
    pub pattern: String,
    pub description: String,
    pub scenario: String,
    /// Replica count the run was made at, when it was set.
    pub replicas: Option<u32>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub sent: u64,
    pub errors: u64,
    pub dropped: u64,
    pub p95_ms: f64,
}

/// The file name of the experiment log inside the output directory.
pub const EXPERIMENTS_CSV: &str = "experiments.csv";

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
        scenario: load.scenario().name().into(),
        replicas: args.replicas,
        started_at,
        ended_at,
        sent: summary.sent,
        errors: summary.errors(),
        dropped: summary.dropped,
        p95_ms: summary.p95_ms,
    };
    let path = args.output_dir.join(EXPERIMENTS_CSV);
    append_record(&path, &record)?;
    println!("{}", progress::summary(&summary, took));
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

/// Appends one record, writing the header when the file is new.
pub fn append_record(path: &Path, record: &ExperimentRecord) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let new = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    let mut writer = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    writer.serialize(record)?;
    writer.flush()?;
    Ok(())
}

/// Reads every record of an experiments file.
pub fn read_records(path: &Path) -> anyhow::Result<Vec<ExperimentRecord>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    reader
        .deserialize()
        .map(|r| r.with_context(|| format!("{}: unreadable record", path.display())))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_append_with_one_header_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/experiments.csv");
        let t: DateTime<Utc> = "2026-04-04T12:00:00Z".parse().unwrap();
        let record = ExperimentRecord {
            run_id: "ramp-20260404T120000Z".into(),
            name: "ramp".into(),
            service: "orders".into(),
            pattern: "ramp".into(),
            description: "ramp 10 -> 200 rps".into(),
            scenario: "url".into(),
            replicas: Some(2),
            started_at: t,
            ended_at: t + chrono::Duration::minutes(30),
            sent: 10,
            errors: 0,
            dropped: 0,
            p95_ms: 12.5,
        };
        append_record(&path, &record).unwrap();
        append_record(
            &path,
            &ExperimentRecord {
                replicas: None,
                ..record.clone()
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("run_id").count(), 1);
        let back = read_records(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], record);
        assert_eq!(back[1].replicas, None);
    }
}
