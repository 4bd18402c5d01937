//! tlsmon's kernel side: a TC classifier for clsact ingress and egress.
//!
//! The entry points are thin: they wrap the socket buffer in [`Tc`], the
//! kernel's [`monitor_common::pipeline::Env`], and run the per-packet
//! pipeline that `monitor-common` holds for kernel and host alike. [`Tc`]
//! only says how: which map events, counters and pending hellos live in,
//! how packet bytes are read (`bytes`), and how the split-hello half is
//! reached (a tail call).
//!
//! Every program returns `TC_ACT_UNSPEC`, no verdict: a monitor never drops
//! or rewrites traffic, and never stops the programs after it on the same
//! hook from running. With TCX (Linux 6.6+) a hook's programs run in order
//! until one returns anything but `TCX_NEXT` (-1, the same value;
//! net/core/dev.c, `tcx_run`), and then the rest are skipped:
//! `TC_ACT_PIPE`, returned here before, hid every packet from them. With
//! cls_bpf in direct-action mode (older kernels) the two are the same
//! (net/sched/cls_bpf.c, `cls_bpf_exec_opcode`).
#![no_std]
#![no_main]

mod bytes;
mod log;
mod wakeup;

use core::{
    mem::MaybeUninit,
    ops::{Deref, DerefMut},
};

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    helpers::bpf_ktime_get_ns,
    macros::{classifier, map},
    maps::{Array, LruHashMap, PerCpuArray, ProgramArray, RingBuf, ring_buf::RingBufEntry},
    programs::TcContext,
};
use monitor_common::{
    classify::fill_tls,
    close::last_record,
    event::{CHUNK_DATA_OFF, ChunkEvent, Direction, Event, TlsSummary},
    net::{LinkType, TcpSegment},
    pipeline::{self, Env, Events, Packet, SplitStore},
    split::{CHUNK_MAX, FlowKey, MAX_SPLIT_HELLOS, PendingHello, SplitArgs},
};

use crate::bytes::{Cached, Direct, Helper, Window};

/// Events to userspace. The loader may resize it (`--ring-buffer-mb`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Skip reasons and the counters in [`monitor_common::event::stat`], per CPU.
#[map]
static STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(monitor_common::event::stat::COUNT, 0);

/// ClientHellos spanning segments, by sending flow (see `split`).
#[map]
static SPLIT_HELLOS: LruHashMap<FlowKey, PendingHello> =
    LruHashMap::with_max_entries(MAX_SPLIT_HELLOS, 0);

/// The split-hello gate word (`pipeline::SplitStore`). Every packet that
/// may continue a hello reads this one word, and only while it is open
/// does a packet cost a hash lookup.
#[map]
static SPLIT_GATE: Array<u64> = Array::with_max_entries(1, 0);

/// [`tlsmon_split`], reached by tail call from the classifiers.
#[map]
static SPLIT_JUMP: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Arguments of that tail call, per CPU.
#[map]
static SPLIT_ARGS: PerCpuArray<SplitArgs> = PerCpuArray::with_max_entries(1, 0);

/// Where a chunk is assembled before it is copied to [`EVENTS`] with its
/// real length (a ring-buffer reservation must have a constant size).
#[map]
static CHUNK_SCRATCH: PerCpuArray<ChunkEvent> = PerCpuArray::with_max_entries(1, 0);

/// A copy of the TLS payload being walked (see [`Cached`]), per CPU.
#[map]
static WINDOW: PerCpuArray<Window> = PerCpuArray::with_max_entries(1, 0);

#[classifier]
#[inline(always)]
pub fn tlsmon_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, LinkType::ETHERNET, Direction::INGRESS)
}

#[classifier]
#[inline(always)]
pub fn tlsmon_egress(ctx: TcContext) -> i32 {
    observe(&ctx, LinkType::ETHERNET, Direction::EGRESS)
}

/// The classifiers for devices whose packets start with their IP header,
/// without a link header (`ARPHRD_NONE`: tun, WireGuard). Each entry point
/// is built for one link type, so the Ethernet ones carry no test for it;
/// userspace loads these only when such a device is watched.
#[classifier]
#[inline(always)]
pub fn tlsmon_ingress_ip(ctx: TcContext) -> i32 {
    observe(&ctx, LinkType::RAW, Direction::INGRESS)
}

#[classifier]
#[inline(always)]
pub fn tlsmon_egress_ip(ctx: TcContext) -> i32 {
    observe(&ctx, LinkType::RAW, Direction::EGRESS)
}

