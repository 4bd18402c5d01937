//! The dashboard's rendering: a pure function of [`App`].
//!
//! Layout, top to bottom: a two-line header, the server table, a detail
//! pane for the selected server (hidden when the terminal is short) and a
//! one-line footer. Columns are dropped by priority when the terminal is
//! narrow; docs/dashboard.md shows both an 80×24 and a 160×48 screen.

use ratatui::{
    Frame,
    layout::{Alignment, Constraint, Layout, Rect},
    style::{Color, Modifier, Style, Stylize as _},
    text::{Line, Span, Text},
    widgets::{
        Block, BorderType, Cell, Clear, HighlightSpacing, Paragraph, Row as TableRow, Sparkline,
        Table, TableState, Wrap,
    },
};

use crate::{
    app::App,
    columns::{self, Column, Row, count, percent},
    diagnosis::{Severity, diagnose},
    keys::{self, BINDINGS},
    stats::{ByMethod, Role, ServerStats, TopK},
};

/// Below this height the detail pane is left out.
const MIN_HEIGHT_FOR_DETAIL: u16 = 18;
/// Detail pane height: at least this...
const DETAIL_MIN: u16 = 11;
/// ...and at most this.
const DETAIL_MAX: u16 = 20;
/// From this inner width the detail pane has three columns.
const WIDE_DETAIL: u16 = 120;
/// Width of the facts column in the detail pane.
const FACTS_WIDTH_NARROW: u16 = 36;
const FACTS_WIDTH_WIDE: u16 = 52;

const DIM: Style = Style::new().fg(Color::DarkGray);
const LABEL: Style = Style::new().fg(Color::Gray);
const FULL_COLOR: Color = Color::LightRed;
const RESUMED_COLOR: Color = Color::LightGreen;

/// Draws the whole dashboard.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2.min(area.height)),
        Constraint::Fill(1),
        Constraint::Length(u16::from(area.height > 2)),
    ])
    .areas(area);
    draw_header(frame, header, app);
    draw_footer(frame, footer, app);
    // The rows are built once a frame, and only the visible ones become
    // table cells (`draw_table`): a frame costs one sort of the servers,
    // whatever their number.
    let rows = app.rows();
    let selected = app.selected_in(&rows);
    let show_detail = area.height >= MIN_HEIGHT_FOR_DETAIL && body.height >= DETAIL_MIN + 5;
    if show_detail {
        let detail_min = DETAIL_MIN.max(body.height * 2 / 5);
        let wanted = u16::try_from(rows.len())
            .unwrap_or(u16::MAX)
            .saturating_add(3);
        let table_h = wanted
            .min(body.height - detail_min)
            .max(5)
            .max(body.height.saturating_sub(DETAIL_MAX));
        let [table, detail] =
            Layout::vertical([Constraint::Length(table_h), Constraint::Fill(1)]).areas(body);
        draw_table(frame, table, app, &rows, selected);
        draw_detail(frame, detail, app, selected.map(|i| rows[i]));
    } else {
        draw_table(frame, body, app, &rows, selected);
    }
    if app.help_shown() {
        draw_help(frame, area);
    }
}

// ---------------------------------------------------------------- header

