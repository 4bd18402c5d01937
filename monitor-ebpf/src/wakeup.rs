//! When the kernel wakes the daemon: the ring-buffer submit flags of each
//! event.
//!
//! The daemon drains the ring on a short timer anyway (`source::DRAIN_EVERY`),
//! so the kernel wakes it only when the ring goes past a quarter full. By
//! default the kernel would wake the reader for nearly every event at a few
//! thousand handshakes a second, which cost the daemon far more CPU than the
//! events themselves; forcing a wakeup for every event while the ring stays
//! above the mark would be worse (an interrupt per event, several
//! microseconds each, just when the reader is behind). So a wakeup is sent
//! once per crossing.
//!
//! Looking at the ring's fill costs two `bpf_ringbuf_query` calls, about
//! 17 ns of the 85 ns a teardown event cost in BPF_PROG_TEST_RUN (`cargo run
//! --release -p monitor --example bench -- kernel --quick`, `rst`, with and
//! without them), and nearly half the packets of a proxy's TLS traffic carry
//! an event. So each CPU looks only at every [`LOOK_EVERY`]th event it
//! sends, and wakes the reader when it finds the ring past the mark and
//! either had not found it so at its last look or the reader has consumed
//! since (it drained, and waits for the next crossing). A crossing is seen
//! at most `LOOK_EVERY - 1` events late: a few kilobytes past a mark of
//! megabytes (2 MiB of the default 8 MiB ring).

use aya_ebpf::{
    bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_CONS_POS, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
    },
    macros::map,
    maps::PerCpuArray,
};

use crate::EVENTS;

/// Events a CPU sends between two looks at the ring's fill.
pub const LOOK_EVERY: u32 = 16;

/// One CPU's view of the ring, as of its last look.
///
/// The fields are written as soon as each query returns and read back
/// after the next (volatile, so that LLVM keeps nothing in registers across
/// the helper calls): the classifiers use nearly all of the BPF stack's 512
/// bytes, and values live across calls would spill to it.
#[repr(C)]
pub struct Look {
    /// Events still to send before the next look.
    left: u64,
    /// Whether the ring was past the mark.
    above: u64,
    /// The consumer's position.
    consumed: u64,
    /// A quarter of the ring's size; 0 until first looked up (the loader
    /// may resize the ring, so it is not a constant).
    mark: u64,
    /// The ring's fill with this event, at this look.
    used: u64,
}

#[map]
static LOOKS: PerCpuArray<Look> = PerCpuArray::with_max_entries(1, 0);

/// Submit flags for an event of `bytes` about to be published.
/// `reserved`: the event is already counted in the ring's data
/// (reserve/submit), not yet (output).
#[inline(always)]
pub fn flags(bytes: u64, reserved: bool) -> u64 {
    use core::ptr::{read_volatile as get, write_volatile as set};
    let Some(look) = LOOKS.get_ptr_mut(0) else {
        return u64::from(BPF_RB_NO_WAKEUP);
    };
    // SAFETY: this CPU's slot of a per-CPU map, valid for the program's
    // run; nothing else runs on this CPU until it returns.
    unsafe {
        let left = get(&raw const (*look).left);
        if left > 0 {
            set(&raw mut (*look).left, left - 1);
            return u64::from(BPF_RB_NO_WAKEUP);
        }
        set(&raw mut (*look).left, u64::from(LOOK_EVERY - 1));
        let extra = if reserved { 0 } else { bytes };
        set(
            &raw mut (*look).used,
            EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) + extra,
        );
        if get(&raw const (*look).mark) == 0 {
            set(
                &raw mut (*look).mark,
                EVENTS.query(u64::from(BPF_RB_RING_SIZE)) / 4,
            );
        }
        let consumed = EVENTS.query(u64::from(BPF_RB_CONS_POS));
        let above = get(&raw const (*look).used) >= get(&raw const (*look).mark);
        let wake = above
            && (get(&raw const (*look).above) == 0 || consumed != get(&raw const (*look).consumed));
        set(&raw mut (*look).above, u64::from(above));
        set(&raw mut (*look).consumed, consumed);
        if wake {
            u64::from(BPF_RB_FORCE_WAKEUP)
        } else {
            u64::from(BPF_RB_NO_WAKEUP)
        }
    }
}
