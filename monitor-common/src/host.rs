//! The per-packet pipeline on the host: [`crate::pipeline`] over a captured
//! frame, for `tlsmon replay --engine host` and the tests.
//!
//! Events take the same road as the kernel's: each is written as the bytes
//! of its wire struct and read back with [`decode`], so the host engine
//! also checks the decoder.

use std::{boxed::Box, collections::HashMap, vec::Vec};

use crate::{
    classify::fill_tls,
    close::last_record,
    event::{
        CHUNK_DATA_OFF, ChunkEvent, Decoded, Direction, Event, EventHeader, TlsSummary, decode,
        stat,
    },
    net::{LinkType, Skip, TcpSegment},
    pipeline::{Env, Events, Packet, SplitStore, observe, split},
    split::{CHUNK_MAX, FlowKey, MAX_SPLIT_HELLOS, PendingHello, SplitArgs, expired},
};

/// The host engine, with the state the kernel program keeps in maps: the
/// ClientHellos being reassembled (the kernel's LRU map, here a bounded
/// hash map), the gate word and the counters. Packets must come in capture
/// order.
pub struct Classifier {
    pending: HashMap<FlowKey, PendingHello>,
    gate: u64,
    counters: [u64; stat::COUNT as usize],
}

impl Default for Classifier {
    fn default() -> Self {
        Self {
            pending: HashMap::new(),
            gate: 0,
            counters: [0; stat::COUNT as usize],
        }
    }
}

impl Classifier {
    /// The events the kernel program would send for this frame, seen at
    /// `ts_ns`; `Err` with the reason when it would skip it.
    pub fn packet(
        &mut self,
        frame: &[u8],
        link: LinkType,
        direction: Direction,
        ts_ns: u64,
    ) -> Result<Vec<Decoded>, Skip> {
        let mut host = Host {
            frame,
            link,
            now: ts_ns,
            state: self,
            out: Vec::new(),
        };
        observe(&mut host, direction)?;
        Ok(host.out)
    }

    /// Counter `index` (a [`Skip`] value or one of [`stat`]), as the
    /// kernel's `STATS` map would hold it.
    #[must_use]
    pub fn counter(&self, index: u32) -> u64 {
        self.counters.get(index as usize).copied().unwrap_or(0)
    }
}

/// One packet on its own: the first event the kernel program would send
/// for it, with no earlier packets (so no hello is being reassembled).
pub fn classify(
    frame: &[u8],
    link: LinkType,
    direction: Direction,
    ts_ns: u64,
) -> Result<Option<Decoded>, Skip> {
    Classifier::default()
        .packet(frame, link, direction, ts_ns)
        .map(|v| v.into_iter().next())
}

/// The environment of one packet.
struct Host<'a> {
    frame: &'a [u8],
    link: LinkType,
    now: u64,
    state: &'a mut Classifier,
    out: Vec<Decoded>,
}

impl Host<'_> {
    /// Decodes event bytes as the daemon decodes the ring buffer's.
    fn publish(&mut self, bytes: &[u8]) {
        match decode(bytes) {
            Some(d) => self.out.push(d),
            None => unreachable!("the pipeline wrote an event its decoder refuses"),
        }
    }
}

impl Packet for Host<'_> {
    type Headers = [u8];
    type Payload = [u8];

    fn link(&self) -> LinkType {
        self.link
    }

    fn headers(&self) -> &[u8] {
        self.frame
    }

    fn payload(&self) -> &[u8] {
        self.frame
    }

    fn summarize(&mut self, seg: &TcpSegment, out: &mut TlsSummary) {
        fill_tls(self.frame, seg, out);
    }

    fn last_record(&mut self, seg: &TcpSegment) -> u8 {
        last_record(
            self.frame,
            seg.payload_off,
            seg.payload_off + seg.payload_len,
        )
    }
}

/// The bytes of a wire struct.
fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: only called on `Event` types and `ChunkEvent`, repr(C) plain
    // data without implicit padding: every byte is initialised.
    unsafe { core::slice::from_raw_parts(core::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
}

impl Events for Host<'_> {
    type Slot<T: Event> = Box<T>;
    // Boxed: a chunk event is larger than is comfortable on the stack.
    type Scratch = Box<ChunkEvent>;

    fn reserve<T: Event>(&mut self) -> Option<Box<T>> {
        Some(Box::default())
    }

    fn submit<T: Event>(&mut self, slot: Box<T>) {
        self.publish(as_bytes(&*slot));
    }

    fn scratch(&mut self) -> Option<Box<ChunkEvent>> {
        Some(Box::new(ChunkEvent {
            header: EventHeader::default(),
            offset: 0,
            len: 0,
            data: [0; CHUNK_MAX],
        }))
    }

    fn output(&mut self, chunk: Box<ChunkEvent>, len: u32) -> bool {
        let Some(bytes) = as_bytes(&*chunk).get(..CHUNK_DATA_OFF + len as usize) else {
            return false;
        };
        self.publish(bytes);
        true
    }

    fn count(&mut self, index: u32) {
        if let Some(c) = self.state.counters.get_mut(index as usize) {
            *c += 1;
        }
    }

    fn now(&self) -> u64 {
        self.now
    }

    fn ifindex(&self) -> u32 {
        0
    }
}

impl SplitStore for Host<'_> {
    fn gate(&self) -> u64 {
        self.state.gate
    }

    fn set_gate(&mut self, until: u64) {
        self.state.gate = until;
    }

    fn pending(&mut self, key: &FlowKey) -> Option<&mut PendingHello> {
        self.state.pending.get_mut(key)
    }

    /// When the table is full, expired entries make room first, and a
    /// hello that still does not fit is not reassembled (the kernel's LRU
    /// map drops its oldest instead).
    fn insert(&mut self, key: &FlowKey, p: &PendingHello) -> bool {
        let pending = &mut self.state.pending;
        if pending.len() >= MAX_SPLIT_HELLOS as usize && !pending.contains_key(key) {
            pending.retain(|_, q| !expired(q, p.since_ns));
            if pending.len() >= MAX_SPLIT_HELLOS as usize {
                return false;
            }
        }
        pending.insert(*key, *p);
        true
    }

    fn remove(&mut self, key: &FlowKey) {
        self.state.pending.remove(key);
    }
}

impl Env for Host<'_> {
    /// The kernel's tail call, as a call.
    fn call_split(&mut self, args: SplitArgs) {
        split(self, args);
    }
}
