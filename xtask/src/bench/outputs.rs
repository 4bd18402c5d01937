//! What the programs of a lab run print, read back: `wrk`'s result,
//! tlsmon's closing summary line, tshark's handshake lines and its
//! dropped-packet count, and the return-only baseline's run time.

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    path::Path,
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

/// What `wrk` printed.
#[derive(Debug, PartialEq)]
pub struct Wrk {
    /// Complete responses, and the run's length in seconds.
    pub requests: u64,
    pub seconds: f64,
    pub errors: u64,
}

impl Wrk {
    /// Reads `N requests in 10.00s, ...`, and the optional `Socket errors:
    /// connect a, read b, write c, timeout d` and `Non-2xx or 3xx
    /// responses: N` lines.
    pub fn parse(text: &str) -> Option<Self> {
        let mut requests = None;
        let mut seconds = None;
        let mut errors = 0;
        for line in text.lines().map(str::trim) {
            if let Some((n, rest)) = line.split_once(" requests in ") {
                requests = n.trim().parse().ok();
                seconds = rest.split(',').next().and_then(wrk_duration);
            } else if let Some(rest) = line.strip_prefix("Socket errors:") {
                errors += rest
                    .split(',')
                    .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                    .sum::<u64>();
            } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                errors += rest.trim().parse::<u64>().unwrap_or(0);
            }
        }
        Some(Self {
            requests: requests?,
            seconds: seconds?,
            errors,
        })
    }
}

/// `wrk`'s durations: `850.00ms`, `10.00s`, `1.00m`.
fn wrk_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// What tlsmon's closing `"type":"summary"` line says.
#[derive(Debug, Deserialize, PartialEq)]
pub struct TlsmonSummary {
    pub handshakes: u64,
    pub lost_events: u64,
    /// The kernel programs' run time and runs (`--kernel-cost`).
    pub kernel_run_s: f64,
    pub kernel_runs: u64,
}

impl TlsmonSummary {
    /// The last summary line of tlsmon's output.
    pub fn parse(output: &str) -> Result<Self> {
        let line = output
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["type"] == "summary")
            .context("tlsmon printed no summary line")?;
        serde_json::from_value(line).context("reading tlsmon's summary line")
    }
}

/// `bench in-place`'s report: the baseline program's run time and runs.
#[derive(Debug, Deserialize)]
pub struct InPlaceOutput {
    pub run_ns: u64,
    pub runs: u64,
}

/// ServerHellos among tshark's lines (`time<TAB>types`, types
/// comma-separated when one frame holds several handshake messages).
pub fn server_hellos(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split('\t').nth(1))
        .map(|types| types.split(',').filter(|t| t.trim() == "2").count() as u64)
        .sum()
}

/// Packets dumpcap reported dropped (`N packets dropped from IF`).
pub fn tshark_dropped(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.contains(" packets dropped"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A JSON document a program wrote to a file.
pub fn read_json_file<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(text.trim()).with_context(|| format!("parsing {}", path.display()))
}

/// A file's text from byte `offset` on: what was appended to a log since.
pub fn read_from(path: &Path, offset: u64) -> Result<String> {
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    f.read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output() {
        let text = "\
Running 3s test @ https://10.210.1.1:443/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.47ms    4.21ms  40.10ms   71.43%
    Req/Sec   640.17     60.31   760.00     66.67%
  3841 requests in 3.00s, 1.23MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1279.86
Transfer/sec:    420.12KB
";
        assert_eq!(
            Wrk::parse(text),
            Some(Wrk {
                requests: 3841,
                seconds: 3.0,
                errors: 7
            })
        );
        assert_eq!(wrk_duration("850.00ms"), Some(0.85));
        assert_eq!(wrk_duration("1.50m"), Some(90.0));
        assert_eq!(Wrk::parse("unable to connect"), None);
    }

    #[test]
    fn tlsmon_summary_is_the_last_summary_line() {
        let out = "{\"type\":\"server\",\"server\":\"x\"}\n\
                   {\"type\":\"summary\",\"handshakes\":1,\"lost_events\":0,\"kernel_run_s\":0.5,\"kernel_runs\":9}\n\
                   not json\n\
                   {\"type\":\"summary\",\"handshakes\":12,\"lost_events\":3,\"kernel_run_s\":0.25,\"kernel_runs\":40,\"more\":1}\n";
        assert_eq!(
            TlsmonSummary::parse(out).unwrap(),
            TlsmonSummary {
                handshakes: 12,
                lost_events: 3,
                kernel_run_s: 0.25,
                kernel_runs: 40
            }
        );
        assert!(TlsmonSummary::parse("{\"type\":\"server\"}\n").is_err());
        assert!(TlsmonSummary::parse("{\"type\":\"summary\",\"handshakes\":1}\n").is_err());
    }

    #[test]
    fn tshark_counts() {
        assert_eq!(
            server_hellos("1.0\t1\n1.1\t2,11,12,14\n1.2\t2\n1.3\t1\n"),
            2
        );
        let stderr = "Capturing on 'a' and 'b'\n18 packets dropped from lab-back\n\
                      2 packets dropped from lab-front\n5325 packets captured\n";
        assert_eq!(tshark_dropped(stderr), 20);
    }
}
