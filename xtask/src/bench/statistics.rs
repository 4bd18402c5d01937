//! From the lab's runs to the report's numbers: the throughput ratio (the
//! median of the pairs' ratios, and one derived from CPU time), CPU
//! seconds per 1,000 handshakes, what a run of the kernel programs costs in
//! place, and the confidence interval of the pairs' mean.

use super::{
    plan::{APP_DATA_SCENARIO, SCENARIO},
    report::{AppDataInPlace, InPlace, LabReport, Part, as_f64, round},
    run_lab::{AppDataRun, Measured, Run},
    watchers::Watcher,
};

/// The lab's part of the report.
pub struct LabParts {
    pub throughput_ratio: Part<f64>,
    pub tlsmon_cpu_s_per_1k: Part<f64>,
    pub tshark_cpu_s_per_1k: Part<f64>,
    pub lab_lost_events: Part<u64>,
    pub lab: Option<LabReport>,
}

impl LabParts {
    /// Every number skipped, or failed, for one reason (`why` holds no
    /// value).
    pub fn without(why: &Part<()>) -> Self {
        Self {
            throughput_ratio: why.clone().map(|()| 0.0),
            tlsmon_cpu_s_per_1k: why.clone().map(|()| 0.0),
            tshark_cpu_s_per_1k: why.clone().map(|()| 0.0),
            lab_lost_events: why.clone().map(|()| 0),
            lab: None,
        }
    }
}

impl Measured {
    pub fn summarize(self) -> LabParts {
        let ratios: Vec<f64> = self
            .pairs
            .iter()
            .map(|(off, on)| on.rps / off.rps)
            .collect();
        let on: Vec<&Run> = self.pairs.iter().map(|p| &p.1).collect();
        let off: Vec<&Run> = self.pairs.iter().map(|p| &p.0).collect();
        let completed = |runs: &[&Run]| as_f64(runs.iter().map(|r| r.completed).sum::<u64>());
        let sum = |runs: &[&Run], f: fn(&Run) -> f64| runs.iter().map(|r| f(r)).sum::<f64>();
        let handshakes_k = as_f64(on.iter().map(|r| r.handshakes()).sum::<u64>()) / 1000.0;
        // The throughput tlsmon's CPU time leaves, when the machine is kept
        // busy (see docs/performance.md): what every request cost the
        // machine without tlsmon, against that plus what tlsmon spent per
        // request.
        let busy_per_request = sum(&off, |r| r.busy_s) / completed(&off);
        let tlsmon_per_request = sum(&on, |r| r.cpu().unwrap_or(0.0)) / completed(&on);
        let (tshark_per_1k, tshark_runs) = match &self.tshark {
            Ok(runs) => (
                per_1k(&runs.iter().collect::<Vec<_>>()),
                Part::Measured(runs.iter().map(Run::record).collect()),
            ),
            Err(why) => (Part::skipped(why), Part::skipped(why)),
        };
        let lab = LabReport {
            scenario: SCENARIO.to_owned(),
            seconds_per_run: self.seconds,
            load: self.wrk,
            tlsmon: self.tlsmon,
            tshark: self.tshark_cmd,
            pair_ratios: ratios.iter().map(|r| round(*r, 3)).collect(),
            // Runs have the same length, so completed requests compare as rates.
            total_ratio: round(completed(&on) / completed(&off), 3),
            cpu_ratio: round(
                busy_per_request / (busy_per_request + tlsmon_per_request),
                4,
            ),
            machine_busy_s_per_request: round(busy_per_request, 7),
            tlsmon_cpu_s_per_request: round(tlsmon_per_request, 7),
            machine_busy_share_off: round(
                median(&off.iter().map(|r| r.busy_share).collect::<Vec<_>>()),
                3,
            ),
            tlsmon_daemon_cpu_s_per_1k: round(
                sum(&on, |r| r.cpu_s.map_or(0.0, |(u, s)| u + s)) / handshakes_k,
                4,
            ),
            tlsmon_kernel_cpu_s_per_1k: round(
                sum(&on, |r| r.kernel.map_or(0.0, |k| k.0)) / handshakes_k,
                4,
            ),
            pairs: self
                .pairs
                .iter()
                .map(|(off, on)| (off.record(), on.record()))
                .collect(),
            tshark_runs,
            kernel_in_place: in_place(&on, &self.baseline.iter().collect::<Vec<_>>()),
            baseline_runs: self.baseline.iter().map(Run::record).collect(),
            kernel_in_place_app_data: in_place_app_data(&self.app_data, self.wrk_keepalive),
            load_average_before: self.load_before,
            load_average_after: self.load_after,
        };
        LabParts {
            throughput_ratio: Part::Measured(round(median(&ratios), 3)),
            tlsmon_cpu_s_per_1k: per_1k(&on),
            tshark_cpu_s_per_1k: tshark_per_1k,
            lab_lost_events: Part::Measured(on.iter().filter_map(|r| r.lost).sum()),
            lab: Some(lab),
        }
    }
}

