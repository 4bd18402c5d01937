//! Faults a daemon on a proxy host meets: a monitored interface that
//! disappears and comes back, and being killed with SIGKILL and started
//! again. Real namespaces, veths and openssl peers. Needs root.

mod common;
#[path = "support/procfs.rs"]
mod procfs;

use std::{thread, time::Duration};

use aya::programs::{SchedClassifier, TcAttachType};
use common::{
    Lab, Proc, Side, TLS_PORT, in_netns, must_output, output, read, reconnect, start_s_server,
    start_tlsmon, wait_for_text,
};
use monitor::kernel;
use serde_json::Value;

const PORT: u16 = TLS_PORT;

fn start_server(lab: &mut Lab) -> Proc {
    let (cert, key) = lab.make_cert();
    start_s_server(lab, "s_server", &cert, &key)
}

fn start(lab: &mut Lab, name: &str) -> Proc {
    start_tlsmon(
        lab,
        name,
        &["--headless", "--interval", "1", "--duration", "120"],
    )
}

/// Stops tlsmon with SIGINT and returns its final line for the server.
fn stop(lab: &mut Lab, tlsmon: &Proc) -> Value {
    thread::sleep(Duration::from_millis(500));
    lab.signal(tlsmon, libc::SIGINT);
    let status = lab.wait(tlsmon, Duration::from_secs(15));
    assert!(
        status.success(),
        "tlsmon failed: {status}\n{}",
        output(tlsmon)
    );
    let server = format!("{}:{PORT}", lab.ip(Side::Server));
    read(&tlsmon.stdout)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "server" && v["server"] == server.as_str())
        .unwrap_or_else(|| panic!("no final line for {server}\n{}", output(tlsmon)))
}

/// s_client resumes five times, then tlsmon stops: its final line counts
/// what s_client says it did, and nothing was ever attached twice.
fn reconnect_and_stop(lab: &mut Lab, tlsmon: &Proc) {
    let (_, new, reused) = reconnect(lab);
    assert_eq!((new, reused), (1, 5), "s_client's own counts");
    let line = stop(lab, tlsmon);
    assert_eq!(
        (line["full"].as_u64(), line["resumed"].as_u64()),
        (Some(new), Some(reused)),
        "{line}"
    );
    assert!(
        !read(&tlsmon.stderr).contains("File exists"),
        "{}",
        output(tlsmon)
    );
}

/// Exactly tlsmon's two classifiers are attached to the client's veth.
fn attached_once(lab: &Lab) {
    let (ns, iface) = (lab.ns(Side::Client), lab.iface(Side::Client));
    assert_eq!(
        tcx_programs(ns, iface, TcAttachType::Ingress),
        ["tlsmon_ingress"]
    );
    assert_eq!(
        tcx_programs(ns, iface, TcAttachType::Egress),
        ["tlsmon_egress"]
    );
}

#[test]
fn interface_that_comes_back_is_attached_again() {
    let mut lab = Lab::new("fif", 4);
    let _server = start_server(&mut lab);
    let tlsmon = start(&mut lab, "tlsmon");
    delete_veth(&lab, &tlsmon);
    recreate_veth(&lab);
    wait_for_text(
        &tlsmon.stderr,
        "re-attached to",
        Duration::from_secs(15),
        &|| output(&tlsmon),
    );

    reconnect_and_stop(&mut lab, &tlsmon);
}

/// Deletes the veth pair (deleting one end removes both) and waits until
/// tlsmon says so.
fn delete_veth(lab: &Lab, tlsmon: &Proc) {
    let (ns, iface) = (lab.ns(Side::Client), lab.iface(Side::Client));
    must_output(xtask::programs::command("ip").args(["-n", ns, "link", "del", iface]));
    wait_for_text(&tlsmon.stderr, "is gone", Duration::from_secs(15), &|| {
        output(tlsmon)
    });
}

/// Creates the veth pair again with the same names and addresses.
fn recreate_veth(lab: &Lab) {
    let (cli_ns, srv_ns) = (lab.ns(Side::Client), lab.ns(Side::Server));
    let (cli_if, srv_if) = (lab.iface(Side::Client), lab.iface(Side::Server));
    must_output(xtask::programs::command("ip").args([
        "link", "add", cli_if, "netns", cli_ns, "type", "veth", "peer", "name", srv_if, "netns",
        srv_ns,
    ]));
    for (ns, ifname, ip) in [
        (cli_ns, cli_if, lab.ip(Side::Client)),
        (srv_ns, srv_if, lab.ip(Side::Server)),
    ] {
        let addr = format!("{ip}/30");
        must_output(
            xtask::programs::command("ip").args(["-n", ns, "addr", "add", &addr, "dev", ifname]),
        );
        must_output(xtask::programs::command("ip").args(["-n", ns, "link", "set", ifname, "up"]));
    }
}

