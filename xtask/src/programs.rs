//! The programs the tests, the lab, the demo and the bench run, the Debian
//! packages they come from, and where they are found.
//!
//! A program is looked up only in the system's own directories, never
//! through `PATH`. A developer's `PATH` often puts another interpreter or
//! tool first (pyenv's `python3`, a hand-built `openssl`), and a test that
//! passes only because of what was installed into that one fails on a
//! fresh machine, where `cargo xtask setup` installed the Debian package and
//! nothing else. With one table for what setup installs and what the jobs
//! run, the two cannot drift apart.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::{OsStr, OsString},
    io::Write as _,
    os::unix::{ffi::OsStrExt as _, fs::PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// Where Debian installs the programs of its packages. `/usr/local` is
/// left out on purpose: nothing there comes from a package.
pub const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// A Debian package `cargo xtask setup` installs and the programs the
/// project runs from it (none for a library or a Python module).
#[derive(Clone, Copy, Debug)]
pub struct Package {
    pub name: &'static str,
    pub programs: &'static [&'static str],
}

/// Every Debian package the build, the tests, the lab, the demo and the
/// bench need.
pub const PACKAGES: &[Package] = &[
    Package {
        name: "openssl",
        programs: &["openssl"],
    },
    Package {
        name: "tcpdump",
        programs: &["tcpdump"],
    },
    Package {
        name: "tshark",
        programs: &["tshark"],
    },
    Package {
        name: "haproxy",
        programs: &["haproxy"],
    },
    Package {
        name: "nginx-light",
        programs: &["nginx"],
    },
    Package {
        name: "tmux",
        programs: &["tmux"],
    },
    Package {
        name: "iproute2",
        programs: &["ip", "ss", "tc"],
    },
    Package {
        name: "wrk",
        programs: &["wrk"],
    },
    Package {
        name: "nghttp2-client",
        programs: &["h2load"],
    },
    Package {
        name: "curl",
        programs: &["curl"],
    },
    Package {
        name: "python3",
        programs: &["python3"],
    },
    // The reference exposition parser, for Debian's python3 (see
    // `prometheus_samples`).
    Package {
        name: "python3-prometheus-client",
        programs: &[],
    },
    // A firewall in the monitored namespace for the hostile tests
    // (monitor/tests/hostile.rs): hellos it drops are never answered.
    Package {
        name: "nftables",
        programs: &["nft"],
    },
    Package {
        name: "procps",
        programs: &["ps"],
    },
    // `cargo xtask dist`: the package's dependencies (dpkg-shlibdeps), and
    // the checks `cargo xtask test` runs on what it installs.
    Package {
        name: "dpkg-dev",
        programs: &["dpkg-shlibdeps"],
    },
    Package {
        name: "logrotate",
        programs: &["logrotate"],
    },
    Package {
        name: "systemd",
        programs: &["systemd-analyze"],
    },
];

/// The Debian package that provides `program`, if the table lists it.
#[must_use]
pub fn package_of(program: &str) -> Option<&'static str> {
    PACKAGES
        .iter()
        .find(|p| p.programs.contains(&program))
        .map(|p| p.name)
}

