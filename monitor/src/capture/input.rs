//! The stream under the pcap-parser readers.
//!
//! The readers parse their first block after a single `read` and take a
//! short read for the end of the stream, and they turn a failed read into
//! `ReadError` without its cause. [`Input`] therefore fills the buffer it
//! is given as far as the stream allows (a pipe delivers a few kilobytes at
//! a time), retries reads a signal interrupted, and keeps the cause of a
//! failure for the error message.

use std::{
    io::{self, Read},
    sync::{Arc, Mutex},
};

/// Where [`Input`] leaves the error a read failed with.
pub(super) type Failure = Arc<Mutex<Option<io::Error>>>;

pub(super) struct Input {
    inner: Box<dyn Read + Send>,
    failure: Failure,
    /// A failure after part of a buffer was filled: reported by the next
    /// read, once the data before it has been used.
    deferred: Option<io::Error>,
}

impl Input {
    pub(super) fn new(inner: Box<dyn Read + Send>, failure: Failure) -> Self {
        Self {
            inner,
            failure,
            deferred: None,
        }
    }

    fn fail(&self, error: io::Error) -> io::Error {
        let copy = io::Error::new(error.kind(), error.to_string());
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(error);
        }
        copy
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.deferred.take() {
            return Err(self.fail(e));
        }
        let mut filled = 0;
        while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(n) => filled = filled.saturating_add(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if filled == 0 => return Err(self.fail(e)),
                Err(e) => {
                    self.deferred = Some(e);
                    break;
                }
            }
        }
        Ok(filled)
    }
}

/// Reads `n` bytes, or fewer at the end of the stream.
pub(super) fn read_up_to(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(u64::try_from(n).unwrap_or(u64::MAX))
        .read_to_end(&mut head)?;
    Ok(head)
}
