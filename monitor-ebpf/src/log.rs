//! Kernel-side traces for debugging, through aya-log: the few events worth
//! a line of their own (a packet skipped as malformed, a split ClientHello
//! dropped, an event lost to a full ring buffer), off unless tlsmon runs
//! with `--kernel-log` (`monitor/src/kernel/log.rs` reads them).
//!
//! Off costs nothing at run time. [`TLSMON_KERNEL_LOG`] is a read-only
//! global: the loader writes it before loading and the kernel freezes the
//! map that holds it, so the verifier knows its value
//! (`bpf_map_direct_read`, kernel/bpf/verifier.c). With 0 it never walks
//! the code behind the test, and turns the test into a jump or removes it
//! (`opt_hard_wire_dead_code_branches`, `opt_remove_dead_code`). aya-log's
//! own switch, `AYA_LOG_LEVEL`, works the same way and is set to match; it
//! cannot be the only one because the notes and the rate limit below must
//! sit behind a switch too.
//!
//! On, an event is only noted where it happens (a bit in this CPU's
//! [`LOG_STATE`]), and [`flush`], at the end of the program, tail-calls
//! [`tlsmon_log`], which writes the record. Written in place, aya-log's
//! record (its header and fields, a few hundred bytes) did not fit on the
//! classifier's stack, which uses 504 of its 512 bytes; a program of its
//! own has the whole stack, and the tail call happens after the packet's
//! work is done, so it cannot cut that work short.
//!
//! The events are ones a stranger can cause at line rate (a flood of
//! malformed frames), so each CPU writes at most [`PER_SECOND`] records a
//! second. The rest are counted, and the count travels in the CPU's next
//! record (`suppressed=N`): nothing is dropped silently.

use aya_ebpf::{
    Global,
    bindings::TC_ACT_UNSPEC,
    helpers::bpf_ktime_get_ns,
    macros::{classifier, map},
    maps::{PerCpuArray, ProgramArray},
    programs::TcContext,
};
use aya_log_ebpf::info;
use monitor_common::{event::stat, net::Skip};

/// 1 to log, written by the loader (`monitor::kernel::log::globals`).
#[unsafe(no_mangle)]
static TLSMON_KERNEL_LOG: Global<u8> = Global::new(0);

/// Records a CPU writes per second at most.
const PER_SECOND: u32 = 8;
const SECOND_NS: u64 = 1_000_000_000;

/// A CPU's notes and rate limit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LogState {
    /// A bit per [`Trace`] noted for the packet being looked at.
    pending: u32,
    /// Records written since `since_ns`, the start of the current second.
    written: u32,
    since_ns: u64,
    /// Events not written since the last record.
    suppressed: u64,
}

#[map]
static LOG_STATE: PerCpuArray<LogState> = PerCpuArray::with_max_entries(1, 0);

/// [`tlsmon_log`], for [`flush`]'s tail call.
#[map]
static LOG_JUMP: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// What happened: a bit in [`LogState::pending`].
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Trace {
    /// `Skip::MALFORMED`: headers cut short or inconsistent.
    Malformed = 0,
    /// A ring-buffer reservation or output failed: an event was lost.
    RingFull = 1,
    /// The split-hello store refused a pending ClientHello.
    SplitStoreFull = 2,
    /// The tail call into `tlsmon_split` failed.
    SplitTailCall = 3,
}

#[inline(always)]
fn on() -> bool {
    TLSMON_KERNEL_LOG.load() != 0
}

/// Notes `what` for this packet.
#[inline(always)]
pub fn note(what: Trace) {
    if !on() {
        return;
    }
    if let Some(state) = LOG_STATE.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; nothing else runs here until the
        // program returns.
        unsafe { (*state).pending |= 1 << what as u32 };
    }
}

/// Notes the counter updates worth a trace (called with every one).
#[inline(always)]
pub fn counted(index: u32) {
    if !on() {
        return;
    }
    if index == Skip::MALFORMED.0 {
        note(Trace::Malformed);
    } else if index == stat::LOST_EVENTS {
        note(Trace::RingFull);
    }
}

/// At the end of a program: hands what was noted to [`tlsmon_log`]. The
/// tail call does not return when it succeeds; the program's verdict is
/// then `tlsmon_log`'s, the same `TC_ACT_UNSPEC`.
#[inline(always)]
pub fn flush(ctx: &TcContext) {
    if !on() {
        return;
    }
    let Some(state) = LOG_STATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as in `note`.
    if unsafe { (*state).pending } == 0 {
        return;
    }
    // SAFETY: the context this program was given.
    unsafe { LOG_JUMP.tail_call(ctx, 0) };
    // Still here: `tlsmon_log` is not installed. Forget the notes.
    // SAFETY: as in `note`.
    unsafe { (*state).pending = 0 };
}

/// Writes the record of what [`flush`] found noted, only ever entered by
/// tail call.
#[classifier]
pub fn tlsmon_log(ctx: TcContext) -> i32 {
    if on() {
        write(&ctx);
    }
    TC_ACT_UNSPEC
}

#[inline(always)]
fn write(ctx: &TcContext) {
    let Some(state) = LOG_STATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as in `note`.
    let state = unsafe { &mut *state };
    let pending = core::mem::take(&mut state.pending);
    if pending == 0 {
        return;
    }
    // One record per packet, for its first event; any other counts as
    // suppressed (one packet rarely has two).
    let first = pending.trailing_zeros();
    state.suppressed += u64::from((pending & (pending - 1)).count_ones());
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    if now.wrapping_sub(state.since_ns) >= SECOND_NS {
        state.since_ns = now;
        state.written = 0;
    }
    if state.written >= PER_SECOND {
        state.suppressed += 1;
        return;
    }
    state.written += 1;
    let suppressed = core::mem::take(&mut state.suppressed);
    let what = match first {
        0 => "packet skipped as malformed",
        1 => "event lost: ring buffer full",
        2 => "split ClientHello dropped: store refused it",
        _ => "split ClientHello dropped: tail call failed",
    };
    // SAFETY: a context field read.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let len = ctx.len();
    info!(
        ctx,
        "{}: ifindex={} len={} suppressed={}", what, ifindex, len, suppressed
    );
}
