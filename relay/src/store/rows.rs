//! Stored records and the queries on them. Every function takes the transaction it runs in.

use super::StoreError;
use deskline_protocol::session::{AuditEvent, Consent, Session, SessionKind, SessionState};
use deskline_protocol::{AppInfo, ChannelId, LinkToken, Pin, SessionId, TechnicianId, Timestamp};
use super::sql::{Param, Row, Tx};

pub use deskline_api::Role;

fn parse_role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).ok_or_else(|| StoreError::Corrupt(format!("role {s:?}")))
}

/// A technician account.
#[derive(Debug, Clone)]
pub struct TechnicianRow {
    /// Id.
    pub id: TechnicianId,
    /// Login name.
    pub username: String,
    /// Shown to end users in consent prompts.
    pub display_name: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Creation time.
    pub created_at: Timestamp,
    /// The password was set by someone else (one-time): only a password change is allowed
    /// until the technician sets their own.
    pub must_change_password: bool,
    /// Disabled by an administrator: cannot sign in, holds no token.
    pub disabled: bool,
    /// The second factor's TOTP secret (base32), once confirmed.
    pub totp_secret: Option<String>,
    /// A TOTP secret being set up, until a code confirms it.
    pub totp_pending: Option<String>,
    /// The last TOTP step accepted: a code is good once.
    pub totp_last_step: Option<i64>,
}

/// A channel.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    /// Id.
    pub id: ChannelId,
    /// Unique name.
    pub name: String,
    /// How long a session lives unless closed.
    pub session_expiry_secs: i64,
    /// How long the end user has to answer a consent prompt.
    pub consent_timeout_secs: i64,
    /// The largest file its sessions may pass (0: none).
    pub max_file_bytes: i64,
    /// Are its remote sessions recorded?
    pub record_sessions: bool,
    /// Days its recordings are kept (0: as long as their session).
    pub recording_retention_days: i64,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A session: the state machine's part plus what the relay keeps beside it.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// What the state machine governs.
    pub core: Session,
    /// Name or note given by the technician.
    pub name: String,
    /// The secret in the session's link (every session has one; PIN sessions use it for the
    /// download too).
    pub link_token: LinkToken,
    /// The PIN of a PIN session.
    pub pin: Option<Pin>,
    /// What the connected (or last connected) app reported.
    pub agent: Option<AppInfo>,
    /// More about its machine, as the app last reported it.
    pub machine: Option<MachineRow>,
    /// The relay node its app is connected to (see [`NodeRow`]), if any.
    pub node: Option<String>,
}

/// Facts about the end user's machine, as stored (`sessions.machine`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachineRow {
    /// The signed-in user.
    pub user_name: String,
    /// The processor's model name.
    pub cpu: String,
    /// Logical processors.
    pub cpu_threads: u32,
    /// Installed memory, bytes.
    pub memory_bytes: u64,
    /// When the machine started, on the relay's clock.
    pub booted_at: Timestamp,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn technician_from_row(row: &Row) -> Result<TechnicianRow, StoreError> {
    Ok(TechnicianRow {
        id: TechnicianId(row.get(0)?),
        username: row.get(1)?,
        display_name: row.get(2)?,
        password_hash: row.get(3)?,
        role: parse_role(&row.get::<String>(4)?)?,
        created_at: Timestamp(row.get(5)?),
        must_change_password: row.get(6)?,
        disabled: row.get(7)?,
        totp_secret: row.get(8)?,
        totp_pending: row.get(9)?,
        totp_last_step: row.get(10)?,
    })
}

fn technicians(rows: Vec<Row>) -> Result<Vec<TechnicianRow>, StoreError> {
    rows.iter().map(technician_from_row).collect()
}

const TECHNICIAN_COLUMNS: &str =
    "id, username, display_name, password_hash, role, created_at, must_change_password, disabled, totp_secret, totp_pending, totp_last_step";

/// Adds a technician; `Ok(None)` if the username is taken.
pub fn insert_technician(
    tx: &Tx<'_>,
    username: &str,
    display_name: &str,
    password_hash: &str,
    role: Role,
    must_change_password: bool,
    now: Timestamp,
) -> Result<Option<TechnicianId>, StoreError> {
    let inserted = tx.query_opt(
        "INSERT INTO technicians (username, display_name, password_hash, role, created_at, must_change_password)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (username) DO NOTHING RETURNING id",
        &[&username, &display_name, &password_hash, &role.as_str(), &now.0, &must_change_password],
    )?;
    inserted.map(|row| Ok(TechnicianId(row.get(0)?))).transpose()
}

