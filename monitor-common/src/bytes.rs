//! Bounds-checked reads from packet bytes.
//!
//! Parsers in this crate never index memory directly: they ask a [`Bytes`]
//! for a fixed number of bytes at an offset and get `None` past the end. The
//! kernel implements it over the socket buffer (direct access or
//! `bpf_skb_load_bytes`), userspace over a slice; a truncated packet is an
//! ordinary `None`, never a panic.

/// A read-only view of one packet, starting at its link-layer header.
pub trait Bytes {
    /// Total length in bytes, including any part not directly addressable.
    fn len(&self) -> usize;

    /// `N` bytes starting at `off`, or `None` if they are not all present.
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]>;

    /// Copies `n` bytes starting at `off` into the front of `dst`; `false`
    /// if `n` is 0 or above `CAP`, or the bytes are not all present. The
    /// capacity is a constant so the kernel can prove the write in bounds.
    fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool;

    /// Says that reads within `off..off + n` follow. An implementation may
    /// copy those bytes once so that the reads are cheap; the default does
    /// nothing. Reads outside the range must still work.
    #[inline(always)]
    fn prefetch(&self, off: usize, n: usize) {
        let _ = (off, n);
    }

    /// `N` bytes at `off` as one directly addressable block, if the
    /// implementation has them so (the kernel: in the skb's linear part);
    /// `None` otherwise, and by default, when [`Bytes::array`] must do.
    ///
    /// For the per-packet fast path: one bounds check, then each byte is
    /// loaded where it is used. An array returned by value is, to LLVM, one
    /// wide integer, which the BPF backend assembles from byte loads with
    /// shifts and ors and then takes apart again.
    #[inline(always)]
    fn block<const N: usize>(&self, off: usize) -> Option<&[u8; N]> {
        let _ = off;
        None
    }

    /// `x`, passed through memory the kernel verifier does not track, so
    /// that it knows nothing of its value: paths that reach the same code
    /// with different known values (offsets after different header
    /// layouts) are then one path, verified once. Elsewhere, and by
    /// default, just `x`.
    #[inline(always)]
    fn forget(&self, x: usize) -> usize {
        x
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    fn u8_at(&self, off: usize) -> Option<u8> {
        self.array::<1>(off).map(|[b]| b)
    }

    #[inline(always)]
    fn be16_at(&self, off: usize) -> Option<u16> {
        self.array::<2>(off).map(u16::from_be_bytes)
    }

    #[inline(always)]
    fn be24_at(&self, off: usize) -> Option<u32> {
        self.array::<3>(off)
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    #[inline(always)]
    fn be32_at(&self, off: usize) -> Option<u32> {
        self.array::<4>(off).map(u32::from_be_bytes)
    }
}

/// A view of `inner` that ends at `end`: the TCP payload within a frame,
/// so that Ethernet padding or capture trailers after the IP packet are
/// never read as TLS bytes.
pub struct Limit<'a, B: ?Sized> {
    inner: &'a B,
    end: usize,
}

/// Larger than any packet: an offset this far before `end` means it was
/// past it (the subtraction wrapped).
const MAX_ROOM: usize = 1 << 24;

impl<'a, B: Bytes + ?Sized> Limit<'a, B> {
    #[inline(always)]
    pub fn new(inner: &'a B, end: usize) -> Self {
        Self { inner, end }
    }

    /// Bytes available from `off` to `end`, 0 if `off` is past it.
    ///
    /// Computed as a wrapping difference tested on its own, not as
    /// `off + n <= end`: a comparison between two variables makes the
    /// kernel verifier narrow both, and every read then leaves a slightly
    /// different state behind, which multiplied its work past its limit.
    #[inline(always)]
    fn room(&self, off: usize) -> usize {
        let room = self.end.wrapping_sub(off);
        if room > MAX_ROOM { 0 } else { room }
    }
}

impl<B: Bytes + ?Sized> Bytes for Limit<'_, B> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.end.min(self.inner.len())
    }

    #[inline(always)]
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        if self.room(off) < N {
            return None;
        }
        self.inner.array(off)
    }

    #[inline(always)]
    fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool {
        if self.room(off) < n {
            return false;
        }
        self.inner.copy_prefix(off, dst, n)
    }

    #[inline(always)]
    fn prefetch(&self, off: usize, n: usize) {
        self.inner.prefetch(off, n.min(self.room(off)));
    }

    #[inline(always)]
    fn forget(&self, x: usize) -> usize {
        self.inner.forget(x)
    }
}

impl Bytes for [u8] {
    #[inline]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    #[inline]
    fn block<const N: usize>(&self, off: usize) -> Option<&[u8; N]> {
        self.get(off..)?.first_chunk()
    }

    #[inline]
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let end = off.checked_add(N)?;
        self.get(off..end)?.try_into().ok()
    }

    #[inline]
    fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool {
        if n == 0 || n > CAP {
            return false;
        }
        let (Some(end), Some(dst)) = (off.checked_add(n), dst.get_mut(..n)) else {
            return false;
        };
        match self.get(off..end) {
            Some(src) => {
                dst.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bytes;

    #[test]
    fn reads_are_bounds_checked() {
        let b: &[u8] = &[1, 2, 3, 4, 5];
        assert_eq!(b.u8_at(4), Some(5));
        assert_eq!(b.u8_at(5), None);
        assert_eq!(b.be16_at(3), Some(0x0405));
        assert_eq!(b.be16_at(4), None);
        assert_eq!(b.be24_at(0), Some(0x01_0203));
        assert_eq!(b.be32_at(1), Some(0x0203_0405));
        assert_eq!(b.be32_at(usize::MAX), None);
        let mut dst = [0u8; 3];
        assert!(b.copy_prefix(3, &mut dst, 2));
        assert_eq!(dst, [4, 5, 0]);
        assert!(!b.copy_prefix(4, &mut dst, 2));
        assert!(!b.copy_prefix(0, &mut dst, 0));
        assert!(!b.copy_prefix(0, &mut dst, 4));
    }

    /// Records what it was asked to prefetch.
    struct Spy<'a>(&'a [u8], core::cell::Cell<Option<(usize, usize)>>);

    impl Bytes for Spy<'_> {
        fn len(&self) -> usize {
            self.0.len()
        }

        fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
            self.0.array(off)
        }

        fn copy_prefix<const CAP: usize>(&self, off: usize, dst: &mut [u8; CAP], n: usize) -> bool {
            self.0.copy_prefix(off, dst, n)
        }

        fn prefetch(&self, off: usize, n: usize) {
            self.1.set(Some((off, n)));
        }
    }

    #[test]
    fn limit_never_prefetches_past_its_end() {
        let spy = Spy(&[0; 10], core::cell::Cell::new(None));
        let l = super::Limit::new(&spy, 6);
        l.prefetch(2, 100);
        assert_eq!(spy.1.get(), Some((2, 4)));
        l.prefetch(8, 1);
        assert_eq!(spy.1.get(), Some((8, 0)));
    }

    #[test]
    fn limit_hides_bytes_past_its_end() {
        let b: &[u8] = &[1, 2, 3, 4, 5];
        let l = super::Limit::new(b, 3);
        assert_eq!(l.len(), 3);
        assert_eq!(l.be16_at(1), Some(0x0203));
        assert_eq!(l.be16_at(2), None);
        let mut dst = [0u8; 4];
        assert!(l.copy_prefix(0, &mut dst, 3));
        assert!(!l.copy_prefix(1, &mut dst, 3));
    }
}
