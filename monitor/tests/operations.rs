//! tlsmon as an unattended daemon: the metrics endpoint scraped over HTTP
//! and parsed with the reference exposition parser, the text log format,
//! log reopening on SIGHUP (logrotate), the final lines on SIGTERM, and the
//! capabilities it keeps after attaching. Real namespaces and openssl
//! peers. Needs root.

mod common;

use std::{
    fs,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::{
            ffi::OsStrExt as _,
            fs::{MetadataExt as _, PermissionsExt as _},
        },
    },
    path::PathBuf,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use common::{
    Lab, Side, TLS_PORT, output, read, reconnect, start_s_server, start_tlsmon, wait_for_text,
};
use serde_json::Value;

const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_BPF: u64 = 1 << 39;

/// Packets the client's interface has received plus sent: the kernel's own
/// count of the packets tlsmon's two classifiers run on.
fn packets(lab: &mut Lab) -> u64 {
    let dir = format!("/sys/class/net/{}/statistics", lab.iface(Side::Client));
    let out = lab.run(
        Side::Client,
        "packets",
        &[
            "cat",
            &format!("{dir}/rx_packets"),
            &format!("{dir}/tx_packets"),
        ],
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "reading {dir}: {}", out.stderr);
    out.stdout
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum()
}

/// The metrics page on `port`, fetched inside the client namespace within
/// 3 s and parsed by the reference parser.
fn scrape(lab: &mut Lab, port: u16) -> Vec<String> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let scraped = lab.run(
        Side::Client,
        "scrape",
        &["curl", "--silent", "--show-error", "--max-time", "3", &url],
        Duration::from_secs(20),
    );
    assert!(
        scraped.status.success(),
        "metrics did not answer: {}",
        scraped.stderr
    );
    xtask::programs::prometheus_samples(&scraped.stdout).unwrap_or_else(|e| panic!("{e:#}"))
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("tlsmon's /proc status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

#[test]
fn metrics_logs_signals_and_capabilities() {
    let mut lab = Lab::new("ops", 6);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);

    let log = lab.dir.join("tlsmon.log");
    let rotated = lab.dir.join("tlsmon.log.1");
    let log_arg = log.display().to_string();
    let packets_before_attach = packets(&mut lab);
    let tlsmon = start_tlsmon(
        &mut lab,
        "tlsmon",
        &[
            "--headless",
            "--interval",
            "1",
            "--log",
            &log_arg,
            "--log-format",
            "text",
            "--metrics",
            "127.0.0.1:9464",
            "--kernel-cost",
        ],
    );

    // Once attached, only what re-attaching needs is left.
    for field in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(
            status_field(tlsmon.pid, field),
            CAP_BPF | CAP_NET_ADMIN,
            "{field} after attaching"
        );
    }

    let connect = format!("{}:{TLS_PORT}", lab.ip(Side::Server));
    let packets_before_load = packets(&mut lab);
    let (_, new, reused) = reconnect(&mut lab);
    let packets_after_load = packets(&mut lab);
    assert_eq!((new, reused), (1, 5), "s_client's own counts");
    // The metrics page refreshes every second.
    thread::sleep(Duration::from_millis(2500));

    let samples = scrape(&mut lab, 9464);
    let server = format!("role=backend,server={connect}");
    for want in [
        format!("tlsmon_handshakes_total kind=full,{server} {new}"),
        format!("tlsmon_handshakes_total kind=resumed,{server} {reused}"),
        format!("tlsmon_offered_total method=session_id,{server} {reused}"),
        "tlsmon_lost_events_total  0".to_owned(),
    ] {
        assert!(samples.contains(&want), "missing {want:?} in\n{samples:#?}");
    }

    // logrotate: move the file away, SIGHUP, and tlsmon writes a new one,
    // not readable by every user (it names servers).
    fs::rename(&log, &rotated).unwrap();
    lab.signal(&tlsmon, libc::SIGHUP);
    wait_for_text(&log, "full=", Duration::from_secs(10), &|| output(&tlsmon));
    let mode = fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "mode of the reopened log");
    let text_line = format!("backend {connect} full={new} resumed={reused} ");
    assert!(
        read(&rotated).contains(&text_line),
        "rotated log lacks {text_line:?}:\n{}",
        read(&rotated)
    );

    lab.signal(&tlsmon, libc::SIGTERM);
    let status = lab.wait(&tlsmon, Duration::from_secs(15));
    assert!(
        status.success(),
        "tlsmon on SIGTERM: {status}\n{}",
        output(&tlsmon)
    );
    let last = read(&log).lines().last().unwrap_or_default().to_owned();
    let summary: Value =
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("last line {last:?}: {e}"));
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["lost_events"], 0);
    assert!(read(&log).contains(&text_line), "final text line missing");

    let packets_at_end = packets(&mut lab);
    check_kernel_cost(
        &summary,
        &samples,
        packets_after_load - packets_before_load,
        packets_at_end - packets_before_attach,
    );
}

