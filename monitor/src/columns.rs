//! The server table's columns: one table that the dashboard draws, the
//! app sorts by, `replay` prints on a terminal and docs/dashboard.md is
//! checked against (`the_docs_list_every_column`).

use std::{cmp::Ordering, fmt::Write as _};

use crate::{
    diagnosis::{Counts, dominant, short_name},
    stats::{Role, ServerStats},
};

/// One line of the server table.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub stats: &'a ServerStats,
    pub name: Option<&'a str>,
    /// Handshakes per second over the last tick window.
    pub rate: f64,
}

impl Row<'_> {
    /// Resumed share of completed handshakes (%), `None` before any.
    #[must_use]
    pub fn reuse_pct(&self) -> Option<f64> {
        percent(self.stats.resumed, self.stats.handshakes())
    }

    /// Whether the filter text (lower case) matches the address, name or role.
    #[must_use]
    pub fn matches(&self, needle: &str) -> bool {
        needle.is_empty()
            || self.stats.server.to_string().contains(needle)
            || self.name.is_some_and(|n| n.to_lowercase().contains(needle))
            || self.stats.role.as_str().contains(needle)
    }
}

/// `n` of `d` in percent; `None` when `d` is 0. The one percentage of the
/// views: the table, the text log and the diagnoses (which round it down).
#[must_use]
pub fn percent(n: u64, d: u64) -> Option<f64> {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a percentage needs no 53-bit precision"
    )]
    (d > 0).then(|| n as f64 * 100.0 / d as f64)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    Server,
    Name,
    Role,
    Rate,
    Full,
    Resumed,
    Reuse,
    Offered,
    Rejected,
    RejectedUnclean,
    Cause,
    Rst,
    Versions,
    P50,
    P99,
}

pub struct ColumnDef {
    pub column: Column,
    pub title: &'static str,
    /// Width in characters; the server and name columns grow with their
    /// content (up to [`MAX_SERVER_WIDTH`], [`MAX_NAME_WIDTH`]).
    pub width: u16,
    /// Columns are dropped from the highest priority number up when the
    /// screen is narrow.
    pub priority: u8,
    pub right: bool,
    /// Whether `s` cycles through it (in table order).
    pub sortable: bool,
    /// Only meaningful while running (a rate over the last second).
    pub live_only: bool,
    pub doc: &'static str,
}

pub const MAX_SERVER_WIDTH: usize = 41;
pub const MAX_NAME_WIDTH: usize = 28;

const fn col(
    column: Column,
    title: &'static str,
    width: u16,
    priority: u8,
    right: bool,
    sortable: bool,
    doc: &'static str,
) -> ColumnDef {
    ColumnDef {
        column,
        title,
        width,
        priority,
        right,
        sortable,
        live_only: matches!(column, Column::Rate),
        doc,
    }
}

pub const COLUMNS: &[ColumnDef] = &[
    col(
        Column::Server,
        "server",
        14,
        0,
        false,
        true,
        "address:port of the TLS server",
    ),
    col(
        Column::Name,
        "name",
        4,
        10,
        false,
        false,
        "from a names file or the HAProxy configuration, when known",
    ),
    col(
        Column::Role,
        "role",
        5,
        1,
        false,
        false,
        "`back` (this host is the TLS client) or `front`",
    ),
    col(
        Column::Rate,
        "hs/s",
        6,
        2,
        true,
        true,
        "completed handshakes per second over the last tick",
    ),
    col(
        Column::Full,
        "full",
        7,
        3,
        true,
        true,
        "full handshakes since start (or the last reset)",
    ),
    col(
        Column::Resumed,
        "resumed",
        7,
        4,
        true,
        true,
        "resumed handshakes",
    ),
    col(
        Column::Reuse,
        "reuse",
        6,
        5,
        true,
        true,
        "resumed / (full + resumed)",
    ),
    col(
        Column::Offered,
        "offered",
        7,
        8,
        true,
        true,
        "handshakes whose ClientHello offered a session",
    ),
    col(
        Column::Rejected,
        "rejected",
        8,
        6,
        true,
        true,
        "offered, but answered with a full handshake",
    ),
    col(
        Column::RejectedUnclean,
        "rej-uncl",
        8,
        7,
        true,
        true,
        "rejected, and the session came from a connection that ended without close_notify",
    ),
    col(
        Column::Cause,
        "cause",
        8,
        9,
        false,
        false,
        "the cause of most rejected offers since start (`unclean`, `clean`, `expired`, `restart`, `no cache`, `ticket`, `unknown`), `mixed` when no cause has most of them, `-` before any",
    ),
    col(
        Column::Rst,
        "RST c/s",
        11,
        11,
        true,
        false,
        "RSTs sent by the client / by the server",
    ),
    col(
        Column::Versions,
        "versions",
        16,
        12,
        false,
        false,
        "share of each TLS version, e.g. `1.2:95% 1.3:5%`",
    ),
    col(
        Column::P50,
        "p50 ms",
        7,
        13,
        true,
        false,
        "ClientHello to ServerHello of full handshakes, median",
    ),
    col(
        Column::P99,
        "p99 ms",
        7,
        14,
        true,
        false,
        "the same, 99th percentile",
    ),
];

