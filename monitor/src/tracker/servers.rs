//! The per-server counters, bounded: a server gets an entry when it
//! answers a ClientHello, and when the table is full the servers idle
//! longest make room.

use crate::stats::{Endpoint, Map, Role, ServerStats};

/// A server's counters and when they last changed.
#[derive(Debug)]
struct Entry {
    stats: ServerStats,
    active_ns: u64,
}

/// Servers by address, at most `max`.
#[derive(Debug)]
pub(super) struct Servers {
    max: usize,
    map: Map<Endpoint, Entry>,
}

impl Servers {
    pub(super) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            map: Map::default(),
        }
    }

    pub(super) fn stats(&self) -> impl Iterator<Item = &ServerStats> {
        self.map.values().map(|e| &e.stats)
    }

    pub(super) fn stats_mut(&mut self) -> impl Iterator<Item = &mut ServerStats> {
        self.map.values_mut().map(|e| &mut e.stats)
    }

    pub(super) fn clear(&mut self) {
        self.map.clear();
    }

    /// The server's counters if it has an entry, marked active at `now_ns`.
    pub(super) fn get_mut(&mut self, server: &Endpoint, now_ns: u64) -> Option<&mut ServerStats> {
        let e = self.map.get_mut(server)?;
        e.active_ns = e.active_ns.max(now_ns);
        Some(&mut e.stats)
    }

    /// The server's counters, created if needed, marked active at
    /// `now_ns`; and how many other servers were evicted to make room.
    pub(super) fn entry(
        &mut self,
        server: Endpoint,
        role: Role,
        now_ns: u64,
    ) -> (&mut ServerStats, u64) {
        let evicted = if self.map.len() >= self.max && !self.map.contains_key(&server) {
            self.evict_idle()
        } else {
            0
        };
        let e = self.map.entry(server).or_insert_with(|| Entry {
            stats: ServerStats::new(server, role),
            active_ns: now_ns,
        });
        e.active_ns = e.active_ns.max(now_ns);
        (&mut e.stats, evicted)
    }

    /// Removes the sixteenth of the servers idle longest (at least one), so
    /// that the scan this takes is paid once per that many new servers.
    fn evict_idle(&mut self) -> u64 {
        let n = (self.map.len() / 16).max(1);
        let mut idle: Vec<(u64, Endpoint)> =
            self.map.iter().map(|(k, e)| (e.active_ns, *k)).collect();
        idle.select_nth_unstable(n - 1);
        for (_, k) in &idle[..n] {
            self.map.remove(k);
        }
        n as u64
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
        }
    }

    #[test]
    fn the_servers_idle_longest_make_room() {
        let mut s = Servers::new(32);
        for port in 0..32 {
            s.entry(ep(port), Role::Backend, u64::from(port) * 10);
        }
        // Port 0 is busy again; 1 and 2 are now the idlest.
        s.get_mut(&ep(0), 1000);
        let (_, evicted) = s.entry(ep(100), Role::Backend, 1001);
        let ports: Vec<u16> = s.stats().map(|s| s.server.port).collect();
        assert_eq!((evicted, ports.len()), (2, 31));
        assert!(ports.contains(&0) && ports.contains(&100));
        assert!(!ports.contains(&1) && !ports.contains(&2));
        // An existing entry never evicts.
        assert_eq!(s.entry(ep(3), Role::Backend, 1002).1, 0);
    }
}
