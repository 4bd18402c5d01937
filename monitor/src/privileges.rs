//! What tlsmon needs from the kernel's permission model, and giving it back.
//!
//! Loading and attaching needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (or
//! CAP_SYS_ADMIN, which implies the first and last on kernels before 5.8).
//! Once attached, the daemon reads file descriptors it already holds (ring
//! buffer, maps, TCX links) and only needs CAP_BPF and CAP_NET_ADMIN again
//! to re-attach to an interface that was re-created; it drops everything
//! else, CAP_SYS_ADMIN and CAP_PERFMON included.

use anyhow::bail;

/// Capability numbers from linux/capability.h.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
/// Highest capability number this code knows to drop from the bounding set.
const CAP_LAST: u32 = 40;

/// The effective capability set of this process, from /proc/self/status.
#[must_use]
pub fn effective() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Names the capabilities missing for loading and attaching, if any.
#[must_use]
pub fn missing(eff: u64) -> Vec<&'static str> {
    let has = |c: u32| eff & (1 << c) != 0;
    let sys_admin = has(CAP_SYS_ADMIN);
    let mut v = Vec::new();
    if !has(CAP_BPF) && !sys_admin {
        v.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        v.push("CAP_NET_ADMIN");
    }
    if !has(CAP_PERFMON) && !sys_admin {
        v.push("CAP_PERFMON");
    }
    v
}

/// Fails with one sentence when loading cannot work.
pub fn check() -> anyhow::Result<()> {
    let missing = missing(effective());
    if !missing.is_empty() {
        bail!(
            "tlsmon needs root or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON to load and attach its kernel program; this process lacks {}",
            missing.join(", ")
        );
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
const CAP_V3: u32 = 0x2008_0522;

/// Capabilities kept after attaching: re-attaching to an interface that
/// disappeared and came back creates a new TCX link.
pub const KEEP: [u32; 2] = [CAP_BPF, CAP_NET_ADMIN];

/// Drops every capability but [`KEEP`]: bounding set, then effective,
/// permitted and inheritable; and forbids gaining any through exec. Called
/// once the kernel program is attached.
pub fn drop_all_but_keep() -> anyhow::Result<()> {
    let mut keep = [0u32; 2];
    for c in KEEP {
        keep[(c / 32) as usize] |= 1 << (c % 32);
    }
    // SAFETY: prctl and capset with valid arguments; no memory is shared.
    unsafe {
        for cap in 0..=CAP_LAST {
            if !KEEP.contains(&cap) {
                // Fails harmlessly for numbers this kernel does not know.
                libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0);
            }
        }
        let mut hdr = CapHeader {
            version: CAP_V3,
            pid: 0,
        };
        let data = [0, 1].map(|i| CapData {
            effective: keep[i],
            permitted: keep[i],
            inheritable: 0,
        });
        if libc::syscall(libc::SYS_capset, &raw mut hdr, data.as_ptr()) != 0 {
            bail!("dropping capabilities: {}", std::io::Error::last_os_error());
        }
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_capabilities_are_named() {
        assert_eq!(missing(0), ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]);
        assert!(missing((1 << CAP_BPF) | (1 << CAP_NET_ADMIN) | (1 << CAP_PERFMON)).is_empty());
        // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON.
        assert_eq!(missing(1 << CAP_SYS_ADMIN), ["CAP_NET_ADMIN"]);
    }
}