/// `program` from the system's directories, or `None`.
#[must_use]
pub fn find(program: &str) -> Option<PathBuf> {
    SYSTEM_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// `program` from the system's directories; the error names the package
/// that provides it.
pub fn system(program: &str) -> Result<PathBuf> {
    find(program).with_context(|| match package_of(program) {
        Some(package) => format!(
            "{program} is not installed in {}: `cargo xtask setup` installs Debian's {package}",
            SYSTEM_DIRS.join(":")
        ),
        None => format!(
            "{program} is not installed in {} (and `cargo xtask setup` does not install it: \
             add its package to xtask/src/programs.rs)",
            SYSTEM_DIRS.join(":")
        ),
    })
}

/// A bare program name (no `/`) as its path in the system's directories;
/// a path, or a name found nowhere, unchanged (starting it then fails with
/// the name, after [`require_all`] has said which package provides it).
#[must_use]
pub fn resolve(program: &OsStr) -> OsString {
    let bare = !program.as_bytes().contains(&b'/');
    match program.to_str().filter(|_| bare).and_then(find) {
        Some(path) => path.into_os_string(),
        None => program.to_owned(),
    }
}

/// `Command::new` for a program from the system's directories.
#[must_use]
pub fn command(program: &str) -> Command {
    Command::new(resolve(OsStr::new(program)))
}

/// Like [`system`], for tests: panics with the same sentence.
#[must_use]
pub fn require(program: &str) -> PathBuf {
    system(program).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Fails, naming every missing program and its package, unless all of
/// `programs` are installed.
pub fn require_all(what: &str, programs: &[&str]) -> Result<()> {
    let missing: Vec<String> = programs
        .iter()
        .filter(|p| find(p).is_none())
        .map(|p| match package_of(p) {
            Some(package) => format!("{p} (Debian package {package})"),
            None => (*p).to_owned(),
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "{what} needs {}; `cargo xtask setup` installs them",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Parses a Prometheus text exposition with Python's prometheus_client, the
/// reference parser, run by Debian's python3 (setup installs the module
/// for that interpreter and no other). Returns one `name labels value`
/// line per sample, labels sorted as `k=v,...` and the value printed with
/// `%g` (parser versions print `1` or `1.0`); the parser's complaint when it
/// rejects the text.
pub fn prometheus_samples(exposition: &str) -> Result<Vec<String>> {
    reference_parser(
        exposition,
        "print(s.name, ','.join(f'{k}={v}' for k, v in sorted(s.labels.items())), format(s.value, 'g'))",
    )
}

/// Every sample name of an exposition with the label names its samples
/// carry, read by the reference parser as [`prometheus_samples`] is.
pub fn prometheus_label_names(exposition: &str) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let lines = reference_parser(exposition, "print(s.name, *sorted(s.labels))")?;
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in lines {
        let mut words = line.split_whitespace();
        if let Some(name) = words.next() {
            names
                .entry(name.to_owned())
                .or_default()
                .extend(words.map(str::to_owned));
        }
    }
    Ok(names)
}

/// Runs the reference parser over `exposition` and prints `print_sample`
/// (Python, with the sample in `s`) for every sample; its lines.
fn reference_parser(exposition: &str, print_sample: &str) -> Result<Vec<String>> {
    let script = format!(
        "import sys\n\
         from prometheus_client.parser import text_string_to_metric_families\n\
         for fam in text_string_to_metric_families(sys.stdin.read()):\n    \
         for s in fam.samples:\n        \
         {print_sample}\n"
    );
    let python = system("python3")?;
    let mut child = Command::new(&python)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    child
        .stdin
        .take()
        .context("no stdin pipe")?
        .write_all(exposition.as_bytes())
        .context("writing the exposition to the parser")?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "prometheus_client rejected the exposition: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_is_named_once() {
        let mut all: Vec<_> = PACKAGES.iter().flat_map(|p| p.programs).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a program listed under two packages");
    }

    #[test]
    fn the_reference_parser_reads_samples_and_label_names() {
        let text = "# TYPE a_total counter\na_total{x=\"1\",y=\"a b\"} 3\na_total{x=\"2\"} 1\n\
                    # TYPE g gauge\ng 7\n";
        assert_eq!(
            prometheus_samples(text).unwrap(),
            ["a_total x=1,y=a b 3", "a_total x=2 1", "g  7"]
        );
        let names = prometheus_label_names(text).unwrap();
        assert_eq!(
            names["a_total"]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["x", "y"]
        );
        assert!(names["g"].is_empty());
        assert!(prometheus_samples("a_total{x=} 1\n").is_err());
    }

    #[test]
    fn programs_come_from_the_system_directories_only() {
        let sh = find("sh").expect("sh is installed");
        assert!(
            SYSTEM_DIRS.iter().any(|d| sh.starts_with(d)),
            "{}",
            sh.display()
        );
        let err = system("no-such-program-anywhere").unwrap_err().to_string();
        assert!(err.contains("does not install it"), "{err}");
    }
}