/// Stores a technician's changed name, role, password and flags (the id and username stay).
pub fn update_technician(tx: &Tx<'_>, t: &TechnicianRow) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE technicians SET display_name = ?2, password_hash = ?3, role = ?4, must_change_password = ?5, disabled = ?6,
         totp_secret = ?7, totp_pending = ?8, totp_last_step = ?9 WHERE id = ?1",
        &[
            &t.id.0,
            &t.display_name,
            &t.password_hash,
            &t.role.as_str(),
            &t.must_change_password,
            &t.disabled,
            &t.totp_secret,
            &t.totp_pending,
            &t.totp_last_step,
        ],
    )?;
    Ok(())
}

/// Replaces a technician's recovery codes (their SHA-256) with `hashes` (none: removed).
pub fn set_recovery_codes(tx: &Tx<'_>, technician: TechnicianId, hashes: &[String]) -> Result<(), StoreError> {
    tx.execute("DELETE FROM recovery_codes WHERE technician_id = ?1", &[&technician.0])?;
    for hash in hashes {
        tx.execute("INSERT INTO recovery_codes (technician_id, code_hash) VALUES (?1, ?2)", &[&technician.0, hash])?;
    }
    Ok(())
}

/// Uses up a recovery code: `true` if it was one of the technician's (it is gone now).
pub fn use_recovery_code(tx: &Tx<'_>, technician: TechnicianId, hash: &str) -> Result<bool, StoreError> {
    Ok(tx.execute("DELETE FROM recovery_codes WHERE technician_id = ?1 AND code_hash = ?2", &[&technician.0, &hash])? == 1)
}

/// Revokes every token of a technician (password changed, account disabled).
pub fn delete_tokens_of(tx: &Tx<'_>, technician: TechnicianId) -> Result<usize, StoreError> {
    tx.execute("DELETE FROM api_tokens WHERE technician_id = ?1", &[&technician.0])
}

/// Revokes one token (sign-out).
pub fn delete_token(tx: &Tx<'_>, token_hash: &str) -> Result<bool, StoreError> {
    Ok(tx.execute("DELETE FROM api_tokens WHERE token_hash = ?1", &[&token_hash])? == 1)
}

/// A relay-wide setting, if set.
pub fn setting(tx: &Tx<'_>, key: &str) -> Result<Option<String>, StoreError> {
    tx.query_opt("SELECT value FROM settings WHERE key = ?1", &[&key])?.map(|r| r.get(0)).transpose()
}

/// Sets a relay-wide setting.
pub fn set_setting(tx: &Tx<'_>, key: &str, value: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )?;
    Ok(())
}

/// The technician with this username.
pub fn technician_by_username(tx: &Tx<'_>, username: &str) -> Result<Option<TechnicianRow>, StoreError> {
    let sql = format!("SELECT {TECHNICIAN_COLUMNS} FROM technicians WHERE username = ?1");
    tx.query_opt(&sql, &[&username])?.as_ref().map(technician_from_row).transpose()
}

/// The technician with this id.
pub fn technician_by_id(tx: &Tx<'_>, id: TechnicianId) -> Result<Option<TechnicianRow>, StoreError> {
    let sql = format!("SELECT {TECHNICIAN_COLUMNS} FROM technicians WHERE id = ?1");
    tx.query_opt(&sql, &[&id.0])?.as_ref().map(technician_from_row).transpose()
}

/// Every technician, by id.
pub fn list_technicians(tx: &Tx<'_>) -> Result<Vec<TechnicianRow>, StoreError> {
    let sql = format!("SELECT {TECHNICIAN_COLUMNS} FROM technicians ORDER BY id");
    technicians(tx.query(&sql, &[])?)
}

/// How many technicians exist.
pub fn count_technicians(tx: &Tx<'_>) -> Result<i64, StoreError> {
    tx.query_one("SELECT COUNT(*) FROM technicians", &[])?.get(0)
}

/// Stores a login token (its hash).
pub fn insert_token(
    tx: &Tx<'_>,
    token_hash: &str,
    technician: TechnicianId,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM api_tokens WHERE expires_at <= ?1", &[&now.0])?;
    tx.execute(
        "INSERT INTO api_tokens (token_hash, technician_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        &[&token_hash, &technician.0, &now.0, &expires_at.0],
    )?;
    Ok(())
}

/// The technician a token hash belongs to, if it has not expired and the account is enabled.
pub fn technician_for_token(
    tx: &Tx<'_>,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<TechnicianRow>, StoreError> {
    let sql = format!(
        "SELECT {} FROM technicians t JOIN api_tokens k ON k.technician_id = t.id
         WHERE k.token_hash = ?1 AND k.expires_at > ?2 AND t.disabled = 0",
        TECHNICIAN_COLUMNS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ")
    );
    tx.query_opt(&sql, &[&token_hash, &now.0])?.as_ref().map(technician_from_row).transpose()
}

