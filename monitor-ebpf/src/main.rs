//! tlsmon's kernel side: a TC classifier for clsact ingress and egress.
//!
//! The entry points are thin: they adapt the socket buffer to
//! [`monitor_common::bytes::Bytes`] and run the shared per-packet code in
//! [`monitor_common::classify`]. Every program returns `TC_ACT_UNSPEC`, no
//! verdict: a monitor never drops or rewrites traffic, and never stops the
//! programs after it on the same hook from running. With TCX (Linux 6.6+)
//! a hook's programs run in order until one returns anything but
//! `TCX_NEXT` (-1, the same value; net/core/dev.c, `tcx_run`), and then the
//! rest are skipped: `TC_ACT_PIPE`, returned here before, hid every packet
//! from them. With cls_bpf in direct-action mode (older kernels) the two are
//! the same (net/sched/cls_bpf.c, `cls_bpf_exec_opcode`).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE, TC_ACT_UNSPEC,
    },
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{Array, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::TcContext,
};
use monitor_common::{
    bytes::Bytes,
    classify::{Class, class, fill_chunk, fill_header, fill_tls},
    event::{CHUNK_DATA_OFF, ChunkEvent, Direction, EventKind, TeardownEvent, TlsEvent, stat},
    net::{LinkType, Skip, TcpSegment, flow, segment, tcp},
    split::{
        CHUNK_MAX, FlowKey, HelloAt, MAX_SPLIT_HELLOS, PendingHello, SPLIT_TIMEOUT_NS, Span,
        advance, beyond, continuation, expired, split_hello,
    },
};

/// Events to userspace. The loader may resize it (`--ring-buffer-mb`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Skip reasons and the counters in [`stat`], per CPU.
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// ClientHellos spanning segments, by sending flow (see `split`).
#[map]
static SPLIT_HELLOS: LruHashMap<FlowKey, PendingHello> =
    LruHashMap::with_max_entries(MAX_SPLIT_HELLOS, 0);

/// Until when (`bpf_ktime_get_ns`) [`SPLIT_HELLOS`] may hold a live entry;
/// 0 once that time has passed. Every packet reads this one word, and only
/// while it is open does a packet cost a hash lookup.
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
    observe(&ctx, Direction::INGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
#[inline(always)]
pub fn tlsmon_egress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::EGRESS);
    TC_ACT_UNSPEC
}

