//! Namespaces entered from a thread, and the attacker's raw socket.

use std::{
    env, fs,
    net::SocketAddrV4,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use super::*;

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
