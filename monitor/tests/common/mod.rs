//! A small harness for root integration tests: two network namespaces joined
//! by a veth pair, processes started inside them, and a guard that tears it
//! all down. Every helper panics with context instead of returning errors.

// Each test binary uses a different part of this harness.
#![allow(dead_code)]

use std::{
    env, fs,
    net::SocketAddrV4,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::{self, Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use xtask::programs;

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

// ---- the openssl + tlsmon steps most tests share ---------------------------

pub const TLSMON: &str = env!("CARGO_BIN_EXE_tlsmon");
/// The port every test's `openssl s_server` listens on.
pub const TLS_PORT: u16 = 4433;
/// tlsmon prints `tlsmon: attached to IF` on stderr once its classifier is
/// verified and attached; loading takes seconds on a busy machine.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(90);

/// `openssl s_server -tls1_2 -no_ticket -www` (session cache on, tickets
/// off) on [`TLS_PORT`] in the server namespace, ready to accept.
pub fn start_s_server(lab: &mut Lab, name: &str, cert: &Path, key: &Path) -> Proc {
    let port = TLS_PORT.to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let argv = [
        "openssl",
        "s_server",
        "-tls1_2",
        "-no_ticket",
        "-www",
        "-accept",
        &port,
        "-cert",
        &cert,
        "-key",
        &key,
    ];
    let server = lab.spawn(Side::Server, name, &argv);
    lab.wait_listening(Side::Server, TLS_PORT, Duration::from_secs(10));
    server
}

/// tlsmon on the client's veth with `args` added, once it is attached.
pub fn start_tlsmon(lab: &mut Lab, name: &str, args: &[&str]) -> Proc {
    let iface = lab.iface(Side::Client).to_owned();
    let mut cmdline = vec![TLSMON, "--iface", &iface];
    cmdline.extend_from_slice(args);
    let tlsmon = lab.spawn(Side::Client, name, &cmdline);
    wait_for_text(
        &tlsmon.stderr,
        "tlsmon: attached to",
        ATTACH_TIMEOUT,
        &|| output(&tlsmon),
    );
    tlsmon
}

/// Stops a headless tlsmon with SIGINT, checks it exited cleanly, and
/// returns its summary line (the last one it wrote to stdout).
pub fn stop_tlsmon(lab: &mut Lab, tlsmon: &Proc) -> serde_json::Value {
    lab.signal(tlsmon, libc::SIGINT);
    let status = lab.wait(tlsmon, Duration::from_mins(2));
    assert!(status.success(), "tlsmon: {status}\n{}", output(tlsmon));
    let out = read(&tlsmon.stdout);
    let last = out.lines().last().unwrap_or_default();
    let summary: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{last:?}: {e}"));
    assert_eq!(summary["type"], "summary", "{last}");
    summary
}

/// `openssl s_client -tls1_2 -reconnect` against the server: what it
/// printed, and its own count of full and resumed handshakes.
pub fn reconnect(lab: &mut Lab) -> (Finished, u64, u64) {
    let connect = format!("{}:{TLS_PORT}", lab.ip(Side::Server));
    let out = lab.run(
        Side::Client,
        "s_client",
        &[
            "openssl",
            "s_client",
            "-tls1_2",
            "-reconnect",
            "-connect",
            &connect,
        ],
        Duration::from_secs(30),
    );
    let (new, reused) = handshakes(&out);
    (out, new, reused)
}

/// Counts `s_client`'s `New,` (full handshake) and `Reused,` (resumed) lines.
pub fn handshakes(client: &Finished) -> (u64, u64) {
    let count = |prefix: &str| {
        client
            .stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count() as u64
    };
    (count("New,"), count("Reused,"))
}

// ---- namespaces from a thread, and the attacker's raw socket ---------------

/// Runs `f` on a thread that joined network namespace `ns`. The thread
/// ends with `f`, so nothing else ever runs in that namespace by accident;
/// sockets `f` opens stay in it wherever they are used afterwards.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    thread::spawn(move || {
        let f_ns = fs::File::open(&path).expect("namespace file");
        // SAFETY: setns on this thread only; the fd is valid.
        assert_eq!(
            unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns {path}"
        );
        f()
    })
    .join()
    .unwrap()
}

