//! Loading the embedded kernel object, attaching it to interfaces, and
//! reading its counters.

use std::{fs, os::fd::OwnedFd, path::Path};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{SchedClassifier, TcAttachType, tc::SchedClassifierLink},
};

pub use self::{clsact::Clsact, watch::Watch};
use crate::stats::{KernelCost, KernelStats};

mod clsact;
pub mod log;
mod watch;

/// The kernel object, built by build.rs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

pub const INGRESS: &str = "tlsmon_ingress";
pub const EGRESS: &str = "tlsmon_egress";
/// The classifiers for devices whose packets start with their IP header
/// (see [`Frames::Ip`]), loaded when the first such device is attached.
pub const INGRESS_IP: &str = "tlsmon_ingress_ip";
pub const EGRESS_IP: &str = "tlsmon_egress_ip";
/// A classifier that only returns [`NO_VERDICT`], for benchmarks.
pub const BASELINE: &str = "tlsmon_baseline";
/// The split-ClientHello half of the classifiers, entered by tail call.
pub const SPLIT: &str = "tlsmon_split";
/// Writes the debug traces of `--kernel-log` (see [`log`]), entered by
/// tail call.
pub const LOG: &str = "tlsmon_log";

/// What every program returns: `TC_ACT_UNSPEC` (-1, linux/pkt_cls.h), no
/// verdict, so the packet goes on to the hook's next program and then on
/// its way (see monitor-ebpf's crate docs); as BPF_PROG_TEST_RUN reports
/// it, a u32. Anything else from tlsmon would be a bug.
pub const NO_VERDICT: u32 = u32::MAX;

/// Turns on the kernel's run-time statistics of BPF programs for as long as
/// the returned descriptor stays open (BPF_ENABLE_STATS, Linux 5.8). They
/// cost every BPF program on the host two clock reads per run, so tlsmon
/// measures itself only when asked. Needs CAP_SYS_ADMIN: call it before
/// privileges are dropped.
pub fn enable_cost_stats() -> anyhow::Result<OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("enabling the kernel's BPF run-time statistics (BPF_ENABLE_STATS)")
}

/// Reads [`KernelCost`] from the programs' info; programs whose info cannot
/// be read count as zero.
#[must_use]
pub fn read_cost(ebpf: &Ebpf) -> KernelCost {
    let mut cost = KernelCost::default();
    for name in [INGRESS, EGRESS, INGRESS_IP, EGRESS_IP, SPLIT] {
        if let Some(info) = ebpf.program(name).and_then(|p| p.info().ok()) {
            cost.run_ns += u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
            cost.runs += info.run_count();
        }
    }
    cost
}

/// Checks that this host can run the kernel program at all, so the failure
/// is one clear sentence instead of a verifier or syscall error.
pub fn preflight() -> anyhow::Result<()> {
    crate::privileges::check()?;
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (5, 8) {
        bail!(
            "kernel {} is too old: tlsmon needs Linux 5.8 or newer (BPF ring buffer)",
            release.trim()
        );
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): tlsmon needs CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    Ok(())
}

/// Loads the object with the ring buffer sized to `ring_bytes` (a power of
/// two multiple of the page size), its debug traces off.
pub fn load(ring_bytes: u32) -> anyhow::Result<Ebpf> {
    load_with(ring_bytes, false)
}

/// [`load`], with the kernel's debug traces on if `kernel_log` (read them
/// with [`log::start`]).
pub fn load_with(ring_bytes: u32, kernel_log: bool) -> anyhow::Result<Ebpf> {
    let globals = log::globals(kernel_log);
    let mut loader = EbpfLoader::new();
    loader.map_max_entries("EVENTS", ring_bytes);
    globals.apply(&mut loader);
    let mut ebpf = loader
        .load(OBJECT)
        .context("loading the tlsmon kernel program")?;
    for name in [INGRESS, EGRESS, BASELINE, SPLIT, LOG] {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the object"))?
            .try_into()?;
        prog.load()
            .with_context(|| format!("the kernel verifier rejected {name}"))?;
    }
    // The classifiers tail-call these programs through these arrays. Their
    // entries last as long as a user-space reference to the array does, so
    // the maps stay inside `ebpf`.
    install(&mut ebpf, SPLIT, "SPLIT_JUMP")?;
    install(&mut ebpf, LOG, "LOG_JUMP")?;
    Ok(ebpf)
}

