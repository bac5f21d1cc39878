//! The PostgreSQL back end: a pool of tokio-postgres connections (deadpool-postgres), driven
//! by a small runtime of the database's own.
//!
//! The desk's transactions are synchronous closures (see `sql`); they run on a blocking
//! thread that waits on each statement. The connections' tasks live on this module's own
//! runtime (one worker thread), so they make progress whatever the caller's runtime is doing —
//! a test's single-threaded runtime blocked in a `*_blocking` call included.
//!
//! Writes are serial across every node: each write transaction first takes one transaction
//! advisory lock (`pg_advisory_xact_lock`, released at commit or rollback). That is what
//! SQLite's single writer gave the desk — decisions on data nobody changes before the commit,
//! an audit chain whose next event follows the last — with PostgreSQL as the one arbiter, no
//! consensus of our own. Reads take a repeatable-read, read-only snapshot and wait for nobody.
//! A change takes a few milliseconds, so one lock carries hundreds of changes a second: far
//! beyond a help desk's rate (`bench` measures it).

use super::{Mode, StoreError};
use super::migrations::{MIGRATIONS, for_postgres};
use super::sql::Tx;
use deadpool_postgres::tokio_postgres::IsolationLevel;
use std::time::Duration;

/// The advisory lock every write transaction takes ("deskline" in ASCII).
const WRITE_LOCK: i64 = 0x6465_736b_6c69_6e65;
/// Connections per node: reads run side by side; writes wait for the lock anyway.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection, or for one to be made, before it fails.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);

pub(super) struct Pg {
    pool: deadpool_postgres::Pool,
    /// For the listening connection, which is not the pool's.
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Payloads to notify, in order (see [`Pg::notify`]).
    notices: tokio::sync::mpsc::UnboundedSender<String>,
    /// `None` only while being dropped.
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Pg {
    fn drop(&mut self) {
        // A runtime cannot be dropped where blocking is not allowed (a relay's last `Db` may
        // go from async code): let its thread wind down by itself.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Pg {
    /// Connects, checks the connection is protected as it must be, and migrates.
    pub(super) fn connect(url: &str) -> Result<Pg, StoreError> {
        let Target { config, roots } = parse(url)?;
        check_protected(&config)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("deskline-db")
            .enable_all()
            .build()
            .map_err(StoreError::Io)?;
        let tls = tls_connector(&roots)?;
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            tls.clone(),
            deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECTION_WAIT))
            .create_timeout(Some(CONNECTION_WAIT))
            .build()
            .map_err(|e| StoreError::Pool(with_causes(&e)))?;
        let (notices, queue) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(send_notices(pool.clone(), queue));
        let pg = Pg { pool, config, tls, notices, rt: Some(rt) };
        // A thread of its own: `connect` may be called from async code.
        std::thread::scope(|s| s.spawn(|| pg.migrate()).join()).map_err(|_| StoreError::Task("migration panicked".into()))??;
        Ok(pg)
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.as_ref().expect("the database runtime runs until dropped").handle()
    }

    /// Runs `f` in a transaction on the calling thread, which must not be running async code.
    pub(super) fn run<T, E, F>(&self, mode: Mode, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&Tx<'_>) -> Result<T, E>,
    {
        let rt = self.handle();
        let mut client = rt.block_on(self.pool.get()).map_err(|e| StoreError::Pool(with_causes(&e)))?;
        let tx = rt
            .block_on(async {
                let builder = client.build_transaction();
                let tx = if mode == Mode::Read {
                    builder.isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?
                } else {
                    builder.isolation_level(IsolationLevel::ReadCommitted).start().await?
                };
                if mode == Mode::Write {
                    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]).await?;
                }
                Ok::<_, tokio_postgres::Error>(tx)
            })
            .map_err(StoreError::from)?;
        let tx = Tx::postgres(tx, rt);
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Tells every node listening (this one included) `payload`, after the notices this node
    /// sent before it. Best effort: a notice is lost if the database cannot be reached (the
    /// nodes' listeners then resynchronise when they reconnect).
    pub(super) fn notify(&self, payload: String) {
        let _ = self.notices.send(payload);
    }