impl Lab {
    /// The MAC address of `side`'s end of the veth pair.
    pub fn mac(&self, side: Side) -> [u8; 6] {
        // `-br`: NAME STATE ADDRESS FLAGS.
        let out = must_output(&mut self.exec(
            side,
            &["ip", "-br", "link", "show", "dev", self.iface(side)],
        ));
        let text = out.split_whitespace().nth(2).unwrap_or_default();
        let bytes: Vec<u8> = text
            .split(':')
            .filter_map(|b| u8::from_str_radix(b, 16).ok())
            .collect();
        bytes
            .try_into()
            .unwrap_or_else(|_| panic!("no MAC address in {out:?}"))
    }

    /// A raw packet socket on `side`'s veth end, opened in its namespace:
    /// what it sends leaves that namespace as it is, addresses and all,
    /// towards the other side (an attacker on the path, or spoofing).
    pub fn attacker(&self, side: Side) -> Attacker {
        let other = match side {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        };
        let macs = (self.mac(side), self.mac(other));
        let iface = std::ffi::CString::new(self.iface(side)).unwrap();
        let fd = in_netns(self.ns(side), move || {
            // SAFETY: if_nametoindex reads a valid C string.
            let ifindex = unsafe { libc::if_nametoindex(iface.as_ptr()) };
            assert_ne!(ifindex, 0, "{iface:?}: {}", std::io::Error::last_os_error());
            // Protocol 0: the socket only sends, so nothing queues on it.
            // SAFETY: socket(2) with constant arguments; checked below.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: a descriptor just created and owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: sockaddr_ll is plain data; zero is a valid value.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
            addr.sll_protocol = u16::try_from(libc::ETH_P_IP).unwrap().to_be();
            addr.sll_ifindex = i32::try_from(ifindex).unwrap();
            // SAFETY: bind(2) with a valid sockaddr_ll and its size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const addr).cast(),
                    u32::try_from(size_of::<libc::sockaddr_ll>()).unwrap(),
                )
            };
            assert_eq!(
                rc,
                0,
                "binding to {iface:?}: {}",
                std::io::Error::last_os_error()
            );
            fd
        });
        Attacker { fd, macs }
    }

    /// A firewall in `side`'s namespace that drops, without an answer,
    /// TCP segments that arrive on its veth for `ports`, and counts them
    /// ([`Lab::dropped`]). Only from the veth: the namespace's own
    /// connections over loopback (a scrape of the metrics endpoint) may
    /// have their ephemeral port in the range.
    pub fn drop_tcp_to(&self, side: Side, ports: std::ops::RangeInclusive<u16>) {
        let rules = format!(
            "add table inet tlsmon_test\n\
             add chain inet tlsmon_test input {{ type filter hook input priority 0; policy accept; }}\n\
             add rule inet tlsmon_test input iifname \"{}\" tcp dport {}-{} counter drop\n",
            self.iface(side),
            ports.start(),
            ports.end()
        );
        let file = self.dir.join(format!("drop-{}.nft", self.ns(side)));
        fs::write(&file, rules).unwrap();
        let file = file.display().to_string();
        must_output(&mut self.exec(side, &["nft", "-f", &file]));
    }

    /// Packets [`Lab::drop_tcp_to`]'s rule dropped so far, by nftables'
    /// own counter.
    pub fn dropped(&self, side: Side) -> u64 {
        let out = must_output(&mut self.exec(
            side,
            &["nft", "list", "chain", "inet", "tlsmon_test", "input"],
        ));
        out.split_once("counter packets ")
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no counter in {out}"))
    }

    /// A counter of the kernel's TCP MIB in `side`'s namespace
    /// (`/proc/net/snmp`'s `Tcp:` lines, e.g. `OutRsts`).
    pub fn tcp_mib(&self, side: Side, field: &str) -> u64 {
        let snmp = must_output(&mut self.exec(side, &["cat", "/proc/net/snmp"]));
        let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (
            tcp.next().unwrap_or_default(),
            tcp.next().unwrap_or_default(),
        );
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == field)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no Tcp {field} in\n{snmp}"))
    }

    /// The body of `url` fetched with curl in `side`'s namespace and how
    /// long that took, or what went wrong.
    pub fn fetch(
        &mut self,
        side: Side,
        url: &str,
        timeout: Duration,
    ) -> Result<(String, Duration), String> {
        let secs = format!("{:.0}", timeout.as_secs_f64().ceil());
        let start = Instant::now();
        let out = self.run(
            side,
            "curl",
            &["curl", "--silent", "--show-error", "--max-time", &secs, url],
            timeout + Duration::from_secs(10),
        );
        let took = start.elapsed();
        if out.status.success() {
            Ok((out.stdout, took))
        } else {
            Err(format!("curl {url}: {}: {}", out.status, out.stderr))
        }
    }
}

