//! The printed result: markdown tables of every figure, and the goal checks.

use crate::broker_limit::BrokerFigures;
use crate::config::BenchConfig;
use crate::goals::{self, Check};
use crate::pipeline::PipelineFigures;
use crate::stats::{ms, per_second};
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub config: BenchConfig,
    pub broker: BrokerFigures,
    pub pipeline: PipelineFigures,
    /// The whole run, broker start to services stopped.
    pub took: Duration,
    /// The run's directory, when kept.
    pub kept_dir: Option<PathBuf>,
}

impl Report {
    /// The goal checks that have figures to compare.
    pub fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        if let (Some(pipeline), Some(broker)) =
            (self.pipeline.latency.latency, self.broker.round_trip)
        {
            checks.push(goals::latency("p50", pipeline.p50, broker.p50));
            checks.push(goals::latency("p99", pipeline.p99, broker.p99));
        }
        let t = &self.pipeline.throughput;
        checks.push(goals::throughput(
            t.per_second,
            self.broker.rate.per_second,
            t.decided == t.vectors,
        ));
        checks
    }

    /// The markdown.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) -> std::fmt::Result {
        let c = &self.config;
        writeln!(out, "# Pipeline benchmark\n")?;
        let extra = if c.kafka_properties.is_empty() {
            String::new()
        } else {
            format!(" plus `{}`", c.kafka_args("").shown_properties().join(","))
        };
        writeln!(
            out,
            "Broker: tansu, in-memory storage, 3 partitions per topic, on this host. Clients: the \
             services' own configuration (`KafkaArgs::producer_config` / `consumer_config`, \
             `JsonProducer`, `AtLeastOnceConsumer`){extra}. Payloads: encoded `FeatureVector` \
             messages. Services: release binaries, scaler with SCALER_BACKEND=log, \
             DECISION_WINDOW_SEC={}, MAX_VOTE_AGE_SEC={}.\n",
            c.decision_window_sec, c.max_vote_age_sec
        )?;
        self.write_broker(out)?;
        self.write_pipeline(out)?;
        self.write_goals(out)?;
        writeln!(out, "Run took {:.1} s.", self.took.as_secs_f64())?;
        if let Some(dir) = &self.kept_dir {
            writeln!(
                out,
                "\nOutputs and service logs kept in `{}`.",
                dir.display()
            )?;
        }
        Ok(())
    }

    fn write_broker(&self, out: &mut String) -> std::fmt::Result {
        let b = &self.broker;
        let c = &self.config;
        writeln!(out, "## Broker alone (the harness only, no services)\n")?;
        writeln!(out, "| measure | value |")?;
        writeln!(out, "|---|---|")?;
        match b.round_trip {
            Some(rt) => {
                writeln!(out, "| round trip p50 (ms) | {} |", ms(rt.p50))?;
                writeln!(out, "| round trip p99 (ms) | {} |", ms(rt.p99))?;
                writeln!(out, "| round trip max (ms) | {} |", ms(rt.max))?;
            }
            None => writeln!(out, "| round trip | no message came back |")?,
        }
        if let Some(ack) = b.produce_ack {
            writeln!(
                out,
                "| of which produce acknowledged, p50 / p99 / max (ms) | {} / {} / {} |",
                ms(ack.p50),
                ms(ack.p99),
                ms(ack.max)
            )?;
        }
        writeln!(
            out,
            "| round trips: sent, one at a time at {}/s / consumed / missing | {} / {} / {} |",
            c.round_trip_rate(),
            b.round_trip_sent,
            b.round_trip_sent - b.round_trip_missing,
            b.round_trip_missing
        )?;
        let r = &b.rate;
        writeln!(
            out,
            "| produce-to-consume rate (msg/s) | {:.0} |",
            r.per_second
        )?;
        writeln!(
            out,
            "| flood: sent ({} in flight) / consumed | {} / {} |",
            c.in_flight, r.messages, r.consumed
        )?;
        writeln!(
            out,
            "| flood: all sends acknowledged after (s) | {:.2} ({:.0} msg/s) |",
            r.produced_in.as_secs_f64(),
            per_second(r.messages, r.produced_in)
        )?;
        writeln!(
            out,
            "| flood: first send to last consumed (s) | {:.2} |\n",
            r.elapsed.as_secs_f64()
        )?;
        let pace = if c.round_trip_rate.is_some() {
            "set by BENCH_ROUND_TRIP_RATE"
        } else {
            "the decision-latency phase's pace"
        };
        writeln!(
            out,
            "The round trip ran at {}/s ({pace}): the broker's latency depends on the pace, so the \
             goal compares the two at the same one.\n",
            c.round_trip_rate()
        )
    }

    fn write_pipeline(&self, out: &mut String) -> std::fmt::Result {
        let p = &self.pipeline;
        let c = &self.config;
        writeln!(
            out,
            "## Pipeline (3 x ml-inference, authoritative-scaler)\n"
        )?;
        writeln!(
            out,
            "### Decision latency: features_produced_at to decided_at ({} vectors/s over {} services for {} s)\n",
            c.latency_rate, c.latency_services, c.latency_sec
        )?;
        writeln!(
            out,
            "| p50 (ms) | p99 (ms) | max (ms) | vectors | decided | missing | repeated | without every vote | harness's sends acknowledged, p50 / p99 (ms) |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
        let l = &p.latency;
        let (p50, p99, max) = l.latency.map_or(("-".into(), "-".into(), "-".into()), |s| {
            (ms(s.p50), ms(s.p99), ms(s.max))
        });
        let ack = l
            .produce_ack
            .map_or("-".into(), |a| format!("{} / {}", ms(a.p50), ms(a.p99)));
        writeln!(
            out,
            "| {p50} | {p99} | {max} | {} | {} | {} | {} | {} | {ack} |\n",
            l.sent,
            l.sent - l.missing,
            l.missing,
            l.repeats,
            l.incomplete
        )?;

        let t = &p.throughput;
        writeln!(
            out,
            "### Throughput: {} services x {} windows, sent with {} in flight\n",
            c.throughput_services, c.throughput_windows, c.in_flight
        )?;
        writeln!(
            out,
            "| vectors | decided | missing | repeated | without every vote | all sent after (s) | first vector to last decision (s) | vectors/s |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|---|---|")?;
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} |\n",
            t.vectors,
            t.decided,
            t.vectors - t.decided,
            t.repeats,
            t.incomplete,
            t.produced_in.as_secs_f64(),
            t.elapsed.as_secs_f64(),
            t.per_second
        )?;
        writeln!(
            out,
            "Where the time went (from the predictions and decisions CSVs, millisecond stamps):\n"
        )?;
        writeln!(
            out,
            "| stage | done | last at (s after the first vector) | per second |"
        )?;
        writeln!(out, "|---|---|---|---|")?;
        for stage in &t.stages {
            let since = stage
                .last
                .and_then(|last| (last - t.started_at).to_std().ok());
            let (at, rate) = match since {
                Some(d) => (
                    format!("{:.2}", d.as_secs_f64()),
                    format!("{:.0}", per_second(stage.done, d)),
                ),
                None => ("-".into(), "-".into()),
            };
            writeln!(out, "| {} | {} | {at} | {rate} |", stage.name, stage.done)?;
        }
        writeln!(
            out,
            "| harness consumed the decisions | {} | {:.2} | {:.0} |\n",
            t.decided,
            t.elapsed.as_secs_f64(),
            t.per_second
        )?;

        writeln!(
            out,
            "### Memory and CPU (read after the throughput phase)\n"
        )?;
        process_table(out, &p.processes, "the throughput phase")?;
        if let Some((f, processes)) = &p.floods {
            writeln!(
                out,
                "\n### Floods (after the throughput phase)\n\n\
                 {} messages on `metrics` (a quarter each: not JSON, another version, a billion \
                 replicas, vectors of {} made-up services) and {} on the votes topic (half not \
                 JSON, {} votes forged for made-up services and windows); then {} real vectors (the next window \
                 of services of the throughput phase), \
                 {} decided, the last {:.1} s after the first flood message. Memory read after \
                 them (the peak is the process's whole life):\n",
                f.metrics,
                f.made_up_vectors,
                f.votes,
                f.forged_votes,
                f.sentinels,
                f.sentinels_decided,
                f.took.as_secs_f64()
            )?;
            process_table(out, processes, "the floods")?;
        }
        writeln!(out)?;
        for (when, votes) in &p.scaler_votes {
            let counts: Vec<String> = votes
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(outcome, n)| format!("{outcome} {n}"))
                .collect();
            writeln!(
                out,
                "The scaler's votes by what its tally did with them, {when} (`scaler_votes_total`): {}.\n",
                counts.join(", ")
            )?;
        }
        for exited in &p.exited {
            writeln!(out, "**Stopped early:** {exited}\n")?;
        }
        Ok(())
    }

    fn write_goals(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "## Goals\n")?;
        writeln!(
            out,
            "| goal | pipeline | target | ratio to the broker reference | result |"
        )?;
        writeln!(out, "|---|---|---|---|---|")?;
        for check in self.checks() {
            writeln!(
                out,
                "| {} | {} | {} | {:.2} | {} |",
                check.goal,
                check.measured,
                check.target,
                check.ratio,
                if check.met { "met" } else { "not met" }
            )?;
        }
        writeln!(
            out,
            "\nLatency ratios are pipeline / (2 x broker round trip), to be at most {}; the \
             throughput ratio is pipeline / broker rate, to be at least {}.\n",
            goals::LATENCY_SLACK,
            goals::THROUGHPUT_SHARE
        )
    }
}

/// Memory and CPU of each process, CPU over `phase`.
fn process_table(
    out: &mut String,
    processes: &[crate::resources::ProcessFigures],
    phase: &str,
) -> std::fmt::Result {
    writeln!(
        out,
        "| process | pid | VmRSS (MiB) | VmHWM, peak (MiB) | CPU in {phase} (s) | (% of one core) |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    let mib = |bytes: f64| format!("{:.1}", bytes / (1024.0 * 1024.0));
    for process in processes {
        let pid = process.pid.map_or("-".into(), |p| p.to_string());
        let (rss, peak) = process.sample.map_or(("gone".into(), "-".into()), |s| {
            (mib(s.resident_bytes), mib(s.peak_resident_bytes))
        });
        let (cpu, share) = match (process.cpu_during, process.cpu_share) {
            (Some(cpu), Some(share)) => (format!("{cpu:.2}"), format!("{:.0}", 100.0 * share)),
            _ => ("-".into(), "-".into()),
        };
        writeln!(
            out,
            "| {} | {pid} | {rss} | {peak} | {cpu} | {share} |",
            process.name
        )?;
    }
    Ok(())
}
