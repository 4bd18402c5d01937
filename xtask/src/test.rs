//! `cargo xtask test`: everything CI checks, in order.

use anyhow::{Result, bail};

use crate::{
    setup::setup,
    util::{cargo, is_root, run, workspace_root},
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
    if failed.is_empty() {
        println!("xtask test: PASSED (build, test, clippy, fmt, bench smoke)");
        Ok(())
    } else {
        bail!("xtask test: FAILED steps: {}", failed.join(", "))
    }
}