/// What a run of tlsmon's programs cost on the loaded proxy (`on` runs),
/// against a program that does nothing, measured the same way.
fn in_place(on: &[&Run], baseline: &[&Run]) -> Part<InPlace> {
    let ns_per_run = |runs: &[&Run]| -> Option<f64> {
        let seconds: f64 = runs.iter().filter_map(|r| r.kernel).map(|k| k.0).sum();
        let n: u64 = runs.iter().filter_map(|r| r.kernel).map(|k| k.1).sum();
        (n > 0).then(|| seconds * 1e9 / as_f64(n))
    };
    match (ns_per_run(on), ns_per_run(baseline)) {
        (Some(t), Some(b)) => Part::Measured(InPlace {
            tlsmon_ns_per_run: round(t, 1),
            baseline_ns_per_run: round(b, 1),
            ratio: round(t / b, 2),
        }),
        _ => Part::skipped("no program runs were counted"),
    }
}

/// [`in_place`] under the keep-alive load: all the runs of each side
/// together, and each run on its own to show their spread.
fn in_place_app_data(runs: &[AppDataRun], load: String) -> Part<AppDataInPlace> {
    let side = |w: Watcher| runs.iter().filter(move |r| r.watcher == w);
    let ns = |k: (f64, u64)| round(k.0 * 1e9 / as_f64(k.1), 1);
    let total = |w: Watcher| {
        let (s, n) = side(w).fold((0.0, 0), |(s, n), r| (s + r.kernel.0, n + r.kernel.1));
        (n > 0).then(|| s * 1e9 / as_f64(n))
    };
    let (Some(t), Some(b)) = (total(Watcher::Tlsmon), total(Watcher::Baseline)) else {
        return Part::skipped("no program runs were counted");
    };
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    let connections: u64 = runs.iter().map(|r| r.connections).sum();
    Part::Measured(AppDataInPlace {
        scenario: APP_DATA_SCENARIO.to_owned(),
        load,
        tlsmon_ns_per_run: round(t, 1),
        baseline_ns_per_run: round(b, 1),
        ratio: round(t / b, 2),
        tlsmon_runs: side(Watcher::Tlsmon).map(|r| ns(r.kernel)).collect(),
        baseline_runs: side(Watcher::Baseline).map(|r| ns(r.kernel)).collect(),
        requests_per_connection: round(as_f64(requests) / as_f64(connections.max(1)), 1),
    })
}

/// The watchers' CPU seconds per 1,000 handshakes `HAProxy` logged.
fn per_1k(runs: &[&Run]) -> Part<f64> {
    let cpu: f64 = runs.iter().filter_map(|r| r.cpu()).sum();
    let handshakes: u64 = runs.iter().map(|r| r.handshakes()).sum();
    if handshakes == 0 {
        return Part::skipped("no handshakes were logged");
    }
    // A process that used less than a clock tick still cost something; the
    // report needs a positive number, so say it is below the resolution
    // instead of writing 0.
    if cpu <= 0.0 {
        return Part::skipped("below the clock-tick resolution of /proc/<pid>/stat");
    }
    Part::Measured(round(cpu / (as_f64(handshakes) / 1000.0), 4))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// The 95% confidence interval of the mean of the pairs' ratios (Student's
/// t, the pairs taken as independent samples), rounded to 3 places; `None`
/// for fewer than 3 pairs. The target is met when the whole interval lies
/// at or above it, missed when below, and undecided when it straddles it.
pub fn ratio_interval(lab: Option<&LabReport>) -> Option<(f64, f64)> {
    let ratios = lab.map_or(&[][..], |l| &l.pair_ratios[..]);
    let n = ratios.len();
    if n < 3 {
        return None;
    }
    let k = as_f64(n as u64);
    let mean = ratios.iter().sum::<f64>() / k;
    let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (k - 1.0);
    let half = t95(n - 1) * (var / k).sqrt();
    Some((round(mean - half, 3), round(mean + half, 3)))
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom;
/// beyond the table, the value for 30, which overstates the interval a
/// little.
fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T[df.clamp(1, 30) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(ratios: &[f64]) -> LabReport {
        let mut report = crate::bench::report::tests::sample_lab();
        report.pair_ratios = ratios.to_vec();
        report
    }

    #[test]
    fn pair_ratios_give_a_t_interval() {
        // Mean 1, sample sd 0.1, n 3: half-width t(0.975, 2) 4.303 x 0.1 / sqrt 3.
        assert_eq!(
            ratio_interval(Some(&lab(&[0.9, 1.0, 1.1]))),
            Some((0.752, 1.248))
        );
        // Identical pairs: no spread at all.
        assert_eq!(
            ratio_interval(Some(&lab(&[0.99, 0.99, 0.99, 0.99]))),
            Some((0.99, 0.99))
        );
        assert_eq!(ratio_interval(Some(&lab(&[0.9, 1.0]))), None);
        assert_eq!(ratio_interval(Some(&lab(&[]))), None);
        assert_eq!(ratio_interval(None), None);
    }

    #[test]
    fn medians() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert!(median(&[]).is_nan());
    }
}
