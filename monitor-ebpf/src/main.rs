//! tlsmon's kernel side: a TC classifier for clsact ingress and egress.
//!
//! The entry points are thin: they adapt the socket buffer to
//! [`monitor_common::bytes::Bytes`] and run the shared per-packet code in
//! [`monitor_common::classify`]. Every packet is passed on untouched
//! (`TC_ACT_PIPE`): a monitor never drops or rewrites traffic.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::TC_ACT_PIPE,
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{PerCpuArray, RingBuf},
    programs::TcContext,
};
use monitor_common::{
    bytes::Bytes,
    classify::{Class, class, fill_header, fill_tls},
    event::{Direction, EventKind, TeardownEvent, TlsEvent, stat},
    net::{LinkType, Skip, tcp},
};

/// Events to userspace. The loader may resize it (`--ring-buffer-mb`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Skip reasons and the counters in [`stat`], per CPU.
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

#[classifier]
pub fn tlsmon_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::INGRESS);
    TC_ACT_PIPE
}

#[classifier]
pub fn tlsmon_egress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::EGRESS);
    TC_ACT_PIPE
}

/// Does nothing but pass the packet on: the floor that `cargo xtask bench`
/// measures the classifier against, in the same run. Never attached.
#[classifier]
pub fn tlsmon_baseline(_ctx: TcContext) -> i32 {
    TC_ACT_PIPE
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
    let seg = tcp(&Direct(ctx), LinkType::ETHERNET)?;
    match class(&Direct(ctx), &seg) {
        Class::Ignore => {}
        Class::Teardown => {
            let Some(mut entry) = EVENTS.reserve::<TeardownEvent>(0) else {
                count(stat::LOST_EVENTS);
                return Ok(());
            };
            // SAFETY: the reservation is sized for the type; zeroing first
            // means no stale ring-buffer bytes reach userspace.
            let ev = unsafe {
                let p = entry.as_mut_ptr();
                core::ptr::write_bytes(p, 0, 1);
                &mut *p
            };
            fill_header(
                &mut ev.header,
                &seg,
                EventKind::TEARDOWN,
                size_of::<TeardownEvent>(),
            );
            stamp(ctx, &mut ev.header, direction);
            entry.submit(0);
        }
        Class::Tls => {
            let Some(mut entry) = EVENTS.reserve::<TlsEvent>(0) else {
                count(stat::LOST_EVENTS);
                return Ok(());
            };
            // SAFETY: as above.
            let ev = unsafe {
                let p = entry.as_mut_ptr();
                core::ptr::write_bytes(p, 0, 1);
                &mut *p
            };
            fill_header(&mut ev.header, &seg, EventKind::TLS, size_of::<TlsEvent>());
            stamp(ctx, &mut ev.header, direction);
            fill_tls(&Helper(ctx), &seg, &mut ev.tls);
            entry.submit(0);
            count(stat::TLS_PACKETS);
        }
    }
    Ok(())
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
            // SAFETY: bounds checked against data_end just above.
            return Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) });
        }
        Helper(self.0).array(off)
    }

    #[inline(always)]
    fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool {
        Helper(self.0).copy_prefix(off, dst, n)
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
