//! One load run with wrk, and what it reports.

use std::process::Command;
use std::time::Duration;

/// How hard and how long wrk drives a server.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// wrk's threads (`-t`).
    pub threads: u32,
    /// Open connections (`-c`).
    pub connections: u32,
    /// How long the run lasts (`-d`, whole seconds).
    pub duration: Duration,
}

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Completed requests per second.
    pub requests_per_sec: f64,
    /// The 99th percentile of the latency.
    pub p99: Duration,
    /// Responses other than 2xx/3xx plus socket errors (connect, read, write, timeout).
    pub errors: u64,
}

/// Why a wrk run gave no report.
#[derive(Debug, thiserror::Error)]
pub enum WrkError {
    /// wrk could not be started.
    #[error("cannot run wrk ({0}); install it (`apt-get install -y wrk`) or put it on PATH")]
    Spawn(#[from] std::io::Error),
    /// wrk exited with an error.
    #[error("wrk failed against {url}: {stderr}")]
    Failed {
        /// The URL it was driving.
        url: String,
        /// What wrk printed on stderr.
        stderr: String,
    },
    /// wrk's output lacks a line the report needs.
    #[error("wrk's output has no {what} line; is this wrk 4.x with `--latency`?\n{output}")]
    Unparsed {
        /// The missing line.
        what: &'static str,
        /// The whole output.
        output: String,
    },
}

/// Drives `url` with `load` and returns what wrk reports.
pub fn run(load: Load, url: &str) -> Result<Report, WrkError> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--latency")
        .arg(url)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(WrkError::Failed {
            url: url.to_owned(),
            stderr: format!("{}{stdout}", String::from_utf8_lossy(&output.stderr)),
        });
    }
    parse(&stdout)
}

/// Reads the requests per second, the 99th latency percentile and the error counts from wrk's
/// `--latency` output.
pub fn parse(output: &str) -> Result<Report, WrkError> {
    let unparsed = |what| WrkError::Unparsed {
        what,
        output: output.to_owned(),
    };
    let mut requests_per_sec = None;
    let mut p99 = None;
    let mut errors = 0;
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = rest.trim().parse::<f64>().ok();
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = parse_duration(rest.trim());
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Ok(Report {
        requests_per_sec: requests_per_sec.ok_or_else(|| unparsed("`Requests/sec:`"))?,
        p99: p99.ok_or_else(|| unparsed("`99%` latency"))?,
        errors,
    })
}

/// wrk's durations: `612.00us`, `1.25ms`, `2.00s`, `1.00m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.31us  120.02us   4.10ms   91.20%
    Req/Sec   101.20k     3.10k  108.00k    72.00%
  Latency Distribution
     50%  590.00us
     75%  640.00us
     90%  700.00us
     99%    1.25ms
  503712 requests in 5.00s, 61.01MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 100742.40
Transfer/sec:     12.20MB
";

    #[test]
    fn a_report_has_the_rate_the_p99_and_every_error() {
        let report = parse(OUTPUT).unwrap();
        assert_eq!(report.requests_per_sec, 100_742.40);
        assert_eq!(report.p99, Duration::from_micros(1250));
        assert_eq!(report.errors, 7);
    }

    #[test]
    fn output_without_a_rate_names_the_missing_line() {
        let err = parse("  99%  1.00ms\n").unwrap_err();
        assert!(err.to_string().contains("Requests/sec"), "{err}");
    }

    #[test]
    fn durations_in_every_unit_parse() {
        assert_eq!(parse_duration("612.00us"), Some(Duration::from_micros(612)));
        assert_eq!(parse_duration("2.00s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.00m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("12"), None);
        assert_eq!(parse_duration("1.0parsec"), None);
    }
}
