//! Handshake times: quantiles for the JSON lines and the dashboard, and
//! Prometheus buckets for the metrics page.
//!
//! Two views of the same samples, each from what does it best:
//! * quantiles (p50/p90/p99) come from an HdrHistogram (the `hdrhistogram`
//!   crate) with one significant digit: every value is reported within
//!   1/16 (6.25 %) of itself, in 368 counters per histogram;
//! * the page exports fixed buckets ([`BUCKETS_SECONDS`]), the same on
//!   every host, so `histogram_quantile` over a fleet's `_bucket` series
//!   is meaningful. Their counts are exact, not derived from the
//!   HdrHistogram (whose bucket edges do not fall on these bounds).

/// Upper bounds of the exported buckets, in seconds: 1–2.5–5 steps from
/// 100 µs (a resumed handshake on loopback) to 10 s (the tracker's
/// handshake timeout; anything longer is `incomplete`), plus `+Inf`.
pub const BUCKETS_SECONDS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The same bounds in nanoseconds, for recording without floating point.
const BUCKETS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Range of the quantile histogram, in microseconds: 1 µs to a minute.
/// Longer values are recorded as a minute (they only occur if the clock
/// jumps; the tracker gives up on a handshake after 10 s).
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 60_000_000;
/// One significant digit: buckets 1/16 wide, 368 counters.
const SIGNIFICANT_DIGITS: u8 = 1;

#[derive(Clone, Debug)]
pub struct Histogram {
    quantiles: hdrhistogram::Histogram<u64>,
    /// Samples per exported bucket (not cumulative): `buckets[i]` counts
    /// values in `(BUCKETS_NS[i-1], BUCKETS_NS[i]]`.
    buckets: [u64; BUCKETS_NS.len()],
    sum_ns: u64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            quantiles: hdrhistogram::Histogram::new_with_bounds(
                LOWEST_US,
                HIGHEST_US,
                SIGNIFICANT_DIGITS,
            )
            .expect("constant bounds are valid"),
            buckets: [0; BUCKETS_NS.len()],
            sum_ns: 0,
            count: 0,
        }
    }
}

impl Histogram {
    /// Records one handshake time in nanoseconds.
    pub fn record(&mut self, ns: u64) {
        self.quantiles
            .saturating_record((ns / 1000).clamp(LOWEST_US, HIGHEST_US));
        if let Some(i) = BUCKETS_NS.iter().position(|&upper| ns <= upper) {
            self.buckets[i] += 1;
        }
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.count += 1;
    }

    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) in milliseconds, `None` when empty: the
    /// upper edge of the HdrHistogram bucket it falls in.
    #[must_use]
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let us = self.quantiles.value_at_quantile(q.clamp(0.0, 1.0));
        #[expect(clippy::cast_precision_loss, reason = "at most 6e7 µs")]
        Some(us as f64 / 1000.0)
    }

    /// The exported buckets: each upper bound in seconds with the number
    /// of samples in it (not cumulative), ending with `+Inf` for the values
    /// above the last bound.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let above = self.count - self.buckets.iter().sum::<u64>();
        BUCKETS_SECONDS
            .iter()
            .copied()
            .zip(self.buckets)
            .chain([(f64::INFINITY, above)])
    }

    /// Sum of all samples in seconds.
    #[must_use]
    #[expect(clippy::cast_precision_loss, reason = "ns to s for export")]
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_sixteenth() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((50.0..=50.0 * 1.0625).contains(&p50), "p50 {p50}");
        assert!((99.0..=99.0 * 1.0625).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn the_two_bound_tables_agree() {
        for (s, ns) in BUCKETS_SECONDS.iter().zip(BUCKETS_NS) {
            #[expect(clippy::cast_precision_loss, reason = "exact below 2^53")]
            let from_ns = ns as f64 / 1e9;
            assert!((s - from_ns).abs() < 1e-15, "{s} vs {ns} ns");
        }
        assert!(BUCKETS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn buckets_count_each_sample_once_upper_bound_inclusive() {
        let mut h = Histogram::default();
        // On a bound, just above it, and beyond the last one (+Inf).
        for ns in [100_000, 100_001, 1_000_000, 10_000_000_000, 10_000_000_001] {
            h.record(ns);
        }
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b[0], (0.000_1, 1));
        assert_eq!(b[1], (0.000_25, 1));
        assert_eq!(b[3], (0.001, 1));
        assert_eq!(b[15], (10.0, 1));
        assert_eq!(b[16], (f64::INFINITY, 1));
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), 5);
        assert_eq!(h.count(), 5);
        assert!((h.sum_seconds() - 20.001_200_002).abs() < 1e-9);
    }

    #[test]
    fn the_quantile_histogram_is_small() {
        // The size the module's documentation gives.
        assert_eq!(Histogram::default().quantiles.distinct_values(), 368);
    }

    #[test]
    fn extreme_values_are_kept_not_lost() {
        let mut h = Histogram::default();
        h.record(0);
        h.record(u64::MAX);
        assert_eq!(h.count(), 2);
        assert_eq!(h.quantile_ms(0.0), Some(0.001));
        let top = h.quantile_ms(1.0).unwrap();
        assert!((60_000.0..=60_000.0 * 1.0625).contains(&top), "{top}");
    }
}
