//! The numbers the rules read: a plain copy of one server's counters, so
//! that a window's worth of them is a subtraction of two copies
//! ([`Counts::since`]) and the rules need not know whether they judge a
//! whole run or the last minutes.

use crate::stats::{ByCause, ByMethod, Cause, ServerStats};

/// One server's counters that the rules read. Cumulative when taken from
/// [`ServerStats`], a difference when it is a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub full: u64,
    pub resumed: u64,
    pub resumed_by: ByMethod,
    pub offered: u64,
    pub rejected: u64,
    /// Rejected offers by cause; see [`Counts::of`] for the time before
    /// the tracker names causes.
    pub rejected_by_cause: ByCause,
    /// Of the offers rejected `after_unclean`, those whose session's last
    /// holder was a short connection that carried no application data: the
    /// signature of health checks. From the tracker's
    /// `rejected_after_idle_unclean`.
    pub after_unclean_without_data: u64,
    pub hrr: u64,
    pub incomplete: u64,
    pub failed: u64,
    pub clean_closes: u64,
    pub unclean_closes: u64,
    pub unknown_closes: u64,
    pub rst_by_client: u64,
    pub rst_by_server: u64,
}

/// Applies `$do` to every counter of a [`Counts`], named by its path: the
/// one list of them, so that none is forgotten in [`Counts::since`].
macro_rules! each_counter {
    ($do:ident) => {
        $do!(
            full,
            resumed,
            resumed_by.session_id,
            resumed_by.ticket,
            resumed_by.psk,
            offered,
            rejected,
            rejected_by_cause.after_unclean,
            rejected_by_cause.after_clean,
            rejected_by_cause.expired,
            rejected_by_cause.server_restart,
            rejected_by_cause.no_cache,
            rejected_by_cause.ticket_rejected,
            rejected_by_cause.unknown,
            after_unclean_without_data,
            hrr,
            incomplete,
            failed,
            clean_closes,
            unclean_closes,
            unknown_closes,
            rst_by_client,
            rst_by_server
        )
    };
}

impl Counts {
    /// `s`'s counters as they are now.
    #[must_use]
    pub fn of(s: &ServerStats) -> Self {
        Self {
            full: s.full,
            resumed: s.resumed,
            resumed_by: s.resumed_by,
            offered: s.offered,
            rejected: s.rejected,
            rejected_by_cause: s.rejected_by_cause,
            after_unclean_without_data: s.rejected_after_idle_unclean,
            hrr: s.hrr,
            incomplete: s.incomplete,
            failed: s.failed,
            clean_closes: s.clean_closes,
            unclean_closes: s.unclean_closes,
            unknown_closes: s.unknown_closes,
            rst_by_client: s.rst_by_client,
            rst_by_server: s.rst_by_server,
        }
    }

    /// What was counted between `base` (earlier) and `self`; `None` if a
    /// counter went down, which means the server's counters started over
    /// (a reset, or the server was evicted and came back).
    #[must_use]
    pub fn since(&self, base: &Self) -> Option<Self> {
        let mut out = Self::default();
        macro_rules! minus {
            ($($f:ident $(. $g:ident)?),*) => {
                $( out.$f$(.$g)? = self.$f$(.$g)?.checked_sub(base.$f$(.$g)?)?; )*
            };
        }
        each_counter!(minus);
        Some(out)
    }

    #[must_use]
    pub fn handshakes(&self) -> u64 {
        self.full + self.resumed
    }

    #[must_use]
    pub fn rejected_by(&self, c: Cause) -> u64 {
        self.rejected_by_cause.get(c)
    }

    /// Every cause with its rejections, most first (ties in
    /// [`Cause::ALL`]'s order).
    #[must_use]
    pub fn causes(&self) -> Vec<(Cause, u64)> {
        let mut by: Vec<(Cause, u64)> = Cause::ALL
            .iter()
            .map(|&k| (k, self.rejected_by(k)))
            .collect();
        by.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        by
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sim, stats::Role};

    #[test]
    fn a_window_is_the_difference_and_a_restart_is_noticed() {
        let mut s = sim::blank_stats(Role::Backend);
        s.full = 10;
        s.offered = 8;
        s.rejected = 8;
        s.rejected_by_cause.expired = 8;
        s.unknown_closes = 3;
        let before = Counts::of(&s);
        s.full = 15;
        s.offered = 9;
        s.rejected = 9;
        s.rejected_by_cause.expired = 9;
        s.unknown_closes = 7;
        let w = Counts::of(&s).since(&before).unwrap();
        assert_eq!((w.full, w.offered, w.rejected), (5, 1, 1));
        assert_eq!(w.rejected_by(Cause::Expired), 1);
        assert_eq!(w.unknown_closes, 4);
        // Every counter is in the one list: with all of them set (the
        // literal names every field), a copy less nothing is the copy.
        let all = Counts {
            full: 1,
            resumed: 2,
            resumed_by: ByMethod {
                session_id: 3,
                ticket: 4,
                psk: 5,
            },
            offered: 6,
            rejected: 7,
            rejected_by_cause: ByCause {
                after_unclean: 8,
                after_clean: 9,
                expired: 10,
                server_restart: 11,
                no_cache: 12,
                ticket_rejected: 13,
                unknown: 14,
            },
            after_unclean_without_data: 15,
            hrr: 16,
            incomplete: 17,
            failed: 18,
            clean_closes: 19,
            unclean_closes: 20,
            unknown_closes: 21,
            rst_by_client: 22,
            rst_by_server: 23,
        };
        assert_eq!(all.since(&Counts::default()), Some(all));
        // Counters that went down started over.
        assert_eq!(before.since(&Counts::of(&s)), None);
    }
}
