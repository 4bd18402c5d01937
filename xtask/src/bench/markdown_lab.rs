//! The proxy-lab part of docs/performance.md: how the lab runs are made
//! and counted, what they add up to, and one row per run.

use std::fmt::Write as _;

use super::{
    cell::Cell as _,
    plan::{APP_DATA_SCENARIO, DRAIN, LAB_PREFIX, WARM_UP},
    report::{EndToEnd, LabReport, Part, RunRecord, number},
    statistics::ratio_interval,
};

/// The proxy-lab part of the end-to-end section.
pub fn section(md: &mut String, e2e: &EndToEnd) {
    let lab = e2e.lab.as_ref();
    let text = |f: fn(&LabReport) -> &str| lab.map_or("—", f);
    let _ = writeln!(
        md,
        "### In the proxy lab\n\n\
                  The proxy lab (docs/proxy-lab.md) in its `http` scenario under its own prefix \
         (`{LAB_PREFIX}`): HAProxy in `mode http` with `option http-server-close`, so that with \
         the client's `Connection: close` every request is one frontend TLS handshake (TLS 1.3) \
         and one backend TLS handshake (TLS 1.2, resumed by session ID after the first few). \
         In `mode tcp` (`broken`, `working`) the Python backend keeps a connection open after \
         its response, so a client would send several requests over one connection. The load \
         is `wrk` in the client namespace, which opens a new TCP and TLS connection for every \
         request when the response says `Connection: close`; it keeps its TLS session across \
         these reconnections, so most frontend handshakes are resumptions, as a browser's \
         would be. HAProxy's log is the count, independent of what is measured: one line per \
         request, whether it completed (`term=--`), and whether the frontend and backend \
         handshakes were resumed; the kernel's count of TCP connections opened in the client \
         namespace (`ActiveOpens`) checks, every run, that each request had its own \
         connection. Requests per second are HAProxy's completed requests over \
         wrk's run time: wrk itself counts a response that ends with its connection \
         (`openssl s_server -www` answers HTTP/1.0) as a read error, not a request, so its \
         own count misses a third of them.\n\n\
         * Load: `{}`\n* tlsmon: `{}`\n* tshark: `{}`\n\n\
         Runs of the same length alternate without and with tlsmon attached, in pairs \
         (off/on, then on/off), after a {} s warm-up; tlsmon is started before each `on` run \
         and stopped with SIGINT after it, and the run starts only after it printed \
         `attached to` (loading is the verifier's work, see Loading). The throughput ratio is the \
         median of the pairs' ratios of requests per second with/without; the total over all \
         pairs is shown too. CPU time is `utime + stime` of the process (for tshark, with its \
         `dumpcap` child) from `/proc/<pid>/stat`, read when the load starts and {} s after it \
         ends, so loading and shutdown are not counted, divided by the handshakes HAProxy \
         logged meanwhile. tshark watches the same load in separate runs.\n\n\
         tlsmon's CPU time has two parts: its process (reading the ring buffer, tracking \
         handshakes) and its kernel programs, which run on every packet of the watched \
         interfaces and are charged to whoever sends or receives the packet, not to tlsmon. \
         tlsmon runs with `--kernel-cost`, which turns on the kernel's BPF run-time statistics \
         and reports that second part (`kernel_run_s`, over tlsmon's whole run, so a little \
         more than the load); the statistics add two clock reads to every program run, which \
         counts against tlsmon. tshark copies every packet matching its capture filter to \
         userspace and dissects it there, so its process time is nearly its whole cost.\n\n\
         The throughput ratio is also derived from CPU time, which is far less noisy here than \
         requests per second: the whole lab (wrk, HAProxy, the backends) shares the machine's \
         CPUs and keeps them busy (the busy share below, from `/proc/stat`: user, nice, \
         system, irq and softirq time over all CPUs' time), so throughput is the CPU time \
         there is over what a request costs. Without tlsmon a request costs the machine's busy \
         CPU seconds over the requests completed in the `off` runs; tlsmon adds its CPU \
         seconds (process and kernel programs) over the requests of the `on` runs; the ratio \
         is the first over their sum. It assumes the machine stays saturated and that tlsmon \
         slows nothing else down, such as cache contention; the measured ratio is the check \
         on both.\n\n\
         What one run of tlsmon's programs costs on the loaded proxy comes from the same BPF \
         statistics, set against a program that only returns, attached in tlsmon's place for \
         runs of their own (`bench in-place`, the bench example) and measured the same way. On \
         a busy proxy every run starts with caches that the proxy's own work has just filled, \
         which BPF_PROG_TEST_RUN's tight loop never does.\n",
        text(|l| &l.load),
        text(|l| &l.tlsmon),
        text(|l| &l.tshark),
        WARM_UP.as_secs(),
        DRAIN.as_secs(),
    );
    measurements(md, e2e);
    runs_table(md, lab);
    app_data(md, lab);
}

