//! Where output lines go (stdout or `--log`), without ever making the
//! event loop wait for a reader.
//!
//! A writer thread per sink does the writing; the loop hands it batches of
//! lines through a bounded queue and never blocks: when the queue is full
//! (a pipe nobody reads, a disk that hangs) the batch is dropped and its
//! lines counted, and the dashboard and the summary show the count. At
//! exit the loop waits a bounded time for the queue to drain. The same
//! design Zeek and Suricata use for their logs; std's bounded channel is
//! all it needs.
//!
//! The log file is opened relative to its directory, which is opened once
//! at start, before tlsmon drops its privileges ([`LogFile`]).

use std::{
    ffi::CString,
    fs::File,
    io::{self, BufWriter, Write},
    os::{
        fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;

/// Batches (a snapshot's lines, or one line) waiting for the writer. With
/// the tracker's bound on servers this bounds the memory a stuck reader
/// can make tlsmon hold.
pub const QUEUE_BATCHES: usize = 8;
/// Mode of a log file tlsmon creates: it names servers and SNI values, so
/// it is not for every local user.
pub const LOG_MODE: libc::mode_t = 0o640;

/// A log file and the directory it lives in.
///
/// Why the directory is kept open: tlsmon opens its log at start, as root
/// with all capabilities, and reopens it on SIGHUP after it has dropped
/// everything but CAP_BPF and CAP_NET_ADMIN. Without CAP_DAC_OVERRIDE and
/// CAP_DAC_READ_SEARCH, root is an ordinary owner: resolving the path again
/// would fail in any directory along it that root cannot search. Opening
/// relative to the directory (`openat`) needs only that directory. It does
/// not give more: creating the new file still needs write permission on the
/// directory itself, which root without CAP_DAC_OVERRIDE has only in a
/// directory it owns (or that is group- or world-writable). In a directory
/// owned by another user, logrotate must create the new file (`create`)
/// before the SIGHUP, or the reopen fails and tlsmon keeps writing to the
/// old file (docs/operations.md, "Logs"). Keeping CAP_DAC_OVERRIDE would make
/// every reopen work, but would let the process that parses strangers'
/// packets write any file on the host.
///
/// The file is opened with `O_NOFOLLOW`: a directory another user owns is
/// one they can put a symbolic link in, and root following it would append
/// to whatever it points at.
#[derive(Debug)]
pub struct LogFile {
    dir: OwnedFd,
    name: CString,
    path: PathBuf,
}

impl LogFile {
    /// Opens the directory of `path`, then the file in it.
    pub fn open(path: &Path) -> anyhow::Result<(Self, File)> {
        let name = path
            .file_name()
            .with_context(|| format!("log file {}: not a file name", path.display()))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let c = |s: &[u8]| {
            CString::new(s).with_context(|| format!("log file {}: NUL in path", path.display()))
        };
        let cdir = c(dir.as_os_str().as_bytes())?;
        // SAFETY: a valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                cdir.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("opening log directory {}", dir.display()));
        }
        // SAFETY: a descriptor just opened and owned by nothing else.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        let log = Self {
            dir,
            name: c(name.as_bytes())?,
            path: path.to_owned(),
        };
        let file = log
            .reopen()
            .with_context(|| format!("opening log file {}", path.display()))?;
        Ok((log, file))
    }

    /// Opens (creating, mode [`LOG_MODE`]) the file under its name in the
    /// directory opened at start: after logrotate renamed the old one, the
    /// new one.
    pub fn reopen(&self) -> io::Result<File> {
        // SAFETY: valid descriptor and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                self.name.as_ptr(),
                libc::O_WRONLY
                    | libc::O_APPEND
                    | libc::O_CREAT
                    | libc::O_CLOEXEC
                    | libc::O_NOFOLLOW,
                libc::c_uint::from(LOG_MODE),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just opened and owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

enum Msg {
    Lines(Vec<String>),
    /// Write to this file from now on (a reopened log).
    Switch(File),
}

/// One output: a writer thread fed through a bounded queue.
pub struct Sink {
    tx: Option<SyncSender<Msg>>,
    log: Option<LogFile>,
    /// Lines handed to the queue.
    sent: u64,
    /// Lines the queue had no room for.
    dropped: u64,
    /// A reopened file waiting for room in the queue.
    pending_switch: Option<File>,
    shared: Arc<Shared>,
    done: Receiver<()>,
}

#[derive(Default)]
struct Shared {
    written: AtomicU64,
    /// Lines whose write failed (the reader closed the pipe, the disk is full).
    failed: AtomicU64,
}

impl Sink {
    /// Standard output (a duplicate of its descriptor, so that a writer
    /// stuck on it holds no lock the rest of the process needs).
    pub fn stdout() -> anyhow::Result<Self> {
        let fd = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stdout")?;
        Ok(Self::new(Box::new(File::from(fd)), None))
    }

    /// A log file opened with [`LogFile::open`]; [`Sink::reopen`] reopens it.
    #[must_use]
    pub fn file(log: LogFile, file: File) -> Self {
        Self::new(Box::new(file), Some(log))
    }

    /// Any writer (tests).
    #[must_use]
    pub fn new(out: Box<dyn Write + Send>, log: Option<LogFile>) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("tlsmon-output".into())
            .spawn(move || {
                write_all(out, &rx, &s);
                let _ = done_tx.send(());
            })
            .map_or_else(
                // Without a thread nothing can be written: every line
                // will be counted as dropped.
                |e| tracing::error!("starting the output thread: {e}"),
                drop,
            );
        Self {
            tx: Some(tx),
            log,
            sent: 0,
            dropped: 0,
            pending_switch: None,
            shared,
            done,
        }
    }

    /// Queues lines, or drops and counts them if the queue is full.
    pub fn lines(&mut self, lines: Vec<String>) {
        self.lines_within(lines, Duration::ZERO);
    }

    /// Queues lines, waiting at most `within` for room (the last lines,
    /// which should not be lost to a queue full of older snapshots when
    /// the reader is merely slow). Drops and counts them after that.
    pub fn lines_within(&mut self, lines: Vec<String>, within: Duration) {
        if lines.is_empty() {
            return;
        }
        self.retry_switch();
        let n = lines.len() as u64;
        self.sent += n;
        let deadline = Instant::now() + within;
        let mut msg = Msg::Lines(lines);
        loop {
            match self.tx.as_ref().map(|tx| tx.try_send(msg)) {
                Some(Ok(())) => return,
                Some(Err(TrySendError::Full(m))) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => {
                    self.dropped += n;
                    return;
                }
            }
        }
    }

    /// Lines dropped so far: no room in the queue, or the write failed.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped + self.shared.failed.load(Ordering::Relaxed)
    }

    /// Reopens the log file (SIGHUP after logrotate). On failure the old
    /// file stays in use, and the error is returned for the caller to say.
    pub fn reopen(&mut self) -> anyhow::Result<()> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let file = log
            .reopen()
            .with_context(|| format!("reopening log file {}", log.path().display()))?;
        self.pending_switch = Some(file);
        self.retry_switch();
        Ok(())
    }

    fn retry_switch(&mut self) {
        if let (Some(file), Some(tx)) = (self.pending_switch.take(), &self.tx)
            && let Err(TrySendError::Full(Msg::Switch(file))) = tx.try_send(Msg::Switch(file))
        {
            self.pending_switch = Some(file);
        }
    }

    /// Closes the queue and waits at most `within` for the writer to write
    /// what is in it. Returns the lines that were not written (dropped,
    /// failed, or still queued when the time was up).
    #[must_use]
    pub fn close(mut self, within: Duration) -> u64 {
        self.retry_switch();
        drop(self.tx.take());
        // A writer stuck on a reader that never reads is left behind: the
        // process exits without it.
        let _ = self.done.recv_timeout(within);
        self.sent - self.shared.written.load(Ordering::Relaxed)
    }
}

