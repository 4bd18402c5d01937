//! TCP's sequence-number bookkeeping for a made-up connection, shared by
//! the frames and the events the kit builds: each packet acknowledges all
//! the other side sent, as in a real exchange (the tracker counts only a
//! ServerHello that acknowledges its ClientHello).

use std::{net::SocketAddr, vec::Vec};

use super::net::{Frame, IpRepr, Ipv4Repr, Ipv6Repr};
use crate::net::{TCP_FIN, TCP_SYN};

/// Both ends of a connection and the next sequence number each sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The client's next sequence number, then the server's.
    pub next: [u32; 2],
}

/// One packet's ends and sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    /// The other side's next sequence number: all it sent, acknowledged.
    pub ack: u32,
}

impl Flow {
    #[must_use]
    pub fn new(client: SocketAddr, server: SocketAddr, next: [u32; 2]) -> Self {
        Self {
            client,
            server,
            next,
        }
    }

    /// The next packet from the client (or the server) with `len` bytes
    /// of payload; SYN and FIN take a sequence number each (RFC 9293
    /// §3.4).
    pub fn step(&mut self, from_client: bool, flags: u8, len: usize) -> Step {
        let me = usize::from(!from_client);
        let (src, dst) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let step = Step {
            src,
            dst,
            seq: self.next[me],
            ack: self.next[1 - me],
        };
        let len = u32::try_from(len).expect("a segment's length");
        let control = u32::from(flags & (TCP_SYN | TCP_FIN) != 0);
        self.next[me] = self.next[me].wrapping_add(len).wrapping_add(control);
        step
    }

    /// The next packet as a frame: `base`'s headers with this flow's
    /// addresses, ports and sequence numbers, and `flags`. The IP version
    /// follows the addresses; `base`'s other IPv4 fields are kept.
    pub fn frame(&mut self, base: &Frame, from_client: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
        let s = self.step(from_client, flags, payload.len());
        let ip = match (s.src, s.dst, &base.ip) {
            (SocketAddr::V4(src), SocketAddr::V4(dst), ip) => IpRepr::V4(Ipv4Repr {
                src: src.ip().octets(),
                dst: dst.ip().octets(),
                ..match ip {
                    IpRepr::V4(ip) => ip.clone(),
                    IpRepr::V6(_) => Ipv4Repr::default(),
                }
            }),
            (SocketAddr::V6(src), SocketAddr::V6(dst), ip) => IpRepr::V6(Ipv6Repr {
                src: src.ip().octets(),
                dst: dst.ip().octets(),
                ..match ip {
                    IpRepr::V6(ip) => ip.clone(),
                    IpRepr::V4(_) => Ipv6Repr::default(),
                }
            }),
            _ => panic!("a flow between addresses of one family"),
        };
        let mut frame = Frame { ip, ..base.clone() };
        frame.tcp.src_port = s.src.port();
        frame.tcp.dst_port = s.dst.port();
        (frame.tcp.seq, frame.tcp.ack, frame.tcp.flags) = (s.seq, s.ack, flags);
        frame.emit(payload)
    }
}
