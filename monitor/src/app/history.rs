//! Full and resumed handshakes per second, per server, for the
//! dashboard's sparklines.

use std::collections::VecDeque;

/// Seconds of per-server history kept for the sparklines.
pub const HISTORY_SECS: usize = 300;

/// Full and resumed handshakes per second, the last [`HISTORY_SECS`].
#[derive(Clone, Debug, Default)]
pub struct History {
    /// (full, resumed), oldest first; the last one is the current second.
    /// 32 bits: a second's handshakes to one server fit, and the history of
    /// every server the tracker keeps costs half of 64 bits' 4.8 kB each.
    buckets: VecDeque<(u32, u32)>,
    last_sec: Option<u64>,
}

impl History {
    /// Adds counts to second `sec` (since the dashboard started), opening
    /// empty seconds for any skipped.
    pub(super) fn add(&mut self, sec: u64, full: u64, resumed: u64) {
        let open = match self.last_sec {
            None => 1,
            Some(last) if sec > last => usize::try_from(sec - last)
                .unwrap_or(HISTORY_SECS)
                .min(HISTORY_SECS),
            // Same second, or a clock that went back: keep adding here.
            Some(_) => 0,
        };
        for _ in 0..open {
            self.buckets.push_back((0, 0));
        }
        if open > 0 || self.last_sec.is_none() {
            self.last_sec = Some(sec);
        }
        while self.buckets.len() > HISTORY_SECS {
            self.buckets.pop_front();
        }
        if let Some(b) = self.buckets.back_mut() {
            let add = |to: u32, n: u64| to.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            b.0 = add(b.0, full);
            b.1 = add(b.1, resumed);
        }
    }

    /// Full handshakes per second, oldest first.
    #[must_use]
    pub fn full(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| u64::from(b.0)).collect()
    }

    /// Resumed handshakes per second, oldest first.
    #[must_use]
    pub fn resumed(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| u64::from(b.1)).collect()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}
