//! Persistence: SQLite embedded (WAL, synchronous commits, one transaction per change), or
//! PostgreSQL shared by several relay nodes (`--database-url postgres://…`).
//!
//! Every change runs in one transaction, strictly after the one before: on SQLite one
//! connection behind a mutex, used from `spawn_blocking` (SQLite allows one writer at a time
//! anyway, and every statement here takes microseconds to a millisecond); on PostgreSQL each
//! write transaction first takes one advisory lock (`postgres`), so the writes of every node
//! are serial too. Either way the state machine's decisions are taken on data nobody else can
//! change before the commit. The queries (`rows`, `audit_chain`) are written once, through
//! the seam in `sql`.

pub mod audit_chain;
mod migrations;
mod postgres;
#[cfg(test)]
pub(crate) use postgres::set_reachable;
mod rows;
pub mod sql;

pub use rows::*;
pub use sql::Tx;

use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A storage failure. Internal: the API reports it as a 500 without details.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no.
    #[error("database: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had.
    #[error("database connection: {0}")]
    Pool(String),
    /// The database URL is not usable.
    #[error("{0}")]
    Config(String),
    /// A stored value does not parse (the file was edited or is damaged).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The blocking task died.
    #[error("database task failed: {0}")]
    Task(String),
    /// The database file's permissions could not be set.
    #[error("database file: {0}")]
    Io(std::io::Error),
    /// A backup or restore cannot go ahead.
    #[error("{0}")]
    Backup(String),
    /// The schema is newer than this relay.
    #[error("the database schema version {found} is newer than this relay's {supported}")]
    SchemaTooNew {
        /// In the file.
        found: usize,
        /// Known here.
        supported: usize,
    },
}

/// What PostgreSQL said (tokio-postgres' own text of a server's error is only "db error").
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// The relay's database.
#[derive(Clone)]
pub struct Db {
    backend: Arc<Backend>,
}

/// What a transaction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reads one snapshot.
    Read,
    /// Decides and writes, strictly after every other `Write`.
    Write,
    /// Appends independent rows (see [`Db::append`]).
    Append,
}

enum Backend {
    Sqlite(Mutex<Connection>),
    Postgres(Box<postgres::Pg>),
}

