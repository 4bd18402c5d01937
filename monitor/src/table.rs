//! The server table and its diagnoses as plain text: what `tlsmon replay`
//! prints on a terminal, the way `ls` and `git` answer a person and leave
//! machine formats (JSON lines) to pipes. The columns are the dashboard's
//! ([`crate::columns`]), less those that only mean something live.

use std::{fmt::Write as _, path::Path};

use crate::{
    columns::{self, Column, Row},
    diagnosis::{Counts, diagnose},
    tracker::Tracker,
};

/// Width used when the terminal's cannot be read.
const DEFAULT_WIDTH: u16 = 120;

/// The terminal's width, or [`DEFAULT_WIDTH`] when it cannot be read.
#[must_use]
pub fn terminal_width() -> u16 {
    crossterm::terminal::size()
        .ok()
        .map(|(w, _)| w)
        .filter(|w| *w > 0)
        .unwrap_or(DEFAULT_WIDTH)
}

/// The table, as wide as `width` allows, then each server's diagnoses.
#[must_use]
pub fn plain(tracker: &Tracker, file: &Path, packets: u64, width: u16) -> String {
    let mut rows: Vec<Row<'_>> = tracker
        .servers()
        .into_iter()
        .map(|stats| Row {
            stats,
            name: None,
            rate: 0.0,
        })
        .collect();
    columns::order(&mut rows, Column::Full, true);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {packets} packets, {} TLS servers",
        file.display(),
        rows.len()
    );
    if rows.is_empty() {
        return out;
    }
    let cols: Vec<(Column, u16)> = columns::widths(&rows)
        .into_iter()
        .filter(|(c, _)| !c.def().live_only)
        .collect();
    let cols = columns::fit(&cols, width);
    out.push('\n');
    let cell = |text: &str, (c, w): (Column, u16)| {
        let w = usize::from(w);
        let text: String = text.chars().take(w).collect();
        if c.def().right {
            format!("{text:>w$}")
        } else {
            format!("{text:<w$}")
        }
    };
    let line = |cells: Vec<String>| cells.join(" ").trim_end().to_owned();
    let _ = writeln!(
        out,
        "{}",
        line(cols.iter().map(|&c| cell(c.0.title(), c)).collect())
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{}",
            line(cols.iter().map(|&c| cell(&c.0.text(r), c)).collect())
        );
    }
    for r in &rows {
        for d in diagnose(r.stats.role, &Counts::of(r.stats)) {
            let _ = write!(
                out,
                "\n{} ({}), {}: {}\n",
                r.stats.server,
                r.stats.role.as_str(),
                d.severity.as_str(),
                d.text
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_dashboards_columns_and_the_diagnoses() {
        let app = crate::sim::demo_app(30, 0);
        // 80 columns: the cause column is the last that fits. The width is
        // the caller's, so the test does not depend on the terminal (or,
        // without one, on what `TERM` makes `tput` say).
        let text = plain(app.tracker(), Path::new("demo.pcap"), 1234, 80);
        assert!(
            text.starts_with("demo.pcap: 1234 packets, 5 TLS servers\n"),
            "{text}"
        );
        let header = text.lines().nth(2).unwrap();
        for col in ["server", "role", "full", "resumed", "reuse", "rej-uncl"] {
            assert!(header.contains(col), "{header}");
        }
        assert!(
            !header.contains("hs/s"),
            "a rate means nothing after the fact"
        );
        // The first row is the backend with the most full handshakes.
        assert!(
            text.lines()
                .nth(3)
                .unwrap()
                .starts_with("10.0.1.11:8443 back"),
            "{text}"
        );
        assert!(
            text.contains("10.0.1.11:8443 (backend), critical: "),
            "{text}"
        );
        // The whole text, with the fix (health checks: the simulated holders
        // carried no data), and the cause column.
        assert!(text.contains("no-check-ssl"), "{text}");
        assert!(header.contains("cause"), "{header}");
        assert!(text.lines().nth(3).unwrap().ends_with(" unclean"), "{text}");
        assert!(!text.contains('\u{1b}'));
    }
}
