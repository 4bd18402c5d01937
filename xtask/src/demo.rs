//! `cargo xtask demo`: the motivating problem, live.
//!
//! Brings the proxy lab up in its `broken` scenario — HAProxy terminating
//! client TLS and re-encrypting to three real backends, closing backend
//! connections with a bare RST (tcp mode, `option nolinger`) — with the
//! backends at TLS 1.3 as HAProxy negotiates today (`--tls12` for the
//! seed's own TLS 1.2; `xtask::lab::demo` says why), drives a bounded load
//! through it in the background, and runs tlsmon in the proxy's namespace
//! on its client-facing and backend-facing interfaces: the dashboard on a
//! terminal, JSON lines otherwise (with a `"type":"diagnosis"` line when
//! the diagnosis appears). The OpenSSL-style Python backend rejects every
//! session HAProxy offers, and tlsmon says why. Everything is torn down on
//! exit, on error and on Ctrl-C.

use std::{
    io::IsTerminal as _,
    path::Path,
    process::{Child, ExitStatus},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use xtask::lab::{
    Lab,
    demo::{self as plan, DemoTls, MAX_TRAFFIC_TIME},
};

use crate::{
    setup::setup,
    util::{cargo, describe, is_root, run, target_dir, workspace_root},
};

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

/// Owns what the demo started; dropping it tears the lab down.
struct Demo {
    lab: Lab,
    load: Option<Child>,
    monitor: Option<Child>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        println!("demo: cleaning up");
        for child in [self.load.take(), self.monitor.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        match self.lab.down() {
            Ok(()) => println!("demo: lab namespaces and processes removed"),
            Err(e) => eprintln!("demo: tearing the lab down: {e:#}"),
        }
    }
}

pub fn demo(tls: DemoTls) -> Result<()> {
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

    let scenario = plan::scenario(tls);
    let lab = Lab::standard();
    println!("demo: bringing the proxy lab up — {}", scenario.describe());
    // `up` first removes whatever an interrupted earlier demo left behind.
    lab.up(&scenario)?;
    let mut demo = Demo {
        lab,
        load: None,
        monitor: None,
    };
    demo.load = Some(demo.lab.spawn_load(&plan::load(MAX_TRAFFIC_TIME))?);
    if interrupted() {
        println!("demo: interrupted before tlsmon started");
        return Ok(());
    }
    println!(
        "demo: watch the python backend: every session HAProxy offers it is rejected, because HAProxy resets its connections without close_notify"
    );
    let status = run_monitor(&mut demo, &tlsmon)?;
    drop(demo);
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

/// Runs tlsmon in the proxy namespace in the foreground until it exits;
/// forwards an interrupt to it if the terminal's Ctrl-C did not reach it.
fn run_monitor(demo: &mut Demo, tlsmon: &Path) -> Result<ExitStatus> {
    let headless = !std::io::stdout().is_terminal();
    let mut cmd = plan::tlsmon_command(&demo.lab, tlsmon, headless);
    println!("demo: starting tlsmon; press q or Ctrl-C to stop the demo");
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
