//! The detail pane of the selected server: its handshakes per second,
//! the facts behind its row (resumption by method, rejections by cause,
//! closes, latency, SNI and ALPN) and its diagnoses over the recent window.

use std::fmt::Write as _;

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style, Stylize as _},
    text::{Line, Span},
    widgets::{Block, BorderType, Paragraph, Sparkline, Wrap},
};

use super::{DIM, FULL_COLOR, LABEL, RESUMED_COLOR, duration};
use crate::{
    app::App,
    columns::{self, Row, count},
    diagnosis::{Counts, Diagnosis, Severity, short_name},
    stats::{ByMethod, ServerStats, TopK},
};

/// From this inner width the detail pane has three columns.
const WIDE_DETAIL: u16 = 120;
/// Width of the facts column in the detail pane.
const FACTS_WIDTH_NARROW: u16 = 36;
const FACTS_WIDTH_WIDE: u16 = 52;

pub(super) fn draw_detail(frame: &mut Frame, area: Rect, app: &App, row: Option<Row<'_>>) {
    let Some(row) = row else {
        let block = Block::bordered()
            .border_type(BorderType::Rounded)
            .border_style(DIM);
        frame.render_widget(block, area);
        return;
    };
    let s = row.stats;
    let mut title = vec![Span::raw(format!(" {} ", s.server)).bold()];
    if let Some(name) = row.name {
        title.push(Span::styled(
            format!("{name} "),
            Style::new().fg(Color::Cyan),
        ));
    }
    title.push(Span::styled(format!("({}) ", s.role.as_str()), LABEL));
    let shown = app.shown_diagnoses(&s.server);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(DIM)
        .title(Line::from(title))
        .title(
            Line::from(vec![
                Span::styled(" diagnosis over the last ", LABEL),
                Span::raw(format!("{} ", duration(shown.span_ns))),
            ])
            .right_aligned(),
        );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 || inner.width < 20 {
        return;
    }
    if inner.width >= WIDE_DETAIL {
        let [charts, facts, diag] = Layout::horizontal([
            Constraint::Fill(1),
            Constraint::Length(FACTS_WIDTH_WIDE),
            Constraint::Fill(1),
        ])
        .spacing(2)
        .areas(inner);
        draw_charts(frame, charts, app, &row);
        let lines = facts_lines(s, true);
        frame.render_widget(Paragraph::new(lines), facts);
        draw_diagnoses(frame, diag, &shown.diagnoses);
    } else {
        let [left, diag] =
            Layout::horizontal([Constraint::Length(FACTS_WIDTH_NARROW), Constraint::Fill(1)])
                .spacing(1)
                .areas(inner);
        let lines = facts_lines(s, false);
        // Facts below the charts; the charts keep at least two rows each.
        let facts_h = u16::try_from(lines.len())
            .unwrap_or(u16::MAX)
            .min(left.height.saturating_sub(4));
        let [charts, facts] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(facts_h)]).areas(left);
        draw_charts(frame, charts, app, &row);
        frame.render_widget(Paragraph::new(lines), facts);
        draw_diagnoses(frame, diag, &shown.diagnoses);
    }
}

/// Sparklines of full and resumed handshakes per second, on one scale.
fn draw_charts(frame: &mut Frame, area: Rect, app: &App, row: &Row<'_>) {
    let Some(h) = app.history(&row.stats.server) else {
        frame.render_widget(Paragraph::new("no history yet").style(DIM), area);
        return;
    };
    let width = usize::from(area.width.max(1));
    let (full, secs_per_bar) = bars(&h.full(), width);
    let (resumed, _) = bars(&h.resumed(), width);
    let max = full
        .iter()
        .chain(&resumed)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let shown_secs = full.len() * secs_per_bar;
    let span = if secs_per_bar > 1 {
        format!(
            "last {}, {secs_per_bar}s/bar",
            duration(shown_secs as u64 * 1_000_000_000)
        )
    } else {
        format!("last {}", duration(shown_secs as u64 * 1_000_000_000))
    };
    let per_sec = |bars: &[u64]| {
        let last = bars.last().copied().unwrap_or(0);
        #[expect(clippy::cast_precision_loss, reason = "small display values")]
        let v = last as f64 / secs_per_bar as f64;
        v
    };
    let [l1, s1, l2, s2] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    let label = |name: &'static str, color: Color, now: f64| {
        Line::from(vec![
            Span::styled(name, Style::new().fg(color).bold()),
            Span::styled(format!(" now {now:.0}/s"), LABEL),
            Span::styled(format!("  {span}"), DIM),
        ])
    };
    frame.render_widget(
        Paragraph::new(label("full", FULL_COLOR, per_sec(&full))),
        l1,
    );
    frame.render_widget(
        Sparkline::default()
            .data(&full)
            .max(max)
            .style(Style::new().fg(FULL_COLOR)),
        s1,
    );
    frame.render_widget(
        Paragraph::new(label("resumed", RESUMED_COLOR, per_sec(&resumed))),
        l2,
    );
    frame.render_widget(
        Sparkline::default()
            .data(&resumed)
            .max(max)
            .style(Style::new().fg(RESUMED_COLOR)),
        s2,
    );
}

/// Fits a per-second series into `width` bars: groups of whole seconds,
/// the most recent group ending at the last second; an incomplete oldest
/// group is dropped so every bar covers the same time.
pub(super) fn bars(series: &[u64], width: usize) -> (Vec<u64>, usize) {
    let per_bar = series.len().div_ceil(width).max(1);
    let whole = series.len() / per_bar * per_bar;
    let recent = &series[series.len() - whole..];
    (
        recent.chunks(per_bar).map(|c| c.iter().sum()).collect(),
        per_bar,
    )
}

