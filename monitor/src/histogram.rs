//! A fixed-size log-scale histogram for handshake times.
//!
//! Each power of two of microseconds is cut into eight linear sub-buckets
//! (so a bucket is at most 12.5 % wide), from 1 µs to about 70 minutes: a
//! percentile is reported within that error with 256 counters and no
//! allocation per sample.

/// Sub-buckets per power of two.
const STEPS_PER_OCTAVE: u32 = 8;
const BUCKETS: usize = 256;

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            total: 0,
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    let log2 = us.ilog2();
    // Fractional part: the next three bits below the leading one.
    let frac = if log2 >= 3 {
        ((us >> (log2 - 3)) & 0x7) as u32
    } else {
        ((us << (3 - log2)) & 0x7) as u32
    };
    ((log2 * STEPS_PER_OCTAVE + frac) as usize).min(BUCKETS - 1)
}

/// Upper edge of a bucket in microseconds.
fn upper_us(bucket: usize) -> f64 {
    let steps = STEPS_PER_OCTAVE as usize;
    let (octave, frac) = (bucket / steps, bucket % steps);
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_wrap,
        clippy::cast_possible_truncation,
        reason = "small bucket indexes"
    )]
    let edge = 2f64.powi(octave as i32) * (1.0 + (frac + 1) as f64 / steps as f64);
    edge
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket_of(ns / 1000)] += 1;
        self.total += 1;
    }

    #[must_use]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1) in milliseconds, `None` when empty.
    #[must_use]
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "rank of at most total"
        )]
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_us(i) / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_bucket() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((50.0..=50.0 * 1.125).contains(&p50), "p50 {p50}");
        assert!((99.0..=99.0 * 1.125).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = bucket_of(us);
            assert!(b >= last);
            assert!(
                upper_us(b) >= f64::from(u32::try_from(us).unwrap()),
                "{us} above its bucket edge"
            );
            last = b;
        }
    }
}
