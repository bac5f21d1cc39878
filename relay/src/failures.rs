//! Failed attempts by source network over a sliding window: what the sign-in throttle
//! (`auth::LoginThrottle`) and the session-code guard (`transport::CodeGuard`) decide on.
//!
//! A relay on SQLite is one node and keeps them in memory (a failure costs no disk write, even
//! under a flood). Relay nodes sharing PostgreSQL keep them in its `failures` table: a guesser
//! spreading attempts over several nodes meets the same limits as on one. Those rows are
//! written outside the desk's write lock (they are independent appends nobody decides on
//! under it), and each write also drops the rows that left the window.

use crate::network::Network;
use crate::store::{Db, StoreError};
use deskline_protocol::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A wrong password or second-factor code.
    Login,
    /// An unknown, expired or closed session code (PIN or link).
    Code,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::Code => "code",
        }
    }
}

/// Where failures are kept.
pub enum FailureLog {
    /// This process's memory (one node).
    Memory(Mutex<Memory>),
    /// The database every node shares.
    Shared(Db),
}

/// Failures in memory, bounded.
#[derive(Default)]
pub struct Memory {
    per_network: HashMap<(Kind, Network), VecDeque<Timestamp>>,
    all: HashMap<Kind, VecDeque<Timestamp>>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn prune(q: &mut VecDeque<Timestamp>, now: Timestamp, window: Duration) {
    while q.front().is_some_and(|t| now.0 - t.0 >= ms(window)) {
        q.pop_front();
    }
}

/// Failures over all networks kept in memory at most: counts over all networks only ever need
/// to reach a threshold (`limits::CODE_ATTACK_THRESHOLD`), far below this.
const MAX_ALL: usize = 10_000;

impl FailureLog {
    /// In memory for SQLite, in the database for PostgreSQL.
    #[must_use]
    pub fn for_db(db: &Db) -> FailureLog {
        if db.is_postgres() { FailureLog::Shared(db.clone()) } else { FailureLog::Memory(Mutex::default()) }
    }

    /// The failures of `kind` from `network` within `window` before `now`, oldest first.
    pub async fn recent(&self, kind: Kind, network: Network, now: Timestamp, window: Duration) -> Result<Vec<Timestamp>, StoreError> {
        match self {
            FailureLog::Memory(memory) => {
                let mut m = memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(q) = m.per_network.get_mut(&(kind, network)) else { return Ok(Vec::new()) };
                prune(q, now, window);
                Ok(q.iter().copied().collect())
            }
            FailureLog::Shared(db) => {
                let network = network.to_string();
                db.read(move |tx| {
                    let rows = tx.query(
                        "SELECT at FROM failures WHERE kind = ?1 AND network = ?2 AND at > ?3 ORDER BY at",
                        &[&kind.as_str(), &network, &(now.0 - ms(window))],
                    )?;
                    rows.iter().map(|r| Ok(Timestamp(r.get(0)?))).collect()
                })
                .await
            }
        }
    }

    /// How many failures of `kind` over all networks within `window` before `now`.
    pub async fn count_all(&self, kind: Kind, now: Timestamp, window: Duration) -> Result<usize, StoreError> {
        match self {
            FailureLog::Memory(memory) => {
                let mut m = memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(q) = m.all.get_mut(&kind) else { return Ok(0) };
                prune(q, now, window);
                Ok(q.len())
            }
            FailureLog::Shared(db) => {
                db.read(move |tx| {
                    let n: i64 = tx
                        .query_one("SELECT COUNT(*) FROM failures WHERE kind = ?1 AND at > ?2", &[&kind.as_str(), &(now.0 - ms(window))])?
                        .get(0)?;
                    Ok(usize::try_from(n).unwrap_or(0))
                })
                .await
            }
        }
    }

    /// Records a failure of `kind` from `network` at `now`; what is older than `window` may be
    /// forgotten.
    pub async fn record(&self, kind: Kind, network: Network, now: Timestamp, window: Duration) -> Result<(), StoreError> {
        match self {
            FailureLog::Memory(memory) => {
                let mut m = memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if m.per_network.len() > crate::limits::MAX_NETWORKS_TRACKED {
                    m.per_network.retain(|_, q| q.back().is_some_and(|t| now.0 - t.0 < ms(window)));
                }
                m.per_network.entry((kind, network)).or_default().push_back(now);
                let all = m.all.entry(kind).or_default();
                all.push_back(now);
                while all.len() > MAX_ALL {
                    all.pop_front();
                }
                Ok(())
            }
            FailureLog::Shared(db) => {
                let network = network.to_string();
                db.append(move |tx| {
                    tx.execute("DELETE FROM failures WHERE kind = ?1 AND at <= ?2", &[&kind.as_str(), &(now.0 - ms(window))])?;
                    tx.execute("INSERT INTO failures (kind, network, at) VALUES (?1, ?2, ?3)", &[&kind.as_str(), &network, &now.0])?;
                    Ok(())
                })
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        Network::of(text.parse().unwrap())
    }

    /// The same behaviour from memory and from the database (PostgreSQL when the test command
    /// runs the desk tests there).
    #[tokio::test]
    async fn failures_are_counted_per_network_and_kind_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::for_tests(dir.path()).unwrap();
        let window = Duration::from_secs(60);
        for log in [FailureLog::Memory(Mutex::default()), FailureLog::for_db(&db)] {
            let t0 = Timestamp(10_000_000);
            let (a, b) = (net("198.51.100.7"), net("203.0.113.9"));
            log.record(Kind::Code, a, t0, window).await.unwrap();
            log.record(Kind::Code, net("198.51.100.200"), Timestamp(t0.0 + 10), window).await.unwrap();
            log.record(Kind::Login, a, t0, window).await.unwrap();
            log.record(Kind::Code, b, Timestamp(t0.0 + 20), window).await.unwrap();
            let now = Timestamp(t0.0 + 1_000);
            assert_eq!(log.recent(Kind::Code, a, now, window).await.unwrap(), [t0, Timestamp(t0.0 + 10)], "one /24");
            assert_eq!(log.recent(Kind::Login, a, now, window).await.unwrap(), [t0]);
            assert_eq!(log.count_all(Kind::Code, now, window).await.unwrap(), 3);
            let later = Timestamp(t0.0 + 60_005);
            assert_eq!(log.recent(Kind::Code, a, later, window).await.unwrap(), [Timestamp(t0.0 + 10)], "the oldest left the window");
            assert_eq!(log.count_all(Kind::Code, later, window).await.unwrap(), 2);
        }
    }
}
