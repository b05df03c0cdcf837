//! Configuration parsing: clap derive with `env = "..."` on every option, validated at start.
//!
//! Invalid configuration ends the process with exit code 2 and one line on stderr that names the
//! setting (its flag and its environment variable) and what is wrong, instead of clap's
//! multi-line usage dump: the line is what an operator sees in `docker compose logs`.

use clap::Parser;
use clap::error::ErrorKind;

/// Checks that need more than one option, or knowledge clap does not have.
pub trait Validate {
    /// `Err` holds the one-line message; it should name the setting.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// After [`Validate::validate`]: settles what a setting refers to and must be read once
    /// (a file of weights, say), into the configuration's own fields, so that nothing is read
    /// or parsed again later. `Err` as for `validate`.
    fn resolve(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The non-empty, trimmed entries of a comma-separated setting (`VAR=` has none), each parsed.
pub fn comma_list<T>(s: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(parse)
        .collect()
}

/// One consumer group as `service=group@topic` (`CONSUMER_GROUPS`, `WATCH_CONSUMER_GROUPS`): the
/// compose service that runs the consumers, its group and the topic it reads, trimmed.
pub fn group_target(s: &str) -> Result<(String, String, String), String> {
    let bad = || format!("{s:?} is not service=group@topic");
    let (service, rest) = s.split_once('=').ok_or_else(bad)?;
    let (group, topic) = rest.rsplit_once('@').ok_or_else(bad)?;
    contract::validate_service(service.trim())?;
    let legal = |name: &str| {
        !name.is_empty()
            && name.len() <= 249
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !legal(topic.trim()) || group.trim().is_empty() || group.len() > 249 {
        return Err(format!(
            "{s:?}: the topic must be a Kafka topic name (letters, digits, . _ -) and the \
             group not empty"
        ));
    }
    Ok((
        service.trim().to_owned(),
        group.trim().to_owned(),
        topic.trim().to_owned(),
    ))
}

/// Parses the command line and environment, validates, and exits with one clear line on error.
pub fn parse_or_exit<T: Parser + Validate>() -> T {
    let bin = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_owned))
        .unwrap_or_else(|| "service".into());
    match T::try_parse() {
        Ok(mut config) => match config.validate().and_then(|()| config.resolve()) {
            Ok(()) => config,
            Err(message) => exit_invalid(&bin, &message),
        },
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => exit_invalid(&bin, &one_line(&e)),
    }
}

fn exit_invalid(bin: &str, message: &str) -> ! {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{bin}: invalid configuration: {message} (see --help)");
    }
    std::process::exit(2)
}

/// Ends the process when the service cannot start (a missing model, an unusable file): one
/// line on stderr, exit code 2, as for invalid configuration.
pub fn exit_cannot_start(bin: &str, error: &anyhow::Error) -> ! {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{bin}: cannot start: {error:#}");
    }
    std::process::exit(2)
}

/// Reports a tool's run that failed (not a service that could not start) on one line,
/// `<bin>: <error>`, and exits with status 2, as a bad setting does.
pub fn exit_failed(bin: &str, error: &anyhow::Error) -> ! {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{bin}: {error:#}");
    }
    std::process::exit(2)
}

/// A clap error on one line: its first line without the `error: ` prefix, plus the possible
/// values when clap lists them.
pub fn one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut lines = rendered.lines();
    let mut line = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_owned();
    if let Some(values) = lines
        .map(str::trim)
        .find(|l| l.starts_with("[possible values"))
    {
        line.push(' ');
        line.push_str(values);
    }
    line
}

/// A setting in whole seconds, from 0 to [`Secs::MAX`]: parsed once, at start, by [`secs`] or
/// [`positive_secs`], and turned into the duration types the code uses without a cast that
/// could wrap or panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Secs(u32);

impl Secs {
    /// The longest setting taken: a year (366 days). Longer is a typo, not a plan.
    pub const MAX: Secs = Secs(366 * 86_400);

