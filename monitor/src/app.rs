//! The one owner of everything tlsmon shows: the tracker's counters, the
//! rates and history derived from them on each tick, what the source and
//! the outputs lost, and the dashboard's view state (sort, selection,
//! filter, pause, help, status line).
//!
//! [`App::handle`] is a pure state transition (events and a clock in, no
//! I/O), so the live loop, `replay`, the tests and the rendering snapshots
//! all drive it the same way. Time only enters through [`AppEvent::Tick`].

use std::collections::{HashMap, HashSet};

use crossterm::event::KeyEvent;
use monitor_common::event::{Decoded, Direction};

use crate::{
    columns::{self, Column, Row},
    diagnosis::{Change, Diagnoses, Shown},
    escape::escape,
    keys::{self, Action, Key, Mode},
    names::Names,
    stats::{Endpoint, KernelStats, Losses, ServerStats, Totals},
    tracker::{Limits, Tracker},
};

mod history;

pub use self::history::{HISTORY_SECS, History};
/// How long a notice stays in the status line.
pub const NOTICE_NS: u64 = 10 * NS_PER_SEC;

const NS_PER_SEC: u64 = 1_000_000_000;

#[derive(Clone, Debug)]
pub enum AppEvent {
    Key(KeyEvent),
    /// Time passed: `now_ns` is the events' clock (`CLOCK_MONOTONIC` live,
    /// the capture's clock in `replay`); `kernel` the source's counters.
    Tick {
        now_ns: u64,
        kernel: KernelStats,
    },
    /// An event from the kernel program: its header's time and direction
    /// are when and which way the packet crossed the hook.
    Kernel(Decoded),
    /// An event an engine made from a captured packet, with the time and
    /// direction the capture recorded for that packet.
    Captured(Decoded, Stamp),
    /// A ring-buffer record that did not decode.
    Undecodable,
    /// Output lines dropped so far because a reader did not keep up (the
    /// outputs' running total).
    OutputDropped(u64),
    /// Diagnostics dropped so far because their queue was full
    /// (`logging::dropped`).
    DiagnosticsDropped(u64),
    /// A diagnostic for the dashboard's status line.
    Notice(String),
}

/// When and which way a captured packet went, as the capture says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub ts_ns: u64,
    pub direction: Direction,
}

impl Stamp {
    /// The event as the tracker takes it: the tracker reads time and
    /// direction from the header, and for a capture the capture's are the
    /// truth (the kernel engine's test run knows neither).
    fn onto(self, d: Decoded) -> Decoded {
        let mut d = d;
        let (Decoded::Tls(h, _) | Decoded::Teardown(h) | Decoded::Chunk(h, _)) = &mut d;
        h.ts_ns = self.ts_ns;
        h.direction = self.direction.0;
        d
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Quit,
}

/// What is computed on each tick from the tracker's cumulative counters.
#[derive(Clone, Debug, Default)]
struct Derived {
    now_ns: u64,
    kernel: KernelStats,
    /// Handshakes per second over the last tick window, all servers.
    rate: f64,
    rates: HashMap<Endpoint, f64>,
    history: HashMap<Endpoint, History>,
    /// Counts over all servers, as of the tick (the header's).
    summary: Summary,
}

/// The screen's content at the moment `p` was pressed.
#[derive(Clone, Debug)]
struct Frozen {
    derived: Derived,
    servers: Vec<ServerStats>,
    totals: Totals,
    connections: usize,
    diagnoses: HashMap<Endpoint, Shown>,
}

/// Counts over all servers: the dashboard's header and the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub servers: usize,
    pub full: u64,
    pub resumed: u64,
    pub offered: u64,
    pub rejected: u64,
    pub rejected_after_unclean: u64,
    pub hrr: u64,
    pub incomplete: u64,
    pub failed: u64,
    /// Answers that came after their handshake was counted incomplete.
    pub late: u64,
}