impl Column {
    #[must_use]
    pub fn def(self) -> &'static ColumnDef {
        COLUMNS
            .iter()
            .find(|d| d.column == self)
            .unwrap_or(&COLUMNS[0])
    }

    #[must_use]
    pub fn title(self) -> &'static str {
        self.def().title
    }

    /// The next sortable column, in table order, wrapping around.
    #[must_use]
    pub fn next_sort(self) -> Self {
        let at = COLUMNS.iter().position(|d| d.column == self).unwrap_or(0);
        (1..=COLUMNS.len())
            .map(|i| &COLUMNS[(at + i) % COLUMNS.len()])
            .find(|d| d.sortable)
            .map_or(self, |d| d.column)
    }

    /// Numbers sort largest first, addresses A to Z.
    #[must_use]
    pub const fn default_descending(self) -> bool {
        !matches!(self, Self::Server)
    }

    /// Ascending order of two rows by this column.
    #[must_use]
    pub fn cmp(self, a: &Row<'_>, b: &Row<'_>) -> Ordering {
        let (x, y) = (a.stats, b.stats);
        match self {
            Self::Server => x.server.cmp(&y.server),
            Self::Name => a.name.cmp(&b.name),
            Self::Role => x.role.cmp(&y.role),
            Self::Rate => a.rate.total_cmp(&b.rate),
            Self::Full => x.full.cmp(&y.full),
            Self::Resumed => x.resumed.cmp(&y.resumed),
            Self::Reuse => a
                .reuse_pct()
                .unwrap_or(-1.0)
                .total_cmp(&b.reuse_pct().unwrap_or(-1.0)),
            Self::Offered => x.offered.cmp(&y.offered),
            Self::Rejected => x.rejected.cmp(&y.rejected),
            Self::RejectedUnclean => x.rejected_after_unclean.cmp(&y.rejected_after_unclean),
            Self::Rst => {
                (x.rst_by_client + x.rst_by_server).cmp(&(y.rst_by_client + y.rst_by_server))
            }
            Self::Cause | Self::Versions | Self::P50 | Self::P99 => Ordering::Equal,
        }
    }

    /// The cell's text.
    #[must_use]
    pub fn text(self, r: &Row<'_>) -> String {
        let s = r.stats;
        match self {
            Self::Server => s.server.to_string(),
            Self::Name => r.name.unwrap_or("").to_owned(),
            Self::Role => role_label(s.role).to_owned(),
            Self::Rate => format!("{:.1}", r.rate),
            Self::Full => count(s.full),
            Self::Resumed => count(s.resumed),
            Self::Reuse => r
                .reuse_pct()
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%")),
            Self::Offered => count(s.offered),
            Self::Rejected => count(s.rejected),
            Self::RejectedUnclean => count(s.rejected_after_unclean),
            Self::Cause => cause(s).to_owned(),
            Self::Rst => format!("{}/{}", count(s.rst_by_client), count(s.rst_by_server)),
            Self::Versions => versions(s),
            Self::P50 => ms(s, 0.5),
            Self::P99 => ms(s, 0.99),
        }
    }
}

/// The cause of most of `s`'s rejections since start.
fn cause(s: &ServerStats) -> &'static str {
    if s.rejected == 0 {
        return "-";
    }
    dominant(&Counts::of(s)).map_or("mixed", short_name)
}

/// Role of a row as the table shows it.
#[must_use]
pub const fn role_label(role: Role) -> &'static str {
    match role {
        Role::Backend => "back",
        Role::Frontend => "front",
        Role::Unknown => "?",
    }
}

