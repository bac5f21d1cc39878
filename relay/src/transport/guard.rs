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

use crate::failures::{FailureLog, Kind};
use crate::limits::{
    CODE_ATTACK_THRESHOLD, CODE_FAILURE_WINDOW, MAX_CODE_FAILURES_PER_NETWORK, MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK,
    WRONG_CODE_DELAY, WRONG_CODE_DELAY_UNDER_ATTACK,
};
use crate::network::Network;
use crate::store::StoreError;
use deskline_protocol::Timestamp;
use std::net::IpAddr;
use std::time::Duration;

/// Counts failed code attempts (where [`FailureLog`] keeps them: the shared database when
/// several relay nodes serve the desk, so a guesser spreading over nodes is limited as on one).
pub struct CodeGuard {
    log: FailureLog,
}

fn window_ms() -> i64 {
    i64::try_from(CODE_FAILURE_WINDOW.as_millis()).unwrap_or(i64::MAX)
}

impl CodeGuard {
    /// A guard counting in `log`.
    #[must_use]
    pub fn new(log: FailureLog) -> CodeGuard {
        CodeGuard { log }
    }

    async fn allowance(&self, now: Timestamp) -> Result<usize, StoreError> {
        Ok(if self.under_attack(now).await? { MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK } else { MAX_CODE_FAILURES_PER_NETWORK })
    }

    /// If code attempts from `address`'s network are refused now, for how many milliseconds.
    /// Only that network's own failures can refuse it.
    pub async fn retry_after(&self, address: IpAddr, now: Timestamp) -> Result<Option<u32>, StoreError> {
        let allowance = self.allowance(now).await?;
        let failures = self.log.recent(Kind::Code, Network::of(address), now, CODE_FAILURE_WINDOW).await?;
        if failures.len() < allowance {
            return Ok(None);
        }
        // Free again when enough of the oldest failures have left the window.
        let Some(oldest_that_must_go) = failures.get(failures.len() - allowance) else { return Ok(None) };
        let ms = oldest_that_must_go.0 + window_ms() - now.0;
        Ok(Some(u32::try_from(ms.max(1)).unwrap_or(u32::MAX)))
    }

    /// Records a failed attempt (an unknown, expired or closed code) and returns how long to
    /// wait before answering it.
    pub async fn failed(&self, address: IpAddr, now: Timestamp) -> Result<Duration, StoreError> {
        self.log.record(Kind::Code, Network::of(address), now, CODE_FAILURE_WINDOW).await?;
        Ok(if self.under_attack(now).await? { WRONG_CODE_DELAY_UNDER_ATTACK } else { WRONG_CODE_DELAY })
    }

    /// Are failures over all networks past [`CODE_ATTACK_THRESHOLD`] in the window?
    pub async fn under_attack(&self, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.log.count_all(Kind::Code, now, CODE_FAILURE_WINDOW).await? >= CODE_ATTACK_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A guard on the back end under test (PostgreSQL when the test command runs the desk tests
    /// there).
    fn guard(dir: &tempfile::TempDir) -> CodeGuard {
        CodeGuard::new(FailureLog::for_db(&crate::store::Db::for_tests(dir.path()).unwrap()))
    }

    #[tokio::test]
    async fn a_network_is_limited_and_released_after_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let guard = guard(&dir);
        let a = ip("198.51.100.2");
        let neighbour = ip("198.51.100.77");
        let elsewhere = ip("203.0.113.3");
        let t0 = Timestamp(1_000_000);
        for _ in 0..MAX_CODE_FAILURES_PER_NETWORK {
            assert_eq!(guard.retry_after(a, t0).await.unwrap(), None);
            assert_eq!(guard.failed(a, t0).await.unwrap(), WRONG_CODE_DELAY);
        }
        assert!(guard.retry_after(a, t0).await.unwrap().is_some());
        assert!(guard.retry_after(neighbour, t0).await.unwrap().is_some(), "other addresses of the same /24 count together");
        assert_eq!(guard.retry_after(elsewhere, t0).await.unwrap(), None, "other networks are not affected");
        let later = Timestamp(t0.0 + window_ms());
        assert_eq!(guard.retry_after(a, later).await.unwrap(), None);
    }

    /// The lockout found from outside: 20 addresses × 5 wrong PINs refused everyone for a
    /// minute. Now the same attack slows the attackers and refuses nobody else.
    #[tokio::test]
    async fn strangers_failures_never_refuse_another_network() {
        let dir = tempfile::tempdir().unwrap();
        let guard = guard(&dir);
        let t0 = Timestamp(5_000_000);
        for i in 0..CODE_ATTACK_THRESHOLD * 3 {
            let attacker = IpAddr::from([10, (i / 256) as u8, (i % 256) as u8, 1]);
            guard.failed(attacker, t0).await.unwrap();
        }
        assert!(guard.under_attack(t0).await.unwrap());
        let honest = ip("192.0.2.1");
        assert_eq!(guard.retry_after(honest, Timestamp(t0.0 + 1_000)).await.unwrap(), None);
        // Under attack, wrong codes are answered later and each network gets fewer tries.
        assert_eq!(guard.failed(honest, t0).await.unwrap(), WRONG_CODE_DELAY_UNDER_ATTACK);
        for _ in 1..MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK {
            assert_eq!(guard.retry_after(honest, t0).await.unwrap(), None);
            guard.failed(honest, t0).await.unwrap();
        }
        assert!(guard.retry_after(honest, t0).await.unwrap().is_some());
        // When the attack stops, the allowance is back.
        assert!(!guard.under_attack(Timestamp(t0.0 + window_ms())).await.unwrap());
    }
}
