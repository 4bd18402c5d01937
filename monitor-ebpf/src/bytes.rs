//! Packet bytes in the kernel: the [`Bytes`] implementations the pipeline
//! reads the socket buffer through, each suited to one kind of read.

use aya_ebpf::{helpers::bpf_skb_load_bytes, programs::TcContext};
use monitor_common::bytes::Bytes;

/// Packet bytes for the header parsers: direct packet access where the
/// bytes are in the linear part of the skb (headers nearly always are), the
/// `bpf_skb_load_bytes` helper otherwise.
///
/// Direct access makes the verifier track every offset exactly (pointer
/// arithmetic), which is cheap for the few fixed-shape headers but would
/// multiply its states in the TLS walk, where offsets come from the packet:
/// that walk uses [`Helper`].
pub struct Direct<'a>(pub &'a TcContext);

/// Packet bytes through `bpf_skb_load_bytes` only: offsets stay plain
/// helper arguments the verifier need not track precisely, and paged
/// (GRO) payloads are readable too.
pub struct Helper<'a>(pub &'a TcContext);

/// Largest offset tried with direct access; keeps the pointer arithmetic in
/// a range the verifier can prove. Far beyond any header, and far enough
/// below its `MAX_PACKET_OFF` (0xffff) that an offset it knows nothing
/// more of (`Bytes::forget`) plus the length of a read stays under it:
/// otherwise it grants no range for the read (kernel/bpf/verifier.c,
/// `find_good_pkt_pointers`).
const MAX_DIRECT_OFF: usize = 0x7fff;

impl Bytes for Direct<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len() as usize
    }

    #[inline(always)]
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let start = self.0.data();
        let end = self.0.data_end();
        // A one-byte read is checked as two: LLVM turns `p + 1 <= end` into
        // `p < end`, from which the verifier derives no range when all of
        // the pointer's offset is variable (kernel/bpf/verifier.c,
        // `find_good_pkt_pointers`). The linear part's last byte is then
        // read through the helper.
        let need = if N < 2 { 2 } else { N };
        if off <= MAX_DIRECT_OFF && start + off + need <= end {
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
    fn forget(&self, x: usize) -> usize {
        match crate::WINDOW.get_ptr_mut(0) {
            // SAFETY: this CPU's slot; nothing else runs here until the
            // program returns.
            Some(win) => unsafe { (*win).forget(x) },
            None => x,
        }
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
pub struct Window {
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
    pub fn forget(&mut self, x: usize) -> usize {
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
pub struct Cached<'a> {
    ctx: &'a TcContext,
    win: *mut Window,
}

impl<'a> Cached<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a TcContext, win: &'a mut Window) -> Self {
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
