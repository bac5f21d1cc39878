//! Passwords (argon2id), API tokens (random, stored hashed) and login throttling.

use crate::limits::{LOGIN_BACKOFF_MAX, LOGIN_FAILURE_WINDOW, LOGIN_FREE_FAILURES};
use crate::network::Network;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deskline_protocol::Timestamp;
use rand::Rng as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Hashes a password with argon2id (the crate's default, OWASP-recommended parameters) and a
/// random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Checks a password against a PHC string. A damaged hash never verifies.
#[must_use]
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// A hash to verify against when the username does not exist, so that the answer takes as long
/// as for a real account and does not reveal which usernames exist.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

/// A new bearer token: 256 random bits, URL-safe text.
#[must_use]
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a token: its SHA-256, so a copy of the database logs nobody in.
/// (A fast hash is right here: the token has 256 bits of entropy, nothing to brute-force.)
#[must_use]
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random password for the demo admin: 20 characters from a 62-letter alphabet (119 bits).
#[must_use]
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| {
            // Rejection sampling keeps every letter equally likely.
            loop {
                let b = rng.next_u32() as u8;
                let zone = 256 - (256 % ALPHABET.len());
                if usize::from(b) < zone {
                    return ALPHABET[usize::from(b) % ALPHABET.len()] as char;
                }
            }
        })
        .collect()
}

/// Slows password guessing by source network, never by account: failures from one network
/// (IPv4 /24, IPv6 /56) in a sliding window are free up to a few typos, then each further
/// attempt from that network must wait twice as long as the one before. Somebody guessing the
/// admin's password slows themself down; the admin, signing in from anywhere else, is never
/// locked out. Per relay instance, held in the app state (not a global).
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<Network, Vec<Timestamp>>>,
}

/// Networks remembered at most; beyond it, those without a recent failure are forgotten.
const MAX_NETWORKS_TRACKED: usize = 100_000;

impl LoginThrottle {
    /// If attempts from `from`'s network must wait now, how many milliseconds more.
    pub fn retry_after(&self, from: Option<IpAddr>, now: Timestamp) -> Option<i64> {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.get_mut(&network(from))?;
        let window_ms = LOGIN_FAILURE_WINDOW.as_millis() as i64;
        entry.retain(|t| now.0 - t.0 < window_ms);
        let last = entry.last()?;
        let wait = backoff(entry.len())?;
        let ready_at = last.0 + wait.as_millis() as i64;
        (ready_at > now.0).then(|| ready_at - now.0)
    }

    /// Records a failed attempt from `from`.
    pub fn failed(&self, from: Option<IpAddr>, now: Timestamp) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > MAX_NETWORKS_TRACKED {
            let window_ms = LOGIN_FAILURE_WINDOW.as_millis() as i64;
            map.retain(|_, failures| failures.last().is_some_and(|t| now.0 - t.0 < window_ms));
        }
        map.entry(network(from)).or_default().push(now);
    }
}

/// The network failures are counted in (all unknown senders together).
fn network(from: Option<IpAddr>) -> Network {
    Network::of(from.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)))
}

/// How long after the last of `failures` failures the next attempt must wait: nothing for the
/// first [`LOGIN_FREE_FAILURES`], then one second doubling each time up to [`LOGIN_BACKOFF_MAX`].
#[must_use]
pub fn backoff(failures: usize) -> Option<std::time::Duration> {
    let over = failures.checked_sub(LOGIN_FREE_FAILURES)?;
    let doubled = std::time::Duration::from_secs(1).saturating_mul(1u32.checked_shl(over as u32).unwrap_or(u32::MAX));
    Some(doubled.min(LOGIN_BACKOFF_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salts differ");
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let a = new_token();
        assert_ne!(a, new_token());
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        let p = random_password();
        assert_eq!(p.len(), 20);
        assert_ne!(p, random_password());
    }

    #[test]
    fn login_throttle_backs_off_per_network_and_never_locks_an_account() {
        let throttle = LoginThrottle::default();
        let attacker: Option<IpAddr> = Some("198.51.100.7".parse().unwrap());
        let neighbour: Option<IpAddr> = Some("198.51.100.8".parse().unwrap());
        let owner: Option<IpAddr> = Some("203.0.113.5".parse().unwrap());
        let t0 = Timestamp(1_000_000);
        for _ in 0..LOGIN_FREE_FAILURES {
            assert_eq!(throttle.retry_after(attacker, t0), None, "typos are free");
            throttle.failed(attacker, t0);
        }
        assert_eq!(throttle.retry_after(attacker, t0), Some(1_000));
        assert_eq!(throttle.retry_after(neighbour, t0), Some(1_000), "the same /24 counts together");
        assert_eq!(throttle.retry_after(owner, t0), None, "other networks are never held back");
        // Each further failure doubles the wait, up to the cap.
        throttle.failed(attacker, Timestamp(t0.0 + 1_000));
        assert_eq!(throttle.retry_after(attacker, Timestamp(t0.0 + 1_000)), Some(2_000));
        assert_eq!(backoff(LOGIN_FREE_FAILURES + 40), Some(LOGIN_BACKOFF_MAX));
        assert_eq!(backoff(LOGIN_FREE_FAILURES - 1), None);
        // After the window, the network starts afresh.
        let later = Timestamp(t0.0 + 1_000 + LOGIN_FAILURE_WINDOW.as_millis() as i64);
        assert_eq!(throttle.retry_after(attacker, later), None);
    }
}
