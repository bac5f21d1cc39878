//! The JSON shapes of the HTTP API (DESIGN §5), built from stored rows.

use crate::clock::rfc3339;
use crate::store::{ChannelRow, Role, SessionRow, TechnicianRow};
use deskline_protocol::session::{AuditEvent, Consent};
use deskline_protocol::{AppInfo, Capabilities, SessionId, TechnicianId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A technician, as others see them (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TechnicianView {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Name shown to end users.
    pub display_name: String,
    /// `admin` or `technician`.
    #[schema(value_type = String, example = "technician")]
    pub role: Role,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&TechnicianRow> for TechnicianView {
    fn from(t: &TechnicianRow) -> Self {
        TechnicianView {
            id: t.id.0,
            username: t.username.clone(),
            display_name: t.display_name.clone(),
            role: t.role,
            created_at: rfc3339(t.created_at),
        }
    }
}

/// A channel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Lifetime of its sessions, in seconds.
    pub session_expiry_secs: i64,
    /// Time the end user has to answer a consent prompt, in seconds.
    pub consent_timeout_secs: i64,
    /// Ids of its members.
    pub member_ids: Vec<i64>,
    /// RFC 3339.
    pub created_at: String,
}

impl ChannelView {
    /// The view of a channel with its members.
    #[must_use]
    pub fn new(c: &ChannelRow, members: &[TechnicianId]) -> ChannelView {
        ChannelView {
            id: c.id.0,
            name: c.name.clone(),
            session_expiry_secs: c.session_expiry_secs,
            consent_timeout_secs: c.consent_timeout_secs,
            member_ids: members.iter().map(|t| t.0).collect(),
            created_at: rfc3339(c.created_at),
        }
    }
}

/// A support session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// Id.
    pub id: i64,
    /// Its channel.
    pub channel_id: i64,
    /// `link` or `pin`.
    #[schema(example = "pin")]
    pub kind: String,
    /// Name or note.
    pub name: String,
    /// `waiting`, `active`, `in_queue`, `expired` or `closed`.
    #[schema(example = "waiting")]
    pub state: String,
    /// The invite link, while the session is live (link sessions).
    pub link: Option<String>,
    /// The 6-digit PIN, while the session is live (PIN sessions).
    pub pin: Option<String>,
    /// The owner.
    pub assigned_technician_id: Option<i64>,
    /// Collaborating technicians.
    pub invited_technician_ids: Vec<i64>,
    /// What the support app reported when it connected.
    #[schema(value_type = Option<Object>)]
    pub agent: Option<AppInfo>,
    /// Where consent stands, per technician.
    pub consent: ConsentView,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// Where consent stands between the session's technicians and the end user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    /// In one word: `pending` (a request waits for the end user), else `suspended` (the app
    /// dropped; kept for its resumption), else `granted` (someone may see the screen), else
    /// `none`.
    #[schema(example = "granted")]
    pub status: String,
    /// With `pending`: what is asked; otherwise what is granted to anyone
    /// (`{"view": bool, "control": bool}`).
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
    /// What the end user allows each technician: the end user's yes is to one technician.
    pub grants: Vec<GrantView>,
    /// The request waiting for an answer.
    pub pending: Option<PendingView>,
}

/// What one technician may do.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    /// The technician.
    pub technician_id: i64,
    /// `{"view": bool, "control": bool}`.
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
}

/// A consent request waiting for the end user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PendingView {
    /// Who asked.
    pub requested_by: i64,
    /// What they asked for.
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
    /// RFC 3339: when it denies itself.
    pub deadline: String,
}

impl ConsentView {
    fn new(c: &Consent) -> ConsentView {
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

impl SessionView {
    /// The view of a session; links are built on `links`.
    #[must_use]
    pub fn new(s: &SessionRow, links: &LinkBase) -> SessionView {
        let live = s.core.state.is_live() && !s.core.deleted;
        let c = &s.core;
        SessionView {
            id: c.id.0,
            channel_id: c.channel.0,
            kind: match c.kind {
                deskline_protocol::session::SessionKind::Link => "link".into(),
                deskline_protocol::session::SessionKind::Pin => "pin".into(),
            },
            name: s.name.clone(),
            state: c.state.as_str().into(),
            link: (live && s.pin.is_none())
                .then(|| format!("{}/s/{}{}", links.url.trim_end_matches('/'), s.link_token, links.fragment)),
            pin: s.pin.filter(|_| live).map(|p| p.to_string()),
            assigned_technician_id: c.assigned.map(|t| t.0),
            invited_technician_ids: c.invited.iter().map(|t| t.0).collect(),
            agent: s.agent.clone(),
            consent: ConsentView::new(&c.consent),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            expires_at: rfc3339(c.expires_at),
        }
    }
}

/// One entry of a session's audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    /// The session.
    pub session_id: i64,
    /// RFC 3339.
    pub at: String,
    /// `{"kind": "technician", "id": 3}`, `{"kind": "app"}` or `{"kind": "system"}`.
    #[schema(value_type = Object)]
    pub actor: deskline_protocol::session::Actor,
    /// `{"action": "invited", "technician": 3}` and so on.
    #[schema(value_type = Object)]
    pub action: deskline_protocol::session::AuditAction,
    /// State before (absent for creation).
    pub from: Option<String>,
    /// State after.
    pub to: String,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> Self {
        AuditEventView {
            session_id: e.session.0,
            at: rfc3339(e.at),
            actor: e.actor,
            action: e.action.clone(),
            from: e.from.map(|s| s.as_str().to_owned()),
            to: e.to.as_str().to_owned(),
        }
    }
}

/// A live update pushed to consoles.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A session changed (or was created); the whole new view.
    Session {
        /// The session.
        session: Box<SessionView>,
    },
    /// Updates were missed (the subscriber was too slow): reload everything.
    Resync,
}

/// Where a session event may be shown.
#[derive(Debug, Clone)]
pub struct SessionEvent {
    /// The session's view.
    pub view: SessionView,
    /// The session's channel (before a transfer: both channels get an event).
    pub channels: Vec<i64>,
    /// Technicians on the session.
    pub technicians: Vec<TechnicianId>,
    /// Its id.
    pub id: SessionId,
}
