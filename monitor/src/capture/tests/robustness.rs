//! Cut, random and mutated files: errors, never panics or runaways.

use super::*;

// ---- robustness ----------------------------------------------------

/// Reads everything, checking that the iterator stops right after a
/// fatal error and never runs away. Returns (packets, errors).
fn drain(bytes: Vec<u8>) -> Option<(usize, usize)> {
    let len = bytes.len();
    let mut cap = from_bytes(bytes).ok()?;
    let (mut ok, mut errors) = (0, 0);
    while let Some(item) = cap.next_packet() {
        match item {
            Ok(p) => {
                ok += 1;
                assert!(p.data.len() <= len);
            }
            Err(CaptureError::UnsupportedLinkType { .. }) => errors += 1,
            Err(_) => {
                errors += 1;
                assert!(
                    cap.next_packet().is_none(),
                    "iteration continued after a fatal error"
                );
                break;
            }
        }
        // Every packet or error consumes at least 12 bytes.
        assert!(ok + errors <= len / 12 + 1);
    }
    Some((ok, errors))
}

fn check_every_cut(bytes: &[u8], ends: &[usize], packets: usize) {
    for cut in 0..=bytes.len() {
        let result = drain(bytes[..cut].to_vec());
        if cut == bytes.len() {
            assert_eq!(result, Some((packets, 0)));
        } else if ends.contains(&cut) {
            // A cut between records is a valid, shorter file.
            let (ok, errors) = result.unwrap();
            assert!(
                ok < packets && errors == 0,
                "cut at {cut}: {ok} packets, {errors} errors"
            );
        } else if let Some((ok, errors)) = result {
            assert!(
                ok < packets && errors == 1,
                "cut at {cut}: {ok} packets, {errors} errors"
            );
        }
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 2, b"one", 3).record(3, 4, b"second frame", 12);
    check_every_cut(&f.bytes, &f.ends, 2);
    let mut f = PcapFile::new(false, true, 276);
    f.record(1, 2, b"one", 3).record(3, 4, b"", 0);
    check_every_cut(&f.bytes, &f.ends, 2);
    for le in [true, false] {
        let f = sample_ng(le);
        check_every_cut(&f.bytes, &f.ends, 5);
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

#[test]
fn random_garbage_does_not_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let magics: [&[u8]; 5] = [
        &PCAP_MAGIC_MICROS.to_le_bytes(),
        &PCAP_MAGIC_NANOS.to_be_bytes(),
        &BT_SHB.to_le_bytes(),
        &[
            0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0,
        ],
        &[],
    ];
    for _ in 0..20_000 {
        let len = rng.below(200);
        let mut bytes: Vec<u8> = magics[rng.below(magics.len())].to_vec();
        // Small values make plausible lengths and ids more likely.
        let small = rng.below(2) == 0;
        while bytes.len() < len {
            let r = rng.next().to_le_bytes()[0];
            bytes.push(if small { r & 0x1f } else { r });
        }
        drain(bytes);
    }
}

#[test]
fn mutated_valid_files_do_not_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut pcap = PcapFile::new(true, false, 1);
    pcap.record(1, 2, b"one", 3)
        .record(3, 4, b"second frame", 12);
    let files = [pcap.bytes, sample_ng(true).bytes, sample_ng(false).bytes];
    for _ in 0..20_000 {
        let mut bytes = files[rng.below(files.len())].clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = rng.next().to_le_bytes()[0],
                _ => bytes[at] = [0, 0xff, 0x7f, 0x80, 12, 4][rng.below(6)],
            }
        }
        drain(bytes);
    }
}