/// Does nothing but pass the packet on: the floor that `cargo xtask bench`
/// measures the classifier against, in the same run. Never attached.
#[classifier]
pub fn tlsmon_baseline(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

#[inline(always)]
fn observe(ctx: &TcContext, direction: Direction) {
    if let Err(skip) = try_observe(ctx, direction) {
        // Ordinary non-TCP traffic is not worth a counter update.
        if skip != Skip::NOT_TCP {
            count(skip.0);
        }
    }
}

#[inline(always)]
fn count(index: u32) {
    if let Some(c) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn try_observe(ctx: &TcContext, direction: Direction) -> Result<(), Skip> {
    let mut seg = segment(&Direct(ctx), LinkType::ETHERNET)?;
    match class(&Direct(ctx), &seg) {
        Class::Opaque => {}
        // A segment in the middle of a split ClientHello starts with hello
        // bytes, which do not look like a record header (but for a chance
        // of about one in a million: that hello is then reported truncated).
        // Checking here, after `class`, keeps this path off the TLS walk's.
        Class::Ignore => {
            if seg.payload_len > 0 && split_gate_open() {
                flow(&Direct(ctx), &mut seg);
                continued(ctx, &seg, direction);
            }
        }
        Class::Teardown => {
            flow(&Direct(ctx), &mut seg);
            if seg.payload_len > 0 && split_gate_open() {
                continued(ctx, &seg, direction);
            }
            teardown(ctx, &seg, direction);
        }
        Class::Tls => {
            flow(&Direct(ctx), &mut seg);
            let Some(mut entry) = EVENTS.reserve::<TlsEvent>(0) else {
                count(stat::LOST_EVENTS);
                return Ok(());
            };
            // SAFETY: the reservation is sized and aligned for the type.
            let ev = unsafe { zeroed(entry.as_mut_ptr()) };
            fill_header(&mut ev.header, &seg, EventKind::TLS, size_of::<TlsEvent>());
            stamp(ctx, &mut ev.header, direction);
            match WINDOW.get_ptr_mut(0) {
                Some(win) => {
                    // SAFETY: this CPU's slot; nothing else runs here until
                    // the program returns.
                    let win = unsafe { &mut *win };
                    // The walk is verified once for every distinct state it
                    // is entered with, and `segment` reaches here by several
                    // paths (fast or general, VLAN tags, IPv4 or 6) that
                    // leave different bounds on the payload's offset and
                    // length. Passed through map memory, which the verifier
                    // does not track, they are the same unknown on all.
                    seg.payload_off = win.forget(seg.payload_off);
                    seg.payload_len = win.forget(seg.payload_len);
                    fill_tls(&Cached::new(ctx, win), &seg, &mut ev.tls);
                }
                None => fill_tls(&Helper(ctx), &seg, &mut ev.tls),
            }
            // Read back from ring-buffer memory, not forwarded from the
            // walk's own stores, so that what the walk computed is not
            // carried in registers into the code below (see `split` for
            // why that matters to the verifier).
            // SAFETY: plain reads of fields of a live &mut.
            let (hello, now) = unsafe {
                (
                    HelloAt {
                        hello_type: core::ptr::read_volatile(&raw const ev.tls.hello_type),
                        at: core::ptr::read_volatile(&raw const ev.tls.hello_at),
                        len: core::ptr::read_volatile(&raw const ev.tls.hello_len),
                        flags: core::ptr::read_volatile(&raw const ev.tls.hello.flags),
                    },
                    core::ptr::read_volatile(&raw const ev.header.ts_ns),
                )
            };
            entry.submit(wakeup(size_of::<TlsEvent>() as u64, true));
            count(stat::TLS_PACKETS);
            if hello.may_continue() {
                split(ctx, hello, now, direction);
            }
        }
    }
    Ok(())
}

/// Ring-buffer submit flags for an event of `bytes` that is about to be
/// published: wake the daemon only when this event takes the ring past a
/// quarter full. It drains on a short timer anyway (`live::DRAIN_EVERY`),
/// and by default the kernel wakes the reader for nearly every event at a
/// few thousand handshakes a second, which cost the daemon far more CPU
/// than the events themselves. Forcing a wakeup for every event while the
/// ring stays above the mark would be worse (an interrupt per event, several
/// microseconds each, just when the reader is behind), so only the crossing
/// wakes it. `reserved`: the event is already counted in the ring's data
/// (reserve/submit), not yet (output).
#[inline(always)]
fn wakeup(bytes: u64, reserved: bool) -> u64 {
    let used = EVENTS.query(u64::from(BPF_RB_AVAIL_DATA));
    let mark = EVENTS.query(u64::from(BPF_RB_RING_SIZE)) / 4;
    let (before, after) = if reserved {
        (used.saturating_sub(bytes), used)
    } else {
        (used, used + bytes)
    };
    if before < mark && after >= mark {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Zeroes an event in ring-buffer memory, so that no stale bytes of earlier
/// records reach userspace, and returns it.
///
/// Eight bytes per store, volatile so that LLVM cannot fold the stores back
/// into a `memset` call: the BPF target has no memset of its own and links
/// one that stores a byte per loop iteration, which for a [`TlsEvent`] cost
/// about a fifth of a ClientHello's time in the classifier.
///
/// # Safety
/// `p` must be valid for writes of a `T` and 8-byte aligned (ring-buffer
/// records are).
#[inline(always)]
unsafe fn zeroed<'a, T>(p: *mut T) -> &'a mut T {
    const { assert!(size_of::<T>().is_multiple_of(8) && align_of::<T>() == 8) };
    let words = p.cast::<u64>();
    for i in 0..size_of::<T>() / 8 {
        // SAFETY: within the `T` the caller vouches for.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
    // SAFETY: every byte is now initialised; all-zero is a valid event.
    unsafe { &mut *p }
}

#[inline(always)]
fn teardown(ctx: &TcContext, seg: &TcpSegment, direction: Direction) {
    let Some(mut entry) = EVENTS.reserve::<TeardownEvent>(0) else {
        count(stat::LOST_EVENTS);
        return;
    };
    // SAFETY: the reservation is sized and aligned for the type.
    let ev = unsafe { zeroed(entry.as_mut_ptr()) };
    fill_header(
        &mut ev.header,
        seg,
        EventKind::TEARDOWN,
        size_of::<TeardownEvent>(),
    );
    stamp(ctx, &mut ev.header, direction);
    entry.submit(wakeup(size_of::<TeardownEvent>() as u64, true));
}

/// What [`tlsmon_split`] needs from the program that calls it.
#[repr(C)]
#[derive(Clone, Copy)]
struct SplitArgs {
    now_ns: u64,
    at: u32,
    len: u32,
    flags: u16,
    direction: u8,
    hello_type: u8,
    pad: u32,
}

/// Hands a truncated ClientHello to [`tlsmon_split`], which decides whether
/// it is a split hello to reassemble.
///
/// A tail call, not inline code: the TLS walk leaves the verifier with many
/// distinct states, and anything after it is verified once per state. The
/// split handling there pushed the program past the verifier's
/// one-million-instruction budget; as a program of its own it is verified
/// once. A failed tail call (not loaded) leaves the hello truncated.
#[inline(always)]
fn split(ctx: &TcContext, hello: HelloAt, now_ns: u64, direction: Direction) {
    let Some(args) = SPLIT_ARGS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; the tail-called program runs on this CPU
    // before anything else can.
    unsafe {
        *args = SplitArgs {
            now_ns,
            at: hello.at,
            len: hello.len,
            flags: hello.flags,
            direction: direction.0,
            hello_type: hello.hello_type,
            pad: 0,
        };
        let _ = SPLIT_JUMP.tail_call(ctx, 0);
    }
}

/// The second half of a truncated ClientHello's packet (see [`split`]):
/// remembers a hello that continues in later segments and sends the bytes
/// this segment holds. Only ever entered by tail call.
#[classifier]
pub fn tlsmon_split(ctx: TcContext) -> i32 {
    let _ = try_split(&ctx);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn try_split(ctx: &TcContext) -> Result<(), Skip> {
    let Some(args) = SPLIT_ARGS.get_ptr(0) else {
        return Ok(());
    };
    // SAFETY: this CPU's slot, written by the caller just before.
    let args = unsafe { *args };
    let seg = tcp(&Direct(ctx), LinkType::ETHERNET)?;
    let hello = HelloAt {
        hello_type: args.hello_type,
        at: args.at,
        len: args.len,
        flags: args.flags,
    };
    let mut p = split_hello(&Helper(ctx), &seg, hello, args.now_ns);
    if p.need == 0 {
        return Ok(());
    }
    let span = continuation(&p, &seg);
    advance(&mut p, span);
    if remember(&seg, &p) {
        count(stat::SPLIT_HELLOS);
        send_chunk(ctx, &seg, span, Direction(args.direction));
    }
    Ok(())
}

/// Whether a hello may be pending; closes the gate once its time is up.
///
/// Two CPUs may race here: one closing the gate just as another opens it
/// for a new hello. The new hello's later segments are then not looked up,
/// and it reaches userspace as a truncated hello — counted, not lost.
#[inline(always)]
fn split_gate_open() -> bool {
    let Some(gate) = SPLIT_GATE.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: a valid map value pointer; a racing write is tolerated above.
    let until = unsafe { core::ptr::read_volatile(gate) };
    if until == 0 {
        return false;
    }
    // SAFETY: plain helper call.
    if unsafe { bpf_ktime_get_ns() } > until {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(gate, 0) };
        return false;
    }
    true
}

/// Stores a pending hello and opens the gate for its lifetime.
#[inline(always)]
fn remember(seg: &TcpSegment, p: &PendingHello) -> bool {
    if SPLIT_HELLOS.insert(FlowKey::of(seg), p, 0).is_err() {
        return false;
    }
    if let Some(gate) = SPLIT_GATE.get_ptr_mut(0) {
        // SAFETY: a valid map value pointer.
        unsafe { core::ptr::write_volatile(gate, p.since_ns + SPLIT_TIMEOUT_NS) };
    }
    true
}

/// Sends the part of `seg` that continues a pending hello of its flow;
/// `true` if it did (the payload then starts inside the hello, not with a
/// record header).
#[inline(always)]
fn continued(ctx: &TcContext, seg: &TcpSegment, direction: Direction) -> bool {
    let key = FlowKey::of(seg);
    let Some(p) = SPLIT_HELLOS.get_ptr_mut(&key) else {
        return false;
    };
    // SAFETY: a valid map value pointer; concurrent updates of one flow's
    // entry are benign (at worst a chunk is sent twice and deduplicated).
    let p = unsafe { &mut *p };
    // SAFETY: plain helper call.
    if expired(p, unsafe { bpf_ktime_get_ns() }) {
        let _ = SPLIT_HELLOS.remove(&key);
        return false;
    }
    let span = continuation(p, seg);
    if span.len == 0 {
        if beyond(p, seg) {
            let _ = SPLIT_HELLOS.remove(&key);
        }
        return false;
    }
    send_chunk(ctx, seg, span, direction);
    if advance(p, span) {
        let _ = SPLIT_HELLOS.remove(&key);
    }
    true
}

/// Copies the hello bytes of `span` to userspace, sized to what they hold.
#[inline(always)]
fn send_chunk(ctx: &TcContext, seg: &TcpSegment, span: Span, direction: Direction) {
    let Some(ev) = CHUNK_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot of a per-CPU map; nothing else runs here
    // until the program returns.
    let ev = unsafe { &mut *ev };
    if !fill_chunk(&Helper(ctx), seg, span, ev) {
        return;
    }
    stamp(ctx, &mut ev.header, direction);
    // The verifier must see the bound on the very register it passes as
    // the size (see `Helper::copy_prefix`).
    let len = core::hint::black_box(span.len as usize);
    if len > CHUNK_MAX {
        return;
    }
    // SAFETY: ChunkEvent is repr(C) plain data; CHUNK_DATA_OFF + len is
    // within it.
    let bytes = unsafe {
        core::slice::from_raw_parts(core::ptr::from_ref(ev).cast::<u8>(), CHUNK_DATA_OFF + len)
    };
    if EVENTS
        .output::<[u8]>(bytes, wakeup(bytes.len() as u64, false))
        .is_err()
    {
        count(stat::LOST_EVENTS);
    }
}

#[inline(always)]
fn stamp(ctx: &TcContext, h: &mut monitor_common::event::EventHeader, direction: Direction) {
    h.direction = direction.0;
    // SAFETY: plain helper call / context field read.
    unsafe {
        h.ts_ns = bpf_ktime_get_ns();
        h.ifindex = (*ctx.skb.skb).ifindex;
    }
}

/// Packet bytes for the header parsers: direct packet access where the
/// bytes are in the linear part of the skb (headers nearly always are), the
/// `bpf_skb_load_bytes` helper otherwise.
///
/// Direct access makes the verifier track every offset exactly (pointer
/// arithmetic), which is cheap for the few fixed-shape headers but would
/// multiply its states in the TLS walk, where offsets come from the packet:
/// that walk uses [`Helper`].
struct Direct<'a>(&'a TcContext);

/// Packet bytes through `bpf_skb_load_bytes` only: offsets stay plain
/// helper arguments the verifier need not track precisely, and paged
/// (GRO) payloads are readable too.
struct Helper<'a>(&'a TcContext);

/// Largest offset tried with direct access; keeps the pointer arithmetic in
/// a range the verifier can prove.
const MAX_DIRECT_OFF: usize = 0xffff;

impl Bytes for Direct<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len() as usize
    }

    #[inline(always)]
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let start = self.0.data();
        let end = self.0.data_end();
        if off <= MAX_DIRECT_OFF && start + off + N <= end {
            // Byte by byte, each load used as it is: reading the array in
            // one go makes LLVM load it as one wide unaligned integer, which
            // the BPF backend splits into byte loads and then shifts and ors
            // together and apart again, about three instructions per byte.
            let p = (start + off) as *const u8;
            let mut out = [0u8; N];
            for (i, o) in out.iter_mut().enumerate() {
                // SAFETY: bounds checked against data_end just above.
                *o = unsafe { core::ptr::read_volatile(p.add(i)) };
            }
            return Some(out);
        }
        Helper(self.0).array(off)
    }

    #[inline(always)]
    fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool {
        Helper(self.0).copy_prefix(off, dst, n)
    }

    #[inline(always)]
    fn block<const N: usize>(&self, off: usize) -> Option<&[u8; N]> {
        let start = self.0.data();
        if off <= MAX_DIRECT_OFF && start + off + N <= self.0.data_end() {
            // SAFETY: N bytes at `off` are in the linear part, checked
            // against data_end just above; they live as long as the skb.
            return Some(unsafe { &*((start + off) as *const [u8; N]) });
        }
        None
    }
}