impl Summary {
    #[must_use]
    pub fn of<'a>(servers: impl IntoIterator<Item = &'a ServerStats>) -> Self {
        let mut s = Self::default();
        for v in servers {
            s.servers += 1;
            s.full += v.full;
            s.resumed += v.resumed;
            s.offered += v.offered;
            s.rejected += v.rejected;
            s.rejected_after_unclean += v.rejected_after_unclean;
            s.hrr += v.hrr;
            s.incomplete += v.incomplete;
            s.failed += v.failed;
            s.late += v.late;
        }
        s
    }

    #[must_use]
    pub fn handshakes(&self) -> u64 {
        self.full + self.resumed
    }
}

pub struct App {
    tracker: Tracker,
    interfaces: Vec<String>,
    names: Names,
    started_ns: u64,
    last_tick_ns: u64,
    /// Cumulative (full, resumed) per server at the last tick.
    last_counts: HashMap<Endpoint, (u64, u64)>,
    live: Derived,
    /// Each server's diagnoses over the recent window (see
    /// `diagnosis::window`), judged on every tick.
    diagnoses: Diagnoses,
    /// While paused the display shows this copy. Events keep going into
    /// the tracker (and ticks into the history) so nothing is lost and the
    /// numbers are right again the moment the pause ends; only the screen
    /// stands still, so a line can be read or copied.
    frozen: Option<Box<Frozen>>,
    losses: Losses,
    /// The latest diagnostic and until when it is shown.
    notice: Option<(String, u64)>,
    sort: Column,
    descending: bool,
    /// The selected server, followed across re-sorting...
    selected: Option<Endpoint>,
    /// ...and its last row index, for when it goes away.
    selected_pos: usize,
    /// Applied filter, lower case.
    filter: String,
    /// The filter being typed, while the prompt is open.
    prompt: Option<String>,
    help: bool,
}

impl App {
    #[must_use]
    pub fn new(interfaces: Vec<String>, names: Names, limits: Limits, now_ns: u64) -> Self {
        Self {
            tracker: Tracker::new(limits),
            interfaces,
            names,
            started_ns: now_ns,
            last_tick_ns: now_ns,
            last_counts: HashMap::new(),
            live: Derived {
                now_ns,
                ..Derived::default()
            },
            diagnoses: Diagnoses::new(now_ns),
            frozen: None,
            losses: Losses::default(),
            notice: None,
            sort: Column::Full,
            descending: Column::Full.default_descending(),
            selected: None,
            selected_pos: 0,
            filter: String::new(),
            prompt: None,
            help: false,
        }
    }

    /// Applies one event. No I/O; the caller redraws afterwards.
    ///
    /// Inlined, so that an event the source just decoded goes to the
    /// tracker without being copied on the way: in the proxy lab, moving
    /// each event (some 300 bytes) from the decoder through `AppEvent` and
    /// this call into the tracker cost a fifth of the daemon's instructions.
    #[inline]
    pub fn handle(&mut self, ev: AppEvent) -> Control {
        match ev {
            // Hot path: no row building here. The selection is kept by
            // server, so new events cannot invalidate it.
            AppEvent::Kernel(d) => {
                self.tracker.on_event(d);
                Control::Continue
            }
            other => self.handle_other(other),
        }
    }

    fn handle_other(&mut self, ev: AppEvent) -> Control {
        match ev {
            AppEvent::Key(key) => {
                if self.key(key) == Control::Quit {
                    return Control::Quit;
                }
                self.follow_selection();
            }
            AppEvent::Tick { now_ns, kernel } => {
                self.tick(now_ns, kernel);
                self.follow_selection();
            }
            AppEvent::Kernel(d) => self.tracker.on_event(d),
            AppEvent::Captured(d, at) => self.tracker.on_event(at.onto(d)),
            AppEvent::Undecodable => self.losses.undecodable += 1,
            AppEvent::OutputDropped(n) => self.losses.output_dropped = n,
            AppEvent::DiagnosticsDropped(n) => self.losses.diagnostics_dropped = n,
            AppEvent::Notice(text) => {
                // Our own messages, but they may quote a path or an OS
                // error: the status line gets safe text like everything else.
                let until = self.live.now_ns.saturating_add(NOTICE_NS);
                self.notice = Some((escape(text.as_bytes()), until));
            }
        }
        Control::Continue
    }

