//! The service desk: technicians, channels and sessions, each change taken by the protocol's
//! state machine inside one database transaction, then announced to live consoles.
//!
//! This is the one place where session state changes: the HTTP API, the expiry sweep and (with
//! the transport) the QUIC endpoint all call [`Desk::act`] or its siblings.

use crate::auth::{self, LoginThrottle};
use crate::clock::Clock;
use crate::error::Error;
use crate::second_factor;
use crate::limits::{
    MAX_CONCURRENT_PASSWORD_CHECKS, MAX_CONSENT_TIMEOUT, MAX_NAME_BYTES, MAX_SESSION_EXPIRY, MIN_PASSWORD_CHARS, MIN_PASSWORD_SCORE, PIN_DRAW_ATTEMPTS, RESUME_GRACE,
    TOKEN_LIFETIME,
};
use crate::store::{self, Db, Role, SessionRow, StoreError, TechnicianRow};
use crate::views::{self, AuditEventView, ChannelView, LinkBase, RelayInfo, SessionEvent, SessionView, Settings, TechnicianView};
use deskline_protocol::limits::{CHAT_BURST, CHAT_REFILL, MAX_SESSION_NAME_BYTES};
use deskline_protocol::session::{
    Action, Actor, AuditAction, AuditEvent, Context, Directory, FileOutcome, SessionKind, SessionState, Transition, machine,
};
use deskline_protocol::{
    AppCode, AppInfo, Capabilities, ChannelId, ChatFrom, ChatLine, ConsentOutcome, DisplayInfo, LinkToken, MachineFacts, Message, Pin,
    ResumeSecret, SessionId, TechnicianId, Timestamp,
};
use rand::Rng as _;
use crate::store::Tx;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The service desk.
#[derive(Clone)]
pub struct Desk {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clock: Arc<dyn Clock>,
    public_url: String,
    events: broadcast::Sender<SessionEvent>,
    throttle: LoginThrottle,
    /// Where password checks run: at most [`MAX_CONCURRENT_PASSWORD_CHECKS`] at once.
    password_checks: auth::PasswordCheckers,
    quic: std::sync::OnceLock<QuicEndpoint>,
    /// Where session recordings are written (none: sessions are not recorded, whatever their
    /// channel says; a desk without a data directory, in tests).
    recordings: std::sync::OnceLock<std::path::PathBuf>,
    metrics: crate::metrics::Metrics,
    /// The relay-wide settings administrators change (stored; read here).
    settings: std::sync::RwLock<Settings>,
    /// The other live relay nodes' QUIC addresses that share this one's certificate (read at
    /// each heartbeat): session links list them after this node's, for apps to reconnect to
    /// when a node dies.
    peers: std::sync::RwLock<Vec<String>>,
    /// Where the other relay nodes reach this one's API, and the certificate fingerprint to pin
    /// there (`None`: the web PKI).
    node_url: std::sync::OnceLock<(String, Option<String>)>,
    /// When this node started (its first heartbeat).
    started_at: std::sync::OnceLock<Timestamp>,
    /// Whether this node's heartbeats reach the database, for judging the others' silence.
    contact: std::sync::Mutex<Contact>,
    /// The `--organisation` flag: the organisation's name until an administrator sets one.
    organisation_default: std::sync::OnceLock<String>,
    /// This process among the relay nodes sharing a PostgreSQL database (random).
    node: String,
    /// Set when the relay stops: long-lived answers (consoles' live streams) end.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Chat lines per sender and session: [`CHAT_BURST`] at once, then one per [`CHAT_REFILL`].
    chat_limits: governor::DefaultKeyedRateLimiter<(SessionId, Actor)>,
}

/// This node's own contact with the database, as its heartbeats found it. Another node's
/// silence means it died only if this node could have heard it: after the database was
/// unreachable (restarted, failed over, cut off from this node), every node's last beat is old
/// until each beats again, and this node must not take their live sessions meanwhile.
#[derive(Debug, Default)]
struct Contact {
    /// The last heartbeat failed.
    lost: bool,
    /// When a heartbeat succeeded again after one failed (`None`: none failed since start).
    back_since: Option<Timestamp>,
}

/// Where apps and native viewers reach this relay over QUIC.
#[derive(Debug, Clone)]
pub struct QuicEndpoint {
    /// `host:port`.
    pub quic: String,
    /// SHA-256 of the relay's certificate (lowercase hex), to pin.
    pub fingerprint: String,
}

/// The settings key of the organisation's name.
const ORGANISATION: &str = "organisation";
/// The settings key of "every technician signs in with a second factor" (`true`/`false`).
const REQUIRE_SECOND_FACTOR: &str = "require_second_factor";

/// The relay-wide settings as stored: the organisation's name and "a second factor is
/// required", each if set.
fn stored_settings(tx: &Tx<'_>) -> Result<(Option<String>, Option<String>), Error> {
    Ok((store::setting(tx, ORGANISATION)?, store::setting(tx, REQUIRE_SECOND_FACTOR)?))
}

/// Directory facts loaded from the store for one decision (see [`Directory`]).
struct Facts {
    admins: HashSet<TechnicianId>,
    members: HashSet<(ChannelId, TechnicianId)>,
    open: HashMap<TechnicianId, usize>,
}

impl Facts {
    /// Loads admins, the members of `channels`, and open-session counts of `technicians`.
    fn load(tx: &Tx<'_>, channels: &[ChannelId], technicians: &[TechnicianId]) -> Result<Facts, StoreError> {
        let mut members = HashSet::new();
        for &c in channels {
            for t in store::channel_members(tx, c)? {
                members.insert((c, t));
            }
        }
        let mut open = HashMap::new();
        for &t in technicians {
            open.insert(t, store::open_sessions_assigned(tx, t)?);
        }
        Ok(Facts { admins: store::admins(tx)?.into_iter().collect(), members, open })
    }
}

impl Directory for Facts {
    fn is_admin(&self, t: TechnicianId) -> bool {
        self.admins.contains(&t)
    }
    fn is_member(&self, c: ChannelId, t: TechnicianId) -> bool {
        self.members.contains(&(c, t))
    }
    fn open_sessions_assigned(&self, t: TechnicianId) -> usize {
        self.open.get(&t).copied().unwrap_or(0)
    }
}

/// The fields of a new technician.
pub struct NewTechnician {
    /// Login name.
    pub username: String,
    /// Name shown to end users.
    pub display_name: String,
    /// Password in clear (hashed here).
    pub password: String,
    /// Role.
    pub role: Role,
    /// The password was chosen by someone else (an administrator, the first start): the
    /// technician must set their own at the first sign-in.
    pub one_time: bool,
}

/// Changes to a channel's settings; `None` leaves a setting as it is.
#[derive(Default)]
pub struct ChannelPatch {
    /// New name.
    pub name: Option<String>,
    /// New session expiry.
    pub session_expiry_secs: Option<i64>,
    /// New consent timeout.
    pub consent_timeout_secs: Option<i64>,
    /// New largest file (0: none).
    pub max_file_bytes: Option<i64>,
    /// Record remote sessions, or not.
    pub record_sessions: Option<bool>,
    /// New retention of recordings, in days (0: as long as their session).
    pub recording_retention_days: Option<i64>,
}

fn check_retention(days: i64) -> Result<(), Error> {
    if !(0..=crate::limits::MAX_RECORDING_RETENTION_DAYS).contains(&days) {
        let max = crate::limits::MAX_RECORDING_RETENTION_DAYS;
        return Err(Error::bad("invalid_field", format!("recording_retention_days: must be between 0 (as long as the session) and {max}")));
    }
    Ok(())
}

fn check_file_limit(bytes: i64) -> Result<(), Error> {
    let max = i64::try_from(crate::limits::MAX_FILE_BYTES_SETTING).unwrap_or(i64::MAX);
    if !(0..=max).contains(&bytes) {
        return Err(Error::bad("invalid_field", format!("max_file_bytes: must be between 0 (no files) and {max}")));
    }
    Ok(())
}

fn check_name(field: &'static str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::bad("invalid_field", format!("{field}: must not be empty")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::bad("invalid_field", format!("{field}: at most {MAX_NAME_BYTES} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::bad("invalid_field", format!("{field}: control characters are not allowed")));
    }
    Ok(())
}

fn check_duration(field: &'static str, secs: i64, max: Duration) -> Result<(), Error> {
    let max_secs = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
    if !(1..=max_secs).contains(&secs) {
        return Err(Error::bad("invalid_field", format!("{field}: must be between 1 and {max_secs} seconds")));
    }
    Ok(())
}

fn secs(d: i64) -> Duration {
    Duration::from_secs(u64::try_from(d).unwrap_or(0))
}

impl Desk {
    /// A desk on this database, clock and public URL (links are built on it).
    pub fn new(db: Db, clock: Arc<dyn Clock>, public_url: String) -> Desk {
        let (events, _) = broadcast::channel(crate::limits::EVENT_BUFFER);
        let throttle = LoginThrottle::new(crate::failures::FailureLog::for_db(&db));
        Desk {
            inner: Arc::new(Inner {
                db,
                clock,
                public_url,
                events,
                throttle,
                password_checks: auth::PasswordCheckers::new(MAX_CONCURRENT_PASSWORD_CHECKS),
                quic: std::sync::OnceLock::new(),
                recordings: std::sync::OnceLock::new(),
                metrics: crate::metrics::Metrics::new(),
                settings: std::sync::RwLock::new(Settings { organisation: String::new(), require_second_factor: false }),
                organisation_default: std::sync::OnceLock::new(),
                started_at: std::sync::OnceLock::new(),
                contact: std::sync::Mutex::new(Contact::default()),
                node_url: std::sync::OnceLock::new(),
                peers: std::sync::RwLock::new(Vec::new()),
                node: crate::nodes::new_node_id(),
                stopping: tokio::sync::watch::Sender::new(false),
                chat_limits: governor::RateLimiter::keyed(
                    governor::Quota::with_period(CHAT_REFILL)
                        .expect("a period")
                        .allow_burst(std::num::NonZeroU32::new(CHAT_BURST).expect("a burst")),
                ),
            }),
        }
    }