fn channel_from_row(row: &Row) -> Result<ChannelRow, StoreError> {
    Ok(ChannelRow {
        id: ChannelId(row.get(0)?),
        name: row.get(1)?,
        session_expiry_secs: row.get(2)?,
        consent_timeout_secs: row.get(3)?,
        created_at: Timestamp(row.get(4)?),
        max_file_bytes: row.get(5)?,
        record_sessions: row.get(6)?,
        recording_retention_days: row.get(7)?,
    })
}

const CHANNEL_COLUMNS: &str =
    "id, name, session_expiry_secs, consent_timeout_secs, created_at, max_file_bytes, record_sessions, recording_retention_days";

/// Adds a channel; `Ok(None)` if the name is taken.
pub fn insert_channel(
    tx: &Tx<'_>,
    name: &str,
    session_expiry_secs: i64,
    consent_timeout_secs: i64,
    now: Timestamp,
) -> Result<Option<ChannelId>, StoreError> {
    let inserted = tx.query_opt(
        "INSERT INTO channels (name, session_expiry_secs, consent_timeout_secs, created_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING RETURNING id",
        &[&name, &session_expiry_secs, &consent_timeout_secs, &now.0],
    )?;
    inserted.map(|row| Ok(ChannelId(row.get(0)?))).transpose()
}

/// Changes a channel's settings; `Ok(false)` if the new name is taken.
pub fn update_channel(tx: &Tx<'_>, channel: &ChannelRow) -> Result<bool, StoreError> {
    if tx.query_opt("SELECT id FROM channels WHERE name = ?1 AND id <> ?2", &[&channel.name, &channel.id.0])?.is_some() {
        return Ok(false);
    }
    tx.execute(
        "UPDATE channels SET name = ?2, session_expiry_secs = ?3, consent_timeout_secs = ?4, max_file_bytes = ?5, \
         record_sessions = ?6, recording_retention_days = ?7 WHERE id = ?1",
        &[
            &channel.id.0,
            &channel.name,
            &channel.session_expiry_secs,
            &channel.consent_timeout_secs,
            &channel.max_file_bytes,
            &channel.record_sessions,
            &channel.recording_retention_days,
        ],
    )?;
    Ok(true)
}

/// The channel with this id.
pub fn channel_by_id(tx: &Tx<'_>, id: ChannelId) -> Result<Option<ChannelRow>, StoreError> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = ?1");
    tx.query_opt(&sql, &[&id.0])?.as_ref().map(channel_from_row).transpose()
}

/// The channel with this name.
pub fn channel_by_name(tx: &Tx<'_>, name: &str) -> Result<Option<ChannelRow>, StoreError> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE name = ?1");
    tx.query_opt(&sql, &[&name])?.as_ref().map(channel_from_row).transpose()
}

/// Every channel (`member: None`) or the channels a technician is a member of.
pub fn list_channels(tx: &Tx<'_>, member: Option<TechnicianId>) -> Result<Vec<ChannelRow>, StoreError> {
    let rows = match member {
        None => tx.query(&format!("SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY id"), &[])?,
        Some(t) => tx.query(
            &format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels WHERE id IN
                 (SELECT channel_id FROM channel_members WHERE technician_id = ?1) ORDER BY id"
            ),
            &[&t.0],
        )?,
    };
    rows.iter().map(channel_from_row).collect()
}

/// Adds a member; `Ok(false)` if they already were one.
pub fn add_member(tx: &Tx<'_>, channel: ChannelId, technician: TechnicianId) -> Result<bool, StoreError> {
    let n = tx.execute(
        "INSERT INTO channel_members (channel_id, technician_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        &[&channel.0, &technician.0],
    )?;
    Ok(n == 1)
}

/// The session has technician `?1` as owner or invited. `invited` is a JSON array of ids
/// (`[3,5]`): matching its text (`,3,5,`) keeps this one query for both databases.
const ON_SESSION: &str =
    "(assigned_technician_id = ?1 OR REPLACE(REPLACE(invited, '[', ','), ']', ',') LIKE '%,' || ?1 || ',%')";

/// How many sessions (not deleted) are in each state.
pub fn count_sessions_by_state(tx: &Tx<'_>) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = tx.query("SELECT state, COUNT(*) FROM sessions WHERE deleted = 0 GROUP BY state ORDER BY state", &[])?;
    rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
}