/// An interface that comes back while tlsmon is out of descriptors: it
/// must neither be attached half (then "File exists" on every retry) nor
/// given up on, and once descriptors are free it is attached again.
#[test]
fn interface_that_comes_back_while_out_of_descriptors() {
    let mut lab = Lab::new("fie", 8);
    let _server = start_server(&mut lab);
    let tlsmon = start(&mut lab, "tlsmon");
    delete_veth(&lab, &tlsmon);
    // Not one descriptor to spare.
    procfs::limit_fds(tlsmon.pid, procfs::open_fds(tlsmon.pid));
    recreate_veth(&lab);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !["cannot read the state", "re-attaching to"]
        .iter()
        .any(|t| read(&tlsmon.stderr).contains(t))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no word of the failed re-attach\n{}",
            output(&tlsmon)
        );
        thread::sleep(Duration::from_millis(100));
    }
    procfs::limit_fds(tlsmon.pid, 1024);
    wait_for_text(
        &tlsmon.stderr,
        "re-attached to",
        Duration::from_secs(15),
        &|| output(&tlsmon),
    );
    attached_once(&lab);
    reconnect_and_stop(&mut lab, &tlsmon);
}

/// `--iface X --iface X` attaches once; and on this TCX kernel tlsmon
/// leaves no clsact qdisc behind (it used to create one and leave it).
#[test]
fn one_interface_named_twice_and_no_qdisc_left_behind() {
    let mut lab = Lab::new("fdu", 9);
    let _server = start_server(&mut lab);
    let iface = lab.iface(Side::Client).to_owned();
    let ns = lab.ns(Side::Client).to_owned();
    let qdiscs = || {
        must_output(
            xtask::programs::command("tc").args(["-n", &ns, "qdisc", "show", "dev", &iface]),
        )
    };
    assert!(!qdiscs().contains("clsact"), "clsact before the test");
    let tlsmon = start_tlsmon(
        &mut lab,
        "tlsmon",
        &[
            "--iface",
            &iface,
            "--headless",
            "--interval",
            "1",
            "--duration",
            "120",
        ],
    );
    assert!(
        read(&tlsmon.stderr).contains(&format!("attached to {iface}\n")),
        "{}",
        output(&tlsmon)
    );
    attached_once(&lab);
    reconnect_and_stop(&mut lab, &tlsmon);
    assert!(!qdiscs().contains("clsact"), "left behind: {}", qdiscs());
}

/// Programs attached to `iface` in this thread's namespace for one
/// direction, by name, in the order the kernel runs them.
fn attached(iface: &str, at: TcAttachType) -> Vec<String> {
    let (_, progs) = SchedClassifier::query_tcx(iface, at).expect("query tcx");
    progs
        .iter()
        .map(|p| p.name_as_str().unwrap_or("?").to_owned())
        .collect()
}

/// [`attached`] in namespace `ns`.
fn tcx_programs(ns: &str, iface: &str, at: TcAttachType) -> Vec<String> {
    let iface = iface.to_owned();
    in_netns(ns, move || attached(&iface, at))
}

#[test]
fn sigkill_then_restart_leaves_exactly_one_attachment() {
    let mut lab = Lab::new("fkl", 5);
    let _server = start_server(&mut lab);
    let first = start(&mut lab, "tlsmon-1");
    lab.signal(&first, libc::SIGKILL);
    lab.wait(&first, Duration::from_secs(10));
    let second = start(&mut lab, "tlsmon-2");
    attached_once(&lab);
    reconnect_and_stop(&mut lab, &second);
    // And after a clean stop nothing stays attached.
    let (ns, iface) = (lab.ns(Side::Client), lab.iface(Side::Client));
    assert!(tcx_programs(ns, iface, TcAttachType::Ingress).is_empty());
}

/// A monitor shares its hooks: programs attached after tlsmon's (a
/// firewall, another monitor) must still see every packet. With TCX the
/// kernel runs a hook's programs in order until one returns something other
/// than "next" (`TCX_NEXT`, i.e. `TC_ACT_UNSPEC`; net/core/dev.c, `tcx_run`),
/// so a classifier that returned a verdict would hide every packet from
/// the programs after it. Checked with a second copy of the object whose
/// do-nothing program is attached behind tlsmon's, on both hooks, and the
/// kernel's run counts of both while TCP segments cross the interface.
#[test]
fn programs_attached_after_tlsmon_still_see_every_packet() {
    let lab = Lab::new("fch", 7);
    let (ns, iface) = (
        lab.ns(Side::Client).to_owned(),
        lab.iface(Side::Client).to_owned(),
    );
    // Five connection attempts to a closed port: a SYN in and a RST out each.
    let knock = format!(
        "for i in 1 2 3 4 5; do (echo > /dev/tcp/{}/9) 2>/dev/null; done; true",
        lab.ip(Side::Client)
    );
    let mut knock = lab.exec(Side::Server, &["bash", "-c", &knock]);
    let (ours, theirs, order) = in_netns(&ns, move || {
        let _stats = kernel::enable_cost_stats().expect("BPF statistics");
        let mut tlsmon = kernel::load(1 << 20).expect("loading tlsmon");
        // `kernel::attach` as the daemon calls it, less its check in
        // /sys/class/net, which shows the namespace sysfs was mounted in.
        kernel::attach_as(
            &mut tlsmon,
            &iface,
            [
                (kernel::INGRESS, TcAttachType::Ingress),
                (kernel::EGRESS, TcAttachType::Egress),
            ],
        )
        .expect("attaching tlsmon");
        let mut other = kernel::load(1 << 20).expect("loading the second copy");
        kernel::attach_as(
            &mut other,
            &iface,
            [
                (kernel::BASELINE, TcAttachType::Ingress),
                (kernel::BASELINE, TcAttachType::Egress),
            ],
        )
        .expect("attaching the program behind tlsmon");
        let order = attached(&iface, TcAttachType::Ingress);
        let _ = must_output(&mut knock);
        let theirs = other
            .program(kernel::BASELINE)
            .and_then(|p| p.info().ok())
            .map_or(0, |i| i.run_count());
        (kernel::read_cost(&tlsmon).runs, theirs, order)
    });
    assert_eq!(order, ["tlsmon_ingress", "tlsmon_baseline"], "hook order");
    // Five SYNs in, five RSTs out, at least.
    assert!(ours >= 10, "tlsmon ran {ours} times");
    // Everything tlsmon saw after the second program was attached; the
    // difference is what crossed in between (neighbour discovery).
    assert!(
        theirs >= 10 && theirs <= ours,
        "the program behind tlsmon ran {theirs} times, tlsmon {ours}"
    );
}

