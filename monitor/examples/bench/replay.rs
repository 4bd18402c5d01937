//! `bench replay`: how fast `tlsmon replay` reads a capture with the host
//! engine, in packets per second.
//!
//! The capture is made of the fixture captures (real OpenSSL handshakes,
//! `monitor/tests/fixtures`) laid end to end and repeated, each copy's
//! timestamps moved past the previous one's, written as one classic pcap
//! in the temporary directory. Each run is `replay::replay` on that file,
//! reading it included, as `tlsmon replay FILE` does; the fastest run
//! counts, since a shared machine only ever slows a run down.
//!
//! `bench replay-capture PATH MIB` writes the same kind of capture, at least
//! MIB mebibytes, for measuring replay's memory on a large file.

use std::{
    fs,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, ensure};
use monitor::{
    capture::Capture,
    replay::{Options, replay},
};
use pcap_parser::{LegacyPcapBlock, Linktype, PcapHeader, ToVec as _};
use serde_json::{Value, json};

const RUNS: usize = 9;
const QUICK_RUNS: usize = 3;
const PACKETS: u64 = 500_000;
const QUICK_PACKETS: u64 = 50_000;
/// Between the end of one copy of a fixture and the start of the next, so
/// handshakes of one copy time out before the next copy starts.
const GAP_NS: u64 = 30_000_000_000;

/// Packets per second of the host engine on the generated capture.
pub fn run(quick: bool) -> anyhow::Result<Value> {
    let path =
        std::env::temp_dir().join(format!("tlsmon-bench-replay-{}.pcap", std::process::id()));
    let _remove = Remove(path.clone());
    let want = if quick { QUICK_PACKETS } else { PACKETS };
    let (packets, bytes) = write_capture(&path, |n, _| n >= want)?;
    let mut best = f64::INFINITY;
    for _ in 0..if quick { QUICK_RUNS } else { RUNS } {
        let start = Instant::now();
        let o = replay(&Options {
            file: path.clone(),
            kernel: false,
            local: Vec::new(),
        })?;
        best = best.min(start.elapsed().as_secs_f64());
        ensure!(
            o.packets == packets && o.capture_error.is_none(),
            "replay read {} of {packets} packets ({:?})",
            o.packets,
            o.capture_error
        );
    }
    #[expect(clippy::cast_precision_loss, reason = "packet counts far below 2^52")]
    let per_s = packets as f64 / best;
    Ok(json!({
        "packets_per_s": per_s,
        "packets": packets,
        "bytes": bytes,
        "best_s": best,
    }))
}

/// Writes a capture of at least `mib` MiB to `path` and keeps it.
pub fn capture(path: &Path, mib: u64) -> anyhow::Result<Value> {
    let want = mib << 20;
    let (packets, bytes) = write_capture(path, |_, b| b >= want)?;
    Ok(json!({ "file": path.display().to_string(), "packets": packets, "bytes": bytes }))
}

struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// One fixture's frames: (nanoseconds after its first frame, bytes).
type Frames = Vec<(u64, Vec<u8>)>;

fn fixtures() -> anyhow::Result<Vec<Frames>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "pcap"));
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let mut capture = Capture::open(&file)?;
        let mut frames = Frames::new();
        let mut first = None;
        while let Some(p) = capture.next_packet() {
            let p = p?;
            let t0 = *first.get_or_insert(p.ts_ns);
            frames.push((p.ts_ns.saturating_sub(t0), p.data.to_vec()));
        }
        out.push(frames);
    }
    ensure!(!out.is_empty(), "no fixture captures in {}", dir.display());
    Ok(out)
}

/// Writes copies of the fixtures until `enough(packets, bytes)`; returns
/// what was written.
fn write_capture(path: &Path, enough: impl Fn(u64, u64) -> bool) -> anyhow::Result<(u64, u64)> {
    let fixtures = fixtures()?;
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    // Classic pcap, little endian, microseconds, Ethernet (the fixtures').
    let header = PcapHeader {
        snaplen: 262_144,
        network: Linktype::ETHERNET,
        ..PcapHeader::new()
    };
    out.write_all(&header.to_vec_raw()?)?;
    let (mut packets, mut bytes) = (0u64, 24u64);
    let mut base = 1_700_000_000_000_000_000u64;
    'copies: loop {
        for frames in &fixtures {
            for (offset, data) in frames {
                let ts = base + offset;
                let len = u32::try_from(data.len())?;
                let record = LegacyPcapBlock {
                    ts_sec: u32::try_from(ts / 1_000_000_000)?,
                    ts_usec: u32::try_from(ts % 1_000_000_000 / 1_000)?,
                    caplen: len,
                    origlen: len,
                    data,
                };
                out.write_all(&record.to_vec_raw()?)?;
                packets += 1;
                bytes += 16 + u64::from(len);
            }
            base += frames.last().map_or(0, |f| f.0) + GAP_NS;
            if enough(packets, bytes) {
                break 'copies;
            }
        }
    }
    out.flush()?;
    Ok((packets, bytes))
}
