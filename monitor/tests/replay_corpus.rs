//! Every capture of the corpus through `tlsmon replay`'s two engines: the
//! per-packet pipeline in its host environment, and the real kernel program
//! run with BPF_PROG_TEST_RUN. Both must print the same counts (the
//! differential test of the two environments), and the full/resumed counts must match what
//! tshark's dissection of the same file says (the `.tshark.tsv` files made
//! by `fixtures/make.sh`). Needs root for the kernel engine.

use std::{fs, path::Path};

use monitor::replay::{Options, replay};
use serde_json::Value;

#[path = "support/corpus.rs"]
mod corpus;

use corpus::{corpus, run, sum, tshark, tshark_counts, tshark_psk};

#[test]
fn host_and_kernel_engines_agree_on_every_capture() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the kernel engine needs root (cargo xtask test)"
    );
    for pcap in corpus() {
        let host = run(&pcap, false);
        let kernel = run(&pcap, true);
        assert_eq!(host, kernel, "engines disagree on {}", pcap.display());
    }
}

#[test]
fn full_and_resumed_match_tshark_on_every_capture() {
    for pcap in corpus() {
        let (servers, _) = run(&pcap, false);
        let want = tshark_counts(&pcap);
        assert!(
            want.0 + want.1 > 0,
            "tshark saw no handshake in {}",
            pcap.display()
        );
        assert_eq!(
            (sum(&servers, "full"), sum(&servers, "resumed")),
            want,
            "{}: tlsmon (full, resumed) vs tshark",
            pcap.display()
        );
        // Every resumption counted was offered first.
        assert!(
            sum(&servers, "offered") >= sum(&servers, "resumed"),
            "{}: resumed without an offer",
            pcap.display()
        );
    }
}

/// TLS 1.3 resumption offers and acceptances against tshark's, and the
/// hellos tlsmon cannot read to the end: a ClientHello with more
/// extensions than it reads is counted as truncated, and a PSK offer after
/// them is not seen (`support/corpus.rs`, `PskOffers::visible`).
#[test]
fn psk_offers_match_tshark_on_every_capture() {
    let mut split_seen = false;
    for pcap in corpus() {
        let (servers, stats) = run(&pcap, false);
        let psk = |s: &Value, k: &str| s[k]["psk"].as_u64().unwrap();
        let offered: u64 = servers.iter().map(|s| psk(s, "offered_by")).sum();
        let resumed: u64 = servers.iter().map(|s| psk(s, "resumed_by")).sum();
        let want = tshark_psk(&pcap);
        assert_eq!(
            (offered, resumed),
            (want.visible(), want.accepted.len() as u64),
            "{}: tlsmon PSK (offered, resumed) vs tshark {want:?}",
            pcap.display()
        );
        // Nothing in the corpus is lost or cut by the capture: the only
        // truncated hellos are those past the extension limit.
        assert_eq!(
            stats["truncated_hellos"].as_u64(),
            Some(want.hellos_past_limit),
            "{}: truncated hellos vs tshark's hellos past the limit",
            pcap.display()
        );
        if pcap.ends_with("tls13_split_hello.pcap") {
            split_seen = true;
            // The capture's point: both offers sit in a second segment, and
            // the rejected one is only visible once the hello is whole.
            assert_eq!(
                want.offered.len() - want.accepted.len(),
                1,
                "the capture has one rejection"
            );
            assert_eq!(sum(&servers, "rejected"), 1, "{servers:?}");
        }
    }
    assert!(split_seen, "tls13_split_hello.pcap missing from the corpus");
}