impl Bytes for Helper<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len() as usize
    }

    #[inline(always)]
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.0.load::<[u8; N]>(off).ok()
    }

    #[inline(always)]
    fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool {
        // black_box keeps LLVM from folding this check into an earlier one
        // on another register: the verifier must see it on the length it
        // passes to the helper, or it rejects the call as possibly zero-sized
        // or out of bounds.
        let n = core::hint::black_box(n);
        if n == 0 || n > CAP {
            return false;
        }
        // SAFETY: dst holds CAP >= n bytes; the helper checks the packet side.
        unsafe {
            bpf_skb_load_bytes(
                self.0.skb.skb.cast(),
                off as u32,
                dst.as_mut_ptr().cast(),
                n as u32,
            ) == 0
        }
    }
}

/// Bytes a [`Cached`] holds at most: a full-sized segment's payload.
const WINDOW_BYTES: usize = 4096;

/// Packet bytes copied out of the socket buffer by one helper call.
#[repr(C)]
struct Window {
    /// Packet offset of `bytes[0]`.
    base: u64,
    /// Valid bytes in `bytes`; 0 for none.
    len: u64,
    /// See [`Window::forget`].
    scratch: u64,
    /// Room past [`WINDOW_BYTES`] so that a read at any masked index stays
    /// inside the value, whatever its size.
    bytes: [u8; WINDOW_BYTES + 64],
}

