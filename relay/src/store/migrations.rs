//! Versioned schema migrations, applied in order at start.
//!
//! Hand-written rather than a migration crate: SQLite's `PRAGMA user_version` already is the
//! version table, and the loop that applies the missing steps in one transaction is a dozen
//! lines. The SQL sticks to what SQLite and PostgreSQL both accept (plain types, partial
//! indexes); [`for_postgres`] makes the few differences (types, the audit log's triggers).

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a released entry:
/// append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the service desk.
    r#"
    CREATE TABLE technicians (
        id            INTEGER PRIMARY KEY,
        username      TEXT    NOT NULL UNIQUE,
        display_name  TEXT    NOT NULL,
        password_hash TEXT    NOT NULL,
        role          TEXT    NOT NULL CHECK (role IN ('admin', 'technician')),
        created_at    BIGINT  NOT NULL
    );

    CREATE TABLE api_tokens (
        token_hash    TEXT    PRIMARY KEY,
        technician_id INTEGER NOT NULL REFERENCES technicians(id),
        created_at    BIGINT  NOT NULL,
        expires_at    BIGINT  NOT NULL
    );
    CREATE INDEX api_tokens_expiry ON api_tokens(expires_at);

    CREATE TABLE channels (
        id                   INTEGER PRIMARY KEY,
        name                 TEXT    NOT NULL UNIQUE,
        session_expiry_secs  BIGINT  NOT NULL CHECK (session_expiry_secs > 0),
        consent_timeout_secs BIGINT  NOT NULL CHECK (consent_timeout_secs > 0),
        created_at           BIGINT  NOT NULL
    );

    CREATE TABLE channel_members (
        channel_id    INTEGER NOT NULL REFERENCES channels(id),
        technician_id INTEGER NOT NULL REFERENCES technicians(id),
        PRIMARY KEY (channel_id, technician_id)
    );

    CREATE TABLE sessions (
        id                     INTEGER PRIMARY KEY,
        channel_id             INTEGER NOT NULL REFERENCES channels(id),
        kind                   TEXT    NOT NULL CHECK (kind IN ('link', 'pin')),
        name                   TEXT    NOT NULL,
        state                  TEXT    NOT NULL
                               CHECK (state IN ('waiting', 'active', 'in_queue', 'expired', 'closed')),
        link_token             TEXT    NOT NULL UNIQUE,
        pin                    TEXT,
        assigned_technician_id INTEGER REFERENCES technicians(id),
        invited                TEXT    NOT NULL,
        consent                TEXT    NOT NULL,
        agent                  TEXT,
        deleted                INTEGER NOT NULL DEFAULT 0,
        created_at             BIGINT  NOT NULL,
        updated_at             BIGINT  NOT NULL,
        expires_at             BIGINT  NOT NULL
    );
    CREATE INDEX sessions_channel ON sessions(channel_id);
    CREATE INDEX sessions_assigned ON sessions(assigned_technician_id);
    CREATE INDEX sessions_live_expiry ON sessions(expires_at)
        WHERE state IN ('waiting', 'active', 'in_queue');
    -- A PIN identifies one live session: unique among them, free again afterwards.
    CREATE UNIQUE INDEX sessions_live_pin ON sessions(pin)
        WHERE pin IS NOT NULL AND state IN ('waiting', 'active', 'in_queue') AND deleted = 0;

    CREATE TABLE audit_events (
        id         INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        at         BIGINT  NOT NULL,
        actor      TEXT    NOT NULL,
        action     TEXT    NOT NULL,
        from_state TEXT,
        to_state   TEXT    NOT NULL
    );
    CREATE INDEX audit_events_session ON audit_events(session_id, id);

    -- The audit log is append-only, enforced by the database itself.
    -- (PostgreSQL: the same with a trigger function that raises.)
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: consent per technician, and the support app's resumption secret kept with its
    // session, so a restarted relay still knows which app may come back with its consent.
    // Consent in the old one-technician form is reset: a relay being upgraded has no app
    // connected, and an app that was sharing is asked again.
    r#"
    UPDATE sessions SET consent = '{"grants":[],"pending":null,"suspended":false}'
        WHERE consent LIKE '%"status"%';
    ALTER TABLE sessions ADD COLUMN resume_hash TEXT;
    ALTER TABLE sessions ADD COLUMN resume_dropped_at BIGINT;
    "#,
    // 3: accounts an administrator can manage — a password set by someone else (the demo
    // admin's, one an admin gave) must be changed at the first sign-in; accounts can be
    // disabled; relay-wide settings (the organisation named to end users).
    r#"
    ALTER TABLE technicians ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE technicians ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 4: the audit log is hash-chained (`store::audit_chain`): each event stores the SHA-256 of
    // the one before's hash and its own content. Events written before this version keep a
    // NULL hash (the append-only triggers forbid filling it in) and precede the chain.
    r#"
    ALTER TABLE audit_events ADD COLUMN hash BLOB;
    "#,
    // 5: a second factor for technicians (`second_factor`): a TOTP secret once confirmed, one
    // being set up, the last step accepted (a code is good once), and single-use recovery
    // codes stored as SHA-256.
    r#"
    ALTER TABLE technicians ADD COLUMN totp_secret TEXT;
    ALTER TABLE technicians ADD COLUMN totp_pending TEXT;
    ALTER TABLE technicians ADD COLUMN totp_last_step BIGINT;
    CREATE TABLE recovery_codes (
        technician_id INTEGER NOT NULL REFERENCES technicians(id),
        code_hash     TEXT    NOT NULL,
        PRIMARY KEY (technician_id, code_hash)
    );
    "#,
    // 6: more about the end user's machine (signed-in user, processor, memory, start time),
    // as its support app reports it after connecting (JSON, `store::MachineRow`).
    r#"
    ALTER TABLE sessions ADD COLUMN machine TEXT;
    "#,
    // 7: the largest file a channel's sessions may pass (0: none), 2 GiB as before.
    r#"
    ALTER TABLE channels ADD COLUMN max_file_bytes BIGINT NOT NULL DEFAULT 2147483648 CHECK (max_file_bytes >= 0);
    "#,
    // 8: session recordings (`recording`): a channel records its remote sessions or not, and
    // keeps recordings for so many days (0: until deleted with their session). One row per
    // file: a recording is cut in segments at display changes and relay restarts. The files
    // are under the data directory; `ended_at` is NULL while one is being written.
    r#"
    ALTER TABLE channels ADD COLUMN record_sessions INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE channels ADD COLUMN recording_retention_days BIGINT NOT NULL DEFAULT 30
        CHECK (recording_retention_days >= 0);
    CREATE TABLE recordings (
        id          INTEGER PRIMARY KEY,
        session_id  INTEGER NOT NULL REFERENCES sessions(id),
        started_at  BIGINT  NOT NULL,
        ended_at    BIGINT,
        width       INTEGER NOT NULL,
        height      INTEGER NOT NULL,
        duration_ms BIGINT  NOT NULL DEFAULT 0,
        bytes       BIGINT  NOT NULL DEFAULT 0
    );
    CREATE INDEX recordings_session ON recordings(session_id, id);
    "#,
    // 9: failed sign-ins and session-code attempts by source network, for relay nodes sharing
    // PostgreSQL (`failures`: a relay alone on SQLite counts them in memory). Rows older than
    // their window are dropped as new ones come.
    r#"
    CREATE TABLE failures (
        kind    TEXT   NOT NULL CHECK (kind IN ('login', 'code')),
        network TEXT   NOT NULL,
        at      BIGINT NOT NULL
    );
    CREATE INDEX failures_network ON failures(kind, network, at);
    CREATE INDEX failures_at ON failures(kind, at);
    "#,
    // 10: relay nodes (`store::NodeRow`): each running node's id (random per process), where
    // apps and viewers reach it, where the other nodes reach its API (and the certificate
    // fingerprint to pin there, when it serves the relay's own), and its heartbeat; a session
    // keeps the node its app is connected to, where its media is; a recording, the node that
    // writes its file.
    r#"
    CREATE TABLE nodes (
        id          TEXT   PRIMARY KEY,
        quic        TEXT   NOT NULL,
        fingerprint TEXT   NOT NULL,
        url         TEXT   NOT NULL,
        url_pin     TEXT,
        started_at  BIGINT NOT NULL,
        beat_at     BIGINT NOT NULL
    );
    ALTER TABLE sessions ADD COLUMN node TEXT;
    ALTER TABLE recordings ADD COLUMN node TEXT;
    "#,
];

