//! Where the bytes come from: pipes that deliver a few bytes at a time,
//! failing streams, gzip, buffers of any size, blocks larger than the
//! buffer.

use std::io::{self, Read, Write as _};

use flate2::{Compression, write::GzEncoder};

use super::*;

/// A pcap and a pcapng file with everything the reader handles.
fn samples() -> Vec<Vec<u8>> {
    let mut pcap = PcapFile::new(true, false, 1);
    pcap.record(1, 2, b"one", 3)
        .record(3, 4, &[7; 300], 300)
        .record(5, 6, b"", 0);
    let mut ng = sample_ng(false);
    ng.obsolete(1, 7, b"obsolete", 2);
    vec![pcap.bytes, sample_ng(true).bytes, ng.bytes]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn read(reader: impl Read + Send + 'static, buffer: usize) -> Vec<Result<Owned, String>> {
    match Capture::with_buffer(reader, buffer) {
        Ok(cap) => collect(cap)
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect(),
        Err(e) => vec![Err(e.to_string())],
    }
}

#[test]
fn buffer_sizes_do_not_matter() {
    for file in samples() {
        let want = read(Cursor::new(file.clone()), BUFFER_LEN);
        assert!(want.iter().all(Result::is_ok), "{want:?}");
        for buffer in [64, 65, 100, 333, 4096] {
            assert_eq!(
                read(Cursor::new(file.clone()), buffer),
                want,
                "buffer {buffer}"
            );
        }
    }
}

/// Delivers at most `chunk` bytes per read, and is interrupted by a signal
/// before every other one, as a pipe from tcpdump can be.
struct Trickle {
    data: Cursor<Vec<u8>>,
    chunk: usize,
    interrupt: bool,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.chunk);
        self.data.read(&mut buf[..n])
    }
}

#[test]
fn a_pipe_that_trickles_reads_like_a_file() {
    for file in samples() {
        let want = read(Cursor::new(file.clone()), BUFFER_LEN);
        for chunk in [1, 3, 7] {
            let pipe = Trickle {
                data: Cursor::new(file.clone()),
                chunk,
                interrupt: false,
            };
            assert_eq!(read(pipe, BUFFER_LEN), want, "chunk {chunk}");
        }
    }
}

/// Delivers `data`, then fails.
struct Failing(Cursor<Vec<u8>>);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(io::Error::other("the disk is on fire")),
            n => Ok(n),
        }
    }
}

#[test]
fn a_failing_stream_gives_the_packets_before_and_the_cause() {
    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 2, b"one", 3).record(3, 4, b"two", 3);
    let cut = f.ends[1] + 5;
    let got = read(Failing(Cursor::new(f.bytes[..cut].to_vec())), 64);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].as_ref().unwrap().3, b"one");
    assert_eq!(
        got[1].as_ref().unwrap_err(),
        "read error: the disk is on fire"
    );
    // Failing before the header is read.
    assert_eq!(
        read(Failing(Cursor::new(Vec::new())), 64),
        vec![Err("read error: the disk is on fire".to_owned())]
    );
}

#[test]
fn gzip_is_read_like_the_plain_file() {
    for file in samples() {
        let want = read(Cursor::new(file.clone()), BUFFER_LEN);
        assert_eq!(read(Cursor::new(gzip(&file)), 64), want);
        // Concatenated gzip members (`cat a.gz b.gz`) are one stream.
        let half = file.len() / 2;
        let mut two = gzip(&file[..half]);
        two.extend(gzip(&file[half..]));
        assert_eq!(read(Cursor::new(two), 64), want);
    }
}

#[test]
fn gzip_errors_say_gzip() {
    // Not a capture inside.
    assert_eq!(
        read(Cursor::new(gzip(b"GET / HTTP/1.1\r\n")), 64),
        vec![Err(
            "inside gzip: not a pcap or pcapng file (magic 0x47455420)".to_owned()
        )]
    );
    // A capture cut short, compressed whole: offsets are decompressed bytes.
    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 2, b"one", 3).record(3, 4, b"two", 3);
    let got = read(Cursor::new(gzip(&f.bytes[..f.bytes.len() - 1])), 64);
    assert_eq!(
        got[1],
        Err(format!(
            "inside gzip: truncated record at byte {}",
            f.ends[1]
        ))
    );
    // The compressed stream cut short (a download that stopped): the
    // packets decompressed before the cut, then gzip's complaint.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 2, b"first", 5);
    for _ in 0..4 {
        f.record(3, 4, &big, 200_000);
    }
    let z = gzip(&f.bytes);
    let got = read(Cursor::new(z[..z.len() / 2].to_vec()), BUFFER_LEN);
    assert!(got.len() >= 2, "{got:?}");
    assert_eq!(got[0].as_ref().unwrap().3, b"first");
    let last = got.last().unwrap().as_ref().unwrap_err();
    assert!(last.starts_with("gzip: "), "{last}");
    // Corrupt compressed data.
    let mut z = gzip(&f.bytes);
    for b in &mut z[20..60] {
        *b ^= 0x55;
    }
    let got = read(Cursor::new(z), BUFFER_LEN);
    let last = got.last().unwrap().as_ref().unwrap_err();
    assert!(last.starts_with("gzip: "), "{last}");
}

#[test]
fn a_block_larger_than_the_buffer_grows_it() {
    let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8).collect();
    let mut f = NgFile::new(true);
    f.interface(1, 0, None)
        .enhanced(0, 1, &data, 3 << 20, None)
        .enhanced(0, 2, b"after", 5, None);
    for buffer in [64, BUFFER_LEN] {
        let got = read(Cursor::new(f.bytes.clone()), buffer);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().3, data);
        assert_eq!(got[1].as_ref().unwrap().3, b"after");
    }
    // A pcap record may be as long as libpcap's largest snap length.
    let data = vec![9; 262_144];
    let mut f = PcapFile::new(true, false, 1);
    f.record(1, 2, &data, 262_144);
    let got = read(Cursor::new(f.bytes.clone()), 64);
    assert_eq!(got[0].as_ref().unwrap().3, data);
}

#[test]
fn obsolete_packet_block_in_both_byte_orders() {
    for le in [true, false] {
        let mut f = NgFile::new(le);
        f.interface(1, 0, None)
            .interface(101, 0, Some(9))
            .obsolete(1, 5, b"\x45old", 2)
            .obsolete(0, 6, b"eth", 1);
        assert_eq!(
            read_all(f.bytes.clone()),
            vec![
                (LinkType::RAW, 5, Direction::EGRESS, b"\x45old".to_vec(), 4),
                (
                    LinkType::ETHERNET,
                    6_000,
                    Direction::INGRESS,
                    b"eth".to_vec(),
                    3
                ),
            ],
            "little endian: {le}"
        );
    }
}