/// What the programs cost in place when nearly every packet is
/// application data of an established connection.
fn app_data(md: &mut String, lab: Option<&LabReport>) {
    let Some(lab) = lab else { return };
    let _ = writeln!(
        md,
        "#### Application data in place\n\n\
         The runs above are handshakes from end to end: every request opens two TLS \
         connections, and nearly half the packets carry an event. Most packets of a proxy \
         are application data of connections whose handshake is long over, so the lab is \
         brought up again in its `{APP_DATA_SCENARIO}` scenario (HAProxy in `mode tcp`, the \
         Python backend keeping its connections open) and `wrk` runs without `Connection: \
         close`, so it sends all its requests over the connections it opened first. tlsmon \
         and the return-only program take turns watching that load, in the order tlsmon, \
         return-only, then return-only, tlsmon, and their programs' time per run comes from \
         the same BPF statistics as above.\n"
    );
    match &lab.kernel_in_place_app_data {
        Part::Measured(a) => {
            let list = |v: &[f64]| v.iter().map(|x| number(*x)).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                md,
                "* Load: `{}`\n\n\
                 | measurement | value |\n|---|---:|\n\
                 | requests per client connection | {} |\n\
                 | tlsmon's programs, ns per run (each run) | {} ({}) |\n\
                 | the return-only program, ns per run (each run) | {} ({}) |\n\
                 | ratio | {}× |\n",
                a.load,
                number(a.requests_per_connection),
                number(a.tlsmon_ns_per_run),
                list(&a.tlsmon_runs),
                number(a.baseline_ns_per_run),
                list(&a.baseline_runs),
                number(a.ratio),
            );
        }
        other => {
            let _ = writeln!(
                md,
                "Not measured: {}.\n",
                other.reason().unwrap_or_default()
            );
        }
    }
}

/// The numbers of the proxy-lab part, and a warning when its pairs spread
/// wider than the target's margin.
fn measurements(md: &mut String, e2e: &EndToEnd) {
    let lab = e2e.lab.as_ref();
    let in_place = lab.and_then(|l| l.kernel_in_place.value());
    let _ = writeln!(
        md,
        "| measurement | value |\n|---|---:|\n\
         | throughput with/without tlsmon, median of pairs | {} |\n\
         | throughput with/without tlsmon, total | {} |\n\
         | throughput with/without tlsmon, each pair | {} |\n\
         | throughput with/without tlsmon, from CPU time | {} |\n\
         | machine busy while loaded, without tlsmon (median of runs) | {} |\n\
         | tlsmon CPU seconds per 1,000 handshakes | {} |\n\
         | of which its process / its kernel programs | {} / {} |\n\
         | its kernel programs in place, ns per run / a return-only program's | {} / {} |\n\
         | tshark CPU seconds per 1,000 handshakes | {} |\n\
         | events tlsmon lost in these runs | {} |\n\
         | load average before / after | {} / {} |\n",
        e2e.throughput_ratio.cell(""),
        lab.map(|l| l.total_ratio).cell(""),
        lab.map_or(&[][..], |l| &l.pair_ratios[..])
            .iter()
            .map(|r| number(*r))
            .collect::<Vec<_>>()
            .join(", "),
        lab.map(|l| l.cpu_ratio).cell(""),
        lab.map(|l| l.machine_busy_share_off).cell(""),
        e2e.tlsmon_cpu_s_per_1k.cell(""),
        lab.map(|l| l.tlsmon_daemon_cpu_s_per_1k).cell(""),
        lab.map(|l| l.tlsmon_kernel_cpu_s_per_1k).cell(""),
        in_place.map(|p| p.tlsmon_ns_per_run).cell(""),
        in_place.map(|p| p.baseline_ns_per_run).cell(""),
        e2e.tshark_cpu_s_per_1k.cell(""),
        e2e.lab_lost_events.cell(""),
        lab.and_then(|l| l.load_average_before).cell(""),
        lab.and_then(|l| l.load_average_after).cell(""),
    );
    if let Some((lo, hi)) = ratio_interval(lab) {
        let _ = writeln!(
            md,
            "The pairs' mean ratio lies between {} and {} with 95% confidence. Where that \
             interval straddles 0.97, this machine's noise is larger than the difference the \
             target asks to resolve; more pairs or a quieter machine (load average below the \
             CPU count) narrow it. The ratio from CPU time bounds what tlsmon's own CPU use takes \
             from the proxy; a measured ratio clearly below it would be a cost CPU time does not \
             show, such as caches the daemon or the classifier evict.\n",
            number(lo),
            number(hi)
        );
    }
}

