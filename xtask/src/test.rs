//! `cargo xtask test`: everything CI checks, in order; `--fresh` runs it
//! the way a new machine would.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use xtask::programs::PACKAGES;

use crate::{
    setup::setup,
    util::{capture, cargo, is_root, run, workspace_root},
};

/// The eBPF crate builds only for `bpfel-unknown-none`; `monitor/build.rs`
/// builds it, so the host-side commands leave it out.
const EBPF_CRATE: &str = "monitor-ebpf";

pub fn test() -> Result<()> {
    if !is_root() {
        bail!(
            "cargo xtask test must run as root: the kernel tests load eBPF programs and the \
             end-to-end tests create network namespaces (run it with sudo, as CI does)"
        );
    }
    setup()?;
    let root = workspace_root();
    let steps: [(&str, &[&str]); 4] = [
        (
            "build",
            &[
                "build",
                "--workspace",
                "--exclude",
                EBPF_CRATE,
                "--all-targets",
            ],
        ),
        (
            "test",
            &[
                "test",
                "--workspace",
                "--exclude",
                EBPF_CRATE,
                "--no-fail-fast",
            ],
        ),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--exclude",
                EBPF_CRATE,
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("fmt", &["fmt", "--all", "--check"]),
    ];
    // Every step runs even after one fails, so one CI run reports all of them;
    // only a failed build stops early (nothing after it could pass).
    let mut failed = Vec::new();
    for (name, args) in steps {
        println!("xtask test: step `{name}`");
        if let Err(err) = run(cargo().current_dir(&root).args(args)) {
            eprintln!("xtask test: step `{name}` failed: {err:#}");
            failed.push(name);
            if name == "build" {
                break;
            }
        }
    }
    // Benchmarks are not timed tests: a short run checks that the report
    // is produced and well-formed, not its numbers.
    println!("xtask test: step `bench --quick`");
    if let Err(err) = crate::bench::run(true) {
        eprintln!("xtask test: step `bench --quick` failed: {err:#}");
        failed.push("bench --quick");
    }
    println!("xtask test: step `dist` (install the package, run it, remove it)");
    if let Err(err) = crate::dist::check() {
        eprintln!("xtask test: step `dist` failed: {err:#}");
        failed.push("dist");
    }
    if failed.is_empty() {
        println!("xtask test: PASSED (build, test, clippy, fmt, bench smoke, dist)");
        Ok(())
    } else {
        bail!("xtask test: FAILED steps: {}", failed.join(", "))
    }
}

/// Where `--fresh` clones: outside the workspace and outside any TMPDIR a
/// test may use, removed after a passing run.
const FRESH_BASE: &str = "/var/tmp";

/// `cargo xtask test --fresh`: CI's command on a fresh clone of HEAD, with
/// the environment a new machine gives it.
///
/// PATH holds only rustup's proxies (and what `cargo install` put beside
/// them, such as bpf-linker) and the system's directories, behind
/// tripwires for the project's programs (see [`write_tripwires`]); HOME
/// and TMPDIR are new and empty; nothing else of the caller's environment is passed
/// on. The toolchain stays (CARGO_HOME, RUSTUP_HOME): a new machine has
/// it too. A test that needs a module installed by hand into another
/// interpreter, a file an earlier run left in HOME or /tmp, or a program
/// only PATH knows, fails here instead of on the next new machine.
pub fn fresh() -> Result<()> {
    if !is_root() {
        bail!("cargo xtask test --fresh must run as root, as CI does");
    }
    let root = workspace_root();
    let dirty = capture(Command::new("git").arg("-C").arg(&root).args([
        "status",
        "--porcelain",
        "--untracked-files=no",
    ]))?;
    if !dirty.trim().is_empty() {
        println!(
            "xtask test --fresh: uncommitted changes are not in the clone; it tests HEAD:\n{}",
            dirty.trim_end()
        );
    }
    let base = Path::new(FRESH_BASE).join(format!("tlsmon-fresh-{}", std::process::id()));
    let (clone, home, tmp) = (base.join("tlsmon"), base.join("home"), base.join("tmp"));
    for dir in [&home, &tmp] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    run(Command::new("git")
        .args(["clone", "--quiet", "--no-local"])
        .arg(&root)
        .arg(&clone))?;

    let home_now = env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let cargo_home =
        env::var_os("CARGO_HOME").map_or_else(|| home_now.join(".cargo"), PathBuf::from);
    let rustup_home =
        env::var_os("RUSTUP_HOME").map_or_else(|| home_now.join(".rustup"), PathBuf::from);
    let tripwires = base.join("tripwires");
    write_tripwires(&tripwires)?;
    let path = format!(
        "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        tripwires.display(),
        cargo_home.join("bin").display()
    );
    let log = base.join("ci.log");
    println!(
        "xtask test --fresh: running .ci/run in {} (PATH={path}, HOME={}, TMPDIR={})",
        clone.display(),
        home.display(),
        tmp.display()
    );
    let started = Instant::now();
    // tee keeps the output on the terminal and in a file to count tests in.
    let status = Command::new("/bin/bash")
        .args([
            "-c",
            r#"bash .ci/run 2>&1 | tee "$1"; exit "${PIPESTATUS[0]}""#,
            "fresh",
        ])
        .arg(&log)
        .current_dir(&clone)
        .env_clear()
        .env("PATH", &path)
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env("CARGO_HOME", &cargo_home)
        .env("RUSTUP_HOME", &rustup_home)
        .env("CI", "true")
        .env("LANG", "C.UTF-8")
        .status()
        .context("starting bash .ci/run")?;
    let seconds = started.elapsed().as_secs();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let (passed, failed) = count_tests(&text);
    println!(
        "xtask test --fresh: {} in {seconds} s; {passed} tests passed, {failed} failed",
        if status.success() { "PASSED" } else { "FAILED" },
    );
    if !status.success() {
        bail!(
            "the fresh run failed ({status}); its clone and log stay in {}",
            base.display()
        );
    }
    fs::remove_dir_all(&base).with_context(|| format!("removing {}", base.display()))?;
    Ok(())
}

/// Puts, for every program of `xtask::programs`, a script first on PATH
/// that fails loudly. The jobs and tests must run those programs from the
/// system's directories; one that goes through PATH (and on a developer's
/// machine would get pyenv's python3, say) now fails with a sentence
/// naming itself, instead of passing here and failing on a new machine.
fn write_tripwires(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for program in PACKAGES.iter().flat_map(|p| p.programs) {
        let path = dir.join(program);
        let script = format!(
            "#!/bin/sh\necho \"tlsmon fresh check: {program} was run through PATH; \
             run the system's copy (xtask::programs) instead\" >&2\nexit 127\n"
        );
        fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Passed and failed tests over every `test result:` line of cargo's output.
fn count_tests(log: &str) -> (u64, u64) {
    let field = |line: &str, word: &str| -> u64 {
        line.split(';')
            .find_map(|part| {
                part.trim()
                    .strip_suffix(word)?
                    .trim()
                    .rsplit(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    log.lines()
        .filter(|l| l.starts_with("test result:"))
        .fold((0, 0), |(p, f), l| {
            (p + field(l, "passed"), f + field(l, "failed"))
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_tests_over_every_result_line() {
        let log = "test result: ok. 77 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n\
                   noise\n\
                   test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.20s\n";
        assert_eq!(super::count_tests(log), (80, 1));
    }
}