impl Window {
    /// `x`, stored to and loaded back from map memory, so that the verifier
    /// knows nothing of its value (it does not track what map values hold).
    #[inline(always)]
    fn forget(&mut self, x: usize) -> usize {
        // SAFETY: a field of a live exclusive reference.
        unsafe {
            core::ptr::write_volatile(&raw mut self.scratch, x as u64);
            core::ptr::read_volatile(&raw const self.scratch) as usize
        }
    }
}

/// Packet bytes for the TLS walk: [`Helper`] reads, except within a range
/// the parser announced with [`Bytes::prefetch`], which is copied once into
/// a per-CPU [`Window`] and read from there with plain loads.
///
/// A ClientHello takes some thirty small reads, and each helper call costs
/// as much as a few hundred instructions (a call, bounds checks and a
/// `memcpy`). Indexes into the window are masked to its size, so the
/// verifier proves every load in bounds from the mask alone, and `base` and
/// `len` are reloaded from map memory, which it does not track, so they
/// leave no state behind to tell one path from another.
struct Cached<'a> {
    ctx: &'a TcContext,
    win: *mut Window,
}

impl<'a> Cached<'a> {
    #[inline(always)]
    fn new(ctx: &'a TcContext, win: &'a mut Window) -> Self {
        // SAFETY: a live exclusive reference. Empty, or the last packet's
        // bytes would be read as this one's.
        unsafe { core::ptr::write_volatile(&raw mut win.len, 0) };
        Self { ctx, win }
    }
}

