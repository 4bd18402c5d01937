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
        Block, BorderType, Cell, Clear, HighlightSpacing, Paragraph, Row as TableRow, Table,
        TableState, Wrap,
    },
};

use crate::{
    app::App,
    columns::{self, Column, Row, count, percent},
    keys::{self, BINDINGS},
    stats::Role,
};

/// Below this height the detail pane is left out.
const MIN_HEIGHT_FOR_DETAIL: u16 = 18;
/// Detail pane height: at least this...
const DETAIL_MIN: u16 = 11;
/// ...and at most this.
const DETAIL_MAX: u16 = 20;

mod detail;

use self::detail::draw_detail;

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
    let dropped = app.losses().diagnostics_dropped;
    if dropped > 0 {
        spans.extend([
            sep(),
            Span::styled(format!("dropped messages {}", count(dropped)), alarm),
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
        Column::Rejected | Column::Cause => warn_if(r.stats.rejected > 0, Color::Yellow),
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
        for col in [
            "name", "offered", "cause", "RST c/s", "versions", "p50 ms", "p99 ms",
        ] {
            assert!(wide.contains(col), "160 columns lack {col}");
        }
        assert!(!narrow.contains("p99 ms"));
        assert!(wide.contains("1.2:100%"));
        // app/web1's rejections come from the proxy's resets.
        let web1 = wide.lines().find(|l| l.contains("app/web1")).unwrap();
        assert!(web1.contains(" unclean "), "{web1}");
        assert!(narrow.contains("rejects 28: unclean 28"), "{narrow}");
        assert!(
            narrow.contains("diagnosis over the last 5s"),
            "the window the diagnoses are judged over: {narrow}"
        );
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
    fn formats() {
        assert_eq!(count(999_999), "999999");
        assert_eq!(count(1_250_000), "1.2M");
        assert_eq!(duration(59_000_000_000), "59s");
        assert_eq!(duration(90_000_000_000), "1m30s");
        assert_eq!(duration(3_725_000_000_000), "1h02m05s");
    }
}
