//! Limits on guessing session codes, designed so that strangers' failures never refuse a
//! correct code.
//!
//! Failures are counted per source *network* (IPv4 /24, IPv6 /56: what one subscriber or one
//! small hosting customer holds, so cycling through one's own addresses buys nothing) in a
//! sliding window. A network over its allowance is refused for the rest of the window; no
//! other network is. Failures over all networks never refuse anyone: past a threshold they
//! mean an attack is under way, and then each network's allowance shrinks and every wrong
//! code is answered later (the connection held meanwhile, which the per-network connection
//! limit turns into fewer guesses). A valid resumption bypasses this guard altogether (see
//! `app.rs`). Held by the endpoint (not a global), with time passed in.

use crate::limits::{
    CODE_ATTACK_THRESHOLD, CODE_FAILURE_WINDOW, MAX_CODE_FAILURES_PER_NETWORK, MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK,
    WRONG_CODE_DELAY, WRONG_CODE_DELAY_UNDER_ATTACK,
};
use crate::network::Network;
use deskline_protocol::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Counts failed code attempts.
#[derive(Default)]
pub struct CodeGuard {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    per_network: HashMap<Network, VecDeque<Timestamp>>,
    global: VecDeque<Timestamp>,
}


fn window_ms() -> i64 {
    i64::try_from(CODE_FAILURE_WINDOW.as_millis()).unwrap_or(i64::MAX)
}

fn prune(q: &mut VecDeque<Timestamp>, now: Timestamp) {
    while q.front().is_some_and(|t| now.0 - t.0 >= window_ms()) {
        q.pop_front();
    }
}

impl Inner {
    fn under_attack(&mut self, now: Timestamp) -> bool {
        prune(&mut self.global, now);
        self.global.len() >= CODE_ATTACK_THRESHOLD
    }

    fn allowance(&mut self, now: Timestamp) -> usize {
        if self.under_attack(now) { MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK } else { MAX_CODE_FAILURES_PER_NETWORK }
    }
}

impl CodeGuard {
    /// If code attempts from `address`'s network are refused now, for how many milliseconds.
    /// Only that network's own failures can refuse it.
    pub fn retry_after(&self, address: IpAddr, now: Timestamp) -> Option<u32> {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let allowance = inner.allowance(now);
        let q = inner.per_network.get_mut(&Network::of(address))?;
        prune(q, now);
        if q.len() < allowance {
            return None;
        }
        // Free again when enough of the oldest failures have left the window.
        let oldest_that_must_go = q.get(q.len() - allowance)?;
        let ms = oldest_that_must_go.0 + window_ms() - now.0;
        Some(u32::try_from(ms.max(1)).unwrap_or(u32::MAX))
    }

    /// Records a failed attempt (an unknown, expired or closed code) and returns how long to
    /// wait before answering it.
    pub fn failed(&self, address: IpAddr, now: Timestamp) -> Duration {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.per_network.len() > crate::limits::MAX_NETWORKS_TRACKED {
            inner.per_network.retain(|_, q| q.back().is_some_and(|t| now.0 - t.0 < window_ms()));
        }
        inner.per_network.entry(Network::of(address)).or_default().push_back(now);
        inner.global.push_back(now);
        // The global count only needs to reach the threshold.
        while inner.global.len() > CODE_ATTACK_THRESHOLD * 2 {
            inner.global.pop_front();
        }
        if inner.under_attack(now) { WRONG_CODE_DELAY_UNDER_ATTACK } else { WRONG_CODE_DELAY }
    }

    /// Are failures over all networks past [`CODE_ATTACK_THRESHOLD`] in the window?
    pub fn under_attack(&self, now: Timestamp) -> bool {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).under_attack(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_network_is_limited_and_released_after_the_window() {
        let guard = CodeGuard::default();
        let a = ip("198.51.100.2");
        let neighbour = ip("198.51.100.77");
        let elsewhere = ip("203.0.113.3");
        let t0 = Timestamp(1_000_000);
        for _ in 0..MAX_CODE_FAILURES_PER_NETWORK {
            assert_eq!(guard.retry_after(a, t0), None);
            assert_eq!(guard.failed(a, t0), WRONG_CODE_DELAY);
        }
        assert!(guard.retry_after(a, t0).is_some());
        assert!(guard.retry_after(neighbour, t0).is_some(), "other addresses of the same /24 count together");
        assert_eq!(guard.retry_after(elsewhere, t0), None, "other networks are not affected");
        let later = Timestamp(t0.0 + window_ms());
        assert_eq!(guard.retry_after(a, later), None);
    }

    /// The lockout found from outside: 20 addresses × 5 wrong PINs refused everyone for a
    /// minute. Now the same attack slows the attackers and refuses nobody else.
    #[test]
    fn strangers_failures_never_refuse_another_network() {
        let guard = CodeGuard::default();
        let t0 = Timestamp(5_000_000);
        for i in 0..CODE_ATTACK_THRESHOLD * 3 {
            let attacker = IpAddr::from([10, (i / 256) as u8, (i % 256) as u8, 1]);
            guard.failed(attacker, t0);
        }
        assert!(guard.under_attack(t0));
        let honest = ip("192.0.2.1");
        assert_eq!(guard.retry_after(honest, Timestamp(t0.0 + 1_000)), None);
        // Under attack, wrong codes are answered later and each network gets fewer tries.
        assert_eq!(guard.failed(honest, t0), WRONG_CODE_DELAY_UNDER_ATTACK);
        for _ in 1..MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK {
            assert_eq!(guard.retry_after(honest, t0), None);
            guard.failed(honest, t0);
        }
        assert!(guard.retry_after(honest, t0).is_some());
        // When the attack stops, the allowance is back.
        assert!(!guard.under_attack(Timestamp(t0.0 + window_ms())));
    }
}