/// Puts program `name` in slot 0 of the program array `jump`.
fn install(ebpf: &mut Ebpf, name: &str, jump: &str) -> anyhow::Result<()> {
    let fd = {
        let prog: &SchedClassifier = ebpf
            .program(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        prog.fd()?.try_clone()?
    };
    let mut array = ProgramArray::try_from(
        ebpf.map_mut(jump)
            .with_context(|| format!("{jump} map missing"))?,
    )?;
    array
        .set(0, &fd, 0)
        .with_context(|| format!("installing {name} for its tail call"))
}

/// Attaches both directions to `iface`; the links stay in the programs
/// for as long as `ebpf` lives. On kernels with TCX (6.6+) the attachment
/// is a link owned by this process: it goes away with it, even on
/// SIGKILL, so stale filters cannot pile up.
pub fn attach(ebpf: &mut Ebpf, iface: &str) -> anyhow::Result<()> {
    let hooks = classifiers_for(ebpf, iface)?;
    attach_as(ebpf, iface, hooks)
}

/// The classifiers for `iface`'s frames and the hook each goes on, loaded
/// if they were not yet.
fn classifiers_for(
    ebpf: &mut Ebpf,
    iface: &str,
) -> anyhow::Result<[(&'static str, TcAttachType); 2]> {
    let (ingress, egress) = match check_present(iface)? {
        Frames::Ethernet => (INGRESS, EGRESS),
        Frames::Ip => (INGRESS_IP, EGRESS_IP),
    };
    for name in [ingress, egress] {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the object"))?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load()
                .with_context(|| format!("the kernel verifier rejected {name}"))?;
        }
    }
    Ok([
        (ingress, TcAttachType::Ingress),
        (egress, TcAttachType::Egress),
    ])
}

/// What attaching to one interface holds: the links, and the clsact qdisc
/// if this process created it. Dropped, it detaches the links, then
/// deletes that qdisc unless other filters are on it.
#[derive(Debug)]
pub struct Attachment {
    // Declared first, dropped first: the filters go before the qdisc check.
    links: Vec<SchedClassifierLink>,
    /// Held for its `Drop`.
    _qdisc: Option<Clsact>,
}

/// Attaches both classifiers to `iface` (the daemon's [`Watch`] keeps the
/// result). All or nothing: if the second hook fails, the first is
/// detached again, so a retry never finds half an attachment (which TCX
/// refuses with `EEXIST`, "File exists").
pub fn attach_links(ebpf: &mut Ebpf, iface: &str) -> anyhow::Result<Attachment> {
    let hooks = classifiers_for(ebpf, iface)?;
    let mut attachment = Attachment {
        links: Vec::with_capacity(hooks.len()),
        _qdisc: add_clsact_if_needed(iface),
    };
    for (name, at) in hooks {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        let link = prog
            .attach(iface, at)
            .and_then(|id| prog.take_link(id))
            .with_context(|| format!("attaching {name} to {iface}"))?;
        // On error, `attachment` is dropped on return: what was attached
        // is detached.
        attachment.links.push(link);
    }
    Ok(attachment)
}

/// Attaches each named program of the loaded object to `iface` at its
/// hook (the benchmarks attach the baseline in the classifiers' place);
/// the links stay in the programs. All or nothing, as [`attach_links`].
pub fn attach_as(
    ebpf: &mut Ebpf,
    iface: &str,
    programs: [(&str, TcAttachType); 2],
) -> anyhow::Result<()> {
    // The links stay in the programs until the process ends, and so does
    // a qdisc made for them.
    std::mem::forget(add_clsact_if_needed(iface));
    let mut done = Vec::with_capacity(programs.len());
    for (name, at) in programs {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        match prog.attach(iface, at) {
            Ok(id) => done.push((name, id)),
            Err(e) => {
                for (name, id) in done {
                    if let Some(p) = ebpf.program_mut(name)
                        && let Ok(p) = <&mut SchedClassifier>::try_from(p)
                    {
                        let _ = p.detach(id);
                    }
                }
                return Err(anyhow::Error::new(e).context(format!("attaching {name} to {iface}")));
            }
        }
    }
    Ok(())
}

/// How `iface`'s frames start; one sentence unless it names an interface
/// that exists and whose frames the classifiers can parse.
fn check_present(iface: &str) -> anyhow::Result<Frames> {
    check_interface_name(iface)?;
    match presence(iface) {
        Presence::Index(_) => {}
        Presence::Absent => bail!("no such interface: {iface}"),
        Presence::Unknown(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("reading the state of interface {iface}"))
            );
        }
    }
    // Unreadable: the Ethernet classifiers, as before link types were read.
    let Some(link) = link_type(iface) else {
        return Ok(Frames::Ethernet);
    };
    // Attached, the Ethernet classifiers would take another link header
    // for an Ethernet header and skip every packet as not IP, uncounted.
    link.frames().with_context(|| {
        format!(
            "{iface} is a {link}: its packets reach the classifiers with a link header they \
             do not parse, so tlsmon would see nothing on it; watch an Ethernet interface \
             that carries its traffic instead"
        )
    })
}