/// Removes a member from a channel; `false` if they were not one.
pub fn remove_member(tx: &Tx<'_>, channel: ChannelId, technician: TechnicianId) -> Result<bool, StoreError> {
    let n = tx.execute("DELETE FROM channel_members WHERE channel_id = ?1 AND technician_id = ?2", &[&channel.0, &technician.0])?;
    Ok(n == 1)
}

/// Live sessions (not deleted) a technician is assigned to or invited on, in one channel or
/// in all (`None`).
pub fn live_sessions_of(tx: &Tx<'_>, technician: TechnicianId, channel: Option<ChannelId>) -> Result<Vec<SessionRow>, StoreError> {
    let live = "deleted = 0 AND state IN ('waiting', 'active', 'in_queue')";
    match channel {
        Some(c) => query_sessions(tx, &format!("{live} AND {ON_SESSION} AND channel_id = ?2"), &[&technician.0, &c.0]),
        None => query_sessions(tx, &format!("{live} AND {ON_SESSION}"), &[&technician.0]),
    }
}

/// Deleted sessions in the channels a technician is a member of, or all (`None`: for admins).
pub fn deleted_sessions(tx: &Tx<'_>, member: Option<TechnicianId>) -> Result<Vec<SessionRow>, StoreError> {
    match member {
        Some(t) => query_sessions(
            tx,
            "deleted = 1 AND channel_id IN (SELECT channel_id FROM channel_members WHERE technician_id = ?1)",
            &[&t.0],
        ),
        None => query_sessions(tx, "deleted = 1", &[]),
    }
}

/// The members of a channel.
pub fn channel_members(tx: &Tx<'_>, channel: ChannelId) -> Result<Vec<TechnicianId>, StoreError> {
    let rows = tx.query("SELECT technician_id FROM channel_members WHERE channel_id = ?1 ORDER BY technician_id", &[&channel.0])?;
    rows.iter().map(|r| Ok(TechnicianId(r.get(0)?))).collect()
}

/// The administrators.
pub fn admins(tx: &Tx<'_>) -> Result<Vec<TechnicianId>, StoreError> {
    let rows = tx.query("SELECT id FROM technicians WHERE role = 'admin' AND disabled = 0 ORDER BY id", &[])?;
    rows.iter().map(|r| Ok(TechnicianId(r.get(0)?))).collect()
}

/// Open sessions (live, not deleted) assigned to a technician.
pub fn open_sessions_assigned(tx: &Tx<'_>, technician: TechnicianId) -> Result<usize, StoreError> {
    let n: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM sessions WHERE assigned_technician_id = ?1 AND deleted = 0
             AND state IN ('waiting', 'active', 'in_queue')",
            &[&technician.0],
        )?
        .get(0)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The id the next session gets. Safe because writes are serial (see [`super::Db`]) and
/// sessions are never removed, only marked deleted.
pub fn next_session_id(tx: &Tx<'_>) -> Result<SessionId, StoreError> {
    Ok(SessionId(tx.query_one("SELECT COALESCE(MAX(id), 0) + 1 FROM sessions", &[])?.get(0)?))
}

/// Is this PIN used by a live session?
pub fn pin_in_use(tx: &Tx<'_>, pin: Pin) -> Result<bool, StoreError> {
    let n: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM sessions WHERE pin = ?1 AND deleted = 0 AND state IN ('waiting', 'active', 'in_queue')",
            &[&pin.to_string()],
        )?
        .get(0)?;
    Ok(n > 0)
}

const SESSION_COLUMNS: &str = "id, channel_id, kind, name, state, link_token, pin, assigned_technician_id, \
     invited, consent, agent, deleted, created_at, updated_at, expires_at, machine, node";

struct RawSession {
    id: i64,
    channel: i64,
    kind: String,
    name: String,
    state: String,
    link_token: String,
    pin: Option<String>,
    assigned: Option<i64>,
    invited: String,
    consent: String,
    agent: Option<String>,
    machine: Option<String>,
    node: Option<String>,
    deleted: bool,
    created_at: i64,
    updated_at: i64,
    expires_at: i64,
}

fn raw_session(row: &Row) -> Result<RawSession, StoreError> {
    Ok(RawSession {
        id: row.get(0)?,
        channel: row.get(1)?,
        kind: row.get(2)?,
        name: row.get(3)?,
        state: row.get(4)?,
        link_token: row.get(5)?,
        pin: row.get(6)?,
        assigned: row.get(7)?,
        invited: row.get(8)?,
        consent: row.get(9)?,
        agent: row.get(10)?,
        machine: row.get(15)?,
        node: row.get(16)?,
        deleted: row.get(11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
        expires_at: row.get(14)?,
    })
}

fn parse_state(s: &str) -> Result<SessionState, StoreError> {
    SessionState::ALL
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| corrupt("session state", s))
}