#[test]
fn rejected_capture_is_explained() {
    let pcap = corpus()
        .into_iter()
        .find(|p| p.ends_with("tls12_rejected.pcap"))
        .expect("tls12_rejected.pcap");
    let (servers, _) = run(&pcap, false);
    let s = &servers[0];
    // The second client offered the saved session to a restarted server.
    assert_eq!(
        (s["offered"].as_u64(), s["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    // The capture holds the first connection too, which ended with
    // close_notify: the session was lost to the restart, not to an unclean
    // close, and tlsmon must say so.
    assert_eq!(
        (
            s["rejected_after_clean"].as_u64(),
            s["rejected_after_unclean"].as_u64()
        ),
        (Some(1), Some(0)),
        "{s}"
    );
    let out = xtask::programs::command("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args(["-Y", "tls.record.content_type == 21"])
        .output()
        .expect("tshark (cargo xtask setup installs it)");
    let alerts = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(
        alerts >= 2,
        "tshark shows {alerts} alert records: the clean closes are not in the capture"
    );
}

/// A classic pcap of Ethernet frames, with their capture times.
fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4_u32, 0x0004_0002, 0, 0, 262_144, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (ts_ns, frame) in frames {
        let len = u32::try_from(frame.len()).unwrap();
        for v in [
            u32::try_from(ts_ns / 1_000_000_000).unwrap(),
            u32::try_from(ts_ns % 1_000_000_000 / 1000).unwrap(),
            len,
            len,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(frame);
    }
    fs::write(path, out).unwrap();
}

/// The VXLAN capture once more, inside IP-in-IP: one tunnel deeper than
/// tlsmon opens. tshark still finds every handshake; tlsmon must count
/// every packet as skipped for its encapsulation, in both engines, and
/// none as anything else.
#[test]
fn a_tunnel_too_deep_is_counted_as_skipped() {
    use monitor::capture::Capture;
    use monitor_common::{
        emit,
        net::{ETHERTYPE_IPV4, IPPROTO_IPIP},
    };
    let src = corpus()
        .into_iter()
        .find(|p| p.ends_with("tunnel_vxlan.pcap"))
        .expect("tunnel_vxlan.pcap");
    let mut capture = Capture::open(&src).unwrap();
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    while let Some(p) = capture.next_packet() {
        let p = p.unwrap();
        let ip = emit::ipv4(
            IPPROTO_IPIP,
            [203, 0, 113, 1],
            [203, 0, 113, 2],
            &p.data[14..],
        );
        frames.push((p.ts_ns, emit::ethernet(&[], ETHERTYPE_IPV4, &ip)));
    }
    let dir = std::env::temp_dir().join(format!("tlsmon-nested-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let nested = dir.join("nested.pcap");
    write_pcap(&nested, &frames);
    let out = xtask::programs::command("tshark")
        .args(["-n", "-r"])
        .arg(&nested)
        .args(["-Y", "tls.handshake.type == 2"])
        .output()
        .expect("tshark (cargo xtask setup installs it)");
    let server_hellos = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(server_hellos, 6, "tshark sees the six handshakes");
    for kernel in [false, true] {
        let (servers, stats) = run(&nested, kernel);
        assert!(servers.is_empty(), "kernel {kernel}: {servers:?}");
        assert_eq!(
            stats["encapsulation"].as_u64(),
            Some(frames.len() as u64),
            "kernel {kernel}: {stats}"
        );
        assert_eq!(stats["events"].as_u64(), Some(0), "kernel {kernel}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cut_and_foreign_files_are_reported_by_name() {
    let src = corpus()
        .into_iter()
        .find(|p| p.ends_with("tls12_rejected.pcap"))
        .unwrap();
    let bytes = fs::read(&src).unwrap();
    let dir = std::env::temp_dir().join(format!("tlsmon-replay-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    // Cut in the middle of a record: what came before is still counted.
    let cut = dir.join("cut.pcap");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = replay(&Options {
        file: cut.clone(),
        kernel: false,
        local: Vec::new(),
    })
    .expect("a cut capture still replays");
    assert!(o.packets > 0);
    assert!(
        o.capture_error
            .as_deref()
            .is_some_and(|e| e.contains("truncated")),
        "{:?}",
        o.capture_error
    );
    // Not a capture at all: an error that names the file.
    let junk = dir.join("junk.pcap");
    fs::write(&junk, b"this is not a capture file, just text").unwrap();
    let err = replay(&Options {
        file: junk.clone(),
        kernel: false,
        local: Vec::new(),
    })
    .err()
    .expect("junk must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("junk.pcap") && msg.contains("not a pcap"),
        "{msg}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// `tlsmon replay`'s output without the line that names the file.
fn replay_output(mut cmd: std::process::Command) -> String {
    let out = cmd.output().expect("running tlsmon");
    assert!(
        out.status.success(),
        "tlsmon replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("file");
            v.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn standard_input_and_gzip_read_like_the_file() {
    use std::{io::Write as _, process::Command};

    let dir = std::env::temp_dir().join(format!("tlsmon-replay-stdin-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let tlsmon = env!("CARGO_BIN_EXE_tlsmon");
    for pcap in corpus() {
        let mut plain = Command::new(tlsmon);
        plain.arg("replay").arg(&pcap);
        let want = replay_output(plain);
        assert!(want.contains("\"type\":\"server\""), "{want}");
        // `tcpdump -w - | tlsmon replay -`: a real pipe.
        let mut piped = Command::new(tlsmon);
        piped
            .args(["replay", "-"])
            .stdin(fs::File::open(&pcap).unwrap());
        assert_eq!(replay_output(piped), want, "{} on stdin", pcap.display());
        // The same file gzip-compressed, by name and on stdin.
        let gz = dir.join("capture.pcap.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&fs::read(&pcap).unwrap()).unwrap();
        fs::write(&gz, e.finish().unwrap()).unwrap();
        let mut zipped = Command::new(tlsmon);
        zipped.arg("replay").arg(&gz);
        assert_eq!(replay_output(zipped), want, "{} gzipped", pcap.display());
        let mut zipped_stdin = Command::new(tlsmon);
        zipped_stdin
            .args(["replay", "-"])
            .stdin(fs::File::open(&gz).unwrap());
        assert_eq!(
            replay_output(zipped_stdin),
            want,
            "{} gzipped on stdin",
            pcap.display()
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// A BSD loopback header: the address family in a byte order.
type Family = fn(u32) -> [u8; 4];

/// Writes `pcap` again as a BSD loopback capture (`link` 0 or 108): each
/// frame's Ethernet header replaced by the 4-byte address family of its
/// packet (AF_INET, 2; AF_INET6, `inet6`: 30 on macOS and FreeBSD, 24 on
/// OpenBSD), written by `family` in the capturing host's byte order. No BSD
/// machine is at hand to capture loopback on, so the frames are rebuilt
/// from the format's description (tcpdump.org, LINKTYPE_NULL and
/// LINKTYPE_LOOP). `false`, writing nothing, for a capture with frames a
/// loopback capture cannot hold (not IP: PPPoE, VLAN tags).
fn as_bsd_loopback(pcap: &Path, out: &Path, link: i32, family: Family, inet6: u32) -> bool {
    use pcap_parser::{LegacyPcapBlock, Linktype, PcapHeader, ToVec as _};

    let mut capture = monitor::capture::Capture::open(pcap).unwrap();
    let header = PcapHeader {
        snaplen: 262_144,
        network: Linktype(link),
        ..PcapHeader::new()
    };
    let mut bytes = header.to_vec_raw().unwrap();
    while let Some(p) = capture.next_packet() {
        let p = p.unwrap();
        let af = match p.data[12..14] {
            [0x08, 0x00] => 2,
            [0x86, 0xdd] => inet6,
            _ => return false,
        };
        let frame = [&family(af)[..], &p.data[14..]].concat();
        let len = u32::try_from(frame.len()).unwrap();
        let record = LegacyPcapBlock {
            ts_sec: u32::try_from(p.ts_ns / 1_000_000_000).unwrap(),
            ts_usec: u32::try_from(p.ts_ns % 1_000_000_000 / 1_000).unwrap(),
            caplen: len,
            origlen: len,
            data: &frame,
        };
        bytes.extend(record.to_vec_raw().unwrap());
    }
    fs::write(out, bytes).unwrap();
    true
}

/// tshark's dissection of `pcap`, next to it, with the fields
/// `tshark_counts` reads (as `fixtures/make.sh` makes it for the corpus).
fn dissect(pcap: &Path) {
    let fields = [
        "tls.record.content_type",
        "tls.handshake.type",
        "tls.handshake.version",
        "tls.handshake.random",
        "tls.handshake.extension.type",
        "tls.handshake.extensions.supported_version",
    ];
    let tsv = tshark(pcap, "tls.handshake.type", &fields, true);
    fs::write(pcap.with_extension("tshark.tsv"), tsv).unwrap();
}

#[test]
fn bsd_loopback_captures_count_like_the_ethernet_ones() {
    let dir = std::env::temp_dir().join(format!("tlsmon-replay-null-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // NULL from little- and big-endian hosts, and LOOP: each capture in
    // one of them, in turn (tshark takes a second or two per file).
    let variants: [(i32, Family, u32, &str); 3] = [
        (0, u32::to_le_bytes, 30, "null-le"),
        (0, u32::to_be_bytes, 30, "null-be"),
        (108, u32::to_be_bytes, 24, "loop"),
    ];
    let mut converted = 0;
    for (i, pcap) in corpus().into_iter().enumerate() {
        let want = run(&pcap, false);
        let stem = pcap.file_stem().unwrap().to_string_lossy().into_owned();
        for &(link, family, inet6, what) in variants.iter().cycle().skip(i).take(1) {
            let out = dir.join(format!("{stem}.{what}.pcap"));
            if !as_bsd_loopback(&pcap, &out, link, family, inet6) {
                continue;
            }
            converted += 1;
            // tshark reads the copy as it reads the original...
            dissect(&out);
            assert_eq!(
                tshark_counts(&out),
                tshark_counts(&pcap),
                "{}",
                out.display()
            );
            // ...and so does tlsmon, with both engines.
            let got = run(&out, false);
            assert_eq!(got, want, "{} (host engine)", out.display());
            if root {
                assert_eq!(run(&out, true), want, "{} (kernel engine)", out.display());
            }
        }
    }
    assert!(
        converted >= 6,
        "only {converted} captures could be written as loopback"
    );
    fs::remove_dir_all(&dir).unwrap();
}