/// Interface names as the kernel accepts them (`dev_valid_name`,
/// net/core/dev.c): 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// whitespace.
pub fn check_interface_name(iface: &str) -> anyhow::Result<()> {
    if iface.is_empty() {
        bail!("an interface name cannot be empty");
    }
    if iface.len() > 15
        || iface == "."
        || iface == ".."
        || iface
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        bail!(
            "{iface:?} is not a valid interface name (1 to 15 bytes, no '/', ':' or white space)"
        );
    }
    Ok(())
}

/// On kernels without TCX the classifiers hang off a clsact qdisc, added
/// here when missing. With TCX (what aya uses on 6.6+) none is needed and
/// none is created: one created here stayed on the interface after
/// tlsmon exited.
fn add_clsact_if_needed(iface: &str) -> Option<Clsact> {
    if uses_tcx() { None } else { Clsact::add(iface) }
}

/// Whether attachments are TCX links (Linux 6.6+), which live exactly as
/// long as this process's file descriptors; aya picks TCX on those kernels.
/// Older kernels attach through netlink, and detaching then needs
/// CAP_NET_ADMIN at exit.
#[must_use]
pub fn uses_tcx() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
}

/// Whether an interface exists, from sysfs.
#[derive(Debug)]
pub enum Presence {
    Index(u32),
    /// It does not exist (`ENOENT`, `ENODEV`).
    Absent,
    /// Its state could not be read: out of descriptors (`EMFILE`) or
    /// memory, say. Says nothing about the interface.
    Unknown(std::io::Error),
}

/// Reads `/sys/class/net/IF/ifindex`. Only "no such file" means the
/// interface is gone: under `EMFILE` it used to be reported gone, and
/// re-attaching to an interface that never left then failed every second
/// with "File exists".
#[must_use]
pub fn presence(iface: &str) -> Presence {
    if check_interface_name(iface).is_err() {
        return Presence::Absent;
    }
    match fs::read_to_string(Path::new("/sys/class/net").join(iface).join("ifindex")) {
        Ok(s) => match s.trim().parse() {
            Ok(i) => Presence::Index(i),
            Err(e) => Presence::Unknown(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        },
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENODEV) =>
        {
            Presence::Absent
        }
        Err(e) => Presence::Unknown(e),
    }
}

/// The interface's index, `None` when it does not exist or cannot be read.
#[must_use]
pub fn ifindex(iface: &str) -> Option<u32> {
    match presence(iface) {
        Presence::Index(i) => Some(i),
        Presence::Absent | Presence::Unknown(_) => None,
    }
}

/// An interface's link type (`ARPHRD_*`, include/uapi/linux/if_arp.h), as
/// `/sys/class/net/IF/type` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkKind(pub u16);

/// How the packets of an interface start at the TC hooks, that is which
/// classifiers parse them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frames {
    /// An Ethernet header: Ethernet and everything that presents itself as
    /// such (veth, bridges, bonds, VLANs, VXLAN, Wi-Fi), and loopback,
    /// whose header is Ethernet's layout with zero addresses.
    Ethernet,
    /// The IP header, no link header at all (`ARPHRD_NONE`: tun,
    /// WireGuard).
    Ip,
}

