//! Passwords (argon2id), API tokens (random, stored hashed) and login throttling.

use crate::failures::{FailureLog, Kind};
use crate::limits::{LOGIN_BACKOFF_MAX, LOGIN_FAILURE_WINDOW, LOGIN_FREE_FAILURES};
use crate::store::StoreError;
use crate::network::Network;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deskline_protocol::Timestamp;
use rand::Rng as _;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// Hashes a password with argon2id (the crate's default, OWASP-recommended parameters) and a
/// random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut random = [0u8; 16];
    rand::rng().fill_bytes(&mut random);
    let salt = SaltString::encode_b64(&random)?;
    let argon = Argon2::default();
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let output = argon2_output(&argon, password.as_bytes(), salt_bytes, Params::DEFAULT_OUTPUT_LEN)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Checks a password against a PHC string. A damaged hash never verifies.
#[must_use]
pub fn verify_password(password: &str, phc: &str) -> bool {
    let verified = || -> Result<bool, argon2::password_hash::Error> {
        let hash = PasswordHash::new(phc)?;
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return Ok(false) };
        let algorithm = Algorithm::try_from(hash.algorithm)?;
        let version = hash.version.map(Version::try_from).transpose()?.unwrap_or_default();
        let argon = Argon2::new(algorithm, version, Params::try_from(&hash)?);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        // `Output`'s comparison is constant-time.
        Ok(argon2_output(&argon, password.as_bytes(), salt_bytes, expected.len())? == expected)
    };
    verified().unwrap_or(false)
}

thread_local! {
    /// The argon2 working memory of this thread (about 19 MiB with the default parameters),
    /// kept and reused: allocating it per check left each check's memory behind in glibc's
    /// per-thread arena (measured: +19.5 MiB per login on the same thread).
    static ARGON2_MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs argon2 with this thread's reused working memory.
fn argon2_output(argon: &Argon2<'_>, password: &[u8], salt: &[u8], len: usize) -> Result<Output, argon2::password_hash::Error> {
    ARGON2_MEMORY.with_borrow_mut(|memory| {
        let needed = argon.params().block_count();
        if memory.len() < needed {
            memory.resize(needed, Block::default());
        }
        Output::init_with(len, |out| Ok(argon.hash_password_into_with_memory(password, salt, out, &mut memory[..])?))
    })
}

/// A hash to verify against when the username does not exist, so that the answer takes as long
/// as for a real account and does not reveal which usernames exist.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

/// Runs password checks (argon2) on a few long-lived threads of their own, one check per
/// thread at a time; further checks wait in the queue.
///
/// Not tokio's blocking pool: each argon2 run allocates ~19 MiB, and glibc keeps what a thread
/// freed in that thread's malloc arena. Spread over the blocking pool's many threads, 60
/// logins kept about a gigabyte; here only these threads ever hold such memory. (No crate in
/// our tree offers a fixed pool; this one is a queue and a loop.)
pub struct PasswordCheckers {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl PasswordCheckers {
    /// Starts `threads` checker threads.
    #[must_use]
    pub fn new(threads: usize) -> PasswordCheckers {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("password-check-{i}")).spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the relay is stopping
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password checker thread");
            }
        }
        PasswordCheckers { jobs }
    }

    /// Runs `f` on a checker thread and returns its result (`None` if the checkers are gone).
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let _ = answer.send(f());
        });
        self.jobs.send(job).ok()?;
        answered.await.ok()
    }
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
/// locked out. Per desk (not a global); the failures are kept where [`FailureLog`] says — in
/// the shared database when several relay nodes serve the desk, so they count on every node.
pub struct LoginThrottle {
    log: FailureLog,
}

impl LoginThrottle {
    /// A throttle counting in `log`.
    #[must_use]
    pub fn new(log: FailureLog) -> LoginThrottle {
        LoginThrottle { log }
    }

    /// If attempts from `from`'s network must wait now, how many milliseconds more.
    pub async fn retry_after(&self, from: Option<IpAddr>, now: Timestamp) -> Result<Option<i64>, StoreError> {
        let failures = self.log.recent(Kind::Login, network(from), now, LOGIN_FAILURE_WINDOW).await?;
        let (Some(last), Some(wait)) = (failures.last(), backoff(failures.len())) else { return Ok(None) };
        let ready_at = last.0 + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        Ok((ready_at > now.0).then(|| ready_at - now.0))
    }

    /// Records a failed attempt from `from`.
    pub async fn failed(&self, from: Option<IpAddr>, now: Timestamp) -> Result<(), StoreError> {
        self.log.record(Kind::Login, network(from), now, LOGIN_FAILURE_WINDOW).await
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

    /// On the back end under test (the failures are in PostgreSQL when the test command runs
    /// the desk tests there).
    #[tokio::test]
    async fn login_throttle_backs_off_per_network_and_never_locks_an_account() {
        let dir = tempfile::tempdir().unwrap();
        let throttle = LoginThrottle::new(FailureLog::for_db(&crate::store::Db::for_tests(dir.path()).unwrap()));
        let attacker: Option<IpAddr> = Some("198.51.100.7".parse().unwrap());
        let neighbour: Option<IpAddr> = Some("198.51.100.8".parse().unwrap());
        let owner: Option<IpAddr> = Some("203.0.113.5".parse().unwrap());
        let t0 = Timestamp(1_000_000);
        for _ in 0..LOGIN_FREE_FAILURES {
            assert_eq!(throttle.retry_after(attacker, t0).await.unwrap(), None, "typos are free");
            throttle.failed(attacker, t0).await.unwrap();
        }
        assert_eq!(throttle.retry_after(attacker, t0).await.unwrap(), Some(1_000));
        assert_eq!(throttle.retry_after(neighbour, t0).await.unwrap(), Some(1_000), "the same /24 counts together");
        assert_eq!(throttle.retry_after(owner, t0).await.unwrap(), None, "other networks are never held back");
        // Each further failure doubles the wait, up to the cap.
        throttle.failed(attacker, Timestamp(t0.0 + 1_000)).await.unwrap();
        assert_eq!(throttle.retry_after(attacker, Timestamp(t0.0 + 1_000)).await.unwrap(), Some(2_000));
        assert_eq!(backoff(LOGIN_FREE_FAILURES + 40), Some(LOGIN_BACKOFF_MAX));
        assert_eq!(backoff(LOGIN_FREE_FAILURES - 1), None);
        // After the window, the network starts afresh.
        let later = Timestamp(t0.0 + 1_000 + LOGIN_FAILURE_WINDOW.as_millis() as i64);
        assert_eq!(throttle.retry_after(attacker, later).await.unwrap(), None);
    }
}
