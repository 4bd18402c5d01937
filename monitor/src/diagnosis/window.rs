//! Diagnoses judged over a recent window, not since start: an operator who
//! fixed a configuration sees the diagnosis clear, and the daemon says so.
//!
//! Per server, a [`Window`] keeps copies of its counters taken every
//! [`STEP_NS`]; the counts of the window are the counters now minus the
//! newest copy at least [`WINDOW_NS`] old (or, for a younger server, all
//! of them). At most `WINDOW_NS / STEP_NS + 2` copies are kept, and a
//! server's window goes with the server when the tracker lets it go, so
//! what this costs is bounded by `--max-servers`.
//!
//! Each check ([`Check`]) is judged on every tick. A diagnosis appears as
//! soon as its rule fires; it changes or clears only once the new verdict
//! has held for [`SETTLE_NS`], so a share hovering at a threshold does not
//! flap. A check without enough traffic in the window to judge keeps what
//! it said before: a backend that went quiet keeps its last diagnosis,
//! numbers and all, until traffic says otherwise or the server is
//! forgotten. Every appearance, change and clearing is a [`Change`], which
//! the live loop writes as a `"type":"diagnosis"` line.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Check, Counts, Diagnosis, RULE_UNCLEAN_REJECTIONS, Verdict, sort};
use crate::stats::{Endpoint, Role, ServerStats};

const NS_PER_SEC: u64 = 1_000_000_000;
/// How far back a diagnosis looks.
pub const WINDOW_NS: u64 = 300 * NS_PER_SEC;
/// How often a server's counters are copied for its window: the window
/// spans from `WINDOW_NS` to `WINDOW_NS + STEP_NS`.
pub const STEP_NS: u64 = 30 * NS_PER_SEC;
/// How long a different verdict must hold before a shown diagnosis
/// changes or clears.
pub const SETTLE_NS: u64 = 30 * NS_PER_SEC;

/// Copies of one server's counters, oldest first.
#[derive(Clone, Debug)]
struct Window {
    copies: VecDeque<(u64, Counts)>,
    /// The time and counters of the last update.
    previous: (u64, Counts),
}

impl Window {
    /// A window for a server whose counters started at zero at `now_ns`.
    fn new(now_ns: u64) -> Self {
        Self {
            copies: VecDeque::from([(now_ns, Counts::default())]),
            previous: (now_ns, Counts::default()),
        }
    }

    /// Takes in the counters at `now_ns`; returns the window's counts and
    /// the time they span.
    fn update(&mut self, now_ns: u64, current: Counts) -> (Counts, u64) {
        if current.since(&self.previous.1).is_none() {
            // The counters started over since the last update (the server
            // was evicted and came back): count from then.
            *self = Self::new(self.previous.0);
        }
        self.previous = (now_ns, current);
        let newest = self.copies.back().map_or(0, |(t, _)| *t);
        if now_ns.saturating_sub(newest) >= STEP_NS {
            self.copies.push_back((now_ns, current));
        }
        // The newest copy at least WINDOW_NS old is the base; older ones
        // are of no more use.
        while self
            .copies
            .get(1)
            .is_some_and(|(t, _)| now_ns.saturating_sub(*t) >= WINDOW_NS)
        {
            self.copies.pop_front();
        }
        let Some(&(base_ns, base)) = self.copies.front() else {
            *self = Self::new(now_ns);
            return (current, 0);
        };
        // Every copy is at most the previous counters, so this holds.
        let counts = current.since(&base).unwrap_or_default();
        (counts, now_ns.saturating_sub(base_ns))
    }
}

/// One check's state for one server.
#[derive(Clone, Debug, Default)]
struct Slot {
    shown: Option<Diagnosis>,
    /// Since when a verdict other than `shown` has held.
    differs_since: Option<u64>,
}

/// What happened to a diagnosis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Appeared,
    /// Its check now gives another rule (`previous` names the old one).
    Changed,
    /// Traffic in the window no longer shows it.
    Cleared,
    /// The server's counters are gone (evicted, or a reset).
    Forgotten,
}

impl ChangeKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Appeared => "appeared",
            Self::Changed => "changed",
            Self::Cleared => "cleared",
            Self::Forgotten => "forgotten",
        }
    }
}

/// A diagnosis that appeared, changed or went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub server: Endpoint,
    pub role: Role,
    /// The diagnosis now; for `Cleared` and `Forgotten`, the one that went.
    pub diagnosis: Diagnosis,
    /// For `Changed`, the rule shown before.
    pub previous: Option<&'static str>,
    /// The window's counts when it happened...
    pub counts: Counts,
    /// ...and the time they span.
    pub span_ns: u64,
}

/// What the views show of one server: its diagnoses, most severe first,
/// and the time the window spans.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shown {
    pub diagnoses: Vec<Diagnosis>,
    pub span_ns: u64,
}

/// One server's window and checks.
#[derive(Clone, Debug)]
struct Judge {
    role: Role,
    window: Window,
    slots: [Slot; Check::ALL.len()],
    /// The window's counts and span at the last tick.
    last: (Counts, u64),
}

impl Judge {
    fn new(role: Role, now_ns: u64) -> Self {
        Self {
            role,
            window: Window::new(now_ns),
            slots: Default::default(),
            last: (Counts::default(), 0),
        }
    }

