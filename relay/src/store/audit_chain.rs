//! The audit log's hash chain: evidence that the record of who did what was not changed.
//!
//! Each event stores `SHA-256("deskline-audit-v1" ‖ previous ‖ id ‖ session ‖ at ‖ actor ‖
//! action ‖ from ‖ to)`, where `previous` is the hash of the event before it (32 zero bytes for
//! the first chained event), integers are 8 big-endian bytes and texts carry a 4-byte length
//! (`0xFFFF_FFFF` for a missing one). An event edited, removed, inserted or moved breaks the
//! chain there, and [`verify`] (`deskline-relay audit verify`) names the first broken event.
//!
//! The database also refuses updates and deletes of events (triggers), so breaking the chain
//! takes someone writing the file by hand. Whoever can do that can also recompute every hash
//! after their change: the relay therefore logs the chain's head (last event and its hash) when
//! it starts and stops, and the journal — kept elsewhere — holds heads that a rewritten chain
//! would not match. Events written before schema version 4 have no hash and precede the chain.

use super::StoreError;
use super::sql::Tx;
use sha2::{Digest as _, Sha256};

/// What one event's hash covers.
#[derive(Debug, Clone)]
pub struct ChainRow {
    /// The event's id (its place in the log).
    pub id: i64,
    /// Its session.
    pub session_id: i64,
    /// When (milliseconds).
    pub at: i64,
    /// Who, as stored (JSON).
    pub actor: String,
    /// What, as stored (JSON).
    pub action: String,
    /// The state before.
    pub from_state: Option<String>,
    /// The state after.
    pub to_state: String,
}

impl ChainRow {
    /// This event's hash, after the event whose hash is `previous`.
    #[must_use]
    pub fn hash(&self, previous: Option<&[u8; 32]>) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"deskline-audit-v1");
        h.update(previous.unwrap_or(&[0; 32]));
        for n in [self.id, self.session_id, self.at] {
            h.update(n.to_be_bytes());
        }
        for text in [Some(&self.actor), Some(&self.action), self.from_state.as_ref(), Some(&self.to_state)] {
            match text {
                Some(t) => {
                    h.update(u32::try_from(t.len()).unwrap_or(u32::MAX - 1).to_be_bytes());
                    h.update(t.as_bytes());
                }
                None => h.update(u32::MAX.to_be_bytes()),
            }
        }
        h.finalize().into()
    }
}

/// A chain that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Events checked against the chain.
    pub chained: u64,
    /// Events from before the chain existed (schema version 4), not covered.
    pub unchained: u64,
    /// The last event's id and hash (what the relay logs, to compare later).
    pub head: Option<(i64, [u8; 32])>,
}

/// Where the chain breaks first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit log is broken at event {id} (session {session_id}): {reason}")]
pub struct Broken {
    /// The first event that does not follow from the ones before.
    pub id: i64,
    /// Its session.
    pub session_id: i64,
    /// What is wrong.
    pub reason: String,
}

/// The log's last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its id.
    pub id: i64,
    /// Its hash (`None` for an event from before the chain).
    pub hash: Option<Vec<u8>>,
}

impl Head {
    /// The hash the next event chains to.
    #[must_use]
    pub fn chained(&self) -> Option<&[u8; 32]> {
        self.hash.as_deref().and_then(|h| h.try_into().ok())
    }
}

/// The last event, without checking anything (cheap: what the relay logs, and what a new
/// event chains to).
///
/// # Errors
/// The database cannot be read.
pub fn head(tx: &Tx<'_>) -> Result<Option<Head>, StoreError> {
    tx.query_opt("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1", &[])?
        .map(|r| Ok(Head { id: r.get(0)?, hash: r.get(1)? }))
        .transpose()
}