/// `--kernel-cost`: one run per packet in each direction (no split hellos
/// here, so no tail calls), between what the interface counted while the
/// load ran and everything since before tlsmon attached.
fn check_kernel_cost(summary: &Value, samples: &[String], during_load: u64, since_attach: u64) {
    let runs = summary["kernel_runs"].as_u64().expect("kernel_runs");
    assert_eq!(summary["split_hellos"], 0);
    assert!(
        (during_load..=since_attach).contains(&runs),
        "kernel_runs {runs}: the interface counted {during_load} packets during the load, \
         {since_attach} in all"
    );
    let seconds = summary["kernel_run_s"].as_f64().expect("kernel_run_s");
    assert!(
        seconds > 0.0 && seconds < 1.0,
        "kernel_run_s {seconds} for {runs} runs"
    );
    for name in [
        "tlsmon_kernel_runs_total ",
        "tlsmon_kernel_run_seconds_total ",
    ] {
        let value: f64 = samples
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in\n{samples:#?}"))
            .trim()
            .parse()
            .unwrap();
        assert!(value > 0.0, "{name}{value}");
    }
}

/// A tlsmon started by hand (its stdout is a pipe the test holds), killed
/// however the test ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pipe whose buffer holds one page, so that a reader who never reads
/// stalls the writer after a few lines.
fn small_pipe() -> (fs::File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: a valid array for the two descriptors; checked below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: descriptors just created and owned by nothing else.
    let (r, w) = unsafe { (fs::File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a valid descriptor.
    let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        size >= 4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    (r, w)
}

/// Bytes waiting in the pipe.
fn queued(r: &fs::File) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    unsafe { libc::ioctl(r.as_raw_fd(), libc::FIONREAD, &raw mut n) };
    usize::try_from(n).unwrap_or(0)
}

/// Waits until the writer into `pipe` is stuck: a page holds two server
/// lines, and a third (shorter than `PIPE_BUF`, so written whole or not at
/// all) waits for room that never comes.
fn wait_full(pipe: &fs::File) {
    wait_until("a full pipe", Duration::from_secs(20), || {
        let n = queued(pipe);
        n > 2000 && {
            thread::sleep(Duration::from_secs(1));
            queued(pipe) == n
        }
    });
}

/// tlsmon with stdout into `pipe`, stderr into a file, once attached.
fn start_with_stdout(
    lab: &mut Lab,
    name: &str,
    pipe: OwnedFd,
    extra: &[&str],
) -> (Daemon, PathBuf) {
    let iface = lab.iface(Side::Client).to_owned();
    let err = lab.dir.join(format!("{name}.err"));
    let mut argv = vec![common::TLSMON, "--iface", &iface, "--headless"];
    argv.extend_from_slice(extra);
    let child = lab
        .exec(Side::Client, &argv)
        .stdin(Stdio::null())
        .stdout(Stdio::from(pipe))
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("starting tlsmon");
    let daemon = Daemon(child);
    wait_for_text(&err, "tlsmon: attached to", common::ATTACH_TIMEOUT, &|| {
        read(&err)
    });
    (daemon, err)
}

fn wait_until(what: &str, timeout: Duration, ok: impl Fn() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM and returns how long the process took to exit.
fn terminate(daemon: &mut Daemon) -> (Duration, std::process::ExitStatus) {
    let pid = libc::pid_t::try_from(daemon.0.id()).unwrap();
    let start = Instant::now();
    // SAFETY: kill on our own, not yet reaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            return (start.elapsed(), status);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tlsmon ignores SIGTERM"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A reader that stops reading tlsmon's output (issue 14): with stdout a
/// pipe nobody reads, the metrics endpoint must keep answering with the
/// right counts, no event may be lost, SIGTERM must end tlsmon within two
/// seconds, and the lines it had to drop are counted in its summary. The
/// handshakes are `openssl s_time`'s, counted by s_time itself.
#[test]
fn a_stuck_reader_stops_nothing() {
    let mut lab = Lab::new("stuk", 7);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    let (mut pipe, w) = small_pipe();
    let (mut tlsmon, err) = start_with_stdout(
        &mut lab,
        "tlsmon",
        w,
        &[
            "--interval",
            "0.2",
            "--ring-buffer-mb",
            "1",
            "--metrics",
            "127.0.0.1:9465",
        ],
    );
    // A server to write lines about; nobody reads them: the pipe fills,
    // and then the output thread is stuck.
    let (_, first, reused) = reconnect(&mut lab);
    assert_eq!((first, reused), (1, 5));
    wait_full(&pipe);

    let connect = format!("{}:{TLS_PORT}", lab.ip(Side::Server));
    let load = lab.run(
        Side::Client,
        "s_time",
        &[
            "openssl", "s_time", "-connect", &connect, "-new", "-time", "3",
        ],
        Duration::from_secs(30),
    );
    let made: u64 = load
        .stdout
        .lines()
        .find_map(|l| {
            l.split_once(" connections in ")
                .map(|(n, _)| n.trim().parse().ok())
        })
        .flatten()
        .unwrap_or_else(|| panic!("no count from s_time:\n{}", load.stdout));
    assert!(made > 100, "s_time made only {made} connections");
    let made = made + first;
    thread::sleep(Duration::from_millis(2500));
    // An answer within 3 s, or the scrape fails.
    let samples = scrape(&mut lab, 9465);
    let server = format!("role=backend,server={connect}");
    for want in [
        format!("tlsmon_handshakes_total kind=full,{server} {made}"),
        "tlsmon_lost_events_total  0".to_owned(),
    ] {
        assert!(samples.contains(&want), "missing {want:?} in\n{samples:#?}");
    }

    // The reader comes back as tlsmon is told to stop: the queued lines and
    // the summary arrive, and the summary counts what was dropped.
    let reader = thread::spawn(move || {
        let mut all = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut all);
        all
    });
    let (took, status) = terminate(&mut tlsmon);
    assert!(
        status.success(),
        "tlsmon on SIGTERM: {status}\n{}",
        read(&err)
    );
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
    let out = reader.join().unwrap();
    let last = out.lines().last().unwrap_or_default();
    let summary: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{last:?}: {e}"));
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["full"], made);
    assert_eq!(summary["lost_events"], 0);
    let dropped = summary["dropped_output_lines"].as_u64().unwrap();
    assert!(dropped > 0, "nothing dropped by a stuck reader? {summary}");
    eprintln!(
        "stuck reader: {made} handshakes, 0 lost, {dropped} lines dropped, SIGTERM to exit {took:?}"
    );

    nobody_ever_reads(&mut lab);
}

/// A reader that never comes back: tlsmon still ends promptly.
fn nobody_ever_reads(lab: &mut Lab) {
    let (pipe, w) = small_pipe();
    let (mut tlsmon, err) = start_with_stdout(lab, "tlsmon2", w, &["--interval", "0.2"]);
    let (_, new, reused) = reconnect(lab);
    assert_eq!((new, reused), (1, 5));
    wait_full(&pipe);
    thread::sleep(Duration::from_millis(1500));
    let (took, status) = terminate(&mut tlsmon);
    assert!(
        status.success(),
        "tlsmon on SIGTERM: {status}\n{}",
        read(&err)
    );
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM took {took:?} with nobody reading"
    );
    eprintln!("nobody reading: SIGTERM to exit {took:?}");
    drop(pipe);
}

/// `--log` in a directory another user owns (issue 14): tlsmon opens it
/// at start, before it drops its privileges, creating it 0640. After
/// logrotate's rename, tlsmon (root without CAP_DAC_OVERRIDE) cannot
/// create a file there: the reopen fails, tlsmon says so once and keeps
/// writing to the old file. Once logrotate creates the new file itself
/// (`create`), the next SIGHUP reopens it.
#[test]
fn log_reopen_in_a_directory_another_user_owns() {
    let mut lab = Lab::new("logo", 9);
    let (cert, key) = lab.make_cert();
    let _server = start_s_server(&mut lab, "s_server", &cert, &key);
    let dir = lab.dir.join("logs");
    fs::create_dir(&dir).unwrap();
    // SAFETY: chown on a path we just created.
    let cdir = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::chown(cdir.as_ptr(), 65534, 65534) }, 0);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.join("tlsmon.log");
    let rotated = dir.join("tlsmon.log.1");
    let log_arg = log.display().to_string();
    let tlsmon = start_tlsmon(
        &mut lab,
        "tlsmon",
        &[
            "--headless",
            "--interval",
            "0.5",
            "--log",
            &log_arg,
            "--log-format",
            "text",
        ],
    );
    let (_, new, reused) = reconnect(&mut lab);
    assert_eq!((new, reused), (1, 5));
    wait_for_text(&log, "full=1", Duration::from_secs(10), &|| output(&tlsmon));
    let meta = fs::metadata(&log).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "mode of the log");
    assert_eq!(meta.uid(), 0);

    fs::rename(&log, &rotated).unwrap();
    lab.signal(&tlsmon, libc::SIGHUP);
    wait_for_text(
        &tlsmon.stderr,
        "still writing to the old file",
        Duration::from_secs(10),
        &|| output(&tlsmon),
    );
    assert!(
        lab.running(&tlsmon),
        "a failed reopen ended tlsmon:\n{}",
        output(&tlsmon)
    );
    assert!(
        !log.exists(),
        "tlsmon created a file it should not have been able to"
    );
    let before = read(&rotated).len();
    wait_until("lines in the old file", Duration::from_secs(10), || {
        read(&rotated).len() > before
    });

    // logrotate's `create 0640 root root`, then its postrotate SIGHUP.
    fs::File::create(&log).unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o640)).unwrap();
    lab.signal(&tlsmon, libc::SIGHUP);
    wait_for_text(&log, "full=1", Duration::from_secs(10), &|| output(&tlsmon));

    lab.signal(&tlsmon, libc::SIGTERM);
    let status = lab.wait(&tlsmon, Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", output(&tlsmon));
    let last = read(&log).lines().last().unwrap_or_default().to_owned();
    let summary: Value = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{last:?}: {e}"));
    assert_eq!(summary["full"], 1);
    let said = read(&tlsmon.stderr)
        .matches("still writing to the old file")
        .count();
    assert_eq!(said, 1, "the failure is said once:\n{}", output(&tlsmon));
}