fn sep() -> Span<'static> {
    Span::styled(" │ ", DIM)
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let sum = app.summary();
    let totals = app.totals();
    let kernel = app.kernel();
    let hs = sum.handshakes();
    let pct = |n| percent(n, hs).map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%"));
    let wide = area.width >= 120;

    let mut l1 = vec![
        Span::styled("tlsmon", Style::new().bold().fg(Color::Cyan)),
        sep(),
        Span::raw(if app.interfaces().is_empty() {
            "no interface".to_owned()
        } else {
            app.interfaces().join(",")
        }),
        sep(),
        Span::styled("up ", LABEL),
        Span::raw(duration(app.uptime_ns())),
        sep(),
        Span::styled(format!("{:.1}", app.handshake_rate()), Style::new().bold()),
        Span::styled(" hs/s", LABEL),
        sep(),
        Span::raw(format!("{} servers", sum.servers)),
    ];
    if wide {
        l1.extend([
            sep(),
            Span::styled("connections ", LABEL),
            Span::raw(app.connections().to_string()),
            sep(),
            Span::styled("events ", LABEL),
            Span::raw(count(totals.events)),
        ]);
    }
    if app.paused() {
        l1.extend([
            Span::raw("  "),
            Span::styled(
                " PAUSED ",
                Style::new().fg(Color::Black).bg(Color::Yellow).bold(),
            ),
        ]);
    }

    let mut l2 = vec![
        Span::styled("full ", LABEL),
        Span::styled(pct(sum.full), Style::new().fg(FULL_COLOR)),
        Span::styled(" resumed ", LABEL),
        Span::styled(pct(sum.resumed), Style::new().fg(RESUMED_COLOR)),
        Span::styled(format!(" of {}", count(hs)), LABEL),
        sep(),
        Span::styled("rejected ", LABEL),
        Span::styled(
            count(sum.rejected),
            if sum.rejected > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            },
        ),
        Span::styled(
            format!(" ({} unclean)", count(sum.rejected_after_unclean)),
            LABEL,
        ),
    ];
    l2.extend(losses(app));
    if wide {
        l2.extend([
            sep(),
            Span::styled("offered ", LABEL),
            Span::raw(count(sum.offered)),
            sep(),
            Span::styled("untracked ", LABEL),
            Span::raw(count(totals.untracked_events)),
            sep(),
            Span::styled("malformed ", LABEL),
            Span::raw(count(totals.malformed_hellos + kernel.malformed)),
        ]);
        if app.losses().undecodable > 0 {
            l2.extend([
                sep(),
                Span::styled("undecodable ", LABEL),
                Span::styled(
                    count(app.losses().undecodable),
                    Style::new().fg(Color::Yellow),
                ),
            ]);
        }
        // ClientHellos whose later segments never arrived: a PSK offer in
        // them was not seen. Shown only when it happens.
        if totals.truncated_hellos > 0 {
            l2.extend([
                sep(),
                Span::styled("truncated hellos ", LABEL),
                Span::styled(
                    count(totals.truncated_hellos),
                    Style::new().fg(Color::Yellow),
                ),
            ]);
        }
    }
    let text = Text::from(vec![Line::from(l1), Line::from(l2)]);
    frame.render_widget(Paragraph::new(text), area);
}

/// The loss line's part: events the kernel lost, flows evicted, output
/// lines dropped. Losses are alarms: white on red when not zero.
fn losses(app: &App) -> Vec<Span<'static>> {
    let alarm = Style::new().fg(Color::White).bg(Color::Red).bold();
    let kernel = app.kernel();
    let lost = Span::raw(format!("lost {}", count(kernel.lost_events)));
    let mut spans = vec![
        sep(),
        if kernel.lost_events > 0 {
            lost.style(alarm)
        } else {
            lost
        },
        sep(),
        Span::styled("evicted ", LABEL),
        Span::raw(count(app.totals().evicted_flows)),
    ];
    // Output lines a stuck reader made tlsmon drop (stdout, --log): shown
    // only when it happens.
    let dropped = app.losses().output_dropped;
    if dropped > 0 {
        spans.extend([
            sep(),
            Span::styled(format!("dropped lines {}", count(dropped)), alarm),
        ]);
    }
    spans
}

// ----------------------------------------------------------------- table

/// Text and style of a cell: the text from the column table, the colour
/// from here.
fn cell(col: Column, r: &Row<'_>) -> (String, Style) {
    let text = col.text(r);
    let style = match col {
        Column::Name => Style::new().fg(Color::Cyan),
        Column::Role => Style::new().fg(match r.stats.role {
            Role::Backend => Color::Cyan,
            Role::Frontend => Color::Magenta,
            Role::Unknown => Color::Gray,
        }),
        Column::Full => Style::new().fg(FULL_COLOR),
        Column::Resumed => Style::new().fg(RESUMED_COLOR),
        Column::Rejected => warn_if(r.stats.rejected > 0, Color::Yellow),
        Column::RejectedUnclean => warn_if(r.stats.rejected_after_unclean > 0, Color::LightRed),
        _ => Style::new(),
    };
    (text, style)
}