fn write_all(out: Box<dyn Write + Send>, rx: &Receiver<Msg>, shared: &Shared) {
    let mut out = BufWriter::new(out);
    let mut reported = false;
    let mut report = |e: &io::Error| {
        if !reported {
            tracing::warn!("writing output: {e}; lines are being dropped");
            reported = true;
        }
    };
    while let Ok(mut msg) = rx.recv() {
        // Write everything queued, then flush once the queue is empty.
        loop {
            match msg {
                Msg::Lines(lines) => {
                    for l in lines {
                        match out
                            .write_all(l.as_bytes())
                            .and_then(|()| out.write_all(b"\n"))
                        {
                            Ok(()) => shared.written.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                report(&e);
                                shared.failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                }
                Msg::Switch(file) => {
                    if let Err(e) = out.flush() {
                        report(&e);
                    }
                    out = BufWriter::new(Box::new(file));
                }
            }
            match rx.try_recv() {
                Ok(m) => msg = m,
                Err(_) => break,
            }
        }
        if let Err(e) = out.flush() {
            report(&e);
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn lines_reach_the_file_and_reopen_follows_a_rename() {
        let dir = std::env::temp_dir().join(format!("tlsmon-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.log");
        let (log, file) = LogFile::open(&path).unwrap();
        let mut sink = Sink::file(log, file);
        sink.lines(vec!["one".into()]);
        // Wait until written, then rotate.
        while sink.shared.written.load(Ordering::Relaxed) < 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::rename(&path, dir.join("out.log.1")).unwrap();
        sink.reopen().unwrap();
        sink.lines(vec!["two".into(), "three".into()]);
        assert_eq!(sink.close(Duration::from_secs(5)), 0);
        assert_eq!(
            std::fs::read_to_string(dir.join("out.log.1")).unwrap(),
            "one\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\nthree\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "created {mode:o}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symbolic_link_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("tlsmon-output-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("out.log")).unwrap();
        let err = LogFile::open(&dir.join("out.log")).unwrap_err();
        assert!(format!("{err:#}").contains("out.log"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A writer that never returns: the loop's side still never blocks,
    /// counts what it drops, and closing gives up after its deadline.
    #[test]
    fn a_stuck_writer_blocks_nobody() {
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                loop {
                    std::thread::park();
                }
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Sink::new(Box::new(Stuck), None);
        let start = Instant::now();
        for i in 0..1000 {
            sink.lines(vec![format!("line {i}"), "x".repeat(10_000)]);
        }
        assert!(start.elapsed() < Duration::from_secs(1));
        // The writer holds one batch, the queue QUEUE_BATCHES more.
        let kept = 2 * (QUEUE_BATCHES as u64 + 1);
        assert!(sink.dropped() >= 2000 - kept, "{}", sink.dropped());
        let start = Instant::now();
        // At most the line the writer took before it stuck was written.
        assert!(sink.close(Duration::from_millis(200)) >= 1999);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