fn kind_str(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Link => "link",
        SessionKind::Pin => "pin",
    }
}

fn finish_session(raw: RawSession) -> Result<SessionRow, StoreError> {
    let kind = match raw.kind.as_str() {
        "link" => SessionKind::Link,
        "pin" => SessionKind::Pin,
        other => return Err(corrupt("session kind", other)),
    };
    let invited: Vec<TechnicianId> = serde_json::from_str(&raw.invited).map_err(|e| corrupt("invited", e))?;
    let consent: Consent = serde_json::from_str(&raw.consent).map_err(|e| corrupt("consent", e))?;
    let agent = raw
        .agent
        .map(|a| serde_json::from_str::<AppInfo>(&a))
        .transpose()
        .map_err(|e| corrupt("agent", e))?;
    let machine = raw.machine.map(|m| serde_json::from_str::<MachineRow>(&m)).transpose().map_err(|e| corrupt("machine", e))?;
    Ok(SessionRow {
        core: Session {
            id: SessionId(raw.id),
            channel: ChannelId(raw.channel),
            kind,
            state: parse_state(&raw.state)?,
            assigned: raw.assigned.map(TechnicianId),
            invited,
            consent,
            deleted: raw.deleted,
            created_at: Timestamp(raw.created_at),
            updated_at: Timestamp(raw.updated_at),
            expires_at: Timestamp(raw.expires_at),
        },
        name: raw.name,
        link_token: raw.link_token.parse().map_err(|e| corrupt("link token", e))?,
        pin: raw.pin.map(|p| p.parse::<Pin>()).transpose().map_err(|e| corrupt("pin", e))?,
        agent,
        machine,
        node: raw.node,
    })
}

fn json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt("encoding", e))
}

/// Stores a new session.
pub fn insert_session(tx: &Tx<'_>, s: &SessionRow) -> Result<(), StoreError> {
    let c = &s.core;
    tx.execute(
        &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
        &[
            &c.id.0,
            &c.channel.0,
            &kind_str(c.kind),
            &s.name,
            &c.state.as_str(),
            &s.link_token.to_text(),
            &s.pin.map(|p| p.to_string()),
            &c.assigned.map(|t| t.0),
            &json(&c.invited)?,
            &json(&c.consent)?,
            &s.agent.as_ref().map(json).transpose()?,
            &c.deleted,
            &c.created_at.0,
            &c.updated_at.0,
            &c.expires_at.0,
            &s.machine.as_ref().map(json).transpose()?,
            &s.node,
        ],
    )?;
    Ok(())
}

/// Stores the state machine's part of a session after a transition.
pub fn update_session_core(tx: &Tx<'_>, c: &Session) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE sessions SET channel_id = ?2, state = ?3, assigned_technician_id = ?4, invited = ?5,
         consent = ?6, deleted = ?7, updated_at = ?8, expires_at = ?9 WHERE id = ?1",
        &[
            &c.id.0,
            &c.channel.0,
            &c.state.as_str(),
            &c.assigned.map(|t| t.0),
            &json(&c.invited)?,
            &json(&c.consent)?,
            &c.deleted,
            &c.updated_at.0,
            &c.expires_at.0,
        ],
    )?;
    Ok(())
}

/// Stores what the app reported about its machine.
pub fn update_session_machine(tx: &Tx<'_>, id: SessionId, machine: &MachineRow) -> Result<(), StoreError> {
    tx.execute("UPDATE sessions SET machine = ?2 WHERE id = ?1", &[&id.0, &json(machine)?])?;
    Ok(())
}

/// Records what the connected app reported.
pub fn update_session_agent(tx: &Tx<'_>, id: SessionId, agent: &AppInfo) -> Result<(), StoreError> {
    tx.execute("UPDATE sessions SET agent = ?2 WHERE id = ?1", &[&id.0, &json(agent)?])?;
    Ok(())
}

fn query_sessions(tx: &Tx<'_>, filter: &str, args: &[&dyn Param]) -> Result<Vec<SessionRow>, StoreError> {
    let rows = tx.query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE {filter} ORDER BY id"), args)?;
    rows.iter().map(|r| finish_session(raw_session(r)?)).collect()
}

/// The session with this id (deleted ones included: the caller decides).
pub fn session_by_id(tx: &Tx<'_>, id: SessionId) -> Result<Option<SessionRow>, StoreError> {
    Ok(query_sessions(tx, "id = ?1", &[&id.0])?.pop())
}

