//! Source networks and the connection limits kept per network.
//!
//! Limits keyed by a single address are worth little: one subscriber or one small hosting
//! customer holds a whole IPv4 /24 or IPv6 /56 and can cycle through it. So counting is per
//! network ([`Network`]), for code guessing (`transport::guard`) and for connections
//! ([`ConnectionLimiter`], used by the QUIC endpoint and the HTTPS server alike).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The network an address is counted in: its /24 (IPv4) or /56 (IPv6) prefix. IPv4-mapped
/// IPv6 addresses count as the IPv4 address they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network(IpAddr);

impl Network {
    /// The network `address` belongs to.
    #[must_use]
    pub fn of(address: IpAddr) -> Network {
        match address.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Network(IpAddr::from([a, b, c, 0]))
            }
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[7..].fill(0);
                Network(IpAddr::from(octets))
            }
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}/24"),
            IpAddr::V6(v6) => write!(f, "{v6}/56"),
        }
    }
}

/// Bounds connections in all and per source network. Each admitted connection holds a
/// [`ConnectionSlot`]; dropping it frees the slot.
#[derive(Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Mutex<Counts>>,
    total: usize,
    per_network: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_network: HashMap<Network, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken.
    Full,
    /// The connection's network holds as many as it may.
    NetworkFull(Network),
}

/// A connection's place in a [`ConnectionLimiter`], given back when dropped.
pub struct ConnectionSlot {
    inner: Arc<Mutex<Counts>>,
    network: Network,
}

impl ConnectionLimiter {
    /// At most `total` connections, and `per_network` from any one network.
    #[must_use]
    pub fn new(total: usize, per_network: usize) -> ConnectionLimiter {
        ConnectionLimiter { inner: Arc::default(), total, per_network }
    }

    /// Admits a connection from `address`, if there is room for it and for its network.
    pub fn admit(&self, address: IpAddr) -> Result<ConnectionSlot, Refused> {
        let network = Network::of(address);
        let mut counts = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.total >= self.total {
            return Err(Refused::Full);
        }
        let held = counts.per_network.entry(network).or_default();
        if *held >= self.per_network {
            return Err(Refused::NetworkFull(network));
        }
        *held += 1;
        counts.total += 1;
        Ok(ConnectionSlot { inner: self.inner.clone(), network })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.per_network.get_mut(&self.network) {
            *held -= 1;
            if *held == 0 {
                counts.per_network.remove(&self.network);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_are_slash_24_and_slash_56() {
        assert_eq!(Network::of(ip("192.0.2.1")), Network::of(ip("192.0.2.254")));
        assert_ne!(Network::of(ip("192.0.2.1")), Network::of(ip("192.0.3.1")));
        assert_eq!(Network::of(ip("2001:db8:0:12ff::1")), Network::of(ip("2001:db8:0:1200::9")));
        assert_ne!(Network::of(ip("2001:db8:0:1200::1")), Network::of(ip("2001:db8:0:1300::1")));
        assert_eq!(Network::of(ip("::ffff:192.0.2.7")), Network::of(ip("192.0.2.1")));
        assert_eq!(Network::of(ip("192.0.2.1")).to_string(), "192.0.2.0/24");
    }

    #[test]
    fn connections_are_limited_per_network_and_in_all() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a = limiter.admit(ip("192.0.2.1")).unwrap();
        let _b = limiter.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(limiter.admit(ip("192.0.2.3")).err(), Some(Refused::NetworkFull(Network::of(ip("192.0.2.0")))));
        let _c = limiter.admit(ip("198.51.100.1")).unwrap();
        assert_eq!(limiter.admit(ip("203.0.113.1")).err(), Some(Refused::Full));
        drop(a);
        assert!(limiter.admit(ip("192.0.2.9")).is_ok(), "a slot given back is free again");
    }
}