impl Db {
    /// Opens (creating if needed) the SQLite database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        make_private(path)?;
        let mut conn = Connection::open(path)?;
        // WAL: readers never block the writer. synchronous=FULL: a commit survives a power cut,
        // not just a crash. Foreign keys are off by default in SQLite.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement the relay runs stays prepared (`sql::Tx` uses the cache).
        conn.set_prepared_statement_cache_capacity(256);
        migrate(&mut conn)?;
        Ok(Db { backend: Arc::new(Backend::Sqlite(Mutex::new(conn))) })
    }

    /// Connects to PostgreSQL (`postgres://user:password@host/db`, TLS as its `sslmode` says;
    /// required for a server that is not on this machine) and brings the schema up to date.
    pub fn connect(url: &str) -> Result<Db, StoreError> {
        Ok(Db { backend: Arc::new(Backend::Postgres(Box::new(postgres::Pg::connect(url)?))) })
    }

    /// Opens the database an operator named: PostgreSQL if `url` is given, else the SQLite file
    /// in the data directory.
    pub fn open_configured(url: Option<&str>, data_dir: &Path) -> Result<Db, StoreError> {
        match url {
            Some(url) => Db::connect(url),
            None => Db::open(&data_dir.join(DB_FILE)),
        }
    }

    /// For tests: a new, empty database — on PostgreSQL when `DESKLINE_TEST_DATABASE_URL`
    /// names a server (a database of its own is created there for each call: the test command
    /// runs the API and desk tests this way too), else SQLite in `dir`.
    #[doc(hidden)]
    pub fn for_tests(dir: &Path) -> Result<Db, StoreError> {
        match test_database_url() {
            Some(url) => Db::connect(&url?),
            None => Db::open(&dir.join(DB_FILE)),
        }
    }

    /// Is this the shared PostgreSQL database (several nodes may use it)?
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        matches!(*self.backend, Backend::Postgres(_))
    }

    /// Runs `f` in one write transaction (taken at once: `BEGIN IMMEDIATE` on SQLite, the
    /// write lock on PostgreSQL), committed if `f` returns `Ok`, rolled back otherwise —
    /// nothing is ever half-written.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.run(Mode::Write, f))
            .await
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// Runs `f` in one transaction that appends rows no decision is taken on under the write
    /// lock (failure counters): on PostgreSQL it does not wait for the lock; on SQLite it is
    /// [`Db::write`].
    pub async fn append<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.run(Mode::Append, f))
            .await
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// Runs `f` for reading, in a transaction (so it sees one snapshot).
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.run(Mode::Read, f))
            .await
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// [`Db::write`] for code that is not async (starting up, the `admin` command), from any
    /// thread.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send,
        E: From<StoreError> + Send,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send,
    {
        self.run_blocking(Mode::Write, f)
    }

    /// [`Db::run`] from any thread, async code's included.
    fn run_blocking<T, E, F>(&self, mode: Mode, f: F) -> Result<T, E>
    where
        T: Send,
        E: From<StoreError> + Send,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send,
    {
        match &*self.backend {
            Backend::Sqlite(_) => self.run(mode, f),
            // PostgreSQL's client is driven by the database's own runtime, which a thread
            // running async code must not block on: a thread of its own does.
            Backend::Postgres(_) => std::thread::scope(|s| {
                s.spawn(|| self.run(mode, f))
                    .join()
                    .unwrap_or_else(|_| Err(E::from(StoreError::Task("the database thread panicked".into()))))
            }),
        }
    }

    /// Runs `f` in a transaction, on the calling thread (which may block).
    fn run<T, E, F>(&self, mode: Mode, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&Tx<'_>) -> Result<T, E>,
    {
        match &*self.backend {
            Backend::Sqlite(conn) => {
                let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let behavior = if mode == Mode::Read { TransactionBehavior::Deferred } else { TransactionBehavior::Immediate };
                let tx = guard.transaction_with_behavior(behavior).map_err(StoreError::from)?;
                let value = f(&Tx::sqlite(&tx))?;
                if mode != Mode::Read {
                    tx.commit().map_err(StoreError::from)?;
                }
                Ok(value)
            }
            Backend::Postgres(pg) => pg.run(mode, f),
        }
    }

    /// Tells every relay node sharing this PostgreSQL database `payload` (see
    /// `postgres::Pg::notify`); nothing to do for a relay alone on SQLite.
    pub fn notify(&self, payload: String) {
        if let Backend::Postgres(pg) = &*self.backend {
            pg.notify(payload);
        }
    }

    /// What the relay nodes sharing this PostgreSQL database notify (see
    /// `postgres::Pg::listen`); `None` for a relay alone on SQLite.
    #[must_use]
    pub fn listen(&self) -> Option<tokio::sync::mpsc::Receiver<Option<String>>> {
        match &*self.backend {
            Backend::Postgres(pg) => Some(pg.listen()),
            Backend::Sqlite(_) => None,
        }
    }

    /// Merges SQLite's write-ahead log into the database file and empties it: what a relay
    /// does last when it stops, so the file alone is the whole database. (Nothing to do on
    /// PostgreSQL.)
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if let Backend::Sqlite(conn) = &*self.backend {
            let conn = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// The audit log's last event and its hash, for the log (`audit_chain`).
    pub fn audit_head(&self) -> Result<String, StoreError> {
        let head = self.run_blocking(Mode::Read, audit_chain::head)?;
        Ok(match head {
            None => "empty".to_owned(),
            Some(audit_chain::Head { id, hash: Some(hash) }) => format!("event {id}, sha256 {}", hex::encode(hash)),
            Some(audit_chain::Head { id, hash: None }) => format!("event {id}, from before the chain"),
        })
    }

    /// Checks the audit log's hash chain (in one snapshot: a running relay's too).
    ///
    /// # Errors
    /// The database cannot be read (`Err`); the chain is broken (`Ok(Err(_))`, naming where).
    pub fn verify_audit(&self) -> Result<Result<audit_chain::Verified, audit_chain::Broken>, StoreError> {
        self.run_blocking(Mode::Read, audit_chain::verify)
    }
}

/// For tests: a URL of a new, empty PostgreSQL database on the server
/// `DESKLINE_TEST_DATABASE_URL` names (`None`: it names none; scripts/with-postgres.sh starts
/// one).
#[doc(hidden)]
#[must_use]
pub fn test_database_url() -> Option<Result<String, StoreError>> {
    let admin = std::env::var("DESKLINE_TEST_DATABASE_URL").ok().filter(|url| !url.is_empty())?;
    Some(postgres::create_database(&admin))
}

/// The database file's name in the data directory.
pub const DB_FILE: &str = "deskline.db";

/// Copies the database `db` — which a running relay may be writing meanwhile — into the new
/// file `to`, consistently: SQLite's online backup API copies it page by page and starts over
/// when a write changes a page already copied, so the copy is the database as of one moment.
/// The copy is checked (`integrity_check`) and made private like the database. Returns the
/// copy's schema version.
pub fn backup(db: &Path, to: &Path) -> Result<usize, StoreError> {
    if !db.exists() {
        return Err(StoreError::Backup(format!("no database at {}", db.display())));
    }
    if to.exists() {
        return Err(StoreError::Backup(format!("{} exists; back up to a new file", to.display())));
    }
    let source = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    source.busy_timeout(std::time::Duration::from_secs(5))?;
    make_private(to)?;
    let mut copy = Connection::open(to)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy)?;
        // 256 pages (1 MiB) per step with a pause between: the relay's writes go on meanwhile.
        backup.run_to_completion(256, std::time::Duration::from_millis(5), None)?;
    }
    check_copy(&copy)
}

