//! `cargo xtask setup`: makes sure the machine has what the build, the tests
//! and the demo need. Every check prints one line; only missing pieces are
//! installed.

use std::{
    env, fs,
    io::Write as _,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use xtask::programs::PACKAGES;

use crate::util::{capture, describe, is_root, probe, run, which};

/// The toolchain that builds the eBPF crate (`-Z build-std=core`).
const NIGHTLY: &str = "nightly";
/// bpf-linker release built against the nightly toolchain's own libLLVM.
const BPF_LINKER: &str = "bpf-linker@0.13.0";
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";

/// Answer for the question tshark's install would otherwise ask.
const DEBCONF_PRESEED: &str = "wireshark-common wireshark-common/install-setuid boolean false\n";

pub fn setup() -> Result<()> {
    println!("setup: checking the build and test prerequisites");
    rust_src()?;
    bpf_linker()?;
    debian_packages()?;
    println!("setup: done");
    Ok(())
}

fn rust_src() -> Result<()> {
    let installed = capture(Command::new("rustup").args([
        &format!("+{NIGHTLY}"),
        "component",
        "list",
        "--installed",
    ]))
    .context(
        "listing the nightly toolchain's components (is the `nightly` toolchain installed?)",
    )?;
    if installed
        .lines()
        .any(|line| line.trim().starts_with("rust-src"))
    {
        println!("ok: rust-src is installed for the {NIGHTLY} toolchain");
        return Ok(());
    }
    println!("installing: rust-src for the {NIGHTLY} toolchain");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

fn bpf_linker() -> Result<()> {
    match bpf_linker_problem() {
        None => return Ok(()),
        Some(problem) => println!("installing: bpf-linker ({problem})"),
    }
    install_bpf_linker()?;
    if let Some(problem) = bpf_linker_problem() {
        bail!("bpf-linker still does not work after installing it: {problem}");
    }
    Ok(())
}

/// `None` when bpf-linker runs and its libLLVM resolves (after printing an ok
/// line), otherwise what is wrong.
fn bpf_linker_problem() -> Option<String> {
    let Some(path) = which("bpf-linker") else {
        return Some("not found in PATH".into());
    };
    let version = match probe(Command::new(&path).arg("--version")) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => {
            return Some(format!(
                "`{} --version` failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Err(err) => return Some(format!("{err:#}")),
    };
    let libs = match capture(Command::new("ldd").arg(&path)) {
        Ok(libs) => libs,
        Err(err) => return Some(format!("{err:#}")),
    };
    if let Some(missing) = libs.lines().find(|line| line.contains("not found")) {
        return Some(format!(
            "a shared library does not resolve: {}",
            missing.trim()
        ));
    }
    let Some(llvm) = libs.lines().find(|line| line.contains("libLLVM")) else {
        return Some(format!("`ldd {}` shows no libLLVM", path.display()));
    };
    // Drop ldd's load address: "libLLVM.so.X => /path (0x...)".
    let llvm = llvm.split(" (0x").next().unwrap_or(llvm).trim();
    println!("ok: {version} at {} ({llvm})", path.display());
    None
}

/// The prefix handed to bpf-linker's build as `LLVM_PREFIX`. It must outlive
/// the build: the binary keeps an rpath to it. It lives beside the
/// binary, under `CARGO_HOME`, so that it goes wherever the toolchain goes
/// and not with a `HOME` (`cargo xtask test --fresh` runs with an empty one).
fn llvm_prefix() -> Result<PathBuf> {
    let cargo_home = match env::var_os("CARGO_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?)
            .join(".cargo"),
    };
    Ok(cargo_home.join("tlsmon/llvm"))
}

fn install_bpf_linker() -> Result<()> {
    let sysroot =
        capture(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))?;
    let sysroot_lib = Path::new(sysroot.trim()).join("lib");
    let lib_name = fs::read_dir(&sysroot_lib)
        .with_context(|| format!("reading {}", sysroot_lib.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name()))
        .filter_map(|name| name.into_string().ok())
        .find(|name| name.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", sysroot_lib.display()))?;
    let target = sysroot_lib.join(&lib_name);

    let prefix = llvm_prefix()?;
    let prefix_lib = prefix.join("lib");
    println!("+ mkdir -p {}", prefix_lib.display());
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    for link in [prefix_lib.join("libLLVM.so"), prefix_lib.join(&lib_name)] {
        println!("+ ln -sf {} {}", target.display(), link.display());
        if fs::symlink_metadata(&link).is_ok() {
            fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
        }
        symlink(&target, &link).with_context(|| format!("creating {}", link.display()))?;
    }

    // `--force`: a bpf-linker of the same version whose libLLVM went away
    // (the nightly toolchain was replaced) must be rebuilt, not skipped.
    run(Command::new("cargo")
        .env("LLVM_PREFIX", &prefix)
        .args([
            &format!("+{NIGHTLY}"),
            "install",
            BPF_LINKER,
            "--no-default-features",
        ])
        .args(["--features", BPF_LINKER_LLVM_FEATURE, "--locked", "--force"]))
}

fn debian_packages() -> Result<()> {
    let mut missing = Vec::new();
    for package in PACKAGES.iter().map(|p| p.name) {
        let out = probe(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))?;
        if out.status.success()
            && String::from_utf8_lossy(&out.stdout).trim() == "install ok installed"
        {
            println!("ok: Debian package {package} is installed");
        } else {
            println!("installing: Debian package {package}");
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "Debian packages {} are missing and installing them needs root",
            missing.join(" ")
        );
    }
    if missing.contains(&"tshark") {
        preseed_debconf()?;
    }
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y"])
        .args(&missing))
}

fn preseed_debconf() -> Result<()> {
    let mut cmd = Command::new("debconf-set-selections");
    let text = describe(&cmd);
    println!("+ echo '{}' | {text}", DEBCONF_PRESEED.trim_end());
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{text}`"))?;
    child
        .stdin
        .take()
        .context("no stdin pipe")?
        .write_all(DEBCONF_PRESEED.as_bytes())
        .with_context(|| format!("writing to `{text}`"))?;
    let status = child.wait()?;
    if !status.success() {
        bail!("`{text}` failed: {status}");
    }
    Ok(())
}