    #[must_use]
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The tracker, once the app is done (`replay` hands it to its caller).
    #[must_use]
    pub fn into_tracker(self) -> Tracker {
        self.tracker
    }

    /// Gives each server its role by whether its address is this host's
    /// (`replay` of a capture without directions).
    pub fn assign_roles(&mut self, local: &HashSet<std::net::IpAddr>) {
        self.tracker.assign_roles(|a| Some(local.contains(a)));
    }

    /// The server rows as the table shows them: filtered, grouped by role
    /// (backends first), sorted within each group.
    #[must_use]
    pub fn rows(&self) -> Vec<Row<'_>> {
        let d = self.derived();
        let needle = self.filter.as_str();
        let mut rows: Vec<Row<'_>> = self
            .servers()
            .into_iter()
            .map(|stats| Row {
                stats,
                name: self.names.lookup(&stats.server, stats.role),
                rate: d.rates.get(&stats.server).copied().unwrap_or(0.0),
            })
            .filter(|r| r.matches(needle))
            .collect();
        columns::order(&mut rows, self.sort, self.descending);
        rows
    }

    /// Index of the selected row in `rows` (as [`Self::rows`] returned
    /// them), `None` when empty.
    #[must_use]
    pub fn selected_in(&self, rows: &[Row<'_>]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        self.selected
            .and_then(|sel| rows.iter().position(|r| r.stats.server == sel))
            .or(Some(self.selected_pos.min(rows.len() - 1)))
    }

    /// Index of the selected row in [`Self::rows`], `None` when empty.
    #[must_use]
    pub fn selected_index(&self) -> Option<usize> {
        self.selected_in(&self.rows())
    }

    /// The selected row, `None` when the table is empty.
    #[must_use]
    pub fn selected_row(&self) -> Option<Row<'_>> {
        let rows = self.rows();
        self.selected_in(&rows).map(|i| rows[i])
    }

    /// A server's diagnoses over the recent window, as displayed (frozen
    /// while paused).
    #[must_use]
    pub fn shown_diagnoses(&self, server: &Endpoint) -> Shown {
        match &self.frozen {
            Some(f) => f.diagnoses.get(server).cloned().unwrap_or_default(),
            None => self.diagnoses.shown(server),
        }
    }

    /// Every server's diagnoses now (not frozen: the metrics page and the
    /// diagnosis lines are never paused).
    #[must_use]
    pub fn diagnoses(&self) -> &Diagnoses {
        &self.diagnoses
    }

    /// The diagnoses that appeared, changed or went since the last tick
    /// (a tick replaces them): the live loop writes them as lines after
    /// each tick and key.
    #[must_use]
    pub fn diagnosis_changes(&self) -> &[Change] {
        self.diagnoses.changes()
    }

    /// Takes [`Self::diagnosis_changes`], so that each is written once.
    pub fn take_diagnosis_changes(&mut self) -> Vec<Change> {
        self.diagnoses.take_changes()
    }

    /// History of a server, as displayed.
    #[must_use]
    pub fn history(&self, server: &Endpoint) -> Option<&History> {
        self.derived().history.get(server)
    }

    #[must_use]
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    #[must_use]
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Time since the start, as of the displayed tick.
    #[must_use]
    pub fn uptime_ns(&self) -> u64 {
        self.derived().now_ns.saturating_sub(self.started_ns)
    }

    /// Handshakes per second over the last tick window, all servers.
    #[must_use]
    pub fn handshake_rate(&self) -> f64 {
        self.derived().rate
    }

    /// The source's counters as displayed. Not frozen by a pause: losses
    /// are shown as they happen.
    #[must_use]
    pub fn kernel(&self) -> KernelStats {
        self.live.kernel
    }

    /// What tlsmon lost itself (undecodable records, dropped output lines).
    #[must_use]
    pub fn losses(&self) -> Losses {
        self.losses
    }

    /// The tracker's totals as displayed (frozen while paused).
    #[must_use]
    pub fn totals(&self) -> Totals {
        self.frozen
            .as_ref()
            .map_or(self.tracker.totals, |f| f.totals)
    }

    /// Connections tracked, as displayed.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.frozen
            .as_ref()
            .map_or_else(|| self.tracker.connections(), |f| f.connections)
    }

    /// Counts over all servers (unfiltered) as of the displayed tick: the
    /// tick already walks every server, a frame need not again.
    #[must_use]
    pub fn summary(&self) -> Summary {
        self.derived().summary
    }

    /// The status line's message, while it is fresh.
    #[must_use]
    pub fn notice(&self) -> Option<&str> {
        self.notice
            .as_ref()
            .filter(|(_, until)| self.live.now_ns < *until)
            .map(|(text, _)| text.as_str())
    }

    #[must_use]
    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    #[must_use]
    pub fn help_shown(&self) -> bool {
        self.help
    }

    /// The applied filter (lower case), empty for none.
    #[must_use]
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The text being typed while the filter prompt is open.
    #[must_use]
    pub fn filter_prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }

    /// Sort column and whether it is descending.
    #[must_use]
    pub fn sort(&self) -> (Column, bool) {
        (self.sort, self.descending)
    }

    fn derived(&self) -> &Derived {
        self.frozen.as_ref().map_or(&self.live, |f| &f.derived)
    }

    fn servers(&self) -> Vec<&ServerStats> {
        match &self.frozen {
            Some(f) => f.servers.iter().collect(),
            None => self.tracker.servers(),
        }
    }

    /// Keeps the selection on an existing row: the same server if it is
    /// still shown, else the row now at its place (clamped).
    fn follow_selection(&mut self) {
        let rows = self.rows();
        let idx = self.selected_in(&rows);
        let sel = idx.map(|i| rows[i].stats.server);
        let pos = idx.unwrap_or(0);
        self.selected = sel;
        self.selected_pos = pos;
    }

    fn move_selection(&mut self, delta: isize) {
        let rows = self.rows();
        let Some(cur) = self.selected_in(&rows) else {
            return;
        };
        let last = rows.len() - 1;
        let next = cur.saturating_add_signed(delta).min(last);
        self.selected = Some(rows[next].stats.server);
        self.selected_pos = next;
    }

    fn key(&mut self, ev: KeyEvent) -> Control {
        let Some(key) = keys::key(ev) else {
            return Control::Continue;
        };
        let mode = if self.prompt.is_some() {
            Mode::Prompt
        } else {
            Mode::Table
        };
        match (keys::action(mode, key), mode) {
            (Some(action), _) => return self.act(action),
            (None, Mode::Prompt) => {
                if let (Key::Char(c), Some(draft)) = (key, &mut self.prompt) {
                    draft.push(c);
                }
            }
            (None, Mode::Table) => {}
        }
        Control::Continue
    }

    fn act(&mut self, action: Action) -> Control {
        match action {
            Action::Quit => return Control::Quit,
            Action::Pause => self.toggle_pause(),
            Action::Reset => self.reset(),
            Action::NextSort => {
                self.sort = self.sort.next_sort();
                self.descending = self.sort.default_descending();
            }
            Action::ReverseSort => self.descending = !self.descending,
            Action::Down => self.move_selection(1),
            Action::Up => self.move_selection(-1),
            Action::PageDown => self.move_selection(10),
            Action::PageUp => self.move_selection(-10),
            Action::First => self.move_selection(isize::MIN),
            Action::Last => self.move_selection(isize::MAX),
            Action::OpenFilter => self.prompt = Some(self.filter.clone()),
            Action::Help => self.help = !self.help,
            Action::Escape => {
                if self.help {
                    self.help = false;
                } else {
                    self.filter.clear();
                }
            }
            Action::ApplyFilter => {
                if let Some(draft) = self.prompt.take() {
                    self.filter = draft.trim().to_lowercase();
                }
            }
            Action::ClearFilter => {
                self.filter.clear();
                self.prompt = None;
            }
            Action::DeleteChar => {
                if let Some(d) = &mut self.prompt {
                    d.pop();
                }
            }
            Action::DeleteLine => {
                if let Some(d) = &mut self.prompt {
                    d.clear();
                }
            }
        }
        Control::Continue
    }

    fn toggle_pause(&mut self) {
        self.frozen = match self.frozen {
            Some(_) => None,
            None => Some(Box::new(self.snapshot())),
        };
    }

    fn snapshot(&self) -> Frozen {
        Frozen {
            derived: self.live.clone(),
            servers: self.tracker.servers().into_iter().cloned().collect(),
            totals: self.tracker.totals,
            connections: self.tracker.connections(),
            diagnoses: self.diagnoses.all_shown(),
        }
    }

    /// `r`: counters and history start over; connections in flight and
    /// the sessions the tracker remembers stay, so resumption is still
    /// attributed right after a reset.
    fn reset(&mut self) {
        self.tracker.reset_counters();
        self.diagnoses.reset();
        self.last_counts.clear();
        self.live.rate = 0.0;
        self.live.rates.clear();
        self.live.history.clear();
        self.live.summary = Summary::default();
        if self.frozen.is_some() {
            self.frozen = Some(Box::new(self.snapshot()));
        }
    }

    fn tick(&mut self, now_ns: u64, kernel: KernelStats) {
        self.tracker.tick(now_ns);
        let sec = now_ns.saturating_sub(self.started_ns) / NS_PER_SEC;
        let dt_ns = now_ns.saturating_sub(self.last_tick_ns);
        #[expect(clippy::cast_precision_loss, reason = "seconds as a float for a rate")]
        let dt = dt_ns as f64 / 1e9;
        let mut total = 0;
        let mut rates = HashMap::new();
        let servers = self.tracker.servers();
        for s in &servers {
            let (full, resumed) = (s.full, s.resumed);
            let (lf, lr) = self
                .last_counts
                .insert(s.server, (full, resumed))
                .unwrap_or((0, 0));
            let (df, dr) = (full.saturating_sub(lf), resumed.saturating_sub(lr));
            total += df + dr;
            self.live
                .history
                .entry(s.server)
                .or_default()
                .add(sec, df, dr);
            if dt_ns > 0 {
                #[expect(clippy::cast_precision_loss, reason = "a rate")]
                rates.insert(s.server, (df + dr) as f64 / dt);
            }
        }
        // Servers the tracker let go (evicted, or a reset) take their
        // history with them: what the app keeps per server stays bounded
        // by what the tracker keeps.
        if self.last_counts.len() > servers.len() {
            let present: HashSet<Endpoint> = servers.iter().map(|s| s.server).collect();
            self.last_counts.retain(|k, _| present.contains(k));
            self.live.history.retain(|k, _| present.contains(k));
        }
        if dt_ns > 0 {
            #[expect(clippy::cast_precision_loss, reason = "a rate")]
            let rate = total as f64 / dt;
            self.live.rate = rate;
            self.live.rates = rates;
            self.last_tick_ns = now_ns;
        }
        self.diagnoses.tick(now_ns, &servers);
        self.live.summary = Summary::of(servers);
        self.live.now_ns = now_ns.max(self.live.now_ns);
        self.live.kernel = kernel;
    }
}

#[cfg(test)]
mod tests;
