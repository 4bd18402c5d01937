//! What `/proc` says about a process, the machine's CPUs and a namespace's
//! TCP connections (proc(5)): the lab reads it to stop exactly the
//! processes it started, the bench to charge CPU time to who spent it.

use std::fs;

use anyhow::{Context as _, Result, ensure};

/// The fields of `/proc/<pid>/stat` the jobs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Field 4.
    pub ppid: u32,
    /// Fields 14 and 15: user and system time, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Field 22: when the process started, in clock ticks since boot;
    /// with the PID it names one process, whatever reuses the PID later.
    pub start: u64,
}

impl ProcStat {
    /// `/proc/<pid>/stat`, or `None` if there is no such process.
    #[must_use]
    pub fn read(pid: u32) -> Option<Self> {
        Self::parse(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    #[must_use]
    pub fn parse(stat: &str) -> Option<Self> {
        // The command name (field 2) may contain spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // `fields[0]` is field 3.
        let field = |n: usize| fields.get(n - 3).copied();
        Some(Self {
            state: field(3)?.chars().next()?,
            ppid: field(4)?.parse().ok()?,
            utime: field(14)?.parse().ok()?,
            stime: field(15)?.parse().ok()?,
            start: field(22)?.parse().ok()?,
        })
    }
}

/// User and system CPU seconds of `root` and its living descendants (tshark
/// runs `dumpcap` as a child).
pub fn tree_cpu_s(root: u32) -> Result<(f64, f64)> {
    let mut procs = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = ProcStat::read(pid) {
            procs.push((pid, stat));
        }
    }
    ensure!(procs.iter().any(|p| p.0 == root), "process {root} is gone");
    let mut tree = vec![root];
    let (mut user, mut sys) = (0, 0);
    while let Some(pid) = tree.pop() {
        for (p, stat) in &procs {
            if *p == pid {
                user += stat.utime;
                sys += stat.stime;
            }
            if stat.ppid == pid {
                tree.push(*p);
            }
        }
    }
    let hz = clock_ticks()?;
    Ok((as_f64(user) / hz, as_f64(sys) / hz))
}

/// CPU seconds the machine has been busy since boot, all CPUs together:
/// user, nice, system, irq and softirq time from `/proc/stat` (not idle,
/// iowait, or steal, which is another guest's).
pub fn busy_cpu_s() -> Result<f64> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let busy = busy_ticks(&stat).context("no readable `cpu` line in /proc/stat")?;
    Ok(as_f64(busy) / clock_ticks()?)
}

/// The busy ticks of `/proc/stat`'s all-CPU line (user nice system idle
/// iowait irq softirq steal ...).
fn busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, ..] = ticks[..] else {
        return None;
    };
    Some(user + nice + system + irq + softirq)
}

/// CPUs `/proc/stat` counts, whose times [`busy_cpu_s`] adds up.
pub fn cpus() -> Result<f64> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let n = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    ensure!(n > 0, "no per-CPU lines in /proc/stat");
    Ok(as_f64(n as u64))
}

/// Clock ticks per second of `/proc`'s CPU times.
fn clock_ticks() -> Result<f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ensure!(hz > 0, "sysconf(_SC_CLK_TCK) failed");
    Ok(as_f64(u64::try_from(hz)?))
}

/// The 1-minute load average, to judge how busy the shared machine was.
#[must_use]
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
}

/// `Tcp: ... ActiveOpens ...` from `/proc/net/snmp` (TCP connections this
/// network namespace opened): a header line, then the values in the same
/// order.
#[must_use]
pub fn active_opens(snmp: &str) -> Option<u64> {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let names = tcp.next()?.split_whitespace();
    let values = tcp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(name, _)| *name == "ActiveOpens")?
        .1
        .parse()
        .ok()
}

#[expect(
    clippy::cast_precision_loss,
    reason = "tick and CPU counts stay far below 2^52"
)]
fn as_f64(n: u64) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let stat = "4242 (tsh ark) (x) S 4200 4242 4200 0 -1 4194560 100 0 0 0 \
                    250 31 0 0 20 0 1 0 123456 1000 100";
        assert_eq!(
            ProcStat::parse(stat),
            Some(ProcStat {
                state: 'S',
                ppid: 4200,
                utime: 250,
                stime: 31,
                start: 123_456,
            })
        );
        assert_eq!(ProcStat::parse("garbage"), None);
        assert_eq!(ProcStat::parse("1 (x) S 0 1 1"), None);
    }

    #[test]
    fn busy_time_leaves_out_idle_iowait_and_steal() {
        let stat = "cpu  100 5 50 1000 20 3 7 9 0 0\ncpu0 50 2 25 500 10 1 3 4 0 0\n";
        assert_eq!(busy_ticks(stat), Some(100 + 5 + 50 + 3 + 7));
        assert_eq!(busy_ticks("cpu  1 2 3\n"), None);
        assert_eq!(busy_ticks("cpu0 1 2 3 4 5 6 7\n"), None);
    }

    #[test]
    fn active_opens_from_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin ActiveOpens PassiveOpens\nTcp: 1 200 8123 4\n";
        assert_eq!(active_opens(snmp), Some(8123));
        assert_eq!(active_opens("Ip: 1\n"), None);
    }
}
