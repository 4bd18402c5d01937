//! The per-packet pipeline: what tlsmon does with one packet, written once
//! for the kernel program and for the host engine (`tlsmon replay --engine
//! host`, the tests).
//!
//! Each function here is generic over an [`Env`], which says where the
//! packet's bytes come from and where its results go. The decisions and
//! their order are here; only the mechanics differ between environments:
//!
//! | | kernel (`monitor-ebpf`) | host ([`crate::host`]) |
//! |---|---|---|
//! | [`Packet`] | the socket buffer: direct access for headers, `bpf_skb_load_bytes` for copies, a per-CPU window for the record walk | a slice |
//! | [`Events`] | ring-buffer reserve/submit, `bpf_ringbuf_output` from a per-CPU scratch map, the `STATS` per-CPU array, `bpf_ktime_get_ns` | decoded into a `Vec`, counters in an array, the capture's clock |
//! | [`SplitStore`] | the `SPLIT_HELLOS` LRU map and the `SPLIT_GATE` word | a bounded hash map and a word |
//! | [`Env::call_split`] | tail call into `tlsmon_split` | a direct call of [`split`] |
//!
//! So the kernel and host engines can only differ in those mechanics, and
//! the differential test that runs both (`monitor/tests/kernel.rs`,
//! `monitor/tests/replay_corpus.rs`) checks the environments.
//!
//! The order of work is the kernel's, and its reasons are the verifier's
//! (docs/architecture.md): application data is decided from the flags and
//! the first record header without reading addresses or touching a map;
//! the split-hello store is consulted only while the gate word says a hello
//! may be pending; a truncated ClientHello leaves the record walk through
//! [`Env::call_split`], because anything after the walk is verified once
//! per state the walk leaves behind.

use core::ops::DerefMut;

use crate::{
    bytes::Bytes,
    classify::{Class, class, fill_chunk, fill_header},
    close::LAST_RECORD_NONE,
    event::{
        ChunkEvent, Direction, Event, EventHeader, EventKind, TeardownEvent, TlsEvent, TlsSummary,
        stat,
    },
    net::{LinkType, Skip, TcpSegment, flow, segment},
    split::{
        FlowKey, HelloAt, PendingHello, SPLIT_TIMEOUT_NS, Span, SplitArgs, advance, beyond,
        continuation, cut_hello, expired, split_hello,
    },
};

/// The packet being looked at.
pub trait Packet {
    /// Reads of the fixed-shape headers (kernel: direct packet access).
    type Headers: Bytes + ?Sized;
    /// Copies out of the payload (kernel: `bpf_skb_load_bytes`).
    type Payload: Bytes + ?Sized;

    /// How the frame starts.
    fn link(&self) -> LinkType;

    fn headers(&self) -> &Self::Headers;

    fn payload(&self) -> &Self::Payload;

    /// [`crate::classify::fill_tls`] for a segment classified [`Class::Tls`],
    /// reading the records the way this environment reads them best.
    fn summarize(&mut self, seg: &TcpSegment, out: &mut TlsSummary);

    /// [`crate::close::last_record`] of a RST or FIN segment's payload,
    /// read the way this environment reads a payload's tail best.
    fn last_record(&mut self, seg: &TcpSegment) -> u8;
}

/// Where events and counts go, and the clock that stamps them.
pub trait Events {
    /// A reserved, zeroed event that [`Events::submit`] publishes.
    type Slot<T: Event>: DerefMut<Target = T>;
    /// Room for one [`ChunkEvent`], which [`Events::output`] publishes at
    /// its real length.
    type Scratch: DerefMut<Target = ChunkEvent>;

    /// A zeroed event to fill; `None` when there is no room (counted by
    /// the caller as a lost event).
    fn reserve<T: Event>(&mut self) -> Option<Self::Slot<T>>;

    fn submit<T: Event>(&mut self, slot: Self::Slot<T>);

    fn scratch(&mut self) -> Option<Self::Scratch>;

    /// Publishes the chunk with `len` bytes of data; `false` if it was lost.
    fn output(&mut self, chunk: Self::Scratch, len: u32) -> bool;

    /// Adds one to counter `index` (a [`Skip`] value or one of [`stat`]).
    fn count(&mut self, index: u32);

    /// Nanoseconds on the clock of event headers (kernel: CLOCK_MONOTONIC).
    fn now(&self) -> u64;

    /// The interface the packet crossed; 0 when unknown.
    fn ifindex(&self) -> u32;
}

/// The ClientHellos being reassembled (see [`crate::split`]), and the gate
/// word: until when (on [`Events::now`]'s clock) the store may hold a live
/// entry, 0 once that time has passed.
pub trait SplitStore {
    fn gate(&self) -> u64;

    fn set_gate(&mut self, until: u64);

    /// The pending hello of a flow, to update in place.
    fn pending(&mut self, key: &FlowKey) -> Option<&mut PendingHello>;