/// One row per run: the pairs, then tshark's runs.
fn runs_table(md: &mut String, lab: Option<&LabReport>) {
    let mut rows: Vec<(String, &RunRecord)> = Vec::new();
    if let Some(lab) = lab {
        for (i, (off, on)) in lab.pairs.iter().enumerate() {
            rows.extend([off, on].map(|r| (format!("{}", i + 1), r)));
        }
        let others = lab.tshark_runs.value().into_iter().flatten();
        rows.extend(
            others
                .chain(&lab.baseline_runs)
                .map(|r| ("—".to_owned(), r)),
        );
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "| pair | watched by | requests/s | requests | client connections | handshakes: frontend full / resumed, backend full / resumed | watcher CPU s, user / system | the watcher saw | lost events / dropped packets |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (pair, r) in rows {
        let seen = match (r.handshakes_seen, r.server_hellos_seen) {
            (_, Some(n)) => format!("{n} ServerHellos"),
            (Some(n), None) => format!("{n} handshakes"),
            (None, None) => "—".to_owned(),
        };
        let cpu = match (r.cpu_user_s, r.cpu_sys_s) {
            (Some(user), sys) => format!("{} / {}", user.cell(""), sys.cell("")),
            (None, _) => "—".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {pair} | {} | {} | {} | {} | {}: {} / {}, {} / {} | {cpu} | {seen} | {} |",
            r.watcher,
            r.requests_per_s.cell(""),
            r.haproxy_completed,
            r.client_connections,
            r.handshakes,
            r.frontend_full,
            r.frontend_resumed,
            r.backend_full,
            r.backend_resumed,
            r.lost_events.or(r.packets_dropped).cell(""),
        );
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::{sample, sample_lab};

    #[test]
    fn the_section_gives_the_interval_and_a_row_per_run() {
        let mut e2e = sample().end_to_end;
        let mut lab = sample_lab();
        lab.pair_ratios = vec![0.9, 1.0, 1.1];
        e2e.lab = Some(lab);
        let mut md = String::new();
        section(&mut md, &e2e);
        assert!(md.contains("between 0.752 and 1.248"), "{md}");
        assert!(md.contains("\n| 1 | off | 700.5 | 2100 |"), "{md}");
        assert!(md.contains("\n| 1 | tlsmon | 700.5 | 2100 |"), "{md}");
        assert!(
            md.contains("| load average before / after | 1.5 / — |"),
            "{md}"
        );
        assert!(
            md.contains("Not measured: no program runs were counted."),
            "{md}"
        );
    }

    #[test]
    fn the_application_data_runs_show_each_run_and_the_ratio() {
        let mut e2e = sample().end_to_end;
        let mut lab = sample_lab();
        lab.kernel_in_place_app_data = Part::Measured(crate::bench::report::AppDataInPlace {
            scenario: "working".to_owned(),
            load: "wrk".to_owned(),
            tlsmon_ns_per_run: 120.5,
            baseline_ns_per_run: 60.25,
            ratio: 2.0,
            tlsmon_runs: vec![118.0, 123.0],
            baseline_runs: vec![60.0, 60.5],
            requests_per_connection: 29000.0,
        });
        e2e.lab = Some(lab);
        let mut md = String::new();
        section(&mut md, &e2e);
        assert!(
            md.contains("| tlsmon's programs, ns per run (each run) | 120.5 (118, 123) |"),
            "{md}"
        );
        assert!(md.contains("| ratio | 2× |"), "{md}");
        assert!(
            md.contains("| requests per client connection | 29000 |"),
            "{md}"
        );
    }
}
