//! `tlsmon-assets DIR`: writes tlsmon's man pages (`DIR/man/*.1`) and shell
//! completions (`DIR/completions/`: bash, zsh, fish), generated from the
//! one clap definition in `monitor::cli`, so they cannot drift from the
//! flags. Run by `cargo xtask dist`; not installed by the package.

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap_complete::Shell;

fn write(dir: &Path) -> anyhow::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    clap_mangen::generate_to(monitor::cli::command(), &man)
        .with_context(|| format!("writing man pages to {}", man.display()))?;
    let mut cmd = monitor::cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "tlsmon", &completions)
            .with_context(|| format!("writing the {shell} completions"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: tlsmon-assets DIR");
        return ExitCode::from(2);
    };
    match write(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlsmon-assets: {e:#}");
            ExitCode::FAILURE
        }
    }
}