/// Errors about the outputs come before anything is attached: a metrics
/// port already taken and a log directory that does not exist each end
/// tlsmon with one sentence and without "attached to".
#[test]
fn output_errors_come_before_attaching() {
    let mut lab = Lab::new("ordr", 10);
    let (cert, key) = lab.make_cert();
    // Something else listens on the metrics port in tlsmon's namespace.
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let _taken = lab.spawn(
        Side::Client,
        "taken",
        &[
            "openssl",
            "s_server",
            "-accept",
            "127.0.0.1:9466",
            "-cert",
            &c,
            "-key",
            &k,
        ],
    );
    lab.wait_listening(Side::Client, 9466, Duration::from_secs(10));
    let iface = lab.iface(Side::Client).to_owned();
    for (name, args, says) in [
        (
            "metrics",
            ["--metrics", "127.0.0.1:9466"],
            "listening for metrics on",
        ),
        (
            "log",
            ["--log", "/nonexistent/dir/tlsmon.log"],
            "opening log directory /nonexistent/dir",
        ),
    ] {
        let mut argv = vec![common::TLSMON, "--iface", &iface, "--headless"];
        argv.extend(args);
        let out = lab.run(Side::Client, name, &argv, Duration::from_mins(1));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{name}: {}", out.stderr);
        assert!(
            !out.stderr.contains("attached to"),
            "{name} after attaching: {}",
            out.stderr
        );
    }
}
