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
}

/// Parses the command line and environment, validates, and exits with one clear line on error.
pub fn parse_or_exit<T: Parser + Validate>() -> T {
    let bin = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_owned))
        .unwrap_or_else(|| "service".into());
    match T::try_parse() {
        Ok(config) => match config.validate() {
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

/// clap value parser: a whole number of seconds, at least 1.
pub fn positive_secs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n as u64),
        Ok(n) => Err(format!(
            "{n} is not allowed; a whole number of seconds, 1 or more"
        )),
        Err(_) => Err("not a whole number of seconds".into()),
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
        assert_eq!(positive_secs("30"), Ok(30));
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
        poll_interval_sec: u64,
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