#[inline(always)]
fn observe(ctx: &TcContext, link: LinkType, direction: Direction) -> i32 {
    let _ = pipeline::observe(&mut Tc::new(ctx, link), direction);
    log::flush(ctx);
    TC_ACT_UNSPEC
}

/// Does nothing but pass the packet on: the floor that `cargo xtask bench`
/// measures the classifier against, in the same run. Never attached.
#[classifier]
pub fn tlsmon_baseline(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

/// The split-hello half of a classifier's packet (`pipeline::split`), only
/// ever entered by tail call (see [`Tc::call_split`]).
#[classifier]
pub fn tlsmon_split(ctx: TcContext) -> i32 {
    if let Some(args) = SPLIT_ARGS.get_ptr(0) {
        // SAFETY: this CPU's slot, written by the caller just before.
        let args = unsafe { *args };
        // The link type is not used: `args` says where the payload is.
        pipeline::split(&mut Tc::new(&ctx, LinkType::ETHERNET), args);
    }
    log::flush(&ctx);
    TC_ACT_UNSPEC
}

/// The kernel's environment for the pipeline: one socket buffer, how its
/// data starts, and the maps above.
struct Tc<'a> {
    direct: Direct<'a>,
    helper: Helper<'a>,
    link: LinkType,
}

impl<'a> Tc<'a> {
    #[inline(always)]
    fn new(ctx: &'a TcContext, link: LinkType) -> Self {
        Self {
            direct: Direct(ctx),
            helper: Helper(ctx),
            link,
        }
    }
}

impl<'a> Packet for Tc<'a> {
    type Headers = Direct<'a>;
    type Payload = Helper<'a>;

    #[inline(always)]
    fn link(&self) -> LinkType {
        self.link
    }

    #[inline(always)]
    fn headers(&self) -> &Direct<'a> {
        &self.direct
    }

    #[inline(always)]
    fn payload(&self) -> &Helper<'a> {
        &self.helper
    }

    #[inline(always)]
    fn summarize(&mut self, seg: &TcpSegment, out: &mut TlsSummary) {
        let ctx = self.helper.0;
        let Some(win) = WINDOW.get_ptr_mut(0) else {
            fill_tls(&self.helper, seg, out);
            return;
        };
        // SAFETY: this CPU's slot; nothing else runs here until the
        // program returns.
        let win = unsafe { &mut *win };
        // The walk is verified once for every distinct state it is entered
        // with, and `segment` reaches here by several paths (fast or
        // general, VLAN tags, IPv4 or 6) that leave different bounds on the
        // payload's offset and length. Passed through map memory, which the
        // verifier does not track, they are the same unknown on all.
        let mut seg = *seg;
        seg.payload_off = win.forget(seg.payload_off);
        seg.payload_len = win.forget(seg.payload_len);
        fill_tls(&Cached::new(ctx, win), &seg, out);
    }

    /// The tail scan reads up to 56 overlapping 5-byte headers: copied once
    /// into the window, each is a few loads instead of a helper call.
    #[inline(always)]
    fn last_record(&mut self, seg: &TcpSegment) -> u8 {
        let ctx = self.helper.0;
        let start = seg.payload_off;
        let end = seg.payload_off + seg.payload_len;
        let Some(win) = WINDOW.get_ptr_mut(0) else {
            return last_record(&self.helper, start, end);
        };
        // SAFETY: as in `summarize`.
        let win = unsafe { &mut *win };
        // As in `summarize`: one state for every header layout.
        let (start, end) = (win.forget(start), win.forget(end));
        last_record(&Cached::new(ctx, win), start, end)
    }
}

/// A ring-buffer reservation holding a zeroed `T`.
struct Reserved<T: 'static>(RingBufEntry<T>);

impl<T> Deref for Reserved<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: zeroed when reserved (`Tc::reserve`); all-zero is a
        // valid `Event`.
        unsafe { self.0.assume_init_ref() }
    }
}

impl<T> DerefMut for Reserved<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { self.0.assume_init_mut() }
    }
}