/// Checks the audit log's hash chain of the SQLite database `db` (a running relay's too: it
/// is read in one snapshot).
///
/// # Errors
/// The database cannot be read (`Err`); the chain is broken (`Ok(Err(_))`, naming where).
pub fn verify_audit(db: &Path) -> Result<Result<audit_chain::Verified, audit_chain::Broken>, StoreError> {
    if !db.exists() {
        return Err(StoreError::Backup(format!("no database at {}", db.display())));
    }
    let mut conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let tx = conn.transaction()?;
    audit_chain::verify(&Tx::sqlite(&tx))
}

/// Restores a backup into `data_dir`, which must not hold a database yet (a new or emptied
/// data directory: a restore never overwrites). The backup is checked first; the restored
/// database is brought up to this relay's schema when the relay opens it.
pub fn restore(from: &Path, data_dir: &Path) -> Result<usize, StoreError> {
    let target = data_dir.join(DB_FILE);
    if target.exists() {
        return Err(StoreError::Backup(format!(
            "{} already has a database; restore into a new or empty data directory",
            data_dir.display()
        )));
    }
    let source = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let version = check_copy(&source)?;
    make_private(&target)?;
    let mut restored = Connection::open(&target)?;
    rusqlite::backup::Backup::new(&source, &mut restored)?.run_to_completion(256, std::time::Duration::ZERO, None)?;
    check_copy(&restored)?;
    drop(restored);
    give_to_owner_of(&target, data_dir)?;
    Ok(version)
}

/// A restore run as root for a service user (`deskline` owns `/var/lib/deskline`) leaves the
/// database to that user, or the relay could not open it.
fn give_to_owner_of(file: &Path, dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let (owner, current) = (std::fs::metadata(dir).map_err(StoreError::Io)?, std::fs::metadata(file).map_err(StoreError::Io)?);
    if (owner.uid(), owner.gid()) != (current.uid(), current.gid()) {
        std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid()))
            .map_err(|e| StoreError::Backup(format!("cannot give {} to the data directory's owner: {e}", file.display())))?;
    }
    Ok(())
}

/// A copy must be a sound Deskline database this relay can read: returns its schema version.
fn check_copy(conn: &Connection) -> Result<usize, StoreError> {
    let not_ours = |e: rusqlite::Error| StoreError::Backup(format!("not a Deskline database: {e}"));
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(not_ours)?;
    if integrity != "ok" {
        return Err(StoreError::Backup(format!("the copy is damaged: {integrity}")));
    }
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('technicians', 'sessions', 'audit_events')", [], |r| r.get(0))
        .map_err(not_ours)?;
    if version == 0 || tables != 3 {
        return Err(StoreError::Backup("not a Deskline database (no Deskline tables)".into()));
    }
    let supported = migrations::MIGRATIONS.len();
    if version > supported {
        return Err(StoreError::SchemaTooNew { found: version, supported });
    }
    Ok(version)
}

/// The database holds password hashes and session codes: readable by its owner only, even
/// inside a private directory. SQLite gives its `-wal` and `-shm` files the database file's
/// mode, so creating the file 0600 (or setting it, for a database from an older version)
/// covers them; existing ones are set too.
fn make_private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(StoreError::Io)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StoreError::Io(e)),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = migrations::MIGRATIONS.len();
    if current > supported {
        return Err(StoreError::SchemaTooNew { found: current, supported });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    for (i, sql) in migrations::MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()?;
    Ok(())
}
