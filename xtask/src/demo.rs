//! `cargo xtask demo`: tlsmon watching live TLS traffic between two network
//! namespaces.
//!
//! An `openssl s_server` runs in one namespace; a bounded loop of
//! `openssl s_client` runs in the other, mostly full handshakes followed by
//! resumptions, and now and then a saved session offered to a freshly
//! restarted server (a rejected resumption). tlsmon runs in the foreground on
//! the client's veth. Everything is torn down on exit, on error and on Ctrl-C.

use std::{
    env, fs,
    io::IsTerminal as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{self, Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    setup::setup,
    util::{capture, cargo, describe, is_root, probe, run, target_dir, workspace_root},
};

const CLI_NS: &str = "tlsmon-demo-cli";
const SRV_NS: &str = "tlsmon-demo-srv";
const CLI_IF: &str = "veth-demo-c";
const SRV_IF: &str = "veth-demo-s";
const CLI_ADDR: &str = "10.200.0.1/30";
const SRV_ADDR: &str = "10.200.0.2/30";
const SERVER: &str = "10.200.0.2:8443";
const PORT: u16 = 8443;

/// Bounds of the client loop: it stops at whichever comes first.
const ITERATIONS: u32 = 600;
const MAX_TRAFFIC_TIME: Duration = Duration::from_mins(10);
const PAUSE: Duration = Duration::from_millis(500);
/// Every this many iterations a saved session is offered to a restarted server.
const RESTART_EVERY: u32 = 20;

/// How long tlsmon gets to print its final lines after SIGINT.
const MONITOR_GRACE: Duration = Duration::from_secs(10);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Turns SIGINT, SIGTERM and SIGHUP into a flag so that cleanup always runs.
/// Children get the default dispositions back when they exec.
fn catch_signals() -> Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; the sigaction struct is fully initialised.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&raw mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(signal, &raw const action, std::ptr::null_mut())
        };
        if rc != 0 {
            bail!("sigaction({signal}): {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A child process shared between the main thread and the traffic thread.
/// Only whoever holds the lock waits for it, so its PID cannot be reused while
/// someone may still signal it.
type Slot = Arc<Mutex<Option<Child>>>;

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<Child>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills the process in the slot, if any, and reaps it.
fn kill_slot(slot: &Slot) {
    if let Some(mut child) = lock(slot).take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn netns_exec(ns: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    cmd
}

/// Paths in the demo's temporary directory.
#[derive(Clone)]
struct Files {
    dir: PathBuf,
}

impl Files {
    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    fn session(&self) -> PathBuf {
        self.dir.join("session.pem")
    }
    fn server_log(&self) -> PathBuf {
        self.dir.join("s_server.log")
    }
}

/// Owns everything the demo starts; dropping it tears it all down.
struct Demo {
    files: Files,
    server: Slot,
    client: Slot,
    stop: Arc<AtomicBool>,
    traffic: Option<JoinHandle<()>>,
    traffic_error: Arc<Mutex<Option<String>>>,
    monitor: Option<Child>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        println!("demo: cleaning up");
        self.stop.store(true, Ordering::SeqCst);
        kill_slot(&self.client);
        if let Some(traffic) = self.traffic.take() {
            let _ = traffic.join();
        }
        kill_slot(&self.client);
        kill_slot(&self.server);
        if let Some(mut monitor) = self.monitor.take() {
            let _ = monitor.kill();
            let _ = monitor.wait();
        }
        remove_namespaces();
        if let Err(err) = fs::remove_dir_all(&self.files.dir) {
            eprintln!("demo: could not remove {}: {err}", self.files.dir.display());
        }
        println!(
            "demo: removed namespaces {CLI_NS}, {SRV_NS} and {}",
            self.files.dir.display()
        );
    }
}

pub fn demo() -> Result<()> {
    if !is_root() {
        bail!(
            "cargo xtask demo must run as root: it creates network namespaces and loads eBPF programs"
        );
    }
    setup()?;
    run(cargo()
        .current_dir(workspace_root())
        .args(["build", "--release", "-p", "monitor"]))?;
    let tlsmon = target_dir().join("release/tlsmon");
    if !tlsmon.is_file() {
        bail!("{} was not built", tlsmon.display());
    }

    catch_signals()?;
    // An interrupted or killed earlier demo may have left these behind.
    remove_namespaces();
    remove_stale_dirs();

    let dir = env::temp_dir().join(format!("tlsmon-demo-{}", process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut demo = Demo {
        files: Files { dir },
        server: Arc::default(),
        client: Arc::default(),
        stop: Arc::default(),
        traffic: None,
        traffic_error: Arc::default(),
        monitor: None,
    };

    create_network()?;
    make_certificate(&demo.files)?;
    *lock(&demo.server) = Some(start_server(&demo.files)?);
    demo.traffic = Some(start_traffic(&demo)?);

    if interrupted() {
        println!("demo: interrupted before tlsmon started");
        return Ok(());
    }
    let status = run_monitor(&mut demo, &tlsmon)?;
    let traffic_error = demo
        .traffic_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    drop(demo);

    if let Some(err) = traffic_error {
        eprintln!("demo: the client loop stopped early: {err}");
    }
    if interrupted() {
        println!("demo: interrupted; everything was cleaned up");
        return Ok(());
    }
    if !status.success() {
        bail!("tlsmon exited with {status}");
    }
    println!("demo: tlsmon finished; everything was cleaned up");
    Ok(())
}

/// Names of the demo's namespaces that exist now.
fn existing_namespaces() -> Vec<String> {
    let Ok(out) = probe(Command::new("ip").args(["netns", "list"])) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| [CLI_NS, SRV_NS].contains(name))
        .map(str::to_owned)
        .collect()
}

/// Kills whatever still runs inside the demo's namespaces (by PID: processes
/// of an earlier, killed demo) and deletes the namespaces.
fn remove_namespaces() {
    for ns in existing_namespaces() {
        if let Ok(pids) = capture(Command::new("ip").args(["netns", "pids", &ns])) {
            for pid in pids
                .split_whitespace()
                .filter_map(|pid| pid.parse::<libc::pid_t>().ok())
            {
                println!("demo: killing leftover process {pid} in {ns}");
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if let Err(err) = run(Command::new("ip").args(["netns", "del", &ns])) {
            eprintln!("demo: {err:#}");
        }
    }
}

/// Removes `tlsmon-demo-<pid>` temporary directories of demos that are no
/// longer running (killed before they could clean up).
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("tlsmon-demo-"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            println!(
                "demo: removing {} (left by an earlier demo)",
                entry.path().display()
            );
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn create_network() -> Result<()> {
    for ns in [CLI_NS, SRV_NS] {
        run(Command::new("ip").args(["netns", "add", ns]))?;
    }
    run(Command::new("ip").args([
        "link", "add", CLI_IF, "netns", CLI_NS, "type", "veth", "peer", "name", SRV_IF, "netns",
        SRV_NS,
    ]))?;
    for (ns, iface, addr) in [(CLI_NS, CLI_IF, CLI_ADDR), (SRV_NS, SRV_IF, SRV_ADDR)] {
        run(netns_exec(ns).args(["ip", "addr", "add", addr, "dev", iface]))?;
        run(netns_exec(ns).args(["ip", "link", "set", iface, "up"]))?;
        run(netns_exec(ns).args(["ip", "link", "set", "lo", "up"]))?;
    }
    Ok(())
}

fn make_certificate(files: &Files) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ])
    .args(["-days", "2", "-subj", "/CN=tlsmon-demo", "-keyout"])
    .arg(files.key())
    .arg("-out")
    .arg(files.cert());
    println!("+ {}", describe(&cmd));
    capture(&mut cmd)?;
    Ok(())
}

/// Starts `openssl s_server` in the server namespace and waits until it listens.
fn start_server(files: &Files) -> Result<Child> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(files.server_log())
        .with_context(|| format!("opening {}", files.server_log().display()))?;
    let mut cmd = netns_exec(SRV_NS);
    cmd.args([
        "openssl",
        "s_server",
        "-tls1_2",
        "-no_ticket",
        "-www",
        "-quiet",
    ])
    .args(["-accept", &PORT.to_string(), "-cert"])
    .arg(files.cert())
    .arg("-key")
    .arg(files.key())
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log)
    // Its own process group: a Ctrl-C in the terminal reaches tlsmon and
    // this xtask, and the xtask stops the servers and clients itself.
    .process_group(0);
    let text = describe(&cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{text}`"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "`{text}` exited at once with {status}; see {}",
                files.server_log().display()
            );
        }
        let listening =
            capture(netns_exec(SRV_NS).args(["ss", "-Hltn", &format!("sport = :{PORT}")]))?;
        if !listening.trim().is_empty() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{text}` is not listening on port {PORT} after 10 s");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn start_traffic(demo: &Demo) -> Result<JoinHandle<()>> {
    let files = demo.files.clone();
    let server = Arc::clone(&demo.server);
    let client = Arc::clone(&demo.client);
    let stop = Arc::clone(&demo.stop);
    let error = Arc::clone(&demo.traffic_error);
    println!(
        "demo: client loop: up to {ITERATIONS} rounds of `openssl s_client -tls1_2 -reconnect -connect {SERVER}` \
         in {CLI_NS}, every {RESTART_EVERY}th offering a saved session to a restarted server"
    );
    thread::Builder::new()
        .name("traffic".into())
        .spawn(move || {
            if let Err(err) = traffic(&files, &server, &client, &stop) {
                *error.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!("{err:#}"));
            }
        })
        .context("starting the client loop")
}

/// The client loop. Returns early when `stop` is set.
fn traffic(files: &Files, server: &Slot, client: &Slot, stop: &AtomicBool) -> Result<()> {
    let started = Instant::now();
    for round in 1..=ITERATIONS {
        if stop.load(Ordering::SeqCst) || started.elapsed() > MAX_TRAFFIC_TIME {
            break;
        }
        if round % RESTART_EVERY == 0 {
            // Save a session, restart the server (its session cache is gone),
            // then offer the saved session: the server must reject it.
            let mut save = s_client();
            save.arg("-sess_out").arg(files.session());
            run_client(client, stop, &mut save);
            kill_slot(server);
            if stop.load(Ordering::SeqCst) {
                break;
            }
            *lock(server) = Some(start_server(files)?);
            let mut offer = s_client();
            offer.arg("-sess_in").arg(files.session());
            run_client(client, stop, &mut offer);
        } else {
            let mut reconnect = s_client();
            reconnect.arg("-reconnect");
            run_client(client, stop, &mut reconnect);
        }
        let pause_end = Instant::now() + PAUSE;
        while Instant::now() < pause_end && !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn s_client() -> Command {
    let mut cmd = netns_exec(CLI_NS);
    cmd.args(["openssl", "s_client", "-tls1_2", "-connect", SERVER])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd
}

/// Runs one client to its end (or until `stop`); its failures are not errors:
/// the demo only needs the traffic.
fn run_client(slot: &Slot, stop: &AtomicBool, cmd: &mut Command) {
    {
        let mut guard = lock(slot);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match cmd.spawn() {
            Ok(child) => *guard = Some(child),
            Err(_) => return,
        }
    }
    loop {
        {
            let mut guard = lock(slot);
            match guard.as_mut().map(Child::try_wait) {
                // Taken (and killed) by the cleanup, or finished.
                None => return,
                Some(Ok(Some(_)) | Err(_)) => {
                    guard.take();
                    return;
                }
                Some(Ok(None)) => {}
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs tlsmon in the client namespace in the foreground until it exits;
/// forwards an interrupt to it if the terminal's Ctrl-C did not reach it.
fn run_monitor(demo: &mut Demo, tlsmon: &Path) -> Result<ExitStatus> {
    let mut cmd = netns_exec(CLI_NS);
    cmd.arg(tlsmon).args(["--iface", CLI_IF]);
    if !std::io::stdout().is_terminal() {
        cmd.arg("--headless");
    }
    println!("demo: starting tlsmon; press Ctrl-C to stop the demo");
    println!("+ {}", describe(&cmd));
    let text = describe(&cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("could not start `{text}`"))?;
    let pid = libc::pid_t::try_from(child.id()).context("PID out of range")?;
    let monitor = demo.monitor.insert(child);

    // `ip netns exec` execs the program, so `pid` is tlsmon itself.
    let mut interrupted_at: Option<Instant> = None;
    let mut sent_int = false;
    let mut sent_kill = false;
    loop {
        if let Some(status) = monitor.try_wait()? {
            demo.monitor = None;
            return Ok(status);
        }
        if interrupted() {
            let since = *interrupted_at.get_or_insert_with(Instant::now);
            // A Ctrl-C in the terminal reached tlsmon too; give it a moment
            // before sending SIGINT (for a signal sent to this xtask alone).
            if !sent_int && since.elapsed() > Duration::from_secs(1) {
                // SAFETY: kill has no memory-safety preconditions; the child
                // has not been reaped, so the PID is still ours.
                unsafe { libc::kill(pid, libc::SIGINT) };
                sent_int = true;
            }
            if !sent_kill && since.elapsed() > MONITOR_GRACE {
                eprintln!(
                    "demo: tlsmon did not exit within {MONITOR_GRACE:?} of SIGINT; killing it"
                );
                let _ = monitor.kill();
                sent_kill = true;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}
