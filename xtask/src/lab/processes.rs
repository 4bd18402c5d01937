//! The lab's processes: started inside a namespace with their PID (and
//! start time, against PID reuse) recorded under `<state>/pids/`, waited
//! for until they listen, and stopped by that PID — then whatever else still
//! runs in the lab's namespaces.

use std::{
    ffi::OsString,
    fs,
    os::unix::process::CommandExt as _,
    path::Path,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::topology::{Lab, Ns};
use crate::{
    procfs::ProcStat,
    programs,
    util::{capture, create_file, describe},
};

/// How long a started server gets to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long stopping waits after SIGTERM before SIGKILL, and after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
const KILL_GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(50);

/// Whether a started daemon's `<name>.log` and `<name>.err` start empty or
/// keep what an earlier run of it wrote (a backend restarted mid-load).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Output {
    Truncate,
    Append,
}

/// A process to stop: a name for messages, its PID and its start time.
struct Recorded {
    name: String,
    pid: u32,
    start: u64,
}

impl Lab {
    /// Starts a long-running program in a namespace, detached from the
    /// caller's terminal (own process group), with stdout in
    /// `<state>/<name>.log` and stderr in `<state>/<name>.err`, and records
    /// its PID.
    pub(super) fn spawn_daemon(
        &self,
        ns: Ns,
        name: &str,
        command: &[OsString],
        output: Output,
    ) -> Result<u32> {
        let dir = self.state_dir();
        let (program, args) = command.split_first().context("empty command")?;
        let open = |path: &Path| match output {
            Output::Truncate => create_file(path),
            Output::Append => fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display())),
        };
        let mut cmd = self.exec(ns, program);
        cmd.args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(open(&dir.join(format!("{name}.log")))?)
            .stderr(open(&dir.join(format!("{name}.err")))?)
            .process_group(0);
        let text = describe(&cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start `{text}`"))?;
        let pid = child.id();
        // Not waited for here: `down` stops it by this PID and reaps it if it
        // is a child of the process calling `down`.
        drop(child);
        let start = start_time(pid)
            .with_context(|| format!("{name} (pid {pid}) vanished right after start"))?;
        let pid_file = self.pid_dir().join(format!("{name}.pid"));
        fs::write(&pid_file, format!("{pid} {start}\n"))
            .with_context(|| format!("writing {}", pid_file.display()))?;
        Ok(pid)
    }

    /// Waits until something listens on TCP `port` in `ns`; fails early,
    /// with the program's stderr, if it exits.
    pub(super) fn wait_listening(&self, ns: Ns, port: u16, name: &str, pid: u32) -> Result<()> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        let filter = format!("sport = :{port}");
        let err_file = self.state_dir().join(format!("{name}.err"));
        loop {
            let out = capture(self.exec(ns, "ss").args(["-Hltn", &filter]))?;
            if !out.trim().is_empty() {
                return Ok(());
            }
            if !alive(pid, None) {
                bail!(
                    "{name} exited before listening on port {port}; its stderr ({}):\n{}",
                    err_file.display(),
                    tail(&err_file, 20)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{name} does not listen on port {port} after {LISTEN_TIMEOUT:?}; its stderr:\n{}",
                    tail(&err_file, 20)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until `<name>.err` contains `needle` (e.g. tcpdump's
    /// `listening on`); fails early, with the file, if the process exits.
    pub(super) fn wait_for_stderr(&self, name: &str, pid: u32, needle: &str) -> Result<()> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        let err_file = self.state_dir().join(format!("{name}.err"));
        loop {
            if fs::read_to_string(&err_file).is_ok_and(|text| text.contains(needle)) {
                return Ok(());
            }
            if !alive(pid, None) || Instant::now() >= deadline {
                bail!(
                    "{name} did not say {needle:?} (exited or took over {LISTEN_TIMEOUT:?}); its stderr:\n{}",
                    tail(&err_file, 20)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// One recorded daemon, if it runs: its PID.
    fn recorded(&self, name: &str) -> Option<Recorded> {
        let path = self.pid_dir().join(format!("{name}.pid"));
        let (pid, start) = parse_pid_file(&fs::read_to_string(path).ok()?)?;
        alive(pid, Some(start)).then(|| Recorded {
            name: name.to_owned(),
            pid,
            start,
        })
    }

    /// Stops one daemon the lab started (SIGTERM, SIGKILL after a grace
    /// period) and forgets its PID; nothing if it does not run.
    pub(super) fn stop_daemon(&self, name: &str) -> Result<()> {
        let mut problems = Vec::new();
        if let Some(process) = self.recorded(name) {
            stop(&[process], &mut problems);
        }
        let _ = fs::remove_file(self.pid_dir().join(format!("{name}.pid")));
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("; "))
        }
    }

    /// Sends `signal` to a running daemon of the lab (e.g. SIGHUP: nginx
    /// reloads its configuration).
    pub(super) fn signal_daemon(&self, name: &str, signal_number: libc::c_int) -> Result<()> {
        let process = self
            .recorded(name)
            .with_context(|| format!("{name} does not run"))?;
        signal(process.pid, signal_number);
        Ok(())
    }

    /// Stops the processes the lab started, by their recorded PIDs, then
    /// whatever else still runs inside its namespaces (a load, a tlsmon, a
    /// process whose PID file was lost: these can only have been started in
    /// the lab). Adds what could not be stopped to `problems`.
    pub(super) fn stop_processes(&self, problems: &mut Vec<String>) {
        let mut procs = Vec::new();
        if let Ok(entries) = fs::read_dir(self.pid_dir()) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| parse_pid_file(&t))
                {
                    Some((pid, start)) => procs.push(Recorded { name, pid, start }),
                    None => problems.push(format!("unreadable PID file {}", path.display())),
                }
            }
        }
        stop(&procs, problems);

        let mut strays = Vec::new();
        for ns in Ns::ALL {
            let name = self.ns(ns);
            if !self.ns_exists(ns) {
                continue;
            }
            let Ok(out) = capture(programs::command("ip").args(["netns", "pids"]).arg(&name))
            else {
                continue;
            };
            for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                if let Some(start) = start_time(pid) {
                    strays.push(Recorded {
                        name: format!("pid {pid} in {name}"),
                        pid,
                        start,
                    });
                }
            }
        }
        if !strays.is_empty() {
            let names: Vec<&str> = strays.iter().map(|p| p.name.as_str()).collect();
            eprintln!(
                "lab: stopping processes left in the namespaces: {}",
                names.join(", ")
            );
            stop(&strays, problems);
        }
    }
}