    /// Sets where session recordings are written (once; the directory exists).
    pub fn set_recordings_dir(&self, dir: std::path::PathBuf) {
        let _ = self.inner.recordings.set(dir);
    }

    /// Where session recordings are written, if anywhere.
    #[must_use]
    pub fn recordings_dir(&self) -> Option<&std::path::Path> {
        self.inner.recordings.get().map(std::path::PathBuf::as_path)
    }

    /// The current time on the desk's clock.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The database.
    #[must_use]
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// This relay's metrics.
    #[must_use]
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The metrics' exposition text; `apps` and `viewers` are what the transport has
    /// connected now.
    pub async fn render_metrics(&self, apps: i64, viewers: &[(&'static str, i64)]) -> Result<String, Error> {
        let sessions = self.db().read(|tx| Ok::<_, Error>(store::count_sessions_by_state(tx)?)).await?;
        Ok(self.inner.metrics.render(&sessions, apps, viewers))
    }

    /// Whether the database answers (the health check).
    pub async fn healthy(&self) -> Result<(), Error> {
        self.db().read(|tx| Ok::<_, Error>(tx.query_one("SELECT 1", &[]).map(|_| ())?)).await
    }

    /// The public URL links are built on.
    #[must_use]
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// What session links are built from: the public URL, and (once the QUIC endpoint runs)
    /// where apps connect and which certificate they pin.
    #[must_use]
    pub fn links(&self) -> LinkBase {
        let fragment = self
            .inner
            .quic
            .get()
            .map(|q| {
                let mut relays = vec![q.quic.clone()];
                let peers = self.inner.peers.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                relays.extend(peers.iter().filter(|p| **p != q.quic).cloned());
                format!("#quic={}&sha256={}", relays.join(","), q.fingerprint)
            })
            .unwrap_or_default();
        LinkBase { url: self.public_url().to_owned(), fragment }
    }

    /// Records where the other relay nodes reach this one's API and the certificate to pin
    /// there (`None`: an operator's certificate, checked by the web PKI); once, at start.
    pub fn set_node_url(&self, url: String, pin: Option<String>) {
        let _ = self.inner.node_url.set((url, pin));
    }

    /// The relay node holding session `id`'s app, when that is another live node.
    pub async fn media_node_of(&self, id: SessionId) -> Result<Option<store::NodeRow>, Error> {
        match self.session_row(id).await? {
            Some(row) => self.media_elsewhere(&row).await,
            None => Ok(None),
        }
    }

    /// The relay node whose data directory holds recording `id`'s files, when that is another
    /// live node.
    pub async fn recording_node_of(&self, id: i64) -> Result<Option<store::NodeRow>, Error> {
        let (own, alive_since) = (self.node_id().to_owned(), self.others_alive_since());
        self.db()
            .read(move |tx| {
                Ok::<_, Error>(match store::recording_by_id(tx, id)?.and_then(|r| r.node) {
                    Some(n) if n != own => store::live_node(tx, &n, alive_since)?,
                    _ => None,
                })
            })
            .await
    }

    /// Records where the QUIC endpoint is (once, when it starts).
    pub fn set_quic_endpoint(&self, endpoint: QuicEndpoint) {
        let _ = self.inner.quic.set(endpoint);
    }

    /// Where the QUIC endpoint is (if it runs) and the organisation's name.
    #[must_use]
    pub fn relay_info(&self) -> Option<RelayInfo> {
        let q = self.inner.quic.get()?;
        Some(RelayInfo { organisation: self.organisation(), quic: q.quic.clone(), fingerprint: q.fingerprint.clone() })
    }

    /// The organisation named to end users.
    #[must_use]
    pub fn organisation(&self) -> String {
        self.settings().organisation
    }

    /// Loads the settings at start: the organisation's name is the one an administrator set,
    /// else `default` (the `--organisation` flag).
    pub fn load_settings_blocking(&self, default: &str) -> Result<(), Error> {
        let _ = self.inner.organisation_default.set(default.to_owned());
        let stored = self.db().write_blocking(stored_settings)?;
        self.keep_settings(stored);
        Ok(())
    }

    /// Loads the settings again (another relay node changed them).
    pub(crate) async fn reload_settings(&self) -> Result<(), Error> {
        let stored = self.db().read(stored_settings).await?;
        self.keep_settings(stored);
        Ok(())
    }

    fn keep_settings(&self, (organisation, second_factor): (Option<String>, Option<String>)) {
        let default = self.inner.organisation_default.get().cloned().unwrap_or_default();
        *self.inner.settings.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Settings {
            organisation: organisation.unwrap_or(default),
            require_second_factor: second_factor.as_deref() == Some("true"),
        };
    }

    /// The relay-wide settings.
    #[must_use]
    pub fn settings(&self) -> Settings {
        self.inner.settings.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Changes relay-wide settings (administrators). End users see a new organisation name
    /// from the next consent prompt, app connection or invite page on; a second factor
    /// required restricts, from their next request, the tokens of accounts that have none.
    pub async fn update_settings(&self, actor: &TechnicianRow, patch: deskline_api::SettingsPatch) -> Result<Settings, Error> {
        require_admin(actor)?;
        if let Some(name) = &patch.organisation {
            check_name("organisation", name)?;
        }
        if patch.require_second_factor == Some(true) && actor.totp_secret.is_none() {
            return Err(Error::conflict("second_factor_off", "set up your own second factor before requiring one of everybody"));
        }
        let mut new = self.settings();
        new.organisation = patch.organisation.clone().unwrap_or(new.organisation);
        new.require_second_factor = patch.require_second_factor.unwrap_or(new.require_second_factor);
        // Only what the patch names is stored: an organisation never set keeps following the
        // `--organisation` flag.
        self.db()
            .write(move |tx| {
                if let Some(name) = &patch.organisation {
                    store::set_setting(tx, ORGANISATION, name)?;
                }
                if let Some(required) = patch.require_second_factor {
                    store::set_setting(tx, REQUIRE_SECOND_FACTOR, if required { "true" } else { "false" })?;
                }
                Ok::<_, Error>(())
            })
            .await?;
        tracing::info!(by = %actor.username, organisation = %new.organisation, require_second_factor = new.require_second_factor, "settings changed");
        *self.inner.settings.write().unwrap_or_else(std::sync::PoisonError::into_inner) = new;
        self.tell_other_nodes(crate::nodes::Notice::Settings);
        Ok(self.settings())
    }

    /// A technician as the API shows them.
    #[must_use]
    pub fn technician_view(&self, row: &TechnicianRow) -> TechnicianView {
        views::technician(row, self.settings().require_second_factor)
    }

    /// What a signed-in account must do before anything else, if anything: set its own password
    /// (one someone else set), then set up the second factor an administrator requires. The one
    /// rule for every way in: `api::Authed` lets such a token reach only the routes that do it,
    /// and viewers (QUIC) are refused.
    #[must_use]
    pub fn restriction(&self, row: &TechnicianRow) -> Option<Error> {
        if row.must_change_password {
            Some(Error::PasswordChangeRequired)
        } else if row.totp_secret.is_none()
            && self.inner.settings.read().unwrap_or_else(std::sync::PoisonError::into_inner).require_second_factor
        {
            Some(Error::SecondFactorEnrolmentRequired)
        } else {
            None
        }
    }

    /// This process among the relay nodes sharing a PostgreSQL database.
    pub(crate) fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// Sends a live event to this node's consoles and connections.
    pub(crate) fn send_here(&self, event: SessionEvent) {
        // No subscriber is fine: nobody is watching.
        let _ = self.inner.events.send(event);
    }

    /// Live session events, for consoles.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.inner.events.subscribe()
    }

    /// The relay is stopping: live streams end (their consoles reconnect to the restarted
    /// relay) instead of holding the HTTPS drain for its whole grace.
    pub fn stop_streams(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Completes once [`Desk::stop_streams`] was called.
    pub async fn stopped(&self) {
        let mut stopping = self.inner.stopping.subscribe();
        let _ = stopping.wait_for(|s| *s).await;
    }

    pub(crate) fn announce(&self, before_channel: Option<ChannelId>, row: &SessionRow) {
        self.announce_here(before_channel, row);
        self.tell_other_nodes(crate::nodes::Notice::Session { id: row.core.id.0, before_channel: before_channel.map(|c| c.0) });
    }

    /// [`Desk::announce`] to this node's consoles and connections only.
    pub(crate) fn announce_here(&self, before_channel: Option<ChannelId>, row: &SessionRow) {
        let mut channels = vec![row.core.channel.0];
        if let Some(c) = before_channel.filter(|c| *c != row.core.channel) {
            channels.push(c.0);
        }
        let event = SessionEvent {
            live: views::LiveEvent::Session { session: Box::new(views::session(row, &self.links())) },
            channels,
            technicians: row.core.technicians().collect(),
            id: row.core.id,
            for_app: None,
        };
        self.send_here(event);
    }

    // ---- technicians and login ----

    /// Checks a password and returns a new bearer token. `from` is the client's address:
    /// failures slow down further attempts from its network (never the account itself).
    /// An account with a second factor also needs `code` (its authenticator app's, or a
    /// recovery code); a wrong one counts as a failure like a wrong password.
    pub async fn login(
        &self,
        username: String,
        password: String,
        code: Option<String>,
        from: Option<std::net::IpAddr>,
    ) -> Result<(String, TechnicianView), Error> {
        let now = self.now();
        self.not_throttled(from, now, &username).await?;
        let lookup = username.clone();
        let technician = self.db().read(move |tx| Ok::<_, Error>(store::technician_by_username(tx, &lookup)?)).await?;
        // Verify against a dummy hash when the user does not exist: same time either way.
        let hash = technician.as_ref().map(|t| t.password_hash.clone());
        let ok = self
            .check_password(move || auth::verify_password(&password, hash.as_deref().unwrap_or_else(|| auth::dummy_hash())))
            .await?;
        let Some(technician) = technician.filter(|_| ok) else {
            self.failed_attempt(from, now, &username, "login failed: wrong username or password").await;
            return Err(Error::Unauthorized("wrong username or password"));
        };
        if technician.disabled {
            tracing::warn!(?from, %username, "login refused: the account is disabled");
            return Err(Error::Forbidden("this account is disabled; ask an administrator".into()));
        }
        let id = technician.id;
        let second_factor = technician.totp_secret.is_some();
        if second_factor && code.is_none() {
            tracing::info!(?from, %username, "login asks for the second factor");
            return Err(Error::SecondFactorRequired);
        }
        let token = self
            .db()
            .write(move |tx| {
                if second_factor && !check_second_factor(tx, id, code.as_deref().unwrap_or_default(), now)? {
                    return Ok(None);
                }
                Ok::<_, Error>(Some(issue_token(tx, id, now)?))
            })
            .await?;
        let Some(token) = token else {
            self.failed_attempt(from, now, &username, "login failed: wrong second-factor code").await;
            return Err(Error::WrongSecondFactor);
        };
        tracing::info!(?from, %username, one_time = technician.must_change_password, second_factor, "technician signed in");
        Ok((token, self.technician_view(&technician)))
    }

    /// Refuses an attempt from a network that failed too often (see [`LoginThrottle`]).
    async fn not_throttled(&self, from: Option<std::net::IpAddr>, now: Timestamp, username: &str) -> Result<(), Error> {
        let Some(ms) = self.inner.throttle.retry_after(from, now).await? else { return Ok(()) };
        let retry_after_secs = u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1);
        tracing::warn!(?from, %username, retry_after_secs, "refused: too many failed sign-in attempts from this network");
        self.inner.metrics.limit_tripped("login");
        Err(Error::RateLimited { retry_after_secs })
    }

    /// Counts a wrong password or code against `from`'s network, and says so in the log.
    async fn failed_attempt(&self, from: Option<std::net::IpAddr>, now: Timestamp, username: &str, what: &'static str) {
        if let Err(e) = self.inner.throttle.failed(from, now).await {
            tracing::error!(error = %e, "cannot count a failed sign-in");
        }
        self.inner.metrics.failed_logins.inc();
        tracing::warn!(?from, %username, "{what}");
    }

    /// Changes the signed-in technician's own password: the current one must be given (its
    /// failures are throttled like logins), the new one must be strong and different. Every
    /// token of the account dies; the new token returned replaces the caller's.
    pub async fn change_password(
        &self,
        me: &TechnicianRow,
        current: String,
        new: String,
        from: Option<std::net::IpAddr>,
    ) -> Result<(String, TechnicianView), Error> {
        let now = self.now();
        self.not_throttled(from, now, &me.username).await?;
        if new == current {
            return Err(Error::bad("same_password", "new_password: must differ from the current password"));
        }
        check_password_strength("new_password", &new, &me.username, &me.display_name)?;
        let stored = me.password_hash.clone();
        let hashed = self
            .check_password(move || auth::verify_password(&current, &stored).then(|| auth::hash_password(&new)))
            .await?;
        let Some(hash) = hashed else {
            self.failed_attempt(from, now, &me.username, "password change refused: wrong current password").await;
            return Err(Error::bad("wrong_password", "current_password: that is not your current password"));
        };
        let hash = hash.map_err(|e| Error::Internal(e.to_string()))?;
        let id = me.id;
        let (token, row) = self
            .db()
            .write(move |tx| {
                let mut row = store::technician_by_id(tx, id)?.ok_or(Error::NotFound("technician"))?;
                row.password_hash = hash;
                row.must_change_password = false;
                store::update_technician(tx, &row)?;
                store::delete_tokens_of(tx, id)?;
                Ok::<_, Error>((issue_token(tx, id, now)?, row))
            })
            .await?;
        tracing::info!(?from, username = %me.username, "technician changed their password; their other tokens are revoked");
        Ok((token, self.technician_view(&row)))
    }

    // ---- the second factor ----

    /// Starts setting up a second factor: checks the password (failures throttled like
    /// logins), keeps a new secret aside and returns it for the authenticator app. Nothing
    /// changes for signing in until [`Desk::confirm_second_factor`].
    pub async fn start_second_factor(
        &self,
        me: &TechnicianRow,
        password: String,
        from: Option<std::net::IpAddr>,
    ) -> Result<deskline_api::SecondFactorEnrolment, Error> {
        if me.totp_secret.is_some() {
            return Err(Error::conflict("second_factor_on", "a second factor is already set up; turn it off first to set up another"));
        }
        self.check_own_password(me, password, from).await?;
        let secret = second_factor::new_secret();
        let enrolment = second_factor::enrolment(&secret, &self.organisation(), &me.username)?;
        let id = me.id;
        self.db()
            .write(move |tx| {
                let mut row = store::technician_by_id(tx, id)?.ok_or(Error::NotFound("technician"))?;
                row.totp_pending = Some(secret);
                Ok::<_, Error>(store::update_technician(tx, &row)?)
            })
            .await?;
        tracing::info!(?from, username = %me.username, "technician is setting up a second factor");
        Ok(enrolment)
    }

    /// Turns the second factor on with the first code from the authenticator app. Every token
    /// of the account dies (they were issued without it); the new token and the recovery codes
    /// are returned, the codes this once.
    pub async fn confirm_second_factor(
        &self,
        me: &TechnicianRow,
        code: String,
        from: Option<std::net::IpAddr>,
    ) -> Result<deskline_api::SecondFactorConfirmed, Error> {
        let now = self.now();
        self.not_throttled(from, now, &me.username).await?;
        let id = me.id;
        let recovery_codes = second_factor::new_recovery_codes();
        let hashes = second_factor::recovery_hashes(&recovery_codes);
        let confirmed = self
            .db()
            .write(move |tx| {
                let mut row = store::technician_by_id(tx, id)?.ok_or(Error::NotFound("technician"))?;
                let Some(pending) = row.totp_pending.clone() else {
                    return Err(Error::conflict("no_second_factor_pending", "start setting up the second factor first"));
                };
                let Some(step) = second_factor::matching_step(&pending, &code, now, None)? else { return Ok(None) };
                row.totp_secret = Some(pending);
                row.totp_pending = None;
                row.totp_last_step = Some(step);
                store::update_technician(tx, &row)?;
                store::set_recovery_codes(tx, id, &hashes)?;
                store::delete_tokens_of(tx, id)?;
                Ok(Some((issue_token(tx, id, now)?, row)))
            })
            .await?;
        let Some((token, row)) = confirmed else {
            self.failed_attempt(from, now, &me.username, "second factor not confirmed: wrong code").await;
            return Err(Error::bad("wrong_code", "code: that is not the code the authenticator app shows now"));
        };
        tracing::info!(?from, username = %me.username, "technician turned their second factor on; their other tokens are revoked");
        Ok(deskline_api::SecondFactorConfirmed { token, technician: self.technician_view(&row), recovery_codes })
    }

    /// Turns one's own second factor off (password and a code), unless an administrator
    /// requires one.
    pub async fn disable_second_factor(
        &self,
        me: &TechnicianRow,
        password: String,
        code: String,
        from: Option<std::net::IpAddr>,
    ) -> Result<TechnicianView, Error> {
        if me.totp_secret.is_none() {
            return Err(Error::conflict("second_factor_off", "this account has no second factor"));
        }
        if self.settings().require_second_factor {
            return Err(Error::conflict("second_factor_required", "an administrator requires a second factor for every technician"));
        }
        self.check_own_password(me, password, from).await?;
        let row = self.with_own_code(me, code, from, |tx, row| {
            row.totp_secret = None;
            row.totp_last_step = None;
            store::update_technician(tx, row)?;
            Ok(store::set_recovery_codes(tx, row.id, &[])?)
        })
        .await?;
        tracing::info!(?from, username = %me.username, "technician turned their second factor off");
        Ok(self.technician_view(&row))
    }

    /// New recovery codes for one's own account (a current code proves the app is at hand);
    /// the earlier ones stop working.
    pub async fn new_recovery_codes(&self, me: &TechnicianRow, code: String, from: Option<std::net::IpAddr>) -> Result<Vec<String>, Error> {
        if me.totp_secret.is_none() {
            return Err(Error::conflict("second_factor_off", "this account has no second factor"));
        }
        let codes = second_factor::new_recovery_codes();
        let hashes = second_factor::recovery_hashes(&codes);
        self.with_own_code(me, code, from, move |tx, row| Ok(store::set_recovery_codes(tx, row.id, &hashes)?)).await?;
        tracing::info!(?from, username = %me.username, "technician made new recovery codes");
        Ok(codes)
    }

    /// Checks the signed-in technician's password (throttled like logins).
    async fn check_own_password(&self, me: &TechnicianRow, password: String, from: Option<std::net::IpAddr>) -> Result<(), Error> {
        let now = self.now();
        self.not_throttled(from, now, &me.username).await?;
        let stored = me.password_hash.clone();
        if self.check_password(move || auth::verify_password(&password, &stored)).await? {
            Ok(())
        } else {
            self.failed_attempt(from, now, &me.username, "refused: wrong password").await;
            Err(Error::bad("wrong_password", "password: that is not your password"))
        }
    }

    /// Checks a second-factor code of the signed-in technician (throttled like logins) and, in
    /// the same transaction, makes `change` to their row.
    async fn with_own_code(
        &self,
        me: &TechnicianRow,
        code: String,
        from: Option<std::net::IpAddr>,
        change: impl FnOnce(&Tx<'_>, &mut TechnicianRow) -> Result<(), Error> + Send + 'static,
    ) -> Result<TechnicianRow, Error> {
        let now = self.now();
        self.not_throttled(from, now, &me.username).await?;
        let id = me.id;
        let changed = self
            .db()
            .write(move |tx| {
                if !check_second_factor(tx, id, &code, now)? {
                    return Ok(None);
                }
                let mut row = store::technician_by_id(tx, id)?.ok_or(Error::NotFound("technician"))?;
                change(tx, &mut row)?;
                Ok::<_, Error>(Some(row))
            })
            .await?;
        if changed.is_none() {
            self.failed_attempt(from, now, &me.username, "refused: wrong second-factor code").await;
        }
        changed.ok_or_else(|| Error::bad("wrong_code", "code: that is neither the authenticator app's code nor an unused recovery code"))
    }

    /// Signs out: the token dies.
    pub async fn logout(&self, token: &str) -> Result<(), Error> {
        let hash = auth::token_hash(token);
        self.db().write(move |tx| Ok::<_, Error>(store::delete_token(tx, &hash)?)).await?;
        Ok(())
    }

    /// Runs an argon2 computation on the password checker threads (others wait their turn).
    async fn check_password<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        self.inner.password_checks.run(f).await.ok_or_else(|| Error::Internal("password checks stopped".into()))
    }

    /// The technician a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<TechnicianRow, Error> {
        let hash = auth::token_hash(token);
        let now = self.now();
        self.db()
            .read(move |tx| Ok::<_, Error>(store::technician_for_token(tx, &hash, now)?))
            .await?
            .ok_or(Error::Unauthorized("invalid or expired token"))
    }

    /// Every technician (any signed-in technician may list them, to assign and invite).
    pub async fn technicians(&self) -> Result<Vec<TechnicianView>, Error> {
        let rows = self.db().read(|tx| Ok::<_, Error>(store::list_technicians(tx)?)).await?;
        Ok(rows.iter().map(|row| self.technician_view(row)).collect())
    }

    /// Creates a technician (admins only; `None` actor: the bootstrap command).
    pub async fn create_technician(&self, actor: Option<&TechnicianRow>, new: NewTechnician) -> Result<TechnicianView, Error> {
        if let Some(actor) = actor {
            require_admin(actor)?;
        }
        let prepared = prepare_technician(new)?;
        let hash = self
            .check_password(move || auth::hash_password(&prepared.password).map(|h| (prepared, h)))
            .await?
            .map_err(|e| Error::Internal(e.to_string()))?;
        let now = self.now();
        let row = self.db().write(move |tx| insert_technician_tx(tx, &hash.0, &hash.1, now)).await?;
        Ok(self.technician_view(&row))
    }

    /// Changes a technician's account (administrators): name, role, a new one-time password
    /// (a reset), disabled or enabled. Disabling revokes the account's tokens at once and
    /// takes the technician off every live session (owned ones go to their channel's queue),
    /// which disconnects their viewers. At least one enabled administrator always remains,
    /// and nobody disables their own account.
    pub async fn update_technician(
        &self,
        actor: &TechnicianRow,
        id: TechnicianId,
        patch: deskline_api::UpdateTechnician,
    ) -> Result<TechnicianView, Error> {
        require_admin(actor)?;
        if let Some(name) = &patch.display_name {
            check_name("display_name", name)?;
        }
        if patch.disabled == Some(true) && id == actor.id {
            return Err(Error::conflict("own_account", "you cannot disable your own account"));
        }
        // One's own password and second factor change only with proof (the current password,
        // a code), never through an administrator's reset, even one's own.
        if id == actor.id && (patch.password.is_some() || patch.reset_second_factor == Some(true)) {
            return Err(Error::conflict(
                "own_account",
                "change your own password or second factor yourself (POST /me/password, /me/second-factor/disable)",
            ));
        }
        let target = self
            .db()
            .read(move |tx| store::technician_by_id(tx, id)?.ok_or(Error::NotFound("technician")))
            .await?;
        let hash = match patch.password {
            Some(password) => {
                let name = patch.display_name.clone().unwrap_or_else(|| target.display_name.clone());
                check_password_strength("password", &password, &target.username, &name)?;
                let hashed = self.check_password(move || auth::hash_password(&password)).await?;
                Some(hashed.map_err(|e| Error::Internal(e.to_string()))?)
            }
            None => None,
        };
        let reset = hash.is_some();
        let reset_second_factor = patch.reset_second_factor == Some(true);
        let (row, newly_disabled) = self
            .db()
            .write(move |tx| {
                let mut row = store::technician_by_id(tx, id)?.ok_or(Error::NotFound("technician"))?;
                let was_disabled = row.disabled;
                if let Some(name) = patch.display_name {
                    row.display_name = name;
                }
                row.role = patch.role.unwrap_or(row.role);
                row.disabled = patch.disabled.unwrap_or(row.disabled);
                if let Some(hash) = hash {
                    row.password_hash = hash;
                    row.must_change_password = true;
                }
                if reset_second_factor {
                    row.totp_secret = None;
                    row.totp_pending = None;
                    row.totp_last_step = None;
                    store::set_recovery_codes(tx, id, &[])?;
                }
                let admins_left = store::admins(tx)?.into_iter().filter(|&a| a != id).count();
                if (row.role != Role::Admin || row.disabled) && admins_left == 0 {
                    return Err(Error::conflict("last_admin", "at least one enabled administrator must remain"));
                }
                store::update_technician(tx, &row)?;
                if row.disabled || reset || reset_second_factor {
                    store::delete_tokens_of(tx, id)?;
                }
                let newly_disabled = row.disabled && !was_disabled;
                Ok::<_, Error>((row, newly_disabled))
            })
            .await?;
        tracing::info!(
            by = %actor.username,
            technician = %row.username,
            disabled = row.disabled,
            password_reset = reset,
            second_factor_reset = reset_second_factor,
            "technician account changed"
        );
        if newly_disabled {
            self.take_off_sessions(actor, id, None).await?;
        }
        Ok(self.technician_view(&row))
    }

    /// Takes a technician off the live sessions they are on (all, or one channel's), as
    /// `actor`: an owned session is released into its channel's queue, an invitation ends.
    async fn take_off_sessions(&self, actor: &TechnicianRow, technician: TechnicianId, channel: Option<ChannelId>) -> Result<(), Error> {
        let sessions = self.db().read(move |tx| Ok::<_, Error>(store::live_sessions_of(tx, technician, channel)?)).await?;
        for row in sessions {
            let action = if row.core.assigned == Some(technician) { Action::Release } else { Action::Uninvite { technician } };
            match self.apply(Actor::Technician(actor.id), row.core.id, action).await {
                Ok((before, row)) => self.announce(Some(before), &row),
                // Changed meanwhile (closed, released): nothing left to do.
                Err(Error::Refused(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// [`Desk::create_technician`] without a runtime, for the bootstrap command.
    pub fn create_technician_blocking(&self, new: NewTechnician) -> Result<TechnicianView, Error> {
        let prepared = prepare_technician(new)?;
        let hash = auth::hash_password(&prepared.password).map_err(|e| Error::Internal(e.to_string()))?;
        let now = self.now();
        let row = self.db().write_blocking(|tx| insert_technician_tx(tx, &prepared, &hash, now))?;
        Ok(self.technician_view(&row))
    }

    /// Creates `new` if no technician exists yet — decided in the transaction that inserts it,
    /// so relay nodes starting together on one database make one first admin (the others get
    /// `None`).
    pub fn create_first_technician_blocking(&self, new: NewTechnician) -> Result<Option<TechnicianView>, Error> {
        let prepared = prepare_technician(new)?;
        let hash = auth::hash_password(&prepared.password).map_err(|e| Error::Internal(e.to_string()))?;
        let now = self.now();
        let row = self.db().write_blocking(|tx| {
            if store::count_technicians(tx)? > 0 {
                return Ok(None);
            }
            insert_technician_tx(tx, &prepared, &hash, now).map(Some)
        })?;
        Ok(row.map(|row| self.technician_view(&row)))
    }

    /// How many technicians exist.
    pub fn count_technicians_blocking(&self) -> Result<i64, Error> {
        self.db().write_blocking(|tx| Ok::<_, Error>(store::count_technicians(tx)?))
    }

    // ---- channels ----

    /// The channels the technician may see: all for admins, their own otherwise.
    pub async fn channels(&self, actor: &TechnicianRow) -> Result<Vec<ChannelView>, Error> {
        let filter = (actor.role != Role::Admin).then_some(actor.id);
        self.db()
            .read(move |tx| {
                let mut out = Vec::new();
                for c in store::list_channels(tx, filter)? {
                    out.push(views::channel(&c, &store::channel_members(tx, c.id)?));
                }
                Ok::<_, Error>(out)
            })
            .await
    }

    /// Creates a channel (admins only); settings not given take their defaults.
    pub async fn create_channel(&self, actor: &TechnicianRow, name: String, settings: ChannelPatch) -> Result<ChannelView, Error> {
        let ChannelPatch { session_expiry_secs, consent_timeout_secs, max_file_bytes, record_sessions, recording_retention_days, .. } =
            settings;
        require_admin(actor)?;
        check_name("name", &name)?;
        if let Some(bytes) = max_file_bytes {
            check_file_limit(bytes)?;
        }
        if let Some(days) = recording_retention_days {
            check_retention(days)?;
        }
        let expiry = session_expiry_secs.unwrap_or(crate::limits::DEFAULT_SESSION_EXPIRY.as_secs() as i64);
        let timeout = consent_timeout_secs.unwrap_or(crate::limits::DEFAULT_CONSENT_TIMEOUT.as_secs() as i64);
        check_duration("session_expiry_secs", expiry, MAX_SESSION_EXPIRY)?;
        check_duration("consent_timeout_secs", timeout, MAX_CONSENT_TIMEOUT)?;
        let now = self.now();
        self.db()
            .write(move |tx| {
                let id = store::insert_channel(tx, &name, expiry, timeout, now)?
                    .ok_or_else(|| Error::conflict("name_taken", format!("a channel named {name:?} exists")))?;
                let mut row = store::channel_by_id(tx, id)?.ok_or(Error::NotFound("channel"))?;
                row.max_file_bytes = max_file_bytes.unwrap_or(row.max_file_bytes);
                row.record_sessions = record_sessions.unwrap_or(row.record_sessions);
                row.recording_retention_days = recording_retention_days.unwrap_or(row.recording_retention_days);
                store::update_channel(tx, &row)?;
                Ok(views::channel(&row, &[]))
            })
            .await
    }

    /// Creates the default channel if no channel exists yet (first start).
    pub fn ensure_default_channel_blocking(&self) -> Result<(), Error> {
        let now = self.now();
        self.db().write_blocking(|tx| {
            if store::list_channels(tx, None)?.is_empty() {
                store::insert_channel(
                    tx,
                    "Default",
                    crate::limits::DEFAULT_SESSION_EXPIRY.as_secs() as i64,
                    crate::limits::DEFAULT_CONSENT_TIMEOUT.as_secs() as i64,
                    now,
                )?;
            }
            Ok::<_, Error>(())
        })
    }

    /// Makes a technician a member of the default channel (the bootstrap admin).
    pub fn join_default_channel_blocking(&self, technician: TechnicianId) -> Result<(), Error> {
        self.db().write_blocking(|tx| {
            if let Some(c) = store::channel_by_name(tx, "Default")? {
                store::add_member(tx, c.id, technician)?;
            }
            Ok::<_, Error>(())
        })
    }

    /// Changes a channel's settings (admins only).
    pub async fn update_channel(&self, actor: &TechnicianRow, id: ChannelId, patch: ChannelPatch) -> Result<ChannelView, Error> {
        require_admin(actor)?;
        if let Some(name) = &patch.name {
            check_name("name", name)?;
        }
        if let Some(s) = patch.session_expiry_secs {
            check_duration("session_expiry_secs", s, MAX_SESSION_EXPIRY)?;
        }
        if let Some(s) = patch.consent_timeout_secs {
            check_duration("consent_timeout_secs", s, MAX_CONSENT_TIMEOUT)?;
        }
        if let Some(bytes) = patch.max_file_bytes {
            check_file_limit(bytes)?;
        }
        if let Some(days) = patch.recording_retention_days {
            check_retention(days)?;
        }
        self.db()
            .write(move |tx| {
                let mut row = store::channel_by_id(tx, id)?.ok_or(Error::NotFound("channel"))?;
                if let Some(name) = patch.name {
                    row.name = name;
                }
                row.session_expiry_secs = patch.session_expiry_secs.unwrap_or(row.session_expiry_secs);
                row.consent_timeout_secs = patch.consent_timeout_secs.unwrap_or(row.consent_timeout_secs);
                row.max_file_bytes = patch.max_file_bytes.unwrap_or(row.max_file_bytes);
                row.record_sessions = patch.record_sessions.unwrap_or(row.record_sessions);
                row.recording_retention_days = patch.recording_retention_days.unwrap_or(row.recording_retention_days);
                if !store::update_channel(tx, &row)? {
                    return Err(Error::conflict("name_taken", format!("a channel named {:?} exists", row.name)));
                }
                Ok(views::channel(&row, &store::channel_members(tx, id)?))
            })
            .await
    }

    /// Adds a member to a channel (admins only).
    pub async fn add_member(&self, actor: &TechnicianRow, channel: ChannelId, technician: TechnicianId) -> Result<ChannelView, Error> {
        require_admin(actor)?;
        self.db()
            .write(move |tx| {
                let row = store::channel_by_id(tx, channel)?.ok_or(Error::NotFound("channel"))?;
                store::technician_by_id(tx, technician)?.ok_or(Error::NotFound("technician"))?;
                if !store::add_member(tx, channel, technician)? {
                    return Err(Error::conflict("already_member", "that technician is already a member"));
                }
                Ok(views::channel(&row, &store::channel_members(tx, channel)?))
            })
            .await
    }

    /// Removes a member from a channel (administrators); they leave the channel's live
    /// sessions (owned ones go to its queue).
    pub async fn remove_member(&self, actor: &TechnicianRow, channel: ChannelId, technician: TechnicianId) -> Result<ChannelView, Error> {
        require_admin(actor)?;
        self.db()
            .write(move |tx| {
                store::channel_by_id(tx, channel)?.ok_or(Error::NotFound("channel"))?;
                store::technician_by_id(tx, technician)?.ok_or(Error::NotFound("technician"))?;
                if !store::remove_member(tx, channel, technician)? {
                    return Err(Error::conflict("not_a_member", "that technician is not a member of this channel"));
                }
                Ok(())
            })
            .await?;
        self.take_off_sessions(actor, technician, Some(channel)).await?;
        self.db()
            .read(move |tx| {
                let row = store::channel_by_id(tx, channel)?.ok_or(Error::NotFound("channel"))?;
                Ok(views::channel(&row, &store::channel_members(tx, channel)?))
            })
            .await
    }

    // ---- sessions ----

    /// The sessions of a channel the technician works in.
    pub async fn channel_sessions(&self, actor: &TechnicianRow, channel: ChannelId) -> Result<Vec<SessionView>, Error> {
        let actor = actor.clone();
        let url = self.links();
        self.db()
            .read(move |tx| {
                store::channel_by_id(tx, channel)?.ok_or(Error::NotFound("channel"))?;
                require_works_in(tx, &actor, channel)?;
                Ok(store::sessions_in_channel(tx, channel)?.iter().map(|s| views::session(s, &url)).collect())
            })
            .await
    }

    /// The technician's Home: sessions assigned to or shared with them.
    pub async fn home(&self, actor: &TechnicianRow) -> Result<Vec<SessionView>, Error> {
        let id = actor.id;
        let url = self.links();
        self.db()
            .read(move |tx| Ok::<_, Error>(store::home_sessions(tx, id)?.iter().map(|s| views::session(s, &url)).collect()))
            .await
    }

    /// Deleted sessions (their history is kept): of the channels the technician is a member
    /// of, or all for administrators.
    pub async fn deleted_sessions(&self, actor: &TechnicianRow) -> Result<Vec<SessionView>, Error> {
        let member = (actor.role != Role::Admin).then_some(actor.id);
        let url = self.links();
        self.db()
            .read(move |tx| Ok::<_, Error>(store::deleted_sessions(tx, member)?.iter().map(|s| views::session(s, &url)).collect()))
            .await
    }

    /// Where a technician's native viewer reaches session `id`: the relay node its app is
    /// connected to (several nodes share the database), or this one.
    pub async fn session_relay(&self, actor: &TechnicianRow, id: SessionId) -> Result<RelayInfo, Error> {
        let actor = actor.clone();
        let row = self.db().read(move |tx| visible_session(tx, &actor, id)).await?;
        match self.media_elsewhere(&row).await? {
            Some(node) => Ok(RelayInfo { organisation: self.organisation(), quic: node.quic, fingerprint: node.fingerprint }),
            None => self.relay_info().ok_or(Error::NotFound("QUIC endpoint")),
        }
    }

    /// One session, if the technician works in its channel.
    pub async fn session(&self, actor: &TechnicianRow, id: SessionId) -> Result<SessionView, Error> {
        let actor = actor.clone();
        let url = self.links();
        self.db()
            .read(move |tx| {
                let row = visible_session(tx, &actor, id)?;
                Ok(views::session(&row, &url))
            })
            .await
    }

    /// A session's audit trail.
    pub async fn session_events(&self, actor: &TechnicianRow, id: SessionId) -> Result<Vec<AuditEventView>, Error> {
        let actor = actor.clone();
        self.db()
            .read(move |tx| {
                history_session(tx, &actor, id)?;
                Ok(store::audit_events(tx, id)?.iter().map(views::audit_event).collect())
            })
            .await
    }

    /// Creates a session in a channel: a link token always, a PIN unique among live sessions
    /// for PIN sessions.
    pub async fn create_session(
        &self,
        actor: &TechnicianRow,
        channel: ChannelId,
        kind: SessionKind,
        name: Option<String>,
    ) -> Result<SessionView, Error> {
        let name = name.unwrap_or_default();
        if name.len() > MAX_SESSION_NAME_BYTES {
            return Err(Error::bad("invalid_field", format!("name: at most {MAX_SESSION_NAME_BYTES} bytes")));
        }
        let actor_id = actor.id;
        let now = self.now();
        let row = self
            .db()
            .write(move |tx| {
                let channel_row = store::channel_by_id(tx, channel)?.ok_or(Error::NotFound("channel"))?;
                let facts = Facts::load(tx, &[channel], &[actor_id])?;
                let ctx = Context { now, actor: Actor::Technician(actor_id), directory: &facts };
                let id = store::next_session_id(tx)?;
                let new = machine::NewSession { id, channel, kind, expiry: secs(channel_row.session_expiry_secs) };
                let Transition { session, event } = machine::create(new, &ctx)?;
                let mut rng = rand::rng();
                let pin = match kind {
                    SessionKind::Pin => Some(draw_pin(tx, &mut rng)?),
                    SessionKind::Link => None,
                };
                let row = SessionRow { core: session, name, link_token: LinkToken::generate(&mut rng), pin, agent: None, machine: None, node: None };
                store::insert_session(tx, &row)?;
                store::insert_audit_event(tx, &event)?;
                Ok::<_, Error>(row)
            })
            .await?;
        self.announce(None, &row);
        Ok(views::session(&row, &self.links()))
    }

    /// Performs a session action as a technician. Target technicians and channels must exist.
    pub async fn act(&self, actor: &TechnicianRow, id: SessionId, action: Action) -> Result<SessionView, Error> {
        let (before, row) = self.apply(Actor::Technician(actor.id), id, action).await?;
        self.announce(Some(before), &row);
        Ok(views::session(&row, &self.links()))
    }

    /// Asks the app for consent on behalf of the technician (start remote session).
    pub async fn start_remote(&self, actor: &TechnicianRow, id: SessionId, capabilities: Capabilities) -> Result<SessionView, Error> {
        let timeout = self
            .db()
            .read(move |tx| {
                let row = store::session_by_id(tx, id)?.ok_or(Error::NotFound("session"))?;
                let channel = store::channel_by_id(tx, row.core.channel)?.ok_or(Error::NotFound("channel"))?;
                Ok::<_, Error>(secs(channel.consent_timeout_secs))
            })
            .await?;
        let request_id = rand::rng().next_u64();
        self.act(actor, id, Action::StartRemote { request_id, capabilities, timeout }).await
    }

    /// Applies an action in one transaction: load, decide, store session and audit event.
    /// Returns the channel before the action and the stored row.
    async fn apply(&self, actor: Actor, id: SessionId, action: Action) -> Result<(ChannelId, SessionRow), Error> {
        self.apply_if(actor, id, action, |_, _| Ok(true)).await
    }

    /// [`Desk::apply`] if `still` holds for the session as stored, in the same transaction
    /// (`Error::Conflict` "changed_meanwhile" otherwise). Also keeps the node a session's app
    /// is connected to.
    async fn apply_if(
        &self,
        actor: Actor,
        id: SessionId,
        action: Action,
        still: impl FnOnce(&Tx<'_>, &SessionRow) -> Result<bool, Error> + Send + 'static,
    ) -> Result<(ChannelId, SessionRow), Error> {
        let now = self.now();
        let node = self.node_id().to_owned();
        self.db()
            .write(move |tx| {
                let mut row = store::session_by_id(tx, id)?.ok_or(Error::NotFound("session"))?;
                if row.core.deleted {
                    return Err(Error::NotFound("session"));
                }
                if !still(tx, &row)? {
                    return Err(Error::Conflict { code: "changed_meanwhile", message: "the session changed meanwhile".into() });
                }
                let mut channels = vec![row.core.channel];
                let mut technicians = Vec::new();
                if let Actor::Technician(t) = actor {
                    technicians.push(t);
                }
                match action {
                    Action::Assign { technician }
                    | Action::TransferToTechnician { technician }
                    | Action::Invite { technician } => {
                        store::technician_by_id(tx, technician)?.ok_or(Error::NotFound("technician"))?;
                        technicians.push(technician);
                    }
                    Action::TransferToChannel { channel } => {
                        store::channel_by_id(tx, channel)?.ok_or(Error::NotFound("channel"))?;
                        channels.push(channel);
                    }
                    _ => {}
                }
                let facts = Facts::load(tx, &channels, &technicians)?;
                // A session of a channel the technician does not work in answers as one that
                // does not exist: ids cannot be enumerated.
                if let Actor::Technician(t) = actor
                    && !facts.works_in(row.core.channel, t)
                {
                    return Err(Error::NotFound("session"));
                }
                let ctx = Context { now, actor, directory: &facts };
                let before = row.core.channel;
                let Transition { session, event } = machine::apply(&row.core, &action, &ctx)?;
                store::update_session_core(tx, &session)?;
                store::insert_audit_event(tx, &event)?;
                row.core = session;
                match action {
                    Action::AppConnected { .. } => row.node = Some(node),
                    Action::AppDisconnected => row.node = None,
                    _ => {}
                }
                if matches!(action, Action::AppConnected { .. } | Action::AppDisconnected) {
                    store::set_session_node(tx, id, row.node.as_deref())?;
                }
                Ok((before, row, action))
            })
            .await
            .map(|(before, row, action)| {
                self.count_consent(&action);
                (before, row)
            })
    }

    /// Counts consent requests and answers (after they are stored).
    fn count_consent(&self, action: &Action) {
        let metrics = &self.inner.metrics;
        match action {
            Action::StartRemote { .. } => {
                metrics.consent_requests.inc();
            }
            Action::ConsentDecided { outcome, .. } => {
                let outcome = match outcome {
                    ConsentOutcome::Granted(c) if c.control() => "granted_control",
                    ConsentOutcome::Granted(_) => "granted_view",
                    ConsentOutcome::Denied => "denied",
                    ConsentOutcome::TimedOut => "timed_out",
                };
                metrics.consent_answers.get_or_create(&crate::metrics::OutcomeLabel { outcome }).inc();
            }
            _ => {}
        }
    }

    /// Applies the system's periodic actions: expiry of sessions past their time and timeout
    /// of consent requests past their deadline. Returns how many sessions changed.
    pub async fn sweep(&self) -> Result<usize, Error> {
        // Chat limits of senders who went quiet are forgotten (they would be full again).
        self.inner.chat_limits.retain_recent();
        let now = self.now();
        let (due, pending) = self
            .db()
            .read(move |tx| Ok::<_, Error>((store::due_for_expiry(tx, now)?, store::consent_past_deadline(tx, now)?)))
            .await?;
        let mut changed = 0;
        for id in due {
            match self.apply(Actor::System, id, Action::ExpiryTick).await {
                Ok((before, row)) => {
                    self.announce(Some(before), &row);
                    changed += 1;
                }
                // Closed or expired meanwhile: nothing to do.
                Err(Error::Refused(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for (id, request_id) in pending {
            let action = Action::ConsentDecided { request_id, outcome: ConsentOutcome::TimedOut };
            match self.apply(Actor::System, id, action).await {
                Ok((before, row)) => {
                    self.announce(Some(before), &row);
                    changed += 1;
                }
                Err(Error::Refused(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // Apps gone with a node that stopped beating (several nodes share the database; a relay
        // alone on SQLite looked once, at start).
        if self.db().is_postgres() {
            changed += self.recover_lost_apps().await?;
        }
        self.delete_old_recordings().await?;
        Ok(changed)
    }

    // ---- the support app's side (called by the QUIC endpoint) ----

    /// The session a support app's code names: for a link, any session not deleted (so an
    /// expired or closed one gets a precise refusal); for a PIN, live sessions only, since PINs
    /// are reused once their session ends.
    pub async fn find_by_code(&self, code: &AppCode) -> Result<Option<SessionRow>, Error> {
        let code = code.clone();
        self.db()
            .read(move |tx| {
                Ok::<_, Error>(match &code {
                    AppCode::Link(token) => store::live_session_by_link(tx, token)?,
                    AppCode::Pin(pin) => store::live_session_by_pin(tx, *pin)?,
                })
            })
            .await
    }

    /// A session as stored (deleted ones included).
    pub async fn session_row(&self, id: SessionId) -> Result<Option<SessionRow>, Error> {
        self.db().read(move |tx| Ok::<_, Error>(store::session_by_id(tx, id)?)).await
    }

    /// Performs an action as the session's app (or the system) and announces it.
    pub async fn act_as(&self, actor: Actor, id: SessionId, action: Action) -> Result<SessionRow, Error> {
        let (before, row) = self.apply(actor, id, action).await?;
        self.announce(Some(before), &row);
        Ok(row)
    }

    /// May the app presenting `secret` resume session `id` with its consent? Only the same
    /// instance (the secret the relay gave it, kept hashed with the session, so a restarted
    /// relay still knows it) and only within [`RESUME_GRACE`] of its drop, or while its old
    /// connection has not been noticed gone.
    pub async fn resume_allowed(&self, id: SessionId, secret: &ResumeSecret) -> Result<bool, Error> {
        let presented = auth::token_hash(&secret.to_text());
        let now = self.now();
        let known = self.db().read(move |tx| Ok::<_, Error>(store::resume_of(tx, id)?)).await?;
        Ok(known.is_some_and(|(hash, dropped_at)| {
            // Hashes compared: a timing difference would reveal nothing about the secret.
            hash == presented
                && dropped_at.is_none_or(|t| now.duration_since(t) <= RESUME_GRACE)
        }))
    }

    /// Records the resumption secret of the app that just connected (`None`: it left on
    /// purpose, nothing may resume).
    pub async fn set_resume(&self, id: SessionId, secret: Option<&ResumeSecret>) -> Result<(), Error> {
        let hash = secret.map(|s| auth::token_hash(&s.to_text()));
        self.db().write(move |tx| Ok::<_, Error>(store::set_resume(tx, id, hash.as_deref())?)).await
    }

    /// The session's app dropped: its connection ended (by the network or the relay), so
    /// state, consent and the grace window follow. Said by the app's own connection
    /// (`Actor::App`), it counts only on the node the app is connected to: an app that
    /// meanwhile resumed on another node stays there. Said by the system, it counts wherever
    /// the app was (the app resumed here from another node).
    pub async fn app_dropped(&self, id: SessionId, actor: Actor) -> Result<SessionRow, Error> {
        let own = self.node_id().to_owned();
        let still = move |_: &Tx<'_>, row: &SessionRow| Ok(actor != Actor::App || row.node.as_ref().is_none_or(|n| *n == own));
        self.drop_app_if(id, actor, still).await
    }

    async fn drop_app_if(
        &self,
        id: SessionId,
        actor: Actor,
        still: impl FnOnce(&Tx<'_>, &SessionRow) -> Result<bool, Error> + Send + 'static,
    ) -> Result<SessionRow, Error> {
        let now = self.now();
        let (before, row) = self.apply_if(actor, id, Action::AppDisconnected, still).await?;
        self.announce(Some(before), &row);
        self.db().write(move |tx| Ok::<_, Error>(store::resume_dropped(tx, id, now)?)).await?;
        Ok(row)
    }

    /// Since when another node's heartbeat means it is alive: for a relay alone on SQLite no
    /// other node ever is (a previous run of this one is gone). While this node's own contact
    /// with the database is lost, or back for less than [`crate::limits::NODE_DEAD_AFTER`],
    /// every node that beat at all still counts as alive (see [`Contact`]).
    pub(crate) fn others_alive_since(&self) -> Timestamp {
        if !self.db().is_postgres() {
            return Timestamp(i64::MAX);
        }
        let dead_after = i64::try_from(crate::limits::NODE_DEAD_AFTER.as_millis()).unwrap_or(i64::MAX);
        let now = self.now();
        let contact = self.inner.contact.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if contact.lost || contact.back_since.is_some_and(|since| now.0 - since.0 < dead_after) {
            return Timestamp(i64::MIN);
        }
        Timestamp(now.0 - dead_after)
    }

    /// Sessions whose app is gone with its node: none is connected to a relay that just
    /// started, whatever the store says (it may have been killed), nor to a node that stopped
    /// beating ([`crate::limits::NODE_DEAD_AFTER`]). Each goes back to `waiting` (audited, by the
    /// system) with its consent kept for the app's resumption, whose grace window starts now —
    /// on another node too. Checked again in the transaction that changes it, so two nodes
    /// sweeping at once change it once, and an app that resumed meanwhile stays. Returns how
    /// many sessions changed.
    pub async fn recover_lost_apps(&self) -> Result<usize, Error> {
        let own = self.node_id().to_owned();
        let alive_since = self.others_alive_since();
        let ids = self.db().read(move |tx| Ok::<_, Error>(store::sessions_with_lost_app(tx, &own, alive_since)?)).await?;
        let mut changed = 0;
        for id in ids {
            let own = self.node_id().to_owned();
            let still_lost = move |tx: &Tx<'_>, row: &SessionRow| {
                Ok(match &row.node {
                    None => true,
                    Some(n) => *n != own && store::live_node(tx, n, alive_since)?.is_none(),
                })
            };
            match self.drop_app_if(id, Actor::System, still_lost).await {
                Ok(_) => changed += 1,
                // Its app came back or left meanwhile, or another node took it back first.
                Err(Error::Conflict { .. } | Error::Refused(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }

    /// Records this node (where apps and viewers reach it) and, on PostgreSQL, renews its
    /// heartbeat every [`crate::limits::NODE_HEARTBEAT`] for as long as the relay runs, so
    /// the other nodes know it is alive.
    pub async fn join_nodes(&self) -> Result<(), Error> {
        self.beat().await?;
        if self.db().is_postgres() {
            let desk = self.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(crate::limits::NODE_HEARTBEAT);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    interval.tick().await;
                    if let Err(e) = desk.beat().await {
                        tracing::error!(error = %e, "cannot renew this node's heartbeat");
                    }
                }
            });
        }
        Ok(())
    }

    pub(crate) async fn beat(&self) -> Result<(), Error> {
        let Some(q) = self.inner.quic.get() else { return Ok(()) };
        let now = self.now();
        let (url, url_pin) = self.inner.node_url.get().cloned().unwrap_or_else(|| (self.public_url().to_owned(), None));
        let row = store::NodeRow {
            id: self.node_id().to_owned(),
            quic: q.quic.clone(),
            fingerprint: q.fingerprint.clone(),
            url,
            url_pin,
            started_at: *self.inner.started_at.get_or_init(|| now),
            beat_at: now,
        };
        let alive_since = self.others_alive_since();
        // Nobody is forgotten while nobody can be judged dead.
        let forget_before = if alive_since == Timestamp(i64::MIN) {
            alive_since
        } else {
            Timestamp(now.0 - i64::try_from(crate::limits::NODE_FORGOTTEN_AFTER.as_millis()).unwrap_or(i64::MAX))
        };
        let (own, fingerprint) = (row.id.clone(), row.fingerprint.clone());
        let beat = self
            .db()
            .append(move |tx| {
                store::beat_node(tx, &row)?;
                store::forget_nodes(tx, forget_before)?;
                Ok::<_, Error>(store::live_nodes(tx, alive_since)?)
            })
            .await;
        {
            let mut contact = self.inner.contact.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match (&beat, contact.lost) {
                (Err(_), _) => contact.lost = true,
                (Ok(_), true) => *contact = Contact { lost: false, back_since: Some(now) },
                (Ok(_), false) => {}
            }
        }
        let peers = beat?;
        // Apps pin one certificate: only nodes sharing it can take them over.
        let peers = peers.into_iter().filter(|n| n.id != own && n.fingerprint == fingerprint).map(|n| n.quic).collect();
        *self.inner.peers.write().unwrap_or_else(std::sync::PoisonError::into_inner) = peers;
        Ok(())
    }

    /// This node stops (cleanly): the others take its sessions back at once instead of after
    /// [`crate::limits::NODE_DEAD_AFTER`].
    pub async fn leave_nodes(&self) -> Result<(), Error> {
        let own = self.node_id().to_owned();
        self.db().append(move |tx| Ok::<_, Error>(store::forget_node(tx, &own).map(drop)?)).await
    }

    /// Where the session's media is when that is another live node (its app is connected
    /// there); `None` when it is here, nowhere, or on a node that is gone.
    pub async fn media_elsewhere(&self, row: &SessionRow) -> Result<Option<store::NodeRow>, Error> {
        let Some(node) = row.node.clone().filter(|n| n != self.node_id()) else { return Ok(None) };
        let alive_since = self.others_alive_since();
        self.db().read(move |tx| Ok::<_, Error>(store::live_node(tx, &node, alive_since)?)).await
    }

    /// Stores what the connected app reported about its machine.
    pub async fn record_agent(&self, id: SessionId, info: AppInfo) -> Result<(), Error> {
        self.db().write(move |tx| Ok::<_, Error>(store::update_session_agent(tx, id, &info)?)).await
    }

    /// Stores what the connected app reported about its machine (the start time worked out
    /// from its uptime on the desk's clock), and tells the consoles.
    pub async fn record_machine(&self, id: SessionId, facts: MachineFacts) -> Result<(), Error> {
        let uptime_ms = i64::try_from(facts.uptime_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let machine = store::MachineRow {
            user_name: facts.user_name,
            cpu: facts.cpu,
            cpu_threads: facts.cpu_threads,
            memory_bytes: facts.memory_bytes,
            booted_at: Timestamp(self.now().0.saturating_sub(uptime_ms)),
        };
        let updated = self
            .db()
            .write(move |tx| {
                store::update_session_machine(tx, id, &machine)?;
                Ok::<_, Error>(store::session_by_id(tx, id)?)
            })
            .await?;
        if let Some(row) = updated {
            self.announce(None, &row);
        }
        Ok(())
    }

    /// Records that copied text passed (its size, never the text: a clipboard often holds a
    /// password). The text has already gone: a failure to record is logged, not undone.
    pub async fn record_clipboard(&self, from: Actor, id: SessionId, bytes: usize) {
        let (now, bytes) = (self.now(), u32::try_from(bytes).unwrap_or(u32::MAX));
        let written = self
            .db()
            .write(move |tx| {
                let Some(row) = store::session_by_id(tx, id)? else { return Ok::<_, Error>(()) };
                let state = row.core.state;
                let event = AuditEvent { session: id, at: now, actor: from, action: AuditAction::Clipboard { bytes }, from: Some(state), to: state };
                Ok(store::insert_audit_event(tx, &event)?)
            })
            .await;
        if let Err(e) = written {
            tracing::error!(session = %id, error = %e, "recording a clipboard pass in the audit trail");
        }
    }

    /// Records how a file's transfer ended (its name, size and SHA-256; the relay never keeps
    /// the file). The transfer is over: a failure to record is logged.
    pub async fn record_file(&self, from: Actor, id: SessionId, offer: &deskline_protocol::FileOffer, outcome: FileOutcome) {
        let now = self.now();
        let action = AuditAction::File { name: offer.name.clone(), bytes: offer.size, sha256: hex::encode(offer.sha256), outcome };
        let written = self
            .db()
            .write(move |tx| {
                let Some(row) = store::session_by_id(tx, id)? else { return Ok::<_, Error>(()) };
                let state = row.core.state;
                let event = AuditEvent { session: id, at: now, actor: from, action, from: Some(state), to: state };
                Ok(store::insert_audit_event(tx, &event)?)
            })
            .await;
        if let Err(e) = written {
            tracing::error!(session = %id, error = %e, "recording a file transfer in the audit trail");
        }
    }

    /// The largest file the session's channel lets pass (0 if the session is gone or unreadable:
    /// nothing passes then).
    pub async fn max_file_bytes(&self, id: SessionId) -> u64 {
        let limit = self
            .db()
            .read(move |tx| {
                let Some(row) = store::session_by_id(tx, id)? else { return Ok::<_, Error>(0) };
                Ok(store::channel_by_id(tx, row.core.channel)?.map_or(0, |c| c.max_file_bytes))
            })
            .await;
        limit.map_or(0, |bytes| u64::try_from(bytes).unwrap_or(0))
    }

    /// Replaces the displays in what the session's app reported (after a resolution or
    /// monitor change), and tells the consoles.
    pub async fn record_displays(&self, id: SessionId, displays: Vec<DisplayInfo>) -> Result<(), Error> {
        let updated = self
            .db()
            .write(move |tx| {
                let Some(mut agent) = store::session_by_id(tx, id)?.and_then(|row| row.agent) else { return Ok::<_, Error>(None) };
                agent.displays = displays;
                store::update_session_agent(tx, id, &agent)?;
                Ok(store::session_by_id(tx, id)?)
            })
            .await?;
        if let Some(row) = updated {
            self.announce(None, &row);
        }
        Ok(())
    }

    // ---- chat ----

    /// A chat line on a session, from a technician on it or from its app (`Actor::App`):
    /// checked, limited per sender, kept in the session's audit trail (hash-chained like every
    /// event) and announced to the consoles that may see the session. Only while the app is
    /// connected (`active` or `in_queue`): a line nobody could read would mislead its writer.
    pub async fn chat(&self, from: Actor, id: SessionId, text: String) -> Result<ChatLine, Error> {
        Message::Chat(ChatLine::to_send(text.as_str())).validate().map_err(|e| Error::bad("invalid_field", format!("text: {e}")))?;
        if self.inner.chat_limits.check_key(&(id, from)).is_err() {
            self.metrics().limit_tripped("chat");
            return Err(Error::RateLimited { retry_after_secs: CHAT_REFILL.as_secs().max(1) });
        }
        let now = self.now();
        let stored = text.clone();
        let (row, name) = self
            .db()
            .write(move |tx| {
                let row = store::session_by_id(tx, id)?.filter(|r| !r.core.deleted).ok_or(Error::NotFound("session"))?;
                let name = match from {
                    Actor::Technician(t) => {
                        if !row.core.has_technician(t) {
                            // Outside the channel, the session does not exist for them.
                            if !Facts::load(tx, &[row.core.channel], &[])?.works_in(row.core.channel, t) {
                                return Err(Error::NotFound("session"));
                            }
                            return Err(Error::Forbidden("only the technicians on a session may chat on it (assign yourself or be invited)".into()));
                        }
                        store::technician_by_id(tx, t)?.map_or_else(|| format!("technician {t}"), |t| t.display_name)
                    }
                    Actor::App => String::new(),
                    Actor::System => return Err(Error::Internal("the relay does not chat".into())),
                };
                if !matches!(row.core.state, SessionState::Active | SessionState::InQueue) {
                    return Err(Error::Conflict { code: "app_not_connected", message: "the end user's support app is not connected".into() });
                }
                let state = row.core.state;
                let event = AuditEvent { session: id, at: now, actor: from, action: AuditAction::Chat { text: stored }, from: Some(state), to: state };
                store::insert_audit_event(tx, &event)?;
                Ok::<_, Error>((row, name))
            })
            .await?;
        let event = SessionEvent {
            live: views::LiveEvent::Chat { message: views::chat_message(id, now, &from, &name, &text) },
            channels: vec![row.core.channel.0],
            technicians: row.core.technicians().collect(),
            id,
            for_app: None,
        };
        let line = ChatLine {
            from: match from {
                Actor::Technician(t) => ChatFrom::Technician { id: t, name },
                Actor::App | Actor::System => ChatFrom::EndUser,
            },
            at: now,
            text,
        };
        // The app may be connected to another node: a technician's line goes to it from there.
        let for_app = matches!(line.from, ChatFrom::Technician { .. }).then(|| line.clone());
        self.tell_other_nodes(crate::nodes::Notice::Event(Box::new(SessionEvent { for_app, ..event.clone() })));
        self.send_here(event);
        Ok(line)
    }

    /// A session's chat, oldest first, to a technician who may see its history.
    pub async fn chat_history(&self, actor: &TechnicianRow, id: SessionId) -> Result<Vec<views::ChatMessageView>, Error> {
        let actor = actor.clone();
        self.db()
            .read(move |tx| {
                history_session(tx, &actor, id)?;
                let mut names = HashMap::new();
                let mut lines = Vec::new();
                for event in store::audit_events(tx, id)? {
                    let AuditAction::Chat { text } = &event.action else { continue };
                    let name = match event.actor {
                        Actor::Technician(t) => match names.get(&t) {
                            Some(name) => String::clone(name),
                            None => {
                                let name = store::technician_by_id(tx, t)?.map_or_else(|| format!("technician {t}"), |t| t.display_name);
                                names.insert(t, name.clone());
                                name
                            }
                        },
                        Actor::App | Actor::System => String::new(),
                    };
                    lines.push(views::chat_message(id, event.at, &event.actor, &name, text));
                }
                Ok::<_, Error>(lines)
            })
            .await
    }

    /// A technician's display name (for consent prompts).
    pub async fn technician_name(&self, id: TechnicianId) -> Result<String, Error> {
        self.db()
            .read(move |tx| {
                Ok::<_, Error>(store::technician_by_id(tx, id)?.map_or_else(|| format!("technician {id}"), |t| t.display_name))
            })
            .await
    }

    /// Can this technician see this channel's sessions and events?
    pub async fn works_in(&self, technician: TechnicianId, channel: ChannelId) -> Result<bool, Error> {
        self.db()
            .read(move |tx| {
                let facts = Facts::load(tx, &[channel], &[])?;
                Ok::<_, Error>(facts.works_in(channel, technician))
            })
            .await
    }
}

fn require_admin(actor: &TechnicianRow) -> Result<(), Error> {
    if actor.role == Role::Admin { Ok(()) } else { Err(Error::Forbidden("only administrators may do this".into())) }
}

fn require_works_in(tx: &Tx<'_>, actor: &TechnicianRow, channel: ChannelId) -> Result<(), Error> {
    let facts = Facts::load(tx, &[channel], &[])?;
    if facts.works_in(channel, actor.id) {
        Ok(())
    } else {
        Err(Error::Forbidden("you are not a member of this channel".into()))
    }
}

/// The session if the technician works in its channel; otherwise it answers as one that does
/// not exist.
fn visible_session(tx: &Tx<'_>, actor: &TechnicianRow, id: SessionId) -> Result<SessionRow, Error> {
    let row = store::session_by_id(tx, id)?.filter(|r| !r.core.deleted).ok_or(Error::NotFound("session"))?;
    require_works_in(tx, actor, row.core.channel).map_err(|_| Error::NotFound("session"))?;
    Ok(row)
}

/// The session, deleted or not, if the technician works in its channel: a session's history
/// (audit trail, chat, recordings) stays readable to its channel after it is deleted, and to
/// nobody else, who cannot tell it from a session that does not exist.
pub(crate) fn history_session(tx: &Tx<'_>, actor: &TechnicianRow, id: SessionId) -> Result<SessionRow, Error> {
    let row = store::session_by_id(tx, id)?.ok_or(Error::NotFound("session"))?;
    require_works_in(tx, actor, row.core.channel).map_err(|_| Error::NotFound("session"))?;
    Ok(row)
}

fn draw_pin(tx: &Tx<'_>, rng: &mut rand::rngs::ThreadRng) -> Result<Pin, Error> {
    for _ in 0..PIN_DRAW_ATTEMPTS {
        let pin = Pin::generate(rng);
        if !store::pin_in_use(tx, pin)? {
            return Ok(pin);
        }
    }
    Err(Error::Internal("no free PIN found".into()))
}

struct PreparedTechnician {
    username: String,
    display_name: String,
    password: String,
    role: Role,
    one_time: bool,
}

fn prepare_technician(new: NewTechnician) -> Result<PreparedTechnician, Error> {
    check_name("username", &new.username)?;
    if new.username.chars().any(char::is_whitespace) {
        return Err(Error::bad("invalid_field", "username: must not contain spaces"));
    }
    let display_name = if new.display_name.trim().is_empty() { new.username.clone() } else { new.display_name };
    check_name("display_name", &display_name)?;
    check_password_strength("password", &new.password, &new.username, &display_name)?;
    Ok(PreparedTechnician { username: new.username, display_name, password: new.password, role: new.role, one_time: new.one_time })
}

/// A password must be long and hard to guess. Length alone lets `aaaaaaaaaaaa` and
/// `password1234` through: zxcvbn (Dropbox's estimator) recognises common passwords, words,
/// keyboard patterns, sequences and repetitions, and the account's own names.
fn check_password_strength(field: &str, password: &str, username: &str, display_name: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::bad("weak_password", format!("{field}: at least {MIN_PASSWORD_CHARS} characters")));
    }
    let strength = zxcvbn::zxcvbn(password, &[username, display_name, "deskline"]);
    if strength.score() < MIN_PASSWORD_SCORE {
        return Err(Error::bad(
            "weak_password",
            format!("{field}: too easy to guess (a common password, a pattern, a repetition or a name); use a few unrelated words"),
        ));
    }
    Ok(())
}

/// A new bearer token for a technician, stored hashed.
fn issue_token(tx: &Tx<'_>, technician: TechnicianId, now: Timestamp) -> Result<String, Error> {
    let token = auth::new_token();
    store::insert_token(tx, &auth::token_hash(&token), technician, now, now.saturating_add(TOKEN_LIFETIME))?;
    Ok(token)
}

fn insert_technician_tx(tx: &Tx<'_>, t: &PreparedTechnician, hash: &str, now: Timestamp) -> Result<TechnicianRow, Error> {
    let id = store::insert_technician(tx, &t.username, &t.display_name, hash, t.role, t.one_time, now)?
        .ok_or_else(|| Error::conflict("username_taken", format!("the username {:?} is taken", t.username)))?;
    store::technician_by_id(tx, id)?.ok_or(Error::NotFound("technician"))
}

/// Checks a second-factor code of a technician with one: a TOTP code of a step later than the
/// last accepted (which it becomes), or an unused recovery code (used up).
fn check_second_factor(tx: &Tx<'_>, id: TechnicianId, code: &str, now: Timestamp) -> Result<bool, Error> {
    let mut row = store::technician_by_id(tx, id)?.ok_or(Error::NotFound("technician"))?;
    let Some(secret) = row.totp_secret.clone() else { return Ok(false) };
    if let Some(step) = second_factor::matching_step(&secret, code, now, row.totp_last_step)? {
        row.totp_last_step = Some(step);
        store::update_technician(tx, &row)?;
        return Ok(true);
    }
    match second_factor::recovery_hash(code) {
        Some(hash) => {
            let used = store::use_recovery_code(tx, id, &hash)?;
            if used {
                tracing::warn!(username = %row.username, "a recovery code was used");
            }
            Ok(used)
        }
        None => Ok(false),
    }
}