    /// Every payload any node notifies from now on, in the order the database delivers them;
    /// `None` after the listening connection was lost and made again (notices may have been
    /// missed meanwhile: reload what matters).
    pub(super) fn listen(&self) -> tokio::sync::mpsc::Receiver<Option<String>> {
        let (out, received) = tokio::sync::mpsc::channel(crate::limits::EVENT_BUFFER);
        self.handle().spawn(listen(self.config.clone(), self.tls.clone(), out));
        received
    }

    /// Brings the schema up to date, under the write lock: nodes starting together migrate
    /// once. The version is kept in a table (SQLite keeps it in `PRAGMA user_version`).
    fn migrate(&self) -> Result<(), StoreError> {
        self.run(Mode::Write, |tx| {
            tx.batch("CREATE TABLE IF NOT EXISTS deskline_schema (version BIGINT NOT NULL)")?;
            let current = match tx.query_opt("SELECT version FROM deskline_schema", &[])? {
                Some(row) => usize::try_from(row.get::<i64>(0)?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                None => {
                    tx.execute("INSERT INTO deskline_schema (version) VALUES (0)", &[])?;
                    0
                }
            };
            if current > MIGRATIONS.len() {
                return Err(StoreError::SchemaTooNew { found: current, supported: MIGRATIONS.len() });
            }
            for i in current..MIGRATIONS.len() {
                tx.batch(&for_postgres(i))?;
                tx.execute("UPDATE deskline_schema SET version = ?1", &[&i64::try_from(i + 1).unwrap_or(i64::MAX)])?;
            }
            Ok(())
        })
    }
}

/// The channel the nodes' notices travel on.
const NOTICES: &str = "deskline_events";
/// How long a lost listening connection waits before it is made again.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// Sends queued notices one after another, so they arrive in the order they were sent.
async fn send_notices(pool: deadpool_postgres::Pool, mut queue: tokio::sync::mpsc::UnboundedReceiver<String>) {
    while let Some(payload) = queue.recv().await {
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client.execute("SELECT pg_notify($1, $2)", &[&NOTICES, &payload]).await.map_err(|e| e.to_string())
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, "cannot tell the other relay nodes about a change");
        }
    }
}