/// Counts up to a million exactly, then with a unit.
#[must_use]
pub fn count(n: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display with one decimal")]
    let f = n as f64;
    match n {
        0..1_000_000 => n.to_string(),
        1_000_000..1_000_000_000 => format!("{:.1}M", f / 1e6),
        _ => format!("{:.1}G", f / 1e9),
    }
}

/// A handshake-time quantile of full handshakes in ms, `-` before any.
#[must_use]
pub fn ms(s: &ServerStats, q: f64) -> String {
    s.handshake_full
        .quantile_ms(q)
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// "1.2:95% 1.3:5%": share of completed handshakes per version.
fn versions(s: &ServerStats) -> String {
    let v = s.version_counts();
    let total: u64 = v.iter().map(|(_, c)| c).sum();
    v.iter()
        .map(|(name, c)| {
            let short = name.strip_prefix("TLSv").unwrap_or(name);
            format!("{short}:{:.0}%", percent(*c, total).unwrap_or(0.0))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sorts rows as the table shows them: grouped by role (backends first),
/// by `col` within each group, then by address.
pub fn order(rows: &mut [Row<'_>], col: Column, descending: bool) {
    rows.sort_by(|a, b| {
        let key = col.cmp(a, b);
        let key = if descending { key.reverse() } else { key };
        a.stats
            .role
            .cmp(&b.stats.role)
            .then(key)
            .then(a.stats.server.cmp(&b.stats.server))
    });
}

/// Widths of the columns for these rows: the server and name columns as
/// wide as their longest value (within bounds), the others fixed; `None`
/// for the name column when no row has a name.
#[must_use]
pub fn widths(rows: &[Row<'_>]) -> Vec<(Column, u16)> {
    let w = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    let server_w = rows
        .iter()
        .map(|r| r.stats.server.to_string().len())
        .max()
        .unwrap_or(0)
        .clamp(14, MAX_SERVER_WIDTH);
    let name_w = rows
        .iter()
        .filter_map(|r| r.name.map(|n| n.chars().count()))
        .max()
        .unwrap_or(0)
        .min(MAX_NAME_WIDTH);
    COLUMNS
        .iter()
        .filter(|d| d.column != Column::Name || name_w > 0)
        .map(|d| {
            let width = match d.column {
                Column::Server => w(server_w),
                Column::Name => w(name_w).max(d.width),
                _ => d.width,
            };
            (d.column, width)
        })
        .collect()
}

/// The columns that fit in `width` (one space between them), in table
/// order, keeping the lowest priority numbers.
#[must_use]
pub fn fit(cols: &[(Column, u16)], width: u16) -> Vec<(Column, u16)> {
    let mut by_priority: Vec<usize> = (0..cols.len()).collect();
    by_priority.sort_by_key(|&i| cols[i].0.def().priority);
    let mut used = 0u16;
    let mut keep = vec![false; cols.len()];
    for i in by_priority {
        let need = cols[i].1 + u16::from(used > 0);
        if used + need <= width {
            used += need;
            keep[i] = true;
        }
    }
    cols.iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(*c))
        .collect()
}

/// The columns as the Markdown table of docs/dashboard.md.
#[must_use]
pub fn markdown() -> String {
    let mut out = String::from("| column | meaning |\n|---|---|\n");
    for d in COLUMNS {
        let _ = writeln!(out, "| {} | {} |", d.title, d.doc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_cycles_through_sortable_columns_in_table_order() {
        let mut c = Column::Full;
        let mut seen = vec![c];
        for _ in 0..7 {
            c = c.next_sort();
            seen.push(c);
        }
        assert_eq!(
            seen,
            [
                Column::Full,
                Column::Resumed,
                Column::Reuse,
                Column::Offered,
                Column::Rejected,
                Column::RejectedUnclean,
                Column::Server,
                Column::Rate
            ]
        );
        assert_eq!(c.next_sort(), Column::Full);
    }

    #[test]
    fn formats_and_percentages() {
        assert_eq!(count(999_999), "999999");
        assert_eq!(count(1_250_000), "1.2M");
        assert_eq!(percent(1, 4), Some(25.0));
        assert_eq!(percent(1, 0), None);
    }

    #[test]
    fn the_docs_list_every_column() {
        let doc = include_str!("../../docs/dashboard.md");
        let table = markdown();
        assert!(
            doc.contains(&table),
            "docs/dashboard.md must contain the column table as columns::markdown() renders it:\n{table}"
        );
    }
}