/// The live session with this link token.
pub fn live_session_by_link(tx: &Tx<'_>, token: &LinkToken) -> Result<Option<SessionRow>, StoreError> {
    Ok(query_sessions(tx, "link_token = ?1 AND deleted = 0", &[&token.to_text()])?.pop())
}

/// The live session with this PIN.
pub fn live_session_by_pin(tx: &Tx<'_>, pin: Pin) -> Result<Option<SessionRow>, StoreError> {
    Ok(query_sessions(
        tx,
        "pin = ?1 AND deleted = 0 AND state IN ('waiting', 'active', 'in_queue')",
        &[&pin.to_string()],
    )?
    .pop())
}

/// The sessions of a channel that are not deleted.
pub fn sessions_in_channel(tx: &Tx<'_>, channel: ChannelId) -> Result<Vec<SessionRow>, StoreError> {
    query_sessions(tx, "channel_id = ?1 AND deleted = 0", &[&channel.0])
}

/// Every session a technician is assigned to or invited on, not deleted.
pub fn home_sessions(tx: &Tx<'_>, technician: TechnicianId) -> Result<Vec<SessionRow>, StoreError> {
    query_sessions(tx, &format!("deleted = 0 AND {ON_SESSION}"), &[&technician.0])
}

/// Ids of live sessions whose expiry time has come.
pub fn due_for_expiry(tx: &Tx<'_>, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
    let rows = tx.query(
        "SELECT id FROM sessions WHERE state IN ('waiting', 'active', 'in_queue') AND expires_at <= ?1 ORDER BY id",
        &[&now.0],
    )?;
    rows.iter().map(|r| Ok(SessionId(r.get(0)?))).collect()
}

/// Appends an audit event, chained to the one before it (`super::audit_chain`). Writes are
/// serialised (one writer), so the event read as the last is the last.
pub fn insert_audit_event(tx: &Tx<'_>, e: &AuditEvent) -> Result<(), StoreError> {
    let last = super::audit_chain::head(tx)?;
    let row = super::audit_chain::ChainRow {
        id: last.as_ref().map_or(0, |h| h.id) + 1,
        session_id: e.session.0,
        at: e.at.0,
        actor: json(&e.actor)?,
        action: json(&e.action)?,
        from_state: e.from.map(|s| s.as_str().to_owned()),
        to_state: e.to.as_str().to_owned(),
    };
    let hash = row.hash(last.as_ref().and_then(super::audit_chain::Head::chained));
    tx.execute(
        "INSERT INTO audit_events (id, session_id, at, actor, action, from_state, to_state, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[&row.id, &row.session_id, &row.at, &row.actor, &row.action, &row.from_state, &row.to_state, &hash],
    )?;
    Ok(())
}

/// A session's audit trail, oldest first.
pub fn audit_events(tx: &Tx<'_>, session: SessionId) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = tx.query(
        "SELECT at, actor, action, from_state, to_state FROM audit_events WHERE session_id = ?1 ORDER BY id",
        &[&session.0],
    )?;
    rows.iter()
        .map(|r| {
            Ok(AuditEvent {
                session,
                at: Timestamp(r.get(0)?),
                actor: serde_json::from_str(&r.get::<String>(1)?).map_err(|e| corrupt("actor", e))?,
                action: serde_json::from_str(&r.get::<String>(2)?).map_err(|e| corrupt("action", e))?,
                from: r.get::<Option<String>>(3)?.as_deref().map(parse_state).transpose()?,
                to: parse_state(&r.get::<String>(4)?)?,
            })
        })
        .collect()
}

/// Sessions with a consent request past its deadline, with the request's id.
pub fn consent_past_deadline(tx: &Tx<'_>, now: Timestamp) -> Result<Vec<(SessionId, u64)>, StoreError> {
    // Few sessions have a pending request at any time: select them by state, decide in Rust.
    let candidates = query_sessions(tx, "state = 'active' AND deleted = 0 AND consent LIKE '%\"request_id\"%'", &[])?;
    Ok(candidates
        .into_iter()
        .filter_map(|s| match s.core.consent.pending {
            Some(p) if p.deadline <= now => Some((s.core.id, p.request_id)),
            _ => None,
        })
        .collect())
}