/// Keeps one connection listening for notices and passes them on, until `out` is dropped.
async fn listen(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    out: tokio::sync::mpsc::Sender<Option<String>>,
) {
    use tokio_postgres::AsyncMessage;
    let mut first = true;
    while !out.is_closed() {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let (payloads, mut received) = tokio::sync::mpsc::unbounded_channel();
                // The connection must be polled for the client's LISTEN to go out, and it
                // yields the notifications.
                let driver = tokio::spawn(async move {
                    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if payloads.send(n.payload().to_owned()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the relay nodes' notices: connection lost");
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {NOTICES}")).await {
                    Ok(()) => {
                        if !std::mem::take(&mut first) && out.send(None).await.is_err() {
                            return;
                        }
                        while let Some(payload) = received.recv().await {
                            if out.send(Some(payload)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "the relay nodes' notices: cannot listen"),
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "the relay nodes' notices: cannot connect"),
        }
        first = false;
        tokio::time::sleep(RELISTEN_AFTER).await;
    }
}

/// An error and its causes, `: `-separated: why a connection failed is in the causes (the
/// pool says it could not connect; the TLS handshake under it says the certificate's issuer
/// is unknown), and an operator needs both.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        // Some errors say their cause in their own message too.
        let said = c.to_string();
        if !text.ends_with(&said) {
            text = format!("{text}: {said}");
        }
        cause = c.source();
    }
    text
}

/// A database URL as this relay reads it.
struct Target {
    config: tokio_postgres::Config,
    /// What the server's certificate is checked against.
    roots: Roots,
}

#[derive(Debug, PartialEq)]
enum Roots {
    /// The system's trusted roots (`sslrootcert` absent, or `sslrootcert=system` as in libpq).
    System,
    /// Only the CA certificates in this PEM file (`sslrootcert=FILE`: a private CA, such as a
    /// cloud provider's for its managed PostgreSQL).
    File(std::path::PathBuf),
}

/// Reads a database URL — `postgres://…?k=v&…` or libpq's `key=value …` pairs — as
/// tokio-postgres does, plus the libpq options it lacks, so that an operator's URL from
/// `psql` works here too: `sslrootcert`, and `sslmode=verify-ca` / `verify-full`. Deskline
/// always checks the server's certificate and name when it uses TLS, so `require` and both
/// `verify-*` modes mean the same here: libpq's `verify-full`.
fn parse(url: &str) -> Result<Target, StoreError> {
    let (rest, own) = take_options(url, &["sslmode", "sslrootcert"]);
    let mut config: tokio_postgres::Config =
        rest.parse().map_err(|e| StoreError::Config(format!("the database URL does not parse: {e}")))?;
    let mut roots = Roots::System;
    for (key, value) in own {
        if key == "sslrootcert" {
            roots = if value == "system" { Roots::System } else { Roots::File(value.into()) };
            continue;
        }
        use tokio_postgres::config::SslMode;
        config.ssl_mode(match value.as_str() {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" | "verify-ca" | "verify-full" => SslMode::Require,
            other => {
                return Err(StoreError::Config(format!(
                    "the database URL's sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        });
    }
    Ok(Target { config, roots })
}

/// `url` without the options named `keys`, and those options' values (decoded), in order.
/// Values in libpq's pairs may not be quoted here (a path with a space goes in a URL,
/// percent-encoded).
fn take_options(url: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let mut taken = Vec::new();
    let mut take = |pair: &str, decode: bool| {
        let (key, value) = pair.split_once('=')?;
        keys.contains(&key.trim()).then(|| {
            let value = if decode {
                percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned()
            } else {
                value.trim().to_owned()
            };
            taken.push((key.trim().to_owned(), value));
        })
    };
    let rest = match url.split_once("://").and_then(|_| url.split_once('?')) {
        Some((base, query)) => {
            let kept: Vec<&str> = query.split('&').filter(|pair| take(pair, true).is_none()).collect();
            if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
        }
        None if url.contains("://") => url.to_owned(),
        None => {
            // Only the options taken are cut out: the rest stays byte for byte (a quoted
            // password may hold runs of spaces).
            let mut rest = String::with_capacity(url.len());
            let mut kept_from = 0;
            for pair in url.split_whitespace() {
                let at = pair.as_ptr().addr() - url.as_ptr().addr();
                if take(pair, false).is_some() {
                    rest.push_str(&url[kept_from..at]);
                    kept_from = at + pair.len();
                }
            }
            rest.push_str(&url[kept_from..]);
            rest
        }
    };
    (rest, taken)
}

/// For tests: creates a new, empty database on the server `admin_url` names (as a role that
/// may create databases); returns a URL for it.
pub(super) fn create_database(admin_url: &str) -> Result<String, StoreError> {
    use rand::Rng as _;
    let name = format!("deskline_test_{:016x}", rand::rng().next_u64());
    as_admin(admin_url, &format!("CREATE DATABASE {name}"))?;
    Ok(with_database(admin_url, &name))
}

/// For tests: turns every connection to the database `url` names away and ends those it has
/// (`reachable` false: the database is out of reach, as in an outage), or lets them in again.
#[cfg(test)]
pub(crate) fn set_reachable(admin_url: &str, url: &str, reachable: bool) -> Result<(), StoreError> {
    let target = parse(url)?.config;
    let name = target.get_dbname().ok_or_else(|| StoreError::Config("the URL names no database".into()))?;
    let mut sql = format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {reachable};");
    if !reachable {
        sql += &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';");
    }
    as_admin(admin_url, &sql)
}

/// Runs `sql` on the server `admin_url` names, on a connection of its own (tests' set-up).
fn as_admin(admin_url: &str, sql: &str) -> Result<(), StoreError> {
    let admin = parse(admin_url)?.config;
    let run = || -> Result<(), StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(StoreError::Io)?;
        rt.block_on(async {
            let (client, connection) = admin.connect(tokio_postgres::NoTls).await?;
            let connection = tokio::spawn(connection);
            client.batch_execute(sql).await?;
            drop(client);
            let _ = connection.await;
            Ok(())
        })
    };
    std::thread::scope(|s| s.spawn(run).join()).map_err(|_| StoreError::Task("a statement on the server panicked".into()))?
}

/// `url` naming the database `name` instead of its own (a `postgres://` URL or `key=value`
/// pairs, where the last `dbname` counts).
fn with_database(url: &str, name: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (rest, query) = rest.split_once('?').map_or((rest, None), |(r, q)| (r, Some(q)));
            let host = rest.split_once('/').map_or(rest, |(host, _)| host);
            format!("{scheme}://{host}/{name}{}", query.map(|q| format!("?{q}")).unwrap_or_default())
        }
        None => format!("{url} dbname={name}"),
    }
}

/// Database traffic leaves this machine only inside TLS with a verified certificate: a server
/// reached over TCP at an address other than loopback needs `sslmode=require` (the
/// certificate and the server's name checked against the system's trusted roots, or the CA in
/// `sslrootcert=FILE`). A Unix socket or loopback may go without.
fn check_protected(config: &tokio_postgres::Config) -> Result<(), StoreError> {
    use tokio_postgres::config::{Host, SslMode};
    if config.get_ssl_mode() == SslMode::Require {
        return Ok(());
    }
    for host in config.get_hosts() {
        let local = match host {
            #[cfg(unix)]
            Host::Unix(_) => true,
            Host::Tcp(name) => name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        };
        if !local {
            return Err(StoreError::Config(format!(
                "the database server {host:?} is not on this machine: add sslmode=require to the database URL \
                 (its certificate is checked against the system's trusted roots, or sslrootcert=FILE's)"
            )));
        }
    }
    Ok(())
}

fn tls_connector(trusted: &Roots) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    match trusted {
        Roots::System => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system store may hold a certificate rustls cannot use; the others still count.
                let _ = roots.add(cert);
            }
        }
        Roots::File(path) => {
            let bad = |e: &dyn std::fmt::Display| StoreError::Config(format!("sslrootcert={}: {e}", path.display()));
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_pointed_at_another_database() {
        assert_eq!(with_database("postgres://u:p@h:5/postgres?sslmode=require", "t"), "postgres://u:p@h:5/t?sslmode=require");
        assert_eq!(with_database("postgresql://u@h", "t"), "postgresql://u@h/t");
        let pairs = with_database("host=/tmp/x user=postgres dbname=postgres", "t");
        assert_eq!(parse(&pairs).unwrap().config.get_dbname(), Some("t"));
    }

    #[test]
    fn a_remote_server_needs_tls_and_a_local_one_does_not() {
        let check = |url: &str| check_protected(&parse(url).unwrap().config);
        assert!(check("postgres://u@127.0.0.1/d").is_ok());
        assert!(check("postgres://u@localhost:5433/d").is_ok());
        assert!(check("postgres://u@[::1]/d").is_ok());
        assert!(check("host=/run/postgresql user=u dbname=d").is_ok());
        let err = check("postgres://u@db.example.org/d").unwrap_err().to_string();
        assert!(err.contains("sslmode=require"), "{err}");
        assert!(check("postgres://u@db.example.org/d?sslmode=prefer").is_err());
        assert!(check("postgres://u@db.example.org/d?sslmode=require").is_ok());
        assert!(check("postgres://u@db.example.org/d?sslmode=verify-full").is_ok());
        assert!(check("host=db.example.org user=u sslmode=verify-ca").is_ok());
    }

    /// Against a real server inside TLS (scripts/with-postgres.sh: a CA of its own, a
    /// certificate for "localhost"): the connection is encrypted, and refused when the
    /// certificate is not one the relay trusts or names another server.
    #[test]
    #[ignore = "needs PostgreSQL serving TLS: scripts/with-postgres.sh runs it"]
    fn tls_to_the_database_is_encrypted_and_its_certificate_checked() {
        let tls_url = std::env::var("DESKLINE_TEST_TLS_DATABASE_URL").expect("run it through scripts/with-postgres.sh");
        let admin = std::env::var("DESKLINE_TEST_DATABASE_URL").unwrap();
        let fresh = create_database(&admin).unwrap();
        let url = with_database(&tls_url, parse(&fresh).unwrap().config.get_dbname().unwrap());

        let pg = Pg::connect(&url).unwrap();
        let encrypted = pg.run(Mode::Read, |tx| {
            tx.query_one("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
                .and_then(|row| Ok((row.get::<bool>(0)?, row.get::<String>(1)?)))
        });
        assert_eq!(encrypted.unwrap(), (true, "TLSv1.3".to_owned()));
        // The schema is there (migrated through TLS).
        let tables = pg.run(Mode::Read, |tx| tx.query_one("SELECT count(*) FROM sessions", &[])?.get::<i64>(0));
        assert_eq!(tables.unwrap(), 0);
        drop(pg);

        let refused = |url: &str| match Pg::connect(url) {
            Ok(_) => panic!("{url}: connected"),
            Err(e) => e.to_string(),
        };
        // The system's roots do not know the run's CA.
        let (without_ca, _) = take_options(&url, &["sslrootcert"]);
        let err = refused(&without_ca);
        assert!(err.contains("UnknownIssuer"), "{err}");
        // Another CA.
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other-ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(&other, params.self_signed(&key).unwrap().pem()).unwrap();
        let err = refused(&format!("{without_ca}&sslrootcert={}", other.display()));
        assert!(err.contains("UnknownIssuer") || err.contains("BadSignature"), "{err}");
        // The right CA, another name: the certificate is for "localhost" only.
        let err = refused(&url.replace("@localhost:", "@127.0.0.1:"));
        assert!(err.contains("not valid for name \"127.0.0.1\""), "{err}");
        // A CA file that is not there is named.
        let missing = dir.path().join("missing.pem");
        let err = refused(&format!("{without_ca}&sslrootcert={}", missing.display()));
        assert!(err.contains("missing.pem"), "{err}");
    }

    #[test]
    fn libpq_tls_options_are_read_in_both_url_forms() {
        use tokio_postgres::config::SslMode;
        let url = parse("postgres://u:p@db:5432/d?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem").unwrap();
        assert_eq!(url.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(url.roots, Roots::File("/etc/ca x.pem".into()));
        assert_eq!(url.config.get_application_name(), Some("x"));
        assert_eq!(url.config.get_dbname(), Some("d"));
        let pairs = parse("host=db user=u sslrootcert=/etc/ca.pem dbname=d sslmode=require").unwrap();
        assert_eq!(pairs.roots, Roots::File("/etc/ca.pem".into()));
        assert_eq!((pairs.config.get_ssl_mode(), pairs.config.get_dbname()), (SslMode::Require, Some("d")));
        assert_eq!(parse("postgres://u@db/d?sslrootcert=system").unwrap().roots, Roots::System);
        let (rest, _) = take_options("host=db password='a  b' sslmode=require dbname=d", &["sslmode"]);
        assert_eq!(rest, "host=db password='a  b'  dbname=d");
        assert_eq!(parse("host=db password='a  b' sslmode=require").unwrap().config.get_password(), Some(&b"a  b"[..]));
        assert_eq!(parse("postgres://u@db/d").unwrap().roots, Roots::System);
        let err = parse("postgres://u@db/d?sslmode=allow").err().unwrap().to_string();
        assert!(err.contains("sslmode=\"allow\""), "{err}");
        assert!(parse("postgres://u@db/d?nonsense=1").is_err());
    }
}
