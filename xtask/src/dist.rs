//! `cargo xtask dist`: the Debian package an operator installs with
//! `apt install ./tlsmon_VERSION_ARCH.deb`, and [`check`], the step of
//! `cargo xtask test` that installs it on this machine, runs it, and
//! removes it again.
//!
//! Put together with `dpkg-deb`, which every Debian system has (it is in
//! the essential `dpkg` package), rather than cargo-deb, which would first
//! have to be built and installed and then do the same three things: stage
//! the files, write `DEBIAN/control`, call `dpkg-deb`. The package's
//! dependencies come from `dpkg-shlibdeps` (dpkg-dev), as cargo-deb's do.
//!
//! Contents: the release binary (the kernel program is inside it), the
//! hardened systemd unit and the logrotate rule from `packaging/`, man
//! pages and bash/zsh/fish completions generated from the clap definition
//! (`tlsmon-assets`), and the operations guide the unit points to.

use std::{
    env, fs,
    os::unix::{fs::PermissionsExt as _, io::AsRawFd as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use xtask::programs;

use crate::util::{capture, cargo, run, workspace_root};

const PACKAGE: &str = "tlsmon";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The package's control file, less what is computed
/// (`Version`, `Architecture`, `Depends`, `Installed-Size`).
const CONTROL: &str = "\
Package: tlsmon
Section: net
Priority: optional
Maintainer: tlsmon developers <tlsmon@localhost>
Suggests: logrotate
Description: live TLS handshake monitor for reverse-proxy hosts
 tlsmon counts, per backend and per frontend of a TLS-terminating proxy,
 full versus resumed TLS handshakes, offered and rejected resumptions, and
 tells why resumption fails (a proxy that closes backend connections
 without close_notify, say). An eBPF classifier on the host's interfaces
 reads handshake records; a daemon aggregates them into a dashboard, JSON
 lines and Prometheus metrics. Captures can be replayed offline.
";

/// Files installed from the tree: source, destination, mode.
const FILES: [(&str, &str, u32); 5] = [
    (
        "packaging/tlsmon.service",
        "lib/systemd/system/tlsmon.service",
        0o644,
    ),
    (
        "packaging/tlsmon.logrotate",
        "etc/logrotate.d/tlsmon",
        0o644,
    ),
    (
        "packaging/debian/copyright",
        "usr/share/doc/tlsmon/copyright",
        0o644,
    ),
    ("README.md", "usr/share/doc/tlsmon/README.md", 0o644),
    (
        "docs/operations.md",
        "usr/share/doc/tlsmon/operations.md",
        0o644,
    ),
];

/// Generated completions and where each shell looks for them.
const COMPLETIONS: [(&str, &str); 3] = [
    (
        "tlsmon.bash",
        "usr/share/bash-completion/completions/tlsmon",
    ),
    ("_tlsmon", "usr/share/zsh/vendor-completions/_tlsmon"),
    (
        "tlsmon.fish",
        "usr/share/fish/vendor_completions.d/tlsmon.fish",
    ),
];

const MAINTAINER_SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];

/// `cargo xtask dist`.
pub fn dist() -> Result<()> {
    let deb = build()?;
    println!("dist: {}", deb.display());
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Builds the package; returns its path.
pub fn build() -> Result<PathBuf> {
    let root = workspace_root();
    run(cargo().current_dir(&root).args([
        "build",
        "--release",
        "--package",
        "monitor",
        "--bin",
        "tlsmon",
        "--bin",
        "tlsmon-assets",
    ]))?;
    let release = target_dir(&root).join("release");
    let arch = capture(programs::command("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    let name = format!("{PACKAGE}_{VERSION}_{arch}");
    let dist = target_dir(&root).join("dist");
    let stage = dist.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let binary = release.join("tlsmon");
    install(&binary, &stage.join("usr/bin/tlsmon"), 0o755)?;
    for (from, to, mode) in FILES {
        install(&root.join(from), &stage.join(to), mode)?;
    }
    assets(&release.join("tlsmon-assets"), &dist.join("assets"), &stage)?;
    let debian = stage.join("DEBIAN");
    for script in MAINTAINER_SCRIPTS {
        install(
            &root.join("packaging/debian").join(script),
            &debian.join(script),
            0o755,
        )?;
    }
    // The logrotate rule is configuration: an operator's edits survive
    // upgrades.
    write(
        &debian.join("conffiles"),
        "/etc/logrotate.d/tlsmon\n",
        0o644,
    )?;
    let control = format!(
        "{CONTROL}Version: {VERSION}\nArchitecture: {arch}\nDepends: {}\nInstalled-Size: {}\n",
        depends(&binary)?,
        installed_size(&stage)?,
    );
    write(&debian.join("control"), &control, 0o644)?;
    directories_0755(&stage)?;
    let deb = dist.join(format!("{name}.deb"));
    run(programs::command("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    Ok(deb)
}

/// Man pages (gzip'd, as Debian installs them) and completions, written
/// by `tlsmon-assets` from the clap definition.
fn assets(generator: &Path, out: &Path, stage: &Path) -> Result<()> {
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    run(Command::new(generator).arg(out))?;
    let man1 = stage.join("usr/share/man/man1");
    for entry in fs::read_dir(out.join("man")).context("reading the generated man pages")? {
        let page = entry?.path();
        let name = page.file_name().context("man page name")?.to_owned();
        let dest = man1.join(&name);
        install(&page, &dest, 0o644)?;
        // -n: no name or time stamp inside, so builds are reproducible.
        run(programs::command("gzip")
            .args(["-9", "-n", "-f"])
            .arg(&dest))?;
    }
    for (file, dest) in COMPLETIONS {
        install(
            &out.join("completions").join(file),
            &stage.join(dest),
            0o644,
        )?;
    }
    Ok(())
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", to.display()))
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(to, text).with_context(|| format!("writing {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", to.display()))
}

/// Every directory of the tree 0755, whatever the umask.
fn directories_0755(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            directories_0755(&path)?;
        }
    }
    Ok(())
}

/// `Depends:` from the libraries the binary links, by `dpkg-shlibdeps`
/// (which wants a `debian/control` in its working directory).
fn depends(binary: &Path) -> Result<String> {
    let tool = programs::system("dpkg-shlibdeps").context(
        "the package's dependencies are computed by dpkg-shlibdeps (Debian package dpkg-dev)",
    )?;
    let scratch = binary.with_file_name("dist-shlibdeps");
    write(
        &scratch.join("debian/control"),
        "Source: tlsmon\n\nPackage: tlsmon\nArchitecture: any\n",
        0o644,
    )?;
    let out = capture(
        Command::new(tool)
            .arg("-O")
            .arg(format!("-e{}", binary.display()))
            .current_dir(&scratch),
    )?;
    out.lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .with_context(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {out}"))
}

/// Kibibytes the files take, each rounded up (as dpkg-gencontrol counts).
fn installed_size(dir: &Path) -> Result<u64> {
    let mut kib = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == "DEBIAN" {
            continue;
        }
        let meta = entry.metadata()?;
        kib += if meta.is_dir() {
            installed_size(&entry.path())?
        } else {
            meta.len().div_ceil(1024)
        };
    }
    Ok(kib)
}

/// Where the package test takes its lock: one install and removal at a
/// time on this machine.
const LOCK: &str = "/run/tlsmon-dist-test.lock";

/// The package test of `cargo xtask test`: build the package, install it
/// with apt as the README says, run what it installed, check the files,
/// verify the unit with systemd-analyze, and purge it.
pub fn check() -> Result<()> {
    let deb = build()?;
    let lock = fs::File::create(LOCK).with_context(|| format!("creating {LOCK}"))?;
    // SAFETY: flock on a descriptor this function owns; released on close.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("locking {LOCK}: {}", std::io::Error::last_os_error());
    }
    if is_installed()? {
        bail!(
            "tlsmon is already installed on this machine; the package test would replace it and \
             then remove it (`dpkg --purge tlsmon` first if that is what you want)"
        );
    }
    let tested = run(programs::command("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "--yes", "--no-install-recommends"])
        .arg(&deb))
    .and_then(|()| try_installed());
    // Removed whether or not the checks passed.
    let purged = run(programs::command("dpkg").args(["--purge", PACKAGE]));
    tested.and(purged)?;
    if is_installed()? {
        bail!("tlsmon is still installed after dpkg --purge");
    }
    println!("dist: the package installs, runs and is removed cleanly");
    Ok(())
}

fn is_installed() -> Result<bool> {
    let out = programs::command("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .context("running dpkg-query")?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok installed"))
}

/// What the installed package must do.
fn try_installed() -> Result<()> {
    let tlsmon = "/usr/bin/tlsmon";
    let version = capture(Command::new(tlsmon).arg("--version"))?;
    if version.trim() != format!("tlsmon {VERSION}") {
        bail!("`tlsmon --version` printed {version:?}");
    }
    replay_fixture(tlsmon)?;
    let expected = [
        "lib/systemd/system/tlsmon.service",
        "etc/logrotate.d/tlsmon",
        "usr/share/man/man1/tlsmon.1.gz",
        "usr/share/man/man1/tlsmon-replay.1.gz",
        "usr/share/doc/tlsmon/copyright",
        "usr/share/doc/tlsmon/operations.md",
    ];
    for path in expected
        .into_iter()
        .chain(COMPLETIONS.iter().map(|(_, dest)| *dest))
    {
        if !Path::new("/").join(path).is_file() {
            bail!("the package did not install /{path}");
        }
    }
    let man = capture(programs::command("gzip").args(["-dc", "/usr/share/man/man1/tlsmon.1.gz"]))?;
    if !man.contains("metrics\\-timeout") && !man.contains("metrics-timeout") {
        bail!("the man page lacks --metrics-timeout");
    }
    if let Some(analyze) = programs::find("systemd-analyze") {
        run(Command::new(analyze).args(["verify", "/lib/systemd/system/tlsmon.service"]))
            .context("systemd-analyze verify rejected the unit")?;
    } else {
        println!("dist: skipping `systemd-analyze verify`: systemd is not installed here");
    }
    if let Some(logrotate) = programs::find("logrotate") {
        run(Command::new(logrotate).args(["--debug", "/etc/logrotate.d/tlsmon"]))
            .context("logrotate rejected the rule")?;
    } else {
        println!(
            "dist: skipping the logrotate rule's check: logrotate is not installed here (the \
             package only suggests it)"
        );
    }
    Ok(())
}

/// The installed binary replays a fixture and counts what tshark's
/// dissection of the same capture says: a handshake per ServerHello, and
/// resumed the ones not followed by a Certificate (RFC 5246 §7.3).
fn replay_fixture(tlsmon: &str) -> Result<()> {
    let fixtures = workspace_root().join("monitor/tests/fixtures");
    let pcap = fixtures.join("tls12_sessionid_resumption.pcap");
    let tsv = fs::read_to_string(fixtures.join("tls12_sessionid_resumption.tshark.tsv"))?;
    // The column by its name in the header: fixtures gain fields.
    let mut lines = tsv.lines();
    let column = lines
        .next()
        .and_then(|header| header.split('\t').position(|f| f == "tls.handshake.type"))
        .context("the fixture's tshark.tsv has no tls.handshake.type column")?;
    let (mut handshakes, mut resumed) = (0, 0);
    for line in lines {
        let types: Vec<&str> = line
            .split('\t')
            .nth(column)
            .unwrap_or("")
            .split(',')
            .collect();
        if types.first() == Some(&"2") {
            handshakes += 1;
            if !types.contains(&"11") {
                resumed += 1;
            }
        }
    }
    let out = capture(Command::new(tlsmon).arg("replay").arg(&pcap))?;
    let summary = out
        .lines()
        .find(|l| l.contains("\"type\":\"summary\""))
        .with_context(|| format!("no summary line from the installed tlsmon:\n{out}"))?;
    for want in [
        format!("\"handshakes\":{handshakes},"),
        format!("\"resumed\":{resumed},"),
    ] {
        if !summary.contains(&want) {
            bail!("the installed tlsmon's replay lacks {want} (tshark's count): {summary}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit keeps what issue 14 asked of it: files tlsmon creates
    /// (the log names clients' SNI) not readable by every user, a limit on
    /// descriptors a hostile metrics client cannot exhaust the host with,
    /// and no capability beyond what attaching needs.
    #[test]
    fn the_unit_is_hardened() {
        let unit = fs::read_to_string(workspace_root().join("packaging/tlsmon.service")).unwrap();
        let has = |line: &str| unit.lines().any(|l| l.trim() == line);
        for line in [
            "UMask=0027",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
        ] {
            assert!(has(line), "packaging/tlsmon.service lacks {line:?}");
        }
        assert!(
            unit.lines().any(|l| l.starts_with("LimitNOFILE=")),
            "packaging/tlsmon.service sets no LimitNOFILE"
        );
    }
}