/// The resumption secret (its SHA-256) of the app connected to a session, and when that app
/// dropped (`None`: still connected, as far as the relay knows).
pub fn resume_of(tx: &Tx<'_>, id: SessionId) -> Result<Option<(String, Option<Timestamp>)>, StoreError> {
    let Some(row) = tx.query_opt("SELECT resume_hash, resume_dropped_at FROM sessions WHERE id = ?1", &[&id.0])? else {
        return Ok(None);
    };
    let (hash, dropped): (Option<String>, Option<i64>) = (row.get(0)?, row.get(1)?);
    Ok(hash.map(|h| (h, dropped.map(Timestamp))))
}

/// Records the resumption secret of the app that just connected (`None`: nothing may resume).
pub fn set_resume(tx: &Tx<'_>, id: SessionId, hash: Option<&str>) -> Result<(), StoreError> {
    tx.execute("UPDATE sessions SET resume_hash = ?2, resume_dropped_at = NULL WHERE id = ?1", &[&id.0, &hash])?;
    Ok(())
}

/// Starts the grace window of the session's app: it dropped at `at`.
pub fn resume_dropped(tx: &Tx<'_>, id: SessionId, at: Timestamp) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE sessions SET resume_dropped_at = ?2 WHERE id = ?1 AND resume_hash IS NOT NULL",
        &[&id.0, &at.0],
    )?;
    Ok(())
}

/// Sessions that read as having an app connected, but not to node `own` nor to another node
/// that beat after `alive_since`: their app is gone with its node (or with this node's
/// previous run).
pub fn sessions_with_lost_app(tx: &Tx<'_>, own: &str, alive_since: Timestamp) -> Result<Vec<SessionId>, StoreError> {
    let rows = tx.query(
        "SELECT id FROM sessions s WHERE state IN ('active', 'in_queue') AND deleted = 0
         AND (node IS NULL OR (node <> ?1 AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = s.node AND n.beat_at > ?2)))
         ORDER BY id",
        &[&own, &alive_since.0],
    )?;
    rows.iter().map(|r| Ok(SessionId(r.get(0)?))).collect()
}

/// Records the node a session's app is connected to (`None`: to none).
pub fn set_session_node(tx: &Tx<'_>, id: SessionId, node: Option<&str>) -> Result<(), StoreError> {
    tx.execute("UPDATE sessions SET node = ?2 WHERE id = ?1", &[&id.0, &node])?;
    Ok(())
}

/// A running relay node (several share a PostgreSQL database; a relay alone on SQLite is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Random per process.
    pub id: String,
    /// Where apps and viewers reach it: `host:port`.
    pub quic: String,
    /// SHA-256 of its QUIC certificate (lowercase hex).
    pub fingerprint: String,
    /// Where the other nodes reach its API (HTTPS).
    pub url: String,
    /// The SHA-256 (hex) of the certificate to pin there; `None`: the web PKI (an operator's
    /// own certificate).
    pub url_pin: Option<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub beat_at: Timestamp,
}

/// Adds a node or renews its heartbeat.
pub fn beat_node(tx: &Tx<'_>, n: &NodeRow) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO nodes (id, quic, fingerprint, url, url_pin, started_at, beat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at, url_pin = excluded.url_pin",
        &[&n.id, &n.quic, &n.fingerprint, &n.url, &n.url_pin, &n.started_at.0, &n.beat_at.0],
    )?;
    Ok(())
}

/// The node with this id, if it beat after `alive_since`.
pub fn live_node(tx: &Tx<'_>, id: &str, alive_since: Timestamp) -> Result<Option<NodeRow>, StoreError> {
    let row = tx.query_opt(
        "SELECT id, quic, fingerprint, url, url_pin, started_at, beat_at FROM nodes WHERE id = ?1 AND beat_at > ?2",
        &[&id, &alive_since.0],
    )?;
    row.as_ref().map(node_from_row).transpose()
}

/// Every node that beat after `alive_since`, oldest first.
pub fn live_nodes(tx: &Tx<'_>, alive_since: Timestamp) -> Result<Vec<NodeRow>, StoreError> {
    let rows = tx.query(
        "SELECT id, quic, fingerprint, url, url_pin, started_at, beat_at FROM nodes WHERE beat_at > ?1 ORDER BY started_at, id",
        &[&alive_since.0],
    )?;
    rows.iter().map(node_from_row).collect()
}

fn node_from_row(r: &Row) -> Result<NodeRow, StoreError> {
    Ok(NodeRow {
        id: r.get(0)?,
        quic: r.get(1)?,
        fingerprint: r.get(2)?,
        url: r.get(3)?,
        url_pin: r.get(4)?,
        started_at: Timestamp(r.get(5)?),
        beat_at: Timestamp(r.get(6)?),
    })
}