fn methods(m: ByMethod) -> String {
    format!(
        "id {} · ticket {} · psk {}",
        count(m.session_id),
        count(m.ticket),
        count(m.psk)
    )
}

fn top(t: &TopK, n: usize) -> String {
    let mut v: Vec<String> = t
        .top(n)
        .into_iter()
        .map(|(k, c)| format!("{k} {}", count(c)))
        .collect();
    if t.other > 0 {
        v.push(format!("other {}", count(t.other)));
    }
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(", ")
    }
}

/// "506: unclean 473 unknown 33": rejected offers since start and their
/// causes, those with any, most first.
fn rejected_by_cause(s: &ServerStats, sep: &str) -> String {
    let causes = Counts::of(s).causes();
    let mut text = count(s.rejected);
    for (i, (k, n)) in causes.into_iter().filter(|&(_, n)| n > 0).enumerate() {
        text.push_str(if i == 0 { ": " } else { sep });
        let _ = write!(text, "{} {}", short_name(k), count(n));
    }
    text
}

fn fact(label: &str, width: usize, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:<width$}"), LABEL),
        Span::raw(value),
    ])
}

fn facts_lines(s: &ServerStats, wide: bool) -> Vec<Line<'static>> {
    if wide { facts_wide(s) } else { facts_narrow(s) }
}

/// The detail facts in a column of [`FACTS_WIDTH_WIDE`].
fn facts_wide(s: &ServerStats) -> Vec<Line<'static>> {
    let line = |label: &str, value: String| fact(label, 12, value);
    let c = count;
    let res_ms = |q| {
        s.handshake_resumed
            .quantile_ms(q)
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
    };
    let mut lines = vec![
        line("resumed by", methods(s.resumed_by)),
        line("offered by", methods(s.offered_by)),
        line("rejected", rejected_by_cause(s, " · ")),
        line(
            "closes",
            format!(
                "clean {} · unclean {}",
                c(s.clean_closes),
                c(s.unclean_closes)
            ),
        ),
        line(
            "RST",
            format!(
                "by client {} · by server {}",
                c(s.rst_by_client),
                c(s.rst_by_server)
            ),
        ),
        line(
            "HRR",
            format!("{} · early data {}", c(s.hrr), c(s.early_data_offered)),
        ),
        line(
            "failed",
            format!("{} · incomplete {}", c(s.failed), c(s.incomplete)),
        ),
        line(
            "full ms",
            format!("p50 {} · p99 {}", columns::ms(s, 0.5), columns::ms(s, 0.99)),
        ),
        line(
            "resumed ms",
            format!("p50 {} · p99 {}", res_ms(0.5), res_ms(0.99)),
        ),
    ];
    // One value a line: host names are long.
    for (label, t) in [("SNI", &s.sni), ("ALPN", &s.alpn)] {
        let values = t.top(3);
        if values.is_empty() {
            lines.push(line(label, "-".to_owned()));
        }
        for (i, (v, n)) in values.into_iter().enumerate() {
            lines.push(line(
                if i == 0 { label } else { "" },
                format!("{v} {}", c(n)),
            ));
        }
        if t.other > 0 {
            lines.push(line("", format!("other {}", c(t.other))));
        }
    }
    lines
}

/// The detail facts in a column of [`FACTS_WIDTH_NARROW`], most useful first.
fn facts_narrow(s: &ServerStats) -> Vec<Line<'static>> {
    let line = |label: &str, value: String| fact(label, 8, value);
    let c = count;
    let m = |b: ByMethod| {
        format!(
            "id {} tkt {} psk {}",
            c(b.session_id),
            c(b.ticket),
            c(b.psk)
        )
    };
    vec![
        line("resumed", m(s.resumed_by)),
        line("offered", m(s.offered_by)),
        line("rejects", rejected_by_cause(s, " ")),
        line(
            "closes",
            format!(
                "clean {} unclean {}",
                c(s.clean_closes),
                c(s.unclean_closes)
            ),
        ),
        line(
            "HRR",
            format!(
                "{} fail {} incompl {}",
                c(s.hrr),
                c(s.failed),
                c(s.incomplete)
            ),
        ),
        line("SNI", top(&s.sni, 2)),
        line("ALPN", top(&s.alpn, 2)),
    ]
}

/// The selected server's diagnoses over the recent window, most severe
/// first (`App::shown_diagnoses`).
fn draw_diagnoses(frame: &mut Frame, area: Rect, found: &[Diagnosis]) {
    let mut lines: Vec<Line<'static>> = Vec::new();
    if found.is_empty() {
        lines.push(Line::styled(
            "No problem found.",
            Style::new().fg(Color::Green),
        ));
    }
    for (i, d) in found.iter().enumerate() {
        if i > 0 {
            lines.push(Line::raw(""));
        }
        let (color, mark) = match d.severity {
            Severity::Critical => (Color::LightRed, "✖"),
            Severity::Warning => (Color::Yellow, "▲"),
            Severity::Info => (Color::Cyan, "●"),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} "), Style::new().fg(color).bold()),
            Span::raw(d.text.clone()),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_group_whole_seconds_from_the_latest() {
        assert_eq!(bars(&[1, 2, 3], 10), (vec![1, 2, 3], 1));
        assert_eq!(bars(&[1, 2, 3, 4, 5], 2), (vec![12], 3));
        assert_eq!(bars(&[1, 2, 3, 4, 5, 6], 3), (vec![3, 7, 11], 2));
        assert_eq!(bars(&[], 3), (vec![], 1));
    }
}
