//! Process metrics with the standard names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), read from `/proc/self` at every scrape; the same
//! reading of another process ([`sample_process`]) serves tools that watch the fleet's processes.
//!
//! The `prometheus` crate has a collector for these, but it exports CPU time in whole seconds,
//! which reads as 0 for a service using a few percent of a core. The aggregator falls back on
//! this CPU figure where cAdvisor is absent, so it must resolve clock ticks (10 ms).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, Opts};

/// Linux clock ticks per second for `/proc/<pid>/stat` times (USER_HZ, 100 on every
/// architecture Linux supports today).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    /// The peak resident size so far (`VmHWM`).
    pub peak_resident_bytes: f64,
    pub virtual_bytes: f64,
    pub threads: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
}

/// Parses `/proc/<pid>/stat`, `/proc/<pid>/status` and the `btime` line of `/proc/stat`.
pub fn parse(stat: &str, status: &str, proc_stat: &str, open_fds: usize) -> Option<ProcessSample> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 (state) of proc(5); field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let boot_time = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some(ProcessSample {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        threads: field(20)?,
        start_time_seconds: boot_time + field(22)? / TICKS_PER_SECOND,
        virtual_bytes: field(23)?,
        resident_bytes: kib("VmRSS:") * 1024.0,
        peak_resident_bytes: kib("VmHWM:") * 1024.0,
        open_fds: open_fds as f64,
    })
}

/// Reads `/proc/<pid>` (`pid` may be `self`).
fn read(pid: &str) -> Option<ProcessSample> {
    let dir = std::path::Path::new("/proc").join(pid);
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let proc_stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fds = std::fs::read_dir(dir.join("fd")).map_or(0, |d| d.count());
    parse(&stat, &status, &proc_stat, fds)
}

fn read_self() -> Option<ProcessSample> {
    read("self")
}

/// What `/proc/<pid>` says about another process of this host; `None` when it is gone (or not
/// readable).
pub fn sample_process(pid: u32) -> Option<ProcessSample> {
    read(&pid.to_string())
}

/// The collector. CPU is exported as a gauge-valued counter: its value comes from the kernel.
pub struct ProcessCollector {
    descs: Vec<Desc>,
    cpu: Gauge,
    resident: Gauge,
    virtual_memory: Gauge,
    threads: Gauge,
    start_time: Gauge,
    open_fds: Gauge,
}

impl ProcessCollector {
    pub fn new() -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help));
        let collector = Self {
            descs: Vec::new(),
            cpu: gauge(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )?,
            resident: gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            )?,
            virtual_memory: gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            )?,
            threads: gauge("process_threads", "Number of OS threads in the process.")?,
            start_time: gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )?,
            open_fds: gauge("process_open_fds", "Number of open file descriptors.")?,
        };
        let descs = collector
            .gauges()
            .iter()
            .flat_map(|g| g.desc().into_iter().cloned())
            .collect();
        Ok(Self { descs, ..collector })
    }

    fn gauges(&self) -> [&Gauge; 6] {
        [
            &self.cpu,
            &self.resident,
            &self.virtual_memory,
            &self.threads,
            &self.start_time,
            &self.open_fds,
        ]
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(sample) = read_self() else {
            return Vec::new();
        };
        self.cpu.set(sample.cpu_seconds);
        self.resident.set(sample.resident_bytes);
        self.virtual_memory.set(sample.virtual_bytes);
        self.threads.set(sample.threads);
        self.start_time.set(sample.start_time_seconds);
        self.open_fds.set(sample.open_fds);
        let mut families: Vec<MetricFamily> =
            self.gauges().iter().flat_map(|g| g.collect()).collect();
        // Exported as a counter, as every Prometheus client does.
        if let Some(cpu) = families.first_mut() {
            cpu.set_field_type(prometheus::proto::MetricType::COUNTER);
            for metric in cpu.mut_metric().iter_mut() {
                let value = metric.get_gauge().get_value();
                let mut counter = prometheus::proto::Counter::default();
                counter.set_value(value);
                metric.set_counter(counter);
            }
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files_with_sub_second_cpu() {
        let stat = "4242 (demo (x) svc) S 1 4242 4242 0 -1 4194560 900 0 0 0 20 18 0 0 20 0 \
                    3 0 1500 7954432 1324 18446744073709551615";
        let status = "Name:\tdemo\nVmHWM:\t    8000 kB\nVmRSS:\t    5296 kB\nThreads:\t3\n";
        let proc_stat = "cpu  1 2 3\nbtime 1795360000\n";
        let s = parse(stat, status, proc_stat, 15).unwrap();
        assert!((s.cpu_seconds - 0.38).abs() < 1e-9, "{s:?}");
        assert_eq!(s.threads, 3.0);
        assert_eq!(s.start_time_seconds, 1_795_360_015.0);
        assert_eq!(s.virtual_bytes, 7_954_432.0);
        assert_eq!(s.resident_bytes, 5296.0 * 1024.0);
        assert_eq!(s.peak_resident_bytes, 8000.0 * 1024.0);
        assert_eq!(s.open_fds, 15.0);
        assert!(parse("garbage", status, proc_stat, 0).is_none());
    }

    #[test]
    fn exports_cpu_as_a_counter_from_this_process() {
        let registry = prometheus::Registry::new();
        registry
            .register(Box::new(ProcessCollector::new().unwrap()))
            .unwrap();
        // Burn CPU until the process has used 100 ms of it (counted by the kernel, so a loaded
        // machine only makes this take longer), at most 20 s.
        let started = std::time::Instant::now();
        let used = || sample_process(std::process::id()).map_or(0.0, |s| s.cpu_seconds);
        let mut x = 0u64;
        while used() < 0.1 && started.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes"));
        let cpu: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(cpu >= 0.05, "sub-second CPU time is visible: {cpu}");
    }
}