    /// `secs` seconds, at most [`Secs::MAX`] (more is taken as the maximum).
    pub const fn new(secs: u32) -> Self {
        if secs > Self::MAX.0 {
            Self::MAX
        } else {
            Secs(secs)
        }
    }

    /// The number of seconds.
    pub fn get(self) -> u64 {
        u64::from(self.0)
    }

    /// The number of seconds, as the `u32` it is held in.
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// As a `chrono` duration (for arithmetic with timestamps).
    pub fn delta(self) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(i64::from(self.0))
    }

    /// As a `std` duration (for timers and timeouts).
    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.get())
    }
}

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// clap value parser: a whole number of seconds, 0 to a year.
pub fn secs(s: &str) -> Result<Secs, String> {
    let max = Secs::MAX.0;
    match s.trim().parse::<i64>() {
        Ok(n) if (0..=i64::from(max)).contains(&n) => {
            Ok(Secs(u32::try_from(n).map_err(|e| e.to_string())?))
        }
        Ok(n) if n < 0 => Err(format!(
            "{n} is not allowed; a whole number of seconds, 0 or more"
        )),
        Ok(n) => Err(format!(
            "{n} s is more than a year ({max} s), the longest setting taken"
        )),
        Err(_) => Err("not a whole number of seconds".into()),
    }
}

/// clap value parser: a whole number of seconds, 1 to a year.
pub fn positive_secs(s: &str) -> Result<Secs, String> {
    match secs(s) {
        Ok(Secs(0)) => Err("0 is not allowed; a whole number of seconds, 1 or more".into()),
        Err(e) if e.contains("0 or more") => Err(e.replace("0 or more", "1 or more")),
        other => other,
    }
}

/// clap value parser: an `http://` or `https://` URL with a host.
pub fn http_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| "not an http:// or https:// URL".to_owned())?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("the URL has no valid host".into());
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("port {port:?} is not a number from 0 to 65535"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(positive_secs("30"), Ok(Secs::new(30)));
        assert_eq!(secs("0").map(Secs::get), Ok(0));
        assert_eq!(secs("31622400"), Ok(Secs::MAX));
        assert!(secs("31622401").unwrap_err().contains("more than a year"));
        assert!(
            positive_secs("99999999999999999")
                .unwrap_err()
                .contains("more than a year")
        );
        assert_eq!(Secs::new(u32::MAX), Secs::MAX);
        assert_eq!(Secs::new(90).delta(), chrono::TimeDelta::seconds(90));
        assert_eq!(Secs::new(90).std(), std::time::Duration::from_secs(90));
        assert!(positive_secs("0").unwrap_err().contains("1 or more"));
        assert!(positive_secs("-5").unwrap_err().contains("1 or more"));
        assert!(positive_secs("soon").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            http_url("http://prometheus:9090/").unwrap(),
            "http://prometheus:9090"
        );
        assert!(http_url("prometheus:9090").is_err());
        assert!(http_url("http://").is_err());
        assert!(http_url("http://host:99999").is_err());
        assert!(http_url("https://[::1]:9090").is_ok());
    }

    #[derive(Parser, Debug)]
    struct Demo {
        /// Poll interval.
        #[arg(long, env = "DEMO_POLL_INTERVAL_SEC", value_parser = positive_secs)]
        poll_interval_sec: Secs,
    }

    #[derive(Parser, Debug)]
    struct WithMode {
        #[arg(long, env = "DEMO_MODE", value_enum)]
        mode: crate::telemetry::LogFormat,
    }

    #[test]
    fn enum_errors_list_the_possible_values() {
        let e = WithMode::try_parse_from(["demo", "--mode", "staging"]).unwrap_err();
        let line = one_line(&e);
        assert!(line.contains("[possible values: human, json]"), "{line}");
    }

    #[test]
    fn clap_error_is_one_line_naming_the_setting() {
        let e = Demo::try_parse_from(["demo", "--poll-interval-sec", "0"]).unwrap_err();
        let line = one_line(&e);
        assert!(!line.contains('\n'));
        assert!(line.contains("--poll-interval-sec"), "{line}");
        assert!(line.contains("1 or more"), "{line}");
    }
}
