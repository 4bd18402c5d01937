//! A small harness for root integration tests: two network namespaces joined
//! by a veth pair, processes started inside them, and a guard that tears it
//! all down. Every helper panics with context instead of returning errors.

// Each test binary uses a different part of this harness.
#![allow(dead_code)]

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{self, Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use xtask::programs;

mod attacker;
mod peers;

// Each test binary uses a different part (as `dead_code` above).
#[allow(unused_imports)]
pub use attacker::*;
#[allow(unused_imports)]
pub use peers::*;

/// Which end of the veth pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// A process started by [`Lab::spawn`]; its output goes to files.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub pid: u32,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// What a process printed, read back from its files.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Panics unless the test runs as root: namespaces and eBPF need it, and a
/// silently skipped end-to-end test would hide a broken monitor.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (network namespaces, veth pairs, eBPF); run it as root, e.g. via \
         `cargo xtask test`"
    );
}

/// Two namespaces, `client` and `server`, joined by a veth pair with
/// `10.201.<subnet>.1/30` (client) and `10.201.<subnet>.2/30` (server).
/// Dropping it kills every process it started and deletes the namespaces.
pub struct Lab {
    client_ns: String,
    server_ns: String,
    client_if: String,
    server_if: String,
    client_ip: String,
    server_ip: String,
    /// Scratch directory for certificates, sessions and process output.
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    /// `tag` keeps names unique between tests of one run (at most 4
    /// characters); `subnet` picks the addresses.
    pub fn new(tag: &str, subnet: u8) -> Self {
        require_root();
        assert!(
            !tag.is_empty() && tag.len() <= 4 && tag.chars().all(|c| c.is_ascii_alphanumeric()),
            "lab tag {tag:?} must be 1-4 ASCII letters or digits"
        );
        let pid = process::id();
        let client_if = format!("t{pid}{tag}c");
        let server_if = format!("t{pid}{tag}s");
        assert!(
            client_if.len() <= 15,
            "interface name {client_if} is too long"
        );
        let dir = env::temp_dir().join(format!("tlsmon-e2e-{pid}-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let lab = Self {
            client_ns: format!("tlsmon-t{pid}-{tag}-cli"),
            server_ns: format!("tlsmon-t{pid}-{tag}-srv"),
            client_if,
            server_if,
            client_ip: format!("10.201.{subnet}.1"),
            server_ip: format!("10.201.{subnet}.2"),
            dir,
            children: Vec::new(),
        };
        // Leftovers of an earlier run that had the same process id.
        lab.delete_namespaces();
        // From here on, Drop cleans up whatever part got created.
        for ns in [&lab.client_ns, &lab.server_ns] {
            must_run(programs::command("ip").args(["netns", "add", ns]));
        }
        must_run(programs::command("ip").args([
            "link",
            "add",
            &lab.client_if,
            "netns",
            &lab.client_ns,
            "type",
            "veth",
            "peer",
            "name",
            &lab.server_if,
            "netns",
            &lab.server_ns,
        ]));
        for side in [Side::Client, Side::Server] {
            let addr = format!("{}/30", lab.ip(side));
            must_run(&mut lab.exec(side, &["ip", "addr", "add", &addr, "dev", lab.iface(side)]));
            must_run(&mut lab.exec(side, &["ip", "link", "set", lab.iface(side), "up"]));
            must_run(&mut lab.exec(side, &["ip", "link", "set", "lo", "up"]));
        }
        lab
    }

    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.client_ns,
            Side::Server => &self.server_ns,
        }
    }

    pub fn iface(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.client_if,
            Side::Server => &self.server_if,
        }
    }

    pub fn ip(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.client_ip,
            Side::Server => &self.server_ip,
        }
    }

    /// `ip netns exec <ns> argv...` (which execs, so the child's PID is the
    /// program's own).
    pub fn exec<S: AsRef<std::ffi::OsStr>>(&self, side: Side, argv: &[S]) -> Command {
        let mut cmd = programs::command("ip");
        cmd.args(["netns", "exec", self.ns(side)]);
        // The program from the system's directories, never from PATH.
        if let Some((program, args)) = argv.split_first() {
            cmd.arg(programs::resolve(program.as_ref())).args(args);
        }
        cmd
    }

    /// Starts `argv` in the namespace with stdin from /dev/null and its
    /// output in `<dir>/<name>.out` and `.err`.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(&mut self, side: Side, name: &str, argv: &[S]) -> Proc {
        let stdout = self.dir.join(format!("{name}.out"));
        let stderr = self.dir.join(format!("{name}.err"));
        let mut cmd = self.exec(side, argv);
        cmd.stdin(Stdio::null())
            .stdout(create(&stdout))
            .stderr(create(&stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {}: {e}", describe(&cmd)));
        let proc = Proc {
            name: name.to_owned(),
            pid: child.id(),
            stdout,
            stderr,
        };
        self.children.push(child);
        proc
    }

    /// Runs `argv` in the namespace to its end (at most `timeout`) and
    /// returns what it printed.
    pub fn run<S: AsRef<std::ffi::OsStr>>(
        &mut self,
        side: Side,
        name: &str,
        argv: &[S],
        timeout: Duration,
    ) -> Finished {
        let proc = self.spawn(side, name, argv);
        let status = self.wait(&proc, timeout);
        Finished {
            status,
            stdout: read(&proc.stdout),
            stderr: read(&proc.stderr),
        }
    }

    /// Whether the process is still running (not yet reaped).
    pub fn running(&mut self, proc: &Proc) -> bool {
        let child = self.child(proc);
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(_)) => false,
            Err(e) => panic!("checking on {}: {e}", proc.name),
        }
    }

    /// Waits for the process to exit; panics (with its output) after `timeout`.
    pub fn wait(&mut self, proc: &Proc, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child(proc);
            if let Some(status) = child
                .try_wait()
                .unwrap_or_else(|e| panic!("waiting for {}: {e}", proc.name))
            {
                self.children.retain(|c| c.id() != proc.pid);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}\n{}",
                proc.name,
                output(proc)
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to a process started by this lab (by its PID).
    pub fn signal(&mut self, proc: &Proc, signal: libc::c_int) {
        // Still unreaped, so the PID cannot have been reused.
        let _ = self.child(proc);
        let pid = libc::pid_t::try_from(proc.pid).expect("PID fits pid_t");
        // SAFETY: kill has no memory-safety preconditions.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}) for {}: {}",
            proc.name,
            std::io::Error::last_os_error()
        );
    }

    /// Kills a process with SIGKILL and reaps it.
    pub fn kill(&mut self, proc: &Proc) {
        let child = self.child(proc);
        let _ = child.kill();
        let _ = child.wait();
        self.children.retain(|c| c.id() != proc.pid);
    }

    /// Waits until something listens on TCP `port` in the namespace.
    pub fn wait_listening(&self, side: Side, port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let filter = format!("sport = :{port}");
        loop {
            let out = must_output(&mut self.exec(side, &["ss", "-Hltn", &filter]));
            if !out.trim().is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nothing listens on port {port} in {} after {timeout:?}",
                self.ns(side)
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A self-signed P-256 certificate and its key, in the lab's directory.
    pub fn make_cert(&self) -> (PathBuf, PathBuf) {
        let cert = self.dir.join("cert.pem");
        let key = self.dir.join("key.pem");
        let mut cmd = programs::command("openssl");
        cmd.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=tlsmon-test",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
        must_output(&mut cmd);
        (cert, key)
    }

    fn child(&mut self, proc: &Proc) -> &mut Child {
        self.children
            .iter_mut()
            .find(|c| c.id() == proc.pid)
            .unwrap_or_else(|| {
                panic!(
                    "{} (pid {}) is not a running child of this lab",
                    proc.name, proc.pid
                )
            })
    }

    fn delete_namespaces(&self) {
        for ns in [&self.client_ns, &self.server_ns] {
            let exists = Path::new("/run/netns").join(ns).exists();
            if exists {
                let status = programs::command("ip").args(["netns", "del", ns]).status();
                if !matches!(status, Ok(s) if s.success()) {
                    eprintln!("lab: could not delete namespace {ns}: {status:?}");
                }
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        self.delete_namespaces();
        if thread::panicking() {
            eprintln!("lab: kept {} for inspection", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A process's captured output, for failure messages.
/// Each stream is cut to its last [`OUTPUT_SHOWN`] bytes: a daemon that
/// went wrong can have written hundreds of megabytes.
pub fn output(proc: &Proc) -> String {
    format!(
        "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
        proc.name,
        tail(&read(&proc.stdout)),
        proc.name,
        tail(&read(&proc.stderr))
    )
}

/// Bytes of each stream [`output`] shows.
pub const OUTPUT_SHOWN: usize = 64 << 10;

fn tail(text: &str) -> String {
    if text.len() <= OUTPUT_SHOWN {
        return text.to_owned();
    }
    let mut cut = text.len() - OUTPUT_SHOWN;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("[{cut} bytes left out]\n{}", &text[cut..])
}

/// Waits until `path` contains `needle` (a process announcing it is ready),
/// panicking with `context` after `timeout`.
pub fn wait_for_text(path: &Path, needle: &str, timeout: Duration, context: &dyn Fn() -> String) {
    let start = Instant::now();
    while !read(path).contains(needle) {
        assert!(
            start.elapsed() < timeout,
            "no {needle:?} within {timeout:?}\n{}",
            context()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a file that may not exist (yet).
pub fn read(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

fn create(path: &Path) -> fs::File {
    fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs a command to completion; panics with its output unless it exits 0.
pub fn must_output(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("starting {}: {e}", describe(cmd)));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn must_run(cmd: &mut Command) {
    must_output(cmd);
}
