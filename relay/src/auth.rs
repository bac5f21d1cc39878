//! Passwords (argon2id), API tokens (random, stored hashed) and login throttling.

use crate::limits::{LOGIN_FAILURE_WINDOW, MAX_LOGIN_FAILURES_PER_WINDOW};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deskline_protocol::Timestamp;
use rand::Rng as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
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

/// Counts failed logins per username in a sliding window and refuses further attempts when
/// there were too many. Per relay instance, held in the app state (not a global).
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Vec<Timestamp>>>,
}

impl LoginThrottle {
    /// If this username is locked out now, how many milliseconds until it is not.
    pub fn retry_after(&self, username: &str, now: Timestamp) -> Option<i64> {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let window_ms = LOGIN_FAILURE_WINDOW.as_millis() as i64;
        let entry = map.get_mut(username)?;
        entry.retain(|t| now.0 - t.0 < window_ms);
        if entry.len() >= MAX_LOGIN_FAILURES_PER_WINDOW {
            entry.first().map(|oldest| oldest.0 + window_ms - now.0)
        } else {
            None
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, username: &str, now: Timestamp) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bound the map: a flood of random usernames must not grow memory without limit.
        if map.len() > 100_000 {
            map.clear();
        }
        map.entry(username.to_owned()).or_default().push(now);
    }

    /// Forgets failures after a successful login.
    pub fn succeeded(&self, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(username);
    }
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
    fn login_throttle_locks_after_too_many_failures_and_unlocks_later() {
        let throttle = LoginThrottle::default();
        let t0 = Timestamp(1_000_000);
        for _ in 0..MAX_LOGIN_FAILURES_PER_WINDOW {
            assert_eq!(throttle.retry_after("alice", t0), None);
            throttle.failed("alice", t0);
        }
        assert!(throttle.retry_after("alice", t0).is_some());
        assert_eq!(throttle.retry_after("bob", t0), None, "per username");
        let later = Timestamp(t0.0 + LOGIN_FAILURE_WINDOW.as_millis() as i64);
        assert_eq!(throttle.retry_after("alice", later), None);
    }
}
