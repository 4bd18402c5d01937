//! The clsact qdisc that classifiers hang off on kernels without TCX
//! (before 6.6), and taking it away again.
//!
//! aya adds the qdisc (`tc::qdisc_add_clsact`) but has no call to delete
//! one, so the deletion is written here: two rtnetlink requests, the same
//! `tc filter show` and `tc qdisc del … clsact` send (RFC 3549;
//! include/uapi/linux/rtnetlink.h, pkt_sched.h). tlsmon deletes only a
//! qdisc it created itself, and only when no filter is left on it, so a
//! firewall that hung its filters on tlsmon's qdisc meanwhile keeps them.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// rtnetlink message types and flags (linux/rtnetlink.h, linux/netlink.h).
const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
/// `TCA_KIND` (linux/rtnetlink.h).
const TCA_KIND: u16 = 1;
/// The clsact qdisc's parent and handle, and its two filter blocks
/// (linux/pkt_sched.h: `TC_H_CLSACT`, `TC_H_MIN_INGRESS`, `TC_H_MIN_EGRESS`).
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const CLSACT_HANDLE: u32 = 0xFFFF_0000;
const CLSACT_INGRESS: u32 = 0xFFFF_FFF2;
const CLSACT_EGRESS: u32 = 0xFFFF_FFF3;

/// A clsact qdisc this process created; dropping it deletes the qdisc
/// unless filters are left on it.
#[derive(Debug)]
pub struct Clsact {
    ifindex: u32,
}

impl Clsact {
    /// Adds a clsact qdisc to `iface`; `Some` when this call created it,
    /// `None` when one was there already (or it could not be added: the
    /// attach that follows then says why).
    #[must_use]
    pub fn add(iface: &str) -> Option<Self> {
        aya::programs::tc::qdisc_add_clsact(iface).ok()?;
        let name = std::ffi::CString::new(iface).ok()?;
        // SAFETY: a NUL-terminated name; the index of this thread's
        // network namespace, as the netlink requests use.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        (ifindex != 0).then_some(Self { ifindex })
    }

    /// Deletes the qdisc if no filter is left in either of its blocks.
    /// `Ok(false)` when it was kept.
    pub fn remove_if_unused(&self) -> io::Result<bool> {
        let sock = Socket::open()?;
        for block in [CLSACT_INGRESS, CLSACT_EGRESS] {
            if sock.filters(self.ifindex, block)? > 0 {
                return Ok(false);
            }
        }
        sock.delete_clsact(self.ifindex)?;
        Ok(true)
    }
}

impl Drop for Clsact {
    fn drop(&mut self) {
        // Gone with its interface, or kept: nothing else to do at exit.
        let _ = self.remove_if_unused();
    }
}

/// A NETLINK_ROUTE socket.
struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Self> {
        // SAFETY: socket(2) with constant arguments; the descriptor it
        // returns is owned from here on.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: a valid buffer of msg.len() bytes; the kernel is the
        // default destination of a netlink socket.
        let n = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads replies until the request is answered: `NLMSG_DONE` after a
    /// dump, an `NLMSG_ERROR` (0 is the acknowledgment). Calls `each` with
    /// the type of every other message.
    fn replies(&self, mut each: impl FnMut(u16)) -> io::Result<()> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: a valid, writable buffer of buf.len() bytes.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
                if len < 16 || at + len > n {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "short netlink message",
                    ));
                }
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = buf
                            .get(at + 16..at + 20)
                            .map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    other => each(other),
                }
                // Messages are 4-byte aligned (NLMSG_ALIGN).
                at += len.next_multiple_of(4);
            }
        }
    }

    /// Filters in one clsact block of `ifindex` (`tc filter show dev IF
    /// ingress`).
    fn filters(&self, ifindex: u32, block: u32) -> io::Result<usize> {
        self.send(&request(
            RTM_GETTFILTER,
            NLM_F_REQUEST | NLM_F_DUMP,
            ifindex,
            0,
            block,
            None,
        ))?;
        let mut n = 0;
        self.replies(|kind| {
            if kind == RTM_NEWTFILTER {
                n += 1;
            }
        })?;
        Ok(n)
    }

    /// `tc qdisc del dev IF clsact`.
    fn delete_clsact(&self, ifindex: u32) -> io::Result<()> {
        self.send(&request(
            RTM_DELQDISC,
            NLM_F_REQUEST | NLM_F_ACK,
            ifindex,
            CLSACT_HANDLE,
            TC_H_CLSACT,
            Some(b"clsact\0"),
        ))?;
        self.replies(|_| {})
    }
}

/// An rtnetlink request: `nlmsghdr`, `tcmsg`, and a `TCA_KIND` attribute
/// when `kind` is given.
fn request(
    kind_of_msg: u16,
    flags: u16,
    ifindex: u32,
    handle: u32,
    parent: u32,
    kind: Option<&[u8]>,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set below
    m.extend_from_slice(&kind_of_msg.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    // tcmsg: family (AF_UNSPEC) and padding, ifindex, handle, parent, info.
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&ifindex.to_ne_bytes());
    m.extend_from_slice(&handle.to_ne_bytes());
    m.extend_from_slice(&parent.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    if let Some(kind) = kind {
        let len = u16::try_from(4 + kind.len()).expect("a short name");
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&TCA_KIND.to_ne_bytes());
        m.extend_from_slice(kind);
        m.resize(m.len().next_multiple_of(4), 0);
    }
    let total = u32::try_from(m.len()).expect("a short message");
    m[..4].copy_from_slice(&total.to_ne_bytes());
    m
}