    /// Stores a pending hello; `false` if the store refused it.
    fn insert(&mut self, key: &FlowKey, p: &PendingHello) -> bool;

    fn remove(&mut self, key: &FlowKey);
}

/// Everything the pipeline runs on.
pub trait Env: Packet + Events + SplitStore {
    /// Runs [`split`] on this packet with `args`. The kernel tail-calls
    /// `tlsmon_split`, which runs it; if the tail call fails (the program
    /// is not installed), nothing runs and the hello reaches userspace
    /// truncated, counted there. The host calls it directly.
    fn call_split(&mut self, args: SplitArgs);
}

/// One packet: at most one TLS or teardown event, and the chunks of a
/// ClientHello split over segments. A skipped packet is counted by reason,
/// except ordinary non-TCP traffic, which is not worth a counter update,
/// and the reason is returned.
#[inline(always)]
pub fn observe<E: Env>(env: &mut E, direction: Direction) -> Result<(), Skip> {
    let result = try_observe(env, direction);
    if let Err(skip) = result
        && skip != Skip::NOT_TCP
    {
        env.count(skip.0);
    }
    result
}

#[inline(always)]
fn try_observe<E: Env>(env: &mut E, direction: Direction) -> Result<(), Skip> {
    let mut seg = segment(env.headers(), env.link())?;
    match class(env.headers(), &seg) {
        Class::Opaque => {}
        // A segment in the middle of a split ClientHello starts with hello
        // bytes, which do not look like a record header (but for a chance
        // of about one in a million: that hello is then reported truncated).
        // Checking here, after `class`, keeps this path off the TLS walk's.
        Class::Ignore => {
            if seg.payload_len > 0 && gate_open(env) {
                flow(env.headers(), &mut seg);
                continued(env, &seg, direction);
            }
        }
        Class::Teardown => {
            flow(env.headers(), &mut seg);
            if seg.payload_len > 0 && gate_open(env) {
                continued(env, &seg, direction);
            }
            let last = if seg.payload_len > 0 {
                env.last_record(&seg)
            } else {
                LAST_RECORD_NONE
            };
            teardown(env, &seg, direction, EventKind::TEARDOWN, last);
        }
        Class::Short(len) => {
            flow(env.headers(), &mut seg);
            teardown(env, &seg, direction, EventKind::SHORT_RECORD, len);
        }
        Class::Tls => {
            flow(env.headers(), &mut seg);
            tls(env, &seg, direction);
        }
    }
    Ok(())
}

/// A segment whose payload starts with a handshake, change_cipher_spec or
/// alert record: one [`TlsEvent`], and the split-hello half if its
/// ClientHello goes on in later segments.
#[inline(always)]
fn tls<E: Env>(env: &mut E, seg: &TcpSegment, direction: Direction) {
    let Some(mut ev) = env.reserve::<TlsEvent>() else {
        env.count(stat::LOST_EVENTS);
        return;
    };
    fill_header(&mut ev.header, seg, EventKind::TLS, size_of::<TlsEvent>());
    stamp(env, &mut ev.header, direction);
    env.summarize(seg, &mut ev.tls);
    // Read back from the event, not forwarded from the walk's own stores,
    // so that what the walk computed is not carried in registers into the
    // code below: in the kernel the event is ring-buffer memory, which the
    // verifier does not track (see `split` for why that matters to it).
    // SAFETY: plain reads of fields of a live &mut.
    let mut hello = unsafe {
        HelloAt {
            hello_type: core::ptr::read_volatile(&raw const ev.tls.hello_type),
            at: core::ptr::read_volatile(&raw const ev.tls.hello_at),
            len: core::ptr::read_volatile(&raw const ev.tls.hello_len),
            flags: core::ptr::read_volatile(&raw const ev.tls.hello.flags),
        }
    };
    if hello.hello_type == 0 {
        // No hello in the walk: perhaps a ClientHello whose first segment
        // ends inside its message header, which only the record header
        // shows (`cut_hello`). The segment's bounds come from the event
        // too, so that `seg` need not live across the walk. Code here is
        // verified once per way out of the walk: this test costs the
        // verifier about 1,350 instructions of the classifier's 162,000,
        // and no less before the walk or in `classify::fill_tls`
        // (measured with `bench kernel --quick`, `load.programs`).
        // SAFETY: as above.
        let (off, len) = unsafe {
            (
                core::ptr::read_volatile(&raw const ev.header.payload_off) as usize,
                core::ptr::read_volatile(&raw const ev.header.payload_len) as usize,
            )
        };
        hello = cut_hello(env.payload(), off, len);
        if hello.flags != 0 {
            ev.tls.hello_type = hello.hello_type;
            ev.tls.hello_at = hello.at;
            ev.tls.hello_len = hello.len;
            ev.tls.hello.flags = hello.flags;
        }
    }
    if !hello.may_continue() {
        env.submit(ev);
        env.count(stat::TLS_PACKETS);
        return;
    }
    // SAFETY: as above; the header describes the segment to `split`.
    let args = SplitArgs::new(
        unsafe { core::ptr::read_volatile(&raw const ev.header) },
        hello,
    );
    env.submit(ev);
    env.count(stat::TLS_PACKETS);
    env.call_split(args);
}

