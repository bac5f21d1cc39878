//! Limits on guessing session codes: failures are counted per source address and over all
//! addresses in a sliding window, and further attempts are refused while over either limit.
//! Held by the endpoint (not a global), with time passed in.

use crate::limits::{CODE_FAILURE_WINDOW, MAX_CODE_FAILURES_GLOBAL, MAX_CODE_FAILURES_PER_ADDRESS};
use deskline_protocol::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// Counts failed code attempts.
#[derive(Default)]
pub struct CodeGuard {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    per_address: HashMap<IpAddr, VecDeque<Timestamp>>,
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

impl CodeGuard {
    /// If attempts from `address` are refused now, for how many milliseconds.
    pub fn retry_after(&self, address: IpAddr, now: Timestamp) -> Option<u32> {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        prune(&mut inner.global, now);
        let mut wait = None;
        if inner.global.len() >= MAX_CODE_FAILURES_GLOBAL {
            wait = inner.global.front().map(|t| t.0 + window_ms() - now.0);
        }
        if let Some(q) = inner.per_address.get_mut(&address) {
            prune(q, now);
            if q.len() >= MAX_CODE_FAILURES_PER_ADDRESS {
                let local = q.front().map(|t| t.0 + window_ms() - now.0);
                wait = wait.max(local);
            }
        }
        wait.map(|ms| u32::try_from(ms.max(1)).unwrap_or(u32::MAX))
    }

    /// Records a failed attempt (an unknown, expired or closed code).
    pub fn failed(&self, address: IpAddr, now: Timestamp) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bound memory under a flood of addresses: forget addresses with no recent failure.
        if inner.per_address.len() > 100_000 {
            inner.per_address.retain(|_, q| q.back().is_some_and(|t| now.0 - t.0 < window_ms()));
        }
        inner.per_address.entry(address).or_default().push_back(now);
        inner.global.push_back(now);
        if inner.global.len() > MAX_CODE_FAILURES_GLOBAL * 2 {
            inner.global.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_and_released_after_the_window() {
        let guard = CodeGuard::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let t0 = Timestamp(1_000_000);
        for _ in 0..MAX_CODE_FAILURES_PER_ADDRESS {
            assert_eq!(guard.retry_after(a, t0), None);
            guard.failed(a, t0);
        }
        assert!(guard.retry_after(a, t0).is_some());
        assert_eq!(guard.retry_after(b, t0), None, "other addresses are not affected");
        let later = Timestamp(t0.0 + window_ms());
        assert_eq!(guard.retry_after(a, later), None);
    }

    #[test]
    fn many_addresses_hit_the_global_limit() {
        let guard = CodeGuard::default();
        let t0 = Timestamp(5_000_000);
        for i in 0..MAX_CODE_FAILURES_GLOBAL {
            let addr = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            guard.failed(addr, t0);
        }
        let fresh: IpAddr = "192.0.2.1".parse().unwrap();
        let wait = guard.retry_after(fresh, Timestamp(t0.0 + 1_000)).unwrap();
        assert_eq!(i64::from(wait), window_ms() - 1_000);
    }
}
