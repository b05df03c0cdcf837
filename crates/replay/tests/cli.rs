//! The `replay` command as users run it: a slice of a real trace under a few policies, on the
//! committed models and dataset; bad settings refused with one line.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn replay(args: &[&str]) -> (i32, String, String) {
    replay_with_env(args, &[])
}

fn replay_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let repo = repo();
    let out = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&repo)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_trace_slice_under_three_policies() {
    let trace = repo().join("../shared/traces/alibaba2021_ms_6d9c26b9_1min.csv");
    let (code, stdout, stderr) = replay(&[
        "run",
        "--trace",
        trace.to_str().unwrap(),
        "--start-minutes",
        "500",
        "--length-minutes",
        "60",
        "--max-replicas",
        "3",
        "--policy",
        "hpa:70,ensemble:majority,oracle",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 4, "a header and three policies:\n{stdout}");
    for policy in ["| HPA 70% |", "| ensemble (majority) |", "| oracle |"] {
        assert!(stdout.contains(policy), "{policy} missing:\n{stdout}");
    }
    // Every run covers the 60 trace minutes: 10 minutes of replay, at most 3 replicas.
    for row in &rows[1..] {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let replica_minutes: f64 = cells[3].parse().unwrap();
        assert!(
            (10.0..=30.0 + 1.0).contains(&replica_minutes),
            "between 1 and 3 replicas for 10 minutes: {row}"
        );
    }
}

#[test]
fn the_simulated_service_is_the_dataset_s_demo_whatever_the_shell_sets() {
    let (code, plain, stderr) = replay(&["calibrate"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(plain.contains("agree"), "{plain}");
    // The demo-service's own settings, as a user running the local stack may have exported.
    let (code, with_env, stderr) = replay_with_env(
        &["calibrate"],
        &[("CONCURRENCY", "64"), ("SERVICE_TIME_MS", "5")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plain, with_env);
}

#[test]
fn bad_settings_are_one_line_and_exit_2() {
    for (args, needle) in [
        (vec!["run", "--trace", "t.csv", "--policy", "lstm"], "lstm"),
        (
            vec!["run", "--trace", "t.csv", "--peak-rps=0"],
            "REPLAY_PEAK_RPS",
        ),
        (vec!["run", "--trace", "/nonexistent/trace.csv"], "trace"),
    ] {
        let (code, _, stderr) = replay(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        let line = stderr.trim();
        assert_eq!(line.lines().count(), 1, "{args:?}: {stderr}");
        assert!(line.contains(needle), "{args:?}: {stderr}");
    }
}