fn aligned(text: String, right: bool) -> Line<'static> {
    if right {
        Line::from(text).alignment(Alignment::Right)
    } else {
        Line::from(text)
    }
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App, rows: &[Row<'_>], selected: Option<usize>) {
    let (sort, descending) = app.sort();
    let total = app.summary().servers;
    let mut title = vec![Span::raw(" servers ").bold()];
    if app.filter().is_empty() {
        title.push(Span::raw(format!("{total} ")));
    } else {
        title.push(Span::raw(format!("{}/{total} ", rows.len())));
        title.push(Span::styled(
            format!("filter \"{}\" ", app.filter()),
            Style::new().fg(Color::Yellow),
        ));
    }
    let arrow = if descending { "▼" } else { "▲" };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(DIM)
        .title(Line::from(title))
        .title(
            Line::from(vec![
                Span::styled(" sort ", LABEL),
                Span::raw(format!("{} {arrow} ", sort.title())),
            ])
            .right_aligned(),
        );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    if rows.is_empty() {
        let msg = if total == 0 {
            format!(
                "Waiting for TLS handshakes on {}…",
                app.interfaces().join(", ")
            )
        } else {
            format!(
                "No server matches \"{}\" (Esc clears the filter).",
                app.filter()
            )
        };
        frame.render_widget(
            Paragraph::new(msg).style(DIM).wrap(Wrap { trim: true }),
            inner,
        );
        return;
    }
    // Only the rows that fit become cells, the selected one among them
    // (at the bottom when scrolled, as ratatui's own scrolling does).
    let visible = usize::from(inner.height.saturating_sub(1)).max(1);
    let start = selected.map_or(0, |s| (s + 1).saturating_sub(visible));
    let shown = &rows[start..rows.len().min(start + visible)];
    // One column for the selection marker.
    let cols = columns::fit(&columns::widths(shown), inner.width.saturating_sub(1));
    let header = TableRow::new(cols.iter().map(|(c, _)| {
        let mut t = c.title().to_owned();
        if *c == sort {
            t.push_str(arrow);
        }
        Cell::from(aligned(t, c.def().right))
    }))
    .style(Style::new().bold().underlined());
    let body = shown.iter().map(|r| {
        TableRow::new(cols.iter().map(|(c, _)| {
            let (text, style) = cell(*c, r);
            Cell::from(aligned(text, c.def().right)).style(style)
        }))
    });
    let widths = cols.iter().map(|(_, w)| Constraint::Length(*w));
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(
            Style::new()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD),
        )
        .highlight_symbol(">")
        .highlight_spacing(HighlightSpacing::Always);
    let selected = selected.map(|s| s - start);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, inner, &mut state);
}

fn warn_if(cond: bool, color: Color) -> Style {
    if cond {
        Style::new().fg(color)
    } else {
        Style::new()
    }
}

/// "45s", "12m05s", "3h02m10s".
fn duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

