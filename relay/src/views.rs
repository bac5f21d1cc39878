//! The JSON shapes of the HTTP API (DESIGN §5), built from stored rows. The shapes themselves
//! are defined once in `deskline-api`, which the console reads them with.

use crate::clock::rfc3339;
use crate::store::{ChannelRow, SessionRow, TechnicianRow};
use deskline_protocol::session::{Actor, AuditEvent, Consent, SessionKind};
use deskline_protocol::{Capabilities, SessionId, TechnicianId, Timestamp};

pub use deskline_api::{
    AuditEventView, ChannelView, ChatMessageView, MachineView, ConsentView, GrantView, LiveEvent, PendingView, RelayInfo, SessionView, Settings,
    TechnicianView,
};

/// A technician as the API shows them (`require_second_factor`: the relay-wide setting).
#[must_use]
pub fn technician(t: &TechnicianRow, require_second_factor: bool) -> TechnicianView {
    TechnicianView {
        id: t.id.0,
        username: t.username.clone(),
        display_name: t.display_name.clone(),
        role: t.role,
        must_change_password: t.must_change_password,
        disabled: t.disabled,
        second_factor: t.totp_secret.is_some(),
        second_factor_required: require_second_factor && t.totp_secret.is_none(),
        created_at: rfc3339(t.created_at),
    }
}

/// A channel with its members.
#[must_use]
pub fn channel(c: &ChannelRow, members: &[TechnicianId]) -> ChannelView {
    ChannelView {
        id: c.id.0,
        name: c.name.clone(),
        session_expiry_secs: c.session_expiry_secs,
        consent_timeout_secs: c.consent_timeout_secs,
        max_file_bytes: c.max_file_bytes,
        record_sessions: c.record_sessions,
        recording_retention_days: c.recording_retention_days,
        member_ids: members.iter().map(|t| t.0).collect(),
        created_at: rfc3339(c.created_at),
    }
}

fn consent(c: &Consent) -> ConsentView {
    let granted = c.grants.iter().fold(Capabilities::NONE, |all, g| all.union(g.capabilities));
    let (status, capabilities) = match c.pending {
        Some(p) => ("pending", p.capabilities),
        None if c.suspended => ("suspended", granted),
        None if !c.grants.is_empty() => ("granted", granted),
        None => ("none", Capabilities::NONE),
    };
    ConsentView {
        status: status.into(),
        capabilities,
        grants: c.grants.iter().map(|g| GrantView { technician_id: g.technician.0, capabilities: g.capabilities }).collect(),
        pending: c.pending.map(|p| PendingView {
            requested_by: p.requested_by.0,
            capabilities: p.capabilities,
            deadline: rfc3339(p.deadline),
        }),
    }
}

/// What session links are built from.
#[derive(Debug, Clone)]
pub struct LinkBase {
    /// The relay's public URL.
    pub url: String,
    /// Where apps connect and which certificate they pin, as the link's fragment
    /// (`#quic=HOST:PORT&sha256=HEX`): browsers never send a fragment to the server, and the
    /// support app reads it from the link it is started with.
    pub fragment: String,
}

/// A session as the API shows it; links are built on `links`.
#[must_use]
pub fn session(s: &SessionRow, links: &LinkBase) -> SessionView {
    let live = s.core.state.is_live() && !s.core.deleted;
    let c = &s.core;
    SessionView {
        id: c.id.0,
        channel_id: c.channel.0,
        kind: match c.kind {
            SessionKind::Link => "link".into(),
            SessionKind::Pin => "pin".into(),
        },
        name: s.name.clone(),
        state: c.state.as_str().into(),
        deleted: c.deleted,
        link: (live && s.pin.is_none())
            .then(|| format!("{}/s/{}{}", links.url.trim_end_matches('/'), s.link_token, links.fragment)),
        pin: s.pin.filter(|_| live).map(|p| p.to_string()),
        assigned_technician_id: c.assigned.map(|t| t.0),
        invited_technician_ids: c.invited.iter().map(|t| t.0).collect(),
        agent: s.agent.clone(),
        machine: s.machine.as_ref().map(|m| MachineView {
            user_name: m.user_name.clone(),
            cpu: m.cpu.clone(),
            cpu_threads: m.cpu_threads,
            memory_bytes: m.memory_bytes,
            booted_at: rfc3339(m.booted_at),
        }),
        consent: consent(&c.consent),
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
        expires_at: rfc3339(c.expires_at),
    }
}

/// One audit event as the API shows it.
#[must_use]
pub fn audit_event(e: &AuditEvent) -> AuditEventView {
    AuditEventView {
        session_id: e.session.0,
        at: rfc3339(e.at),
        actor: e.actor,
        action: e.action.clone(),
        from: e.from.map(|s| s.as_str().to_owned()),
        to: e.to.as_str().to_owned(),
    }
}

/// A chat line as the API shows it; `name` is the technician's display name (ignored for the
/// end user).
#[must_use]
pub fn chat_message(session: SessionId, at: Timestamp, from: &Actor, name: &str, text: &str) -> ChatMessageView {
    let (kind, technician_id, name) = match from {
        Actor::Technician(id) => ("technician", Some(id.0), name.to_owned()),
        Actor::App | Actor::System => ("end_user", None, "End user".to_owned()),
    };
    ChatMessageView { session_id: session.0, at: rfc3339(at), from: kind.into(), technician_id, name, text: text.to_owned() }
}

/// Where a session event may be shown.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionEvent {
    /// What consoles are told: the session's new view, or a chat line on it.
    pub live: deskline_api::LiveEvent,
    /// The session's channel (before a transfer: both channels get an event).
    pub channels: Vec<i64>,
    /// Technicians on the session.
    pub technicians: Vec<TechnicianId>,
    /// Its id.
    pub id: SessionId,
    /// A technician's chat line said through another relay node, for the app if it is
    /// connected here (a line said here goes to the app directly).
    pub for_app: Option<deskline_protocol::ChatLine>,
}

/// A recording as the API shows it.
pub fn recording(r: &crate::store::RecordingRow) -> deskline_api::RecordingView {
    deskline_api::RecordingView {
        id: r.id,
        session_id: r.session.0,
        started_at: rfc3339(r.started_at),
        ended_at: r.ended_at.map(rfc3339),
        width: r.width,
        height: r.height,
        duration_ms: r.duration_ms,
        bytes: r.bytes,
    }
}