/// The value of the first sample of a Prometheus text page whose name and
/// labels are `selector` (`name` or `name{label="value"}`), if any.
pub fn sample(page: &str, selector: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        l.strip_prefix(selector)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A raw `AF_PACKET` socket on one end of the veth pair ([`Lab::attacker`]).
pub struct Attacker {
    fd: OwnedFd,
    /// This end's MAC address and the other end's.
    macs: ([u8; 6], [u8; 6]),
}

impl Attacker {
    /// Sends one IPv4 TCP segment from `src` to `dst` in an Ethernet frame
    /// to the other end, whatever `src` says: the receiving host answers
    /// it (or drops it) as its TCP stack would a real one.
    pub fn tcp(
        &self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) {
        self.send(&tcp_frame(self.macs, src, dst, (seq, ack, flags), payload));
    }

    /// This end's MAC address and the other end's, for [`tcp_frame`].
    pub fn macs(&self) -> ([u8; 6], [u8; 6]) {
        self.macs
    }

    /// Sends `frame` as it is (a [`tcp_frame`] broken on purpose, say).
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: send(2) of a valid buffer on a socket this owns.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            usize::try_from(sent).ok(),
            Some(frame.len()),
            "sending a raw frame: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// An Ethernet frame from `macs.0` to `macs.1` with an IPv4 TCP segment,
/// built with `monitor_common::emit` and completed with what a receiving
/// host checks before it answers: the acknowledgment number and the TCP
/// checksum over the pseudo-header (RFC 9293 §3.1), which the builders
/// leave zero.
pub fn tcp_frame(
    macs: ([u8; 6], [u8; 6]),
    src: SocketAddrV4,
    dst: SocketAddrV4,
    (seq, ack, flags): (u32, u32, u8),
    payload: &[u8],
) -> Vec<u8> {
    use monitor_common::{emit, net};
    let mut seg = emit::tcp(src.port(), dst.port(), seq, flags, payload);
    seg[8..12].copy_from_slice(&ack.to_be_bytes());
    let mut pseudo = Vec::with_capacity(12 + seg.len());
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, net::IPPROTO_TCP]);
    pseudo.extend_from_slice(&u16::try_from(seg.len()).unwrap().to_be_bytes());
    pseudo.extend_from_slice(&seg);
    let sum = emit::checksum(&pseudo);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
    let ip = emit::ipv4(net::IPPROTO_TCP, src.ip().octets(), dst.ip().octets(), &seg);
    let mut frame = emit::ethernet(&[], net::ETHERTYPE_IPV4, &ip);
    frame[..6].copy_from_slice(&macs.1);
    frame[6..12].copy_from_slice(&macs.0);
    frame
}

/// The TCP payload of frame `number` (1-based, as tshark counts) of the
/// capture `tests/fixtures/<name>.pcap`: real bytes a real peer sent.
pub fn fixture_payload(name: &str, number: usize) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.pcap"));
    let mut capture = monitor::capture::Capture::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for _ in 1..number {
        capture.next_packet();
    }
    let p = capture
        .next_packet()
        .unwrap_or_else(|| panic!("{name} has no frame {number}"))
        .unwrap_or_else(|e| panic!("{name}: frame {number}: {e}"));
    let seg = monitor_common::net::tcp(p.data, p.link)
        .unwrap_or_else(|e| panic!("{name}: frame {number} is not TCP: {e:?}"));
    p.data[seg.payload_off..seg.payload_off + seg.payload_len].to_vec()
}