impl LinkKind {
    /// Which classifiers parse its packets; `None` for other link headers
    /// (IP-in-IP, GRE, SIT, raw IP devices: not tried here, see
    /// docs/operations.md).
    #[must_use]
    pub fn frames(self) -> Option<Frames> {
        match self.0 {
            1 | 772 => Some(Frames::Ethernet),
            65534 => Some(Frames::Ip),
            _ => None,
        }
    }
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            1 => "Ethernet device",
            772 => "loopback device",
            65534 => "layer-3 device without a link header, such as tun or WireGuard",
            768 | 769 => "IP-in-IP tunnel device",
            776 => "SIT tunnel device",
            778 | 823 => "GRE tunnel device",
            519 => "raw IP device",
            _ => "non-Ethernet device",
        };
        write!(f, "{name} (link type {})", self.0)
    }
}

/// The link type of `iface`; `None` if it cannot be read (the attach then
/// goes ahead: the kernel has the last word).
#[must_use]
pub fn link_type(iface: &str) -> Option<LinkKind> {
    check_interface_name(iface).ok()?;
    let text = fs::read_to_string(Path::new("/sys/class/net").join(iface).join("type")).ok()?;
    text.trim().parse().ok().map(LinkKind)
}

/// What is watched when no interface is named.
pub struct DefaultInterfaces {
    /// Interfaces that are up, loopback excluded (it is only monitored
    /// when named).
    pub watched: Vec<String>,
    /// Those left out because the classifiers do not parse their link
    /// header (see [`LinkKind::frames`]), so that the caller can say so.
    pub left_out: Vec<(String, LinkKind)>,
}

pub fn default_interfaces() -> anyhow::Result<DefaultInterfaces> {
    let mut out = Vec::new();
    let mut other = Vec::new();
    for entry in fs::read_dir("/sys/class/net").context("listing /sys/class/net")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let flags = fs::read_to_string(entry.path().join("flags")).unwrap_or_default();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        let is_loopback = flags & libc::IFF_LOOPBACK as u32 != 0;
        if flags & libc::IFF_UP as u32 == 0 || is_loopback {
            continue;
        }
        match link_type(&name) {
            Some(link) if link.frames().is_none() => other.push((name, link)),
            _ => out.push(name),
        }
    }
    out.sort();
    other.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(DefaultInterfaces {
        watched: out,
        left_out: other,
    })
}

pub fn ring_buffer(ebpf: &mut Ebpf) -> anyhow::Result<RingBuf<MapData>> {
    let map = ebpf.take_map("EVENTS").context("EVENTS map missing")?;
    Ok(RingBuf::try_from(map)?)
}

pub fn stats_map(ebpf: &mut Ebpf) -> anyhow::Result<PerCpuArray<MapData, u64>> {
    let map = ebpf.take_map("STATS").context("STATS map missing")?;
    Ok(PerCpuArray::try_from(map)?)
}

/// Counter `index` of the `STATS` map, summed over CPUs.
#[must_use]
pub fn read_counter(map: &PerCpuArray<MapData, u64>, index: u32) -> u64 {
    map.get(&index, 0).map_or(0, |v| v.iter().sum())
}

#[must_use]
pub fn read_stats(map: &PerCpuArray<MapData, u64>) -> KernelStats {
    KernelStats::from_counters(|i| read_counter(map, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_types_pick_the_classifiers_or_none() {
        // include/uapi/linux/if_arp.h
        assert_eq!(LinkKind(1).frames(), Some(Frames::Ethernet));
        assert_eq!(LinkKind(772).frames(), Some(Frames::Ethernet));
        assert_eq!(LinkKind(65534).frames(), Some(Frames::Ip));
        // IP-in-IP, GRE, SIT, raw IP: their devices cannot be made on the
        // test machine (no modules), so the refusal is checked here.
        for t in [768, 769, 776, 778, 823, 519, 32] {
            assert_eq!(LinkKind(t).frames(), None, "{t}");
        }
        assert_eq!(
            LinkKind(778).to_string(),
            "GRE tunnel device (link type 778)"
        );
    }
}