/// Bad arguments are refused with one sentence before anything is loaded
/// or attached (they used to panic, be taken for flags, act as 1, print
/// their cause twice, or surface after seconds of loading).
#[test]
fn bad_arguments_are_refused_before_attaching() {
    let mut lab = Lab::new("farg", 10);
    let iface = lab.iface(Side::Client).to_owned();
    // The parsers' cases are unit tests (monitor::cli); these need the
    // binary, the file system or the host's interfaces.
    for (args, says) in [
        (&["--duration", "1e30"][..], "is not a number of seconds"),
        (&["--iface", ""], "an interface name cannot be empty"),
        (&["--iface", "tlsmon-nosuch0"], "no such interface"),
        (
            &["--haproxy-config", "/nonexistent"],
            "tlsmon: error: reading /nonexistent: No such file or directory (os error 2)\n",
        ),
    ] {
        let mut cmdline = vec![common::TLSMON, "--iface", &iface, "--headless"];
        cmdline.extend_from_slice(args);
        let out = lab.run(Side::Client, "bad", &cmdline, Duration::from_secs(30));
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            out.stderr.contains(says),
            "{args:?}: {:?} lacks {says:?}",
            out.stderr
        );
        let sentences = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("tlsmon:"))
            .count();
        assert_eq!(sentences, 1, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(!out.stderr.contains("attached"), "{}", out.stderr);
    }
    let ns = lab.ns(Side::Client).to_owned();
    assert!(tcx_programs(&ns, &iface, TcAttachType::Ingress).is_empty());
}

/// Before Linux 6.6 tlsmon attaches through a clsact qdisc, which it adds
/// when missing. It deletes one it created when it is done, unless another
/// program's filter is on it. This kernel has TCX, so the daemon never
/// takes that path here: the qdisc guard is tested directly, with a
/// filter attached over netlink as a pre-6.6 kernel would.
#[test]
fn a_clsact_qdisc_tlsmon_created_is_removed_unless_in_use() {
    use aya::programs::tc::{NlOptions, TcAttachOptions};
    use monitor::kernel::Clsact;

    let lab = Lab::new("fqd", 11);
    let (ns, iface) = (
        lab.ns(Side::Client).to_owned(),
        lab.iface(Side::Client).to_owned(),
    );
    let (ns2, iface2) = (ns.clone(), iface.clone());
    let has_clsact = move || {
        must_output(
            xtask::programs::command("tc").args(["-n", &ns2, "qdisc", "show", "dev", &iface2]),
        )
        .contains("clsact")
    };
    let steps = in_netns(&ns, move || {
        let mut steps = Vec::new();
        let guard = Clsact::add(&iface).expect("no clsact before, so this call creates it");
        steps.push(("created", has_clsact()));
        steps.push(("second add creates nothing", Clsact::add(&iface).is_none()));
        // Another program's filter on it, over netlink.
        let mut other = kernel::load(1 << 20).expect("loading");
        let prog: &mut SchedClassifier = other
            .program_mut(kernel::BASELINE)
            .unwrap()
            .try_into()
            .unwrap();
        let id = prog
            .attach_with_options(
                &iface,
                TcAttachType::Ingress,
                TcAttachOptions::Netlink(NlOptions::default()),
            )
            .expect("attaching over netlink");
        steps.push((
            "kept while a filter uses it",
            !guard.remove_if_unused().expect("checking") && has_clsact(),
        ));
        prog.detach(id).expect("detaching");
        drop(guard);
        steps.push(("removed once unused", !has_clsact()));
        steps
    });
    for (step, ok) in steps {
        assert!(ok, "{step}");
    }
}