/// The second half of a truncated ClientHello's packet, reached through
/// [`Env::call_split`]: remembers a hello that continues in later segments
/// and sends the bytes this segment holds.
///
/// In the kernel a program of its own (`tlsmon_split`): the TLS walk
/// leaves the verifier with many distinct states, and anything after it is
/// verified once per state. Inline, this pushed the classifier past the
/// verifier's one-million-instruction budget; as a program it is verified
/// once. It starts afresh from `args`: the segment as the TLS event's
/// header describes it, without parsing the packet's headers again.
#[inline(always)]
pub fn split<E: Env>(env: &mut E, args: SplitArgs) {
    let seg = args.segment();
    let mut p = split_hello(env.payload(), &seg, args.hello(), args.header.ts_ns);
    if p.need == 0 {
        return;
    }
    let span = continuation(&p, &seg);
    advance(&mut p, span);
    if remember(env, &seg, &p) {
        env.count(stat::SPLIT_HELLOS);
        send_chunk(env, &seg, span, Direction(args.header.direction));
    }
}

/// A header-only event: RST or FIN without a TLS record at the start of
/// the payload, or a short record; `last_record` is the length of the
/// record that ends the payload (see [`crate::close`]).
#[inline(always)]
fn teardown<E: Env>(
    env: &mut E,
    seg: &TcpSegment,
    direction: Direction,
    kind: EventKind,
    last_record: u8,
) {
    let Some(mut ev) = env.reserve::<TeardownEvent>() else {
        env.count(stat::LOST_EVENTS);
        return;
    };
    fill_header(&mut ev.header, seg, kind, size_of::<TeardownEvent>());
    ev.header.last_record = last_record;
    stamp(env, &mut ev.header, direction);
    env.submit(ev);
}

/// What only the environment knows about a packet: when and where it was
/// seen, and which way it went.
#[inline(always)]
fn stamp<E: Env>(env: &E, h: &mut EventHeader, direction: Direction) {
    h.direction = direction.0;
    h.ts_ns = env.now();
    h.ifindex = env.ifindex();
}

/// Whether a hello may be pending, and if so the time it was checked at;
/// closes the gate once its time is up.
///
/// In the kernel two CPUs may race here: one closing the gate just as
/// another opens it for a new hello. The new hello's later segments are
/// then not looked up, and it reaches userspace as a truncated hello —
/// counted, not lost.
#[inline(always)]
fn gate_open<E: Env>(env: &mut E) -> bool {
    let until = env.gate();
    if until == 0 {
        return false;
    }
    if env.now() > until {
        env.set_gate(0);
        return false;
    }
    true
}

/// Stores a pending hello and opens the gate for its lifetime.
#[inline(always)]
fn remember<E: Env>(env: &mut E, seg: &TcpSegment, p: &PendingHello) -> bool {
    if !env.insert(&FlowKey::of(seg), p) {
        return false;
    }
    env.set_gate(p.since_ns + SPLIT_TIMEOUT_NS);
    true
}

/// Sends the part of `seg` that continues a pending hello of its flow.
///
/// The entry is done with (removed) before the chunk is sent, not after:
/// nothing then needs to be carried across the send, which saves the
/// verifier states.
#[inline(always)]
fn continued<E: Env>(env: &mut E, seg: &TcpSegment, direction: Direction) {
    let key = FlowKey::of(seg);
    let now = env.now();
    // In the kernel a pointer into the map: concurrent updates of one
    // flow's entry are benign (at worst a chunk is sent twice, and
    // userspace deduplicates it).
    let Some(p) = env.pending(&key) else {
        return;
    };
    if expired(p, now) {
        env.remove(&key);
        return;
    }
    let span = continuation(p, seg);
    if span.len == 0 {
        if beyond(p, seg) {
            env.remove(&key);
        }
        return;
    }
    if advance(p, span) {
        env.remove(&key);
    }
    send_chunk(env, seg, span, direction);
}

/// Copies the hello bytes of `span` to userspace, sized to what they hold.
#[inline(always)]
fn send_chunk<E: Env>(env: &mut E, seg: &TcpSegment, span: Span, direction: Direction) {
    let Some(mut ev) = env.scratch() else {
        return;
    };
    if !fill_chunk(env.payload(), seg, span, &mut ev) {
        return;
    }
    stamp(env, &mut ev.header, direction);
    if !env.output(ev, span.len) {
        env.count(stat::LOST_EVENTS);
    }
}