    fn update(&mut self, now_ns: u64, s: &ServerStats, out: &mut Vec<Change>) {
        self.role = s.role;
        let (counts, span_ns) = self.window.update(now_ns, Counts::of(s));
        self.last = (counts, span_ns);
        let change = |kind, diagnosis, previous| Change {
            kind,
            server: s.server,
            role: s.role,
            diagnosis,
            previous,
            counts,
            span_ns,
        };
        for (i, check) in Check::ALL.into_iter().enumerate() {
            // Rejections come first: session-ID-only defers to them.
            let unclean = self.slots[0]
                .shown
                .as_ref()
                .is_some_and(|d| d.rule == RULE_UNCLEAN_REJECTIONS);
            let slot = &mut self.slots[i];
            let verdict = check.judge(s.role, &counts, unclean);
            let now = match verdict {
                Verdict::Undecided => continue,
                Verdict::Clear => None,
                Verdict::Fires(d) => Some(d),
            };
            match (&mut slot.shown, now) {
                (None, None) => slot.differs_since = None,
                (None, Some(d)) => {
                    out.push(change(ChangeKind::Appeared, d.clone(), None));
                    slot.shown = Some(d);
                    slot.differs_since = None;
                }
                // The same rule: its numbers are refreshed.
                (Some(shown), Some(d)) if shown.rule == d.rule => {
                    *shown = d;
                    slot.differs_since = None;
                }
                (Some(shown), now) => {
                    let since = *slot.differs_since.get_or_insert(now_ns);
                    if now_ns.saturating_sub(since) < SETTLE_NS {
                        continue;
                    }
                    slot.differs_since = None;
                    if let Some(d) = now {
                        out.push(change(ChangeKind::Changed, d.clone(), Some(shown.rule)));
                        *shown = d;
                    } else {
                        out.push(change(ChangeKind::Cleared, shown.clone(), None));
                        slot.shown = None;
                    }
                }
            }
        }
    }

    fn shown(&self) -> Shown {
        let mut diagnoses: Vec<Diagnosis> =
            self.slots.iter().filter_map(|s| s.shown.clone()).collect();
        sort(&mut diagnoses);
        Shown {
            diagnoses,
            span_ns: self.last.1,
        }
    }

    /// Every shown diagnosis as `Forgotten`.
    fn forget(&self, server: Endpoint, out: &mut Vec<Change>) {
        for d in self.slots.iter().filter_map(|s| s.shown.clone()) {
            out.push(Change {
                kind: ChangeKind::Forgotten,
                server,
                role: self.role,
                diagnosis: d,
                previous: None,
                counts: self.last.0,
                span_ns: self.last.1,
            });
        }
    }
}

/// Every server's windowed diagnoses, and what changed in the last tick.
#[derive(Clone, Debug)]
pub struct Diagnoses {
    judges: HashMap<Endpoint, Judge>,
    /// What the last tick (and a reset since) changed; replaced on every
    /// tick, so it holds at most two changes per check of each server the
    /// tracker keeps.
    changes: Vec<Change>,
    /// The last tick: a server first judged now counts from there.
    last_tick_ns: u64,
}

impl Diagnoses {
    /// No server yet; counting starts at `now_ns`.
    #[must_use]
    pub fn new(now_ns: u64) -> Self {
        Self {
            judges: HashMap::new(),
            changes: Vec::new(),
            last_tick_ns: now_ns,
        }
    }

    /// Judges every server at `now_ns`; forgets the servers that are no
    /// longer among `servers`.
    pub fn tick(&mut self, now_ns: u64, servers: &[&ServerStats]) {
        self.changes.clear();
        let since = std::mem::replace(&mut self.last_tick_ns, now_ns);
        if self.judges.len() > servers.len() {
            let present: HashSet<Endpoint> = servers.iter().map(|s| s.server).collect();
            let changes = &mut self.changes;
            self.judges.retain(|server, judge| {
                let keep = present.contains(server);
                if !keep {
                    judge.forget(*server, changes);
                }
                keep
            });
        }
        for s in servers {
            self.judges
                .entry(s.server)
                .or_insert_with(|| Judge::new(s.role, since))
                .update(now_ns, s, &mut self.changes);
        }
    }

    /// Forgets every server (the dashboard's reset): their diagnoses go,
    /// as `Forgotten` changes.
    pub fn reset(&mut self) {
        for (server, judge) in self.judges.drain() {
            judge.forget(server, &mut self.changes);
        }
    }

    /// What the last tick (and a reset since) changed. Taken by the live
    /// loop in the same tick; the next tick replaces them.
    #[must_use]
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Takes [`Self::changes`].
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// What `server` shows now.
    #[must_use]
    pub fn shown(&self, server: &Endpoint) -> Shown {
        self.judges
            .get(server)
            .map(Judge::shown)
            .unwrap_or_default()
    }

    /// Every server with a diagnosis, for a frozen display.
    #[must_use]
    pub fn all_shown(&self) -> HashMap<Endpoint, Shown> {
        self.judges
            .iter()
            .map(|(k, j)| (*k, j.shown()))
            .filter(|(_, s)| !s.diagnoses.is_empty())
            .collect()
    }

    /// Every shown diagnosis with its server and role, in address order:
    /// the metrics' `tlsmon_diagnosis`.
    #[must_use]
    pub fn active(&self) -> Vec<(Endpoint, Role, &Diagnosis)> {
        let mut v: Vec<_> = self
            .judges
            .iter()
            .flat_map(|(server, j)| {
                j.slots
                    .iter()
                    .filter_map(|s| s.shown.as_ref())
                    .map(|d| (*server, j.role, d))
            })
            .collect();
        v.sort_by(|a, b| (a.0, a.2.rule).cmp(&(b.0, b.2.rule)));
        v
    }
}

#[cfg(test)]
mod tests;