/// The last `lines` lines of a file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn parse_pid_file(text: &str) -> Option<(u32, u64)> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let start = words.next()?.parse().ok()?;
    Some((pid, start))
}

fn start_time(pid: u32) -> Option<u64> {
    ProcStat::read(pid).map(|stat| stat.start)
}

/// Whether `pid` runs (not a zombie) and, if `start` is given, is still the
/// process that started then. Reaps it if it is a zombie child of ours.
fn alive(pid: u32, start: Option<u64>) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    match ProcStat::read(pid) {
        None => false,
        Some(now) if start.is_some_and(|s| s != now.start) => false,
        Some(ProcStat {
            state: 'Z' | 'X', ..
        }) => {
            // SAFETY: waitpid with WNOHANG only reaps `pid` if it is our
            // child; otherwise it fails with ECHILD, which is fine.
            unsafe { libc::waitpid(raw, std::ptr::null_mut(), libc::WNOHANG) };
            false
        }
        Some(_) => {
            // A child of ours that exited is a zombie until reaped.
            // SAFETY: as above.
            let reaped = unsafe { libc::waitpid(raw, std::ptr::null_mut(), libc::WNOHANG) };
            reaped != raw
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(raw) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions; the PID was
        // checked against its start time just before.
        unsafe { libc::kill(raw, signal) };
    }
}

/// SIGTERM, then SIGKILL after `TERM_GRACE`, each process by its PID, only
/// while it is still the process recorded (same start time).
fn stop(procs: &[Recorded], problems: &mut Vec<String>) {
    let running: Vec<&Recorded> = procs
        .iter()
        .filter(|p| alive(p.pid, Some(p.start)))
        .collect();
    for p in &running {
        signal(p.pid, libc::SIGTERM);
    }
    let mut left = wait_gone(&running, TERM_GRACE);
    if !left.is_empty() {
        for p in &left {
            if alive(p.pid, Some(p.start)) {
                signal(p.pid, libc::SIGKILL);
            }
        }
        left = wait_gone(&left, KILL_GRACE);
    }
    for p in left {
        problems.push(format!("{} (pid {}) did not stop", p.name, p.pid));
    }
}

fn wait_gone<'a>(procs: &[&'a Recorded], timeout: Duration) -> Vec<&'a Recorded> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<&Recorded> = procs
            .iter()
            .copied()
            .filter(|p| alive(p.pid, Some(p.start)))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files() {
        assert_eq!(parse_pid_file("17 99\n"), Some((17, 99)));
        assert_eq!(parse_pid_file("17\n"), None);
    }
}