/// SQLite's append-only triggers of the audit log (migration 1) …
const SQLITE_TRIGGERS: &str = "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";

/// … and PostgreSQL's: the same refusal from a trigger function, TRUNCATE included.
const POSTGRES_TRIGGERS: &str = "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $body$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $body$;
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();";

/// Migration `i` as PostgreSQL runs it: SQLite's `INTEGER PRIMARY KEY` (a row id given when
/// none is) is an identity column, every integer is 64-bit (SQLite's always are), bytes are
/// `BYTEA`, and the audit log's triggers are PostgreSQL's.
#[must_use]
pub fn for_postgres(i: usize) -> String {
    MIGRATIONS[i]
        .replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
        .replace(SQLITE_TRIGGERS, POSTGRES_TRIGGERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_schema_differs_only_where_it_must() {
        assert!(MIGRATIONS[0].contains(SQLITE_TRIGGERS), "migration 1's triggers are found to replace");
        let all: String = (0..MIGRATIONS.len()).map(for_postgres).collect();
        for sqlite_only in ["INTEGER", "BLOB", "RAISE(ABORT"] {
            assert!(!all.contains(sqlite_only), "{sqlite_only} left for PostgreSQL");
        }
        assert_eq!(all.matches("GENERATED BY DEFAULT AS IDENTITY").count(), 5, "technicians, channels, sessions, audit events, recordings");
    }
}