impl Events for Tc<'_> {
    type Slot<T: Event> = Reserved<T>;
    type Scratch = &'static mut ChunkEvent;

    #[inline(always)]
    fn reserve<T: Event>(&mut self) -> Option<Reserved<T>> {
        let mut entry = EVENTS.reserve::<T>(0)?;
        // SAFETY: the reservation is sized and aligned for the type.
        unsafe { zero(&mut entry) };
        Some(Reserved(entry))
    }

    #[inline(always)]
    fn submit<T: Event>(&mut self, slot: Reserved<T>) {
        slot.0.submit(wakeup::flags(size_of::<T>() as u64, true));
    }

    #[inline(always)]
    fn scratch(&mut self) -> Option<&'static mut ChunkEvent> {
        // SAFETY: this CPU's slot of a per-CPU map; nothing else runs here
        // until the program returns.
        CHUNK_SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
    }

    #[inline(always)]
    fn output(&mut self, chunk: &'static mut ChunkEvent, len: u32) -> bool {
        // The verifier must see the bound on the very register it passes
        // as the size (see `Helper::copy_prefix`).
        let len = core::hint::black_box(len as usize);
        if len > CHUNK_MAX {
            // Never: a span is at most CHUNK_MAX bytes. Not a lost event.
            return true;
        }
        // SAFETY: ChunkEvent is repr(C) plain data; CHUNK_DATA_OFF + len
        // is within it.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                core::ptr::from_ref(chunk).cast::<u8>(),
                CHUNK_DATA_OFF + len,
            )
        };
        EVENTS
            .output::<[u8]>(bytes, wakeup::flags(bytes.len() as u64, false))
            .is_ok()
    }

    #[inline(always)]
    fn count(&mut self, index: u32) {
        if let Some(c) = STATS.get_ptr_mut(index) {
            // SAFETY: per-CPU slot, no concurrent writer on this CPU.
            unsafe { *c += 1 };
        }
        log::counted(index);
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        // SAFETY: plain helper call.
        unsafe { bpf_ktime_get_ns() }
    }

    #[inline(always)]
    fn ifindex(&self) -> u32 {
        // SAFETY: a context field read.
        unsafe { (*self.helper.0.skb.skb).ifindex }
    }
}

impl SplitStore for Tc<'_> {
    #[inline(always)]
    fn gate(&self) -> u64 {
        match SPLIT_GATE.get_ptr(0) {
            // SAFETY: a valid map value pointer; racing CPUs are tolerated
            // (`pipeline::gate_open`).
            Some(gate) => unsafe { core::ptr::read_volatile(gate) },
            None => 0,
        }
    }

    #[inline(always)]
    fn set_gate(&mut self, until: u64) {
        if let Some(gate) = SPLIT_GATE.get_ptr_mut(0) {
            // SAFETY: as in `gate`.
            unsafe { core::ptr::write_volatile(gate, until) };
        }
    }

    #[inline(always)]
    fn pending(&mut self, key: &FlowKey) -> Option<&mut PendingHello> {
        // SAFETY: a valid map value pointer, for the rest of this run.
        SPLIT_HELLOS.get_ptr_mut(key).map(|p| unsafe { &mut *p })
    }

    #[inline(always)]
    fn insert(&mut self, key: &FlowKey, p: &PendingHello) -> bool {
        let stored = SPLIT_HELLOS.insert(key, p, 0).is_ok();
        if !stored {
            log::note(log::Trace::SplitStoreFull);
        }
        stored
    }

    #[inline(always)]
    fn remove(&mut self, key: &FlowKey) {
        let _ = SPLIT_HELLOS.remove(key);
    }
}

impl Env for Tc<'_> {
    /// Hands the packet to [`tlsmon_split`]: its arguments in this CPU's
    /// [`SPLIT_ARGS`] slot, then a tail call, which does not return when
    /// it succeeds. A failed one (not installed) leaves the hello
    /// truncated.
    #[inline(always)]
    fn call_split(&mut self, args: SplitArgs) {
        let Some(slot) = SPLIT_ARGS.get_ptr_mut(0) else {
            return;
        };
        // SAFETY: this CPU's slot; the tail-called program runs on this CPU
        // before anything else can.
        unsafe {
            *slot = args;
            SPLIT_JUMP.tail_call(self.helper.0, 0);
        }
        // Still here: the tail call failed.
        log::note(log::Trace::SplitTailCall);
    }
}

/// Zeroes an event in ring-buffer memory, so that no stale bytes of earlier
/// records reach userspace.
///
/// Eight bytes per store, volatile so that LLVM cannot fold the stores back
/// into a `memset` call: the BPF target has no memset of its own and links
/// one that stores a byte per loop iteration, which for a `TlsEvent` cost
/// about a fifth of a ClientHello's time in the classifier.
///
/// # Safety
/// `p` must be valid for writes of a `T` (ring-buffer records are, and are
/// 8-byte aligned; `Event` types are a multiple of 8 bytes long).
#[inline(always)]
unsafe fn zero<T: Event>(p: &mut MaybeUninit<T>) {
    const { assert!(size_of::<T>().is_multiple_of(8) && align_of::<T>() == 8) };
    let words = p.as_mut_ptr().cast::<u64>();
    for i in 0..size_of::<T>() / 8 {
        // SAFETY: within the `T` the caller vouches for.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