/// Forgets one node (it stopped cleanly).
pub fn forget_node(tx: &Tx<'_>, id: &str) -> Result<usize, StoreError> {
    tx.execute("DELETE FROM nodes WHERE id = ?1", &[&id])
}

/// Forgets nodes that have not beaten since `before` (long dead: their sessions were taken back
/// long ago).
pub fn forget_nodes(tx: &Tx<'_>, before: Timestamp) -> Result<usize, StoreError> {
    tx.execute("DELETE FROM nodes WHERE beat_at < ?1", &[&before.0])
}

/// One recording file of a session (a segment: recordings are cut at display changes and
/// relay restarts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    /// Id (also its file name under the recordings directory).
    pub id: i64,
    /// The session recorded.
    pub session: SessionId,
    /// When its first picture arrived.
    pub started_at: Timestamp,
    /// When it ended (`None`: being written, or the relay stopped before it could say).
    pub ended_at: Option<Timestamp>,
    /// Picture size.
    pub width: u32,
    /// Picture size.
    pub height: u32,
    /// Length of the video.
    pub duration_ms: i64,
    /// Size of the video file.
    pub bytes: i64,
    /// The relay node that writes (wrote) its files, in its own data directory.
    pub node: Option<String>,
}

const RECORDING_COLUMNS: &str = "id, session_id, started_at, ended_at, width, height, duration_ms, bytes, node";

fn recording_from_row(row: &Row) -> Result<RecordingRow, StoreError> {
    Ok(RecordingRow {
        id: row.get(0)?,
        session: SessionId(row.get(1)?),
        started_at: Timestamp(row.get(2)?),
        ended_at: row.get::<Option<i64>>(3)?.map(Timestamp),
        width: row.get(4)?,
        height: row.get(5)?,
        duration_ms: row.get(6)?,
        bytes: row.get(7)?,
        node: row.get(8)?,
    })
}

/// Adds a recording being written by relay node `node`; returns its id.
pub fn insert_recording(tx: &Tx<'_>, session: SessionId, started_at: Timestamp, width: u32, height: u32, node: &str) -> Result<i64, StoreError> {
    tx.query_one(
        "INSERT INTO recordings (session_id, started_at, width, height, node) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        &[&session.0, &started_at.0, &width, &height, &node],
    )?
    .get(0)
}

/// Marks a recording finished.
pub fn finish_recording(tx: &Tx<'_>, id: i64, ended_at: Timestamp, duration_ms: i64, bytes: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE recordings SET ended_at = ?2, duration_ms = ?3, bytes = ?4 WHERE id = ?1",
        &[&id, &ended_at.0, &duration_ms, &bytes],
    )?;
    Ok(())
}

/// One recording.
pub fn recording_by_id(tx: &Tx<'_>, id: i64) -> Result<Option<RecordingRow>, StoreError> {
    tx.query_opt(&format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE id = ?1"), &[&id])?
        .as_ref()
        .map(recording_from_row)
        .transpose()
}

/// A session's recordings, oldest first.
pub fn recordings_of(tx: &Tx<'_>, session: SessionId) -> Result<Vec<RecordingRow>, StoreError> {
    let rows = tx.query(&format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE session_id = ?1 ORDER BY id"), &[&session.0])?;
    rows.iter().map(recording_from_row).collect()
}

/// Recordings left unfinished (the relay stopped while writing them).
pub fn unfinished_recordings(tx: &Tx<'_>) -> Result<Vec<RecordingRow>, StoreError> {
    let rows = tx.query(&format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE ended_at IS NULL ORDER BY id"), &[])?;
    rows.iter().map(recording_from_row).collect()
}

/// Finished recordings past their channel's retention at `now` (channels keeping them for 0
/// days keep them).
pub fn recordings_past_retention(tx: &Tx<'_>, now: Timestamp) -> Result<Vec<RecordingRow>, StoreError> {
    let rows = tx.query(
        "SELECT r.id, r.session_id, r.started_at, r.ended_at, r.width, r.height, r.duration_ms, r.bytes, r.node \
         FROM recordings r JOIN sessions s ON s.id = r.session_id JOIN channels c ON c.id = s.channel_id \
         WHERE r.ended_at IS NOT NULL AND c.recording_retention_days > 0 \
           AND r.ended_at + c.recording_retention_days * 86400000 <= ?1 ORDER BY r.id",
        &[&now.0],
    )?;
    rows.iter().map(recording_from_row).collect()
}

/// Forgets a recording (its files are deleted by the caller).
pub fn delete_recording(tx: &Tx<'_>, id: i64) -> Result<(), StoreError> {
    tx.execute("DELETE FROM recordings WHERE id = ?1", &[&id])?;
    Ok(())
}