impl Bytes for Cached<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.ctx.len() as usize
    }

    #[inline(always)]
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        // SAFETY: `win` points to this CPU's map value for the program's
        // whole run (see `Cached::new`).
        let (base, len) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*self.win).base) as usize,
                core::ptr::read_volatile(&raw const (*self.win).len) as usize,
            )
        };
        let rel = off.wrapping_sub(base);
        if rel < len && len - rel >= N {
            let i = rel & (WINDOW_BYTES - 1);
            let mut out = [0u8; N];
            for (k, o) in out.iter_mut().enumerate() {
                // SAFETY: i < WINDOW_BYTES and k < N <= 64, inside `bytes`.
                *o = unsafe {
                    core::ptr::read_volatile((&raw const (*self.win).bytes[0]).add(i + k))
                };
            }
            return Some(out);
        }
        Helper(self.ctx).array(off)
    }

    #[inline(always)]
    fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool {
        Helper(self.ctx).copy_prefix(off, dst, n)
    }

    #[inline(always)]
    fn prefetch(&self, off: usize, n: usize) {
        // As in `Helper::copy_prefix`: the bound must be on the register
        // passed to the helper.
        let n = core::hint::black_box(n.min(WINDOW_BYTES));
        if n == 0 || n > WINDOW_BYTES {
            return;
        }
        // SAFETY: `bytes` holds WINDOW_BYTES >= n; the helper checks the
        // packet side. The window is this CPU's (see `Cached::new`).
        unsafe {
            let ok = bpf_skb_load_bytes(
                self.ctx.skb.skb.cast(),
                off as u32,
                (&raw mut (*self.win).bytes).cast(),
                n as u32,
            ) == 0;
            core::ptr::write_volatile(&raw mut (*self.win).base, off as u64);
            core::ptr::write_volatile(&raw mut (*self.win).len, if ok { n as u64 } else { 0 });
        }
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