/// Walks the whole log in order and recomputes every hash.
///
/// # Errors
/// The database cannot be read (`Err`), or the chain is broken (`Ok(Err(Broken))`).
pub fn verify(tx: &Tx<'_>) -> Result<Result<Verified, Broken>, StoreError> {
    let rows = tx.query("SELECT id, session_id, at, actor, action, from_state, to_state, hash FROM audit_events ORDER BY id", &[])?;
    let mut report = Verified { chained: 0, unchained: 0, head: None };
    let mut previous_id = 0;
    let mut previous_hash: Option<[u8; 32]> = None;
    for r in &rows {
        let row = ChainRow {
            id: r.get(0)?,
            session_id: r.get(1)?,
            at: r.get(2)?,
            actor: r.get(3)?,
            action: r.get(4)?,
            from_state: r.get(5)?,
            to_state: r.get(6)?,
        };
        let stored: Option<Vec<u8>> = r.get(7)?;
        let broken = |reason: &str| Ok(Err(Broken { id: row.id, session_id: row.session_id, reason: reason.to_owned() }));
        if row.id != previous_id + 1 {
            return broken(&format!("events {} to {} before it are missing", previous_id + 1, row.id - 1));
        }
        previous_id = row.id;
        let Some(stored) = stored else {
            if report.chained > 0 {
                return broken("its hash was removed");
            }
            report.unchained += 1;
            continue;
        };
        let expected = row.hash(previous_hash.as_ref());
        if stored[..] != expected[..] {
            return broken("it was changed, or the event before it was");
        }
        report.chained += 1;
        previous_hash = Some(expected);
        report.head = Some((row.id, expected));
    }
    Ok(Ok(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> ChainRow {
        ChainRow {
            id,
            session_id: 1,
            at: 1000,
            actor: "{}".into(),
            action: "{}".into(),
            from_state: None,
            to_state: "waiting".into(),
        }
    }

    /// A database upgraded from schema 3: its events have no hash and precede the chain, which
    /// starts with the first event written after; a hash removed later is a break.
    #[test]
    fn events_from_before_the_chain_are_counted_and_a_removed_hash_breaks_it() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap(); // events without their sessions
        let migrations = super::super::migrations::MIGRATIONS;
        for sql in &migrations[..3] {
            conn.execute_batch(sql).unwrap();
        }
        let insert = |r: &ChainRow, hash: Option<[u8; 32]>| {
            conn.execute(
                "INSERT INTO audit_events (id, session_id, at, actor, action, from_state, to_state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![r.id, r.session_id, r.at, r.actor, r.action, r.from_state, r.to_state],
            )
            .unwrap();
            if let Some(h) = hash {
                conn.execute("DROP TRIGGER IF EXISTS audit_events_no_update", []).unwrap();
                conn.execute("UPDATE audit_events SET hash = ?1 WHERE id = ?2", rusqlite::params![&h[..], r.id]).unwrap();
            }
        };
        insert(&row(1), None);
        insert(&row(2), None);
        conn.execute_batch(migrations[3]).unwrap();
        let first = row(3).hash(None);
        insert(&row(3), Some(first));
        insert(&row(4), Some(row(4).hash(Some(&first))));
        let verify_now = |conn: &mut rusqlite::Connection| {
            let tx = conn.transaction().unwrap();
            verify(&Tx::sqlite(&tx)).unwrap()
        };
        let verified = verify_now(&mut conn).unwrap();
        assert_eq!((verified.chained, verified.unchained), (2, 2));
        assert_eq!(verified.head, Some((4, row(4).hash(Some(&first)))));
        conn.execute("UPDATE audit_events SET hash = NULL WHERE id = 4", []).unwrap();
        assert_eq!(verify_now(&mut conn).unwrap_err().reason, "its hash was removed");
    }

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let base = row(1).hash(None);
        let changed = [
            ChainRow { id: 2, ..row(1) },
            ChainRow { session_id: 2, ..row(1) },
            ChainRow { at: 1001, ..row(1) },
            ChainRow { actor: "{ }".into(), ..row(1) },
            ChainRow { action: "[]".into(), ..row(1) },
            ChainRow { from_state: Some(String::new()), ..row(1) },
            ChainRow { to_state: "active".into(), ..row(1) },
        ];
        for c in changed {
            assert_ne!(c.hash(None), base, "{c:?}");
        }
        assert_ne!(row(1).hash(Some(&[1; 32])), base);
        // Lengths separate the texts: moving a character from one to the next changes the hash.
        let a = ChainRow { actor: "ab".into(), action: "c".into(), ..row(1) };
        let b = ChainRow { actor: "a".into(), action: "bc".into(), ..row(1) };
        assert_ne!(a.hash(None), b.hash(None));
    }
}