// ---------------------------------------------------------------- detail

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, row: Option<Row<'_>>) {
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
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(DIM)
        .title(Line::from(title));
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
        draw_diagnoses(frame, diag, s);
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
        draw_diagnoses(frame, diag, s);
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
fn bars(series: &[u64], width: usize) -> (Vec<u64>, usize) {
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
        line(
            "rejected",
            format!(
                "{} · unclean {} · clean {} · unseen {}",
                c(s.rejected),
                c(s.rejected_after_unclean),
                c(s.rejected_after_clean),
                c(s.rejected_origin_unknown)
            ),
        ),
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

fn draw_diagnoses(frame: &mut Frame, area: Rect, s: &ServerStats) {
    let found = diagnose(s);
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

// ----------------------------------------------------------- help, footer

fn draw_help(frame: &mut Frame, area: Rect) {
    let mut lines: Vec<Line<'static>> = Vec::new();
    for mode in [keys::Mode::Table, keys::Mode::Prompt] {
        if mode == keys::Mode::Prompt {
            lines.push(Line::styled(" In the filter prompt:", DIM));
        }
        for b in BINDINGS.iter().filter(|b| b.mode == mode) {
            lines.push(Line::from(vec![
                Span::styled(
                    format!(" {:<12}", b.label),
                    Style::new().fg(Color::Cyan).bold(),
                ),
                Span::raw(b.help),
            ]));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(" Rows: backends first, then frontends.", DIM));
    let width = 58.min(area.width);
    let height = u16::try_from(lines.len() + 2)
        .unwrap_or(u16::MAX)
        .min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Line::from(" keys ").bold())
        .style(Style::new().bg(Color::Black));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

/// The bottom line: the filter being typed, or key hints followed by a
/// fresh notice (a diagnostic: the terminal under the dashboard gets no log
/// text).
fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    if area.height == 0 {
        return;
    }
    let key = |k: &'static str| Span::styled(k, Style::new().fg(Color::Black).bg(Color::Gray));
    let hints = |mode: keys::Mode| {
        let mut spans = Vec::new();
        for b in BINDINGS.iter().filter(|b| b.mode == mode) {
            let Some((k, what)) = b.hint else { continue };
            let what = if b.action == keys::Action::Pause && app.paused() {
                "resume"
            } else {
                what
            };
            spans.push(Span::raw(" "));
            spans.push(key(k));
            spans.push(Span::styled(format!(" {what} "), LABEL));
        }
        spans
    };
    let line = if let Some(draft) = app.filter_prompt() {
        let mut spans = vec![
            Span::styled(" filter: ", Style::new().fg(Color::Yellow).bold()),
            Span::raw(draft.to_owned()),
            Span::styled(" ", Style::new().add_modifier(Modifier::REVERSED)),
            Span::raw(" "),
        ];
        spans.extend(hints(keys::Mode::Prompt));
        Line::from(spans)
    } else {
        let mut spans = hints(keys::Mode::Table);
        if let Some(text) = app.notice() {
            spans.push(Span::styled(" ▲ ", Style::new().fg(Color::Yellow).bold()));
            spans.push(Span::styled(
                text.to_owned(),
                Style::new().fg(Color::Yellow),
            ));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::{app::AppEvent, sim};

    fn render(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        terminal
    }

    fn key(c: char) -> AppEvent {
        AppEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    }

    #[test]
    fn dashboard_80x24() {
        let app = sim::demo_app(90, 0);
        insta::assert_snapshot!(render(&app, 80, 24).backend());
    }

    #[test]
    fn dashboard_160x48() {
        let mut app = sim::demo_app(90, 12);
        // Select the frontend to show the other kind of detail.
        app.handle(key('G'));
        insta::assert_snapshot!(render(&app, 160, 48).backend());
    }

    #[test]
    fn dashboard_help_and_filter_prompt_80x24() {
        let mut app = sim::demo_app(20, 0);
        app.handle(key('?'));
        insta::assert_snapshot!("help_80x24", render(&app, 80, 24).backend());
        app.handle(AppEvent::Key(KeyEvent::new(
            KeyCode::Esc,
            KeyModifiers::NONE,
        )));
        for c in "/app".chars() {
            app.handle(key(c));
        }
        insta::assert_snapshot!("filter_prompt_80x24", render(&app, 80, 24).backend());
    }

    #[test]
    fn empty_dashboard_and_tiny_terminals_do_not_panic() {
        let app = App::new(
            vec!["eth0".into()],
            crate::names::Names::new(),
            crate::tracker::Limits::default(),
            sim::T0,
        );
        let t = render(&app, 80, 24);
        let text = t.backend().to_string();
        assert!(
            text.contains("Waiting for TLS handshakes on eth0"),
            "{text}"
        );
        let busy = sim::demo_app(3, 1);
        for (w, h) in [
            (1, 1),
            (10, 3),
            (20, 5),
            (40, 12),
            (79, 17),
            (80, 18),
            (200, 60),
        ] {
            render(&busy, w, h);
            render(&app, w, h);
        }
        let mut help = sim::demo_app(1, 0);
        help.handle(key('?'));
        render(&help, 10, 4);
    }

    #[test]
    fn lost_events_are_red_only_when_nonzero() {
        let lost_style = |lost| {
            let app = sim::demo_app(2, lost);
            let t = render(&app, 80, 24);
            let buf = t.backend().buffer().clone();
            let line: String = (0..80).map(|x| buf[(x, 1)].symbol().to_owned()).collect();
            let x = line.find("lost").unwrap();
            let x = u16::try_from(line[..x].chars().count()).unwrap();
            buf[(x, 1)].bg
        };
        assert_eq!(lost_style(7), Color::Red);
        assert_ne!(lost_style(0), Color::Red);
    }

    #[test]
    fn truncated_hellos_are_shown_when_there_are_some() {
        use monitor_common::{
            emit::event::{self as ev, Summary},
            event::{Decoded, EventHeader, hello_flags},
        };
        let wide_header = |app: &App| {
            let t = render(app, 200, 40);
            let buf = t.backend().buffer().clone();
            (0..200)
                .map(|x| buf[(x, 1)].symbol().to_owned())
                .collect::<String>()
        };
        let mut app = sim::demo_app(2, 0);
        assert!(!wide_header(&app).contains("truncated"));
        // A ClientHello cut at its segment's end whose rest never comes: held
        // for reassembly, then counted when it times out.
        let h = EventHeader {
            ts_ns: sim::T0,
            ..ev::header(([10, 0, 0, 1], 40_000).into(), ([10, 0, 0, 2], 443).into())
        };
        let t = Summary::items(&[])
            .flags(hello_flags::CLIENT_HELLO | hello_flags::TRUNCATED)
            .hello_at(0, 1500)
            .build();
        app.handle(AppEvent::Kernel(Decoded::Tls(h, t)));
        app.handle(AppEvent::Tick {
            now_ns: sim::T0 + 10_000_000_000,
            kernel: crate::stats::KernelStats::default(),
        });
        assert!(
            wide_header(&app).contains("truncated hellos 1"),
            "{}",
            wide_header(&app)
        );
    }

    #[test]
    fn narrow_drops_columns_wide_shows_them() {
        let app = sim::demo_app(5, 0);
        let narrow = render(&app, 80, 24).backend().to_string();
        let wide = render(&app, 160, 48).backend().to_string();
        for col in [
            "server", "role", "hs/s", "full", "resumed", "reuse", "rejected", "rej-uncl",
        ] {
            assert!(narrow.contains(col), "80 columns lack {col}");
        }
        for col in ["name", "offered", "RST c/s", "versions", "p50 ms", "p99 ms"] {
            assert!(wide.contains(col), "160 columns lack {col}");
        }
        assert!(!narrow.contains("p99 ms"));
        assert!(wide.contains("1.2:100%"));
    }

    #[test]
    fn short_terminals_hide_the_detail_pane() {
        let app = sim::demo_app(5, 0);
        let short = render(&app, 80, 14).backend().to_string();
        assert!(
            !short.contains("offered by") && !short.contains("No problem"),
            "{short}"
        );
        assert!(short.contains("10.0.1.11:8443"));
        let tall = render(&app, 80, 24).backend().to_string();
        assert!(tall.contains("full now"), "{tall}");
    }

    #[test]
    fn bars_group_whole_seconds_from_the_latest() {
        assert_eq!(bars(&[1, 2, 3], 10), (vec![1, 2, 3], 1));
        assert_eq!(bars(&[1, 2, 3, 4, 5], 2), (vec![12], 3));
        assert_eq!(bars(&[1, 2, 3, 4, 5, 6], 3), (vec![3, 7, 11], 2));
        assert_eq!(bars(&[], 3), (vec![], 1));
    }

    #[test]
    fn formats() {
        assert_eq!(count(999_999), "999999");
        assert_eq!(count(1_250_000), "1.2M");
        assert_eq!(duration(59_000_000_000), "59s");
        assert_eq!(duration(90_000_000_000), "1m30s");
        assert_eq!(duration(3_725_000_000_000), "1h02m05s");
    }
}
