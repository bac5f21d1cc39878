//! The service-desk session: its states, the actions on it and the audit events they record
//! (DESIGN §2).
//!
//! Every change of a session goes through one pure function per action in [`machine`]: given
//! the session, a [`Context`] (who acts, when, and what the directory says about technicians)
//! and the action's arguments, it returns the new session plus the [`AuditEvent`] to store, or
//! a typed [`Refusal`]. Nothing here reads a clock or a database; the relay passes facts in.

pub mod machine;
#[cfg(test)]
mod tests;

use crate::capability::Capabilities;
use crate::ids::{ChannelId, SessionId, TechnicianId, Timestamp};
use crate::message::ConsentOutcome;
use serde::{Deserialize, Serialize};
use std::fmt;

pub use machine::{Action, apply, create};

/// A session's state as the product shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Created; the support app is not connected (never was, or dropped while the code is valid).
    Waiting,
    /// The app is connected and a technician is assigned.
    Active,
    /// The app is connected and nobody is assigned.
    InQueue,
    /// The channel's session expiry passed before it was closed; its code no longer works.
    Expired,
    /// A technician closed it; terminal.
    Closed,
}

impl SessionState {
    /// Every state, for tables and tests.
    pub const ALL: [SessionState; 5] = [
        SessionState::Waiting,
        SessionState::Active,
        SessionState::InQueue,
        SessionState::Expired,
        SessionState::Closed,
    ];

    /// Can the session still be worked on (its code still valid)?
    #[must_use]
    pub const fn is_live(self) -> bool {
        matches!(self, SessionState::Waiting | SessionState::Active | SessionState::InQueue)
    }

    /// Is the support app connected?
    #[must_use]
    pub const fn app_connected(self) -> bool {
        matches!(self, SessionState::Active | SessionState::InQueue)
    }

    /// The name used in the API and the console.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionState::Waiting => "waiting",
            SessionState::Active => "active",
            SessionState::InQueue => "in_queue",
            SessionState::Expired => "expired",
            SessionState::Closed => "closed",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the end user joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// By an invite link (which downloads the app with the code inside).
    Link,
    /// By a 6-digit PIN typed into the generic app.
    Pin,
}

/// What the end user allowed one technician.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The technician the end user said yes to.
    pub technician: TechnicianId,
    /// What they may do.
    pub capabilities: Capabilities,
}

/// A consent request waiting for the end user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConsent {
    /// Echoed by the app's decision.
    pub request_id: u64,
    /// The technician who asked (and who gets what is allowed).
    pub requested_by: TechnicianId,
    /// What was asked for.
    pub capabilities: Capabilities,
    /// When the request auto-denies.
    pub deadline: Timestamp,
}

/// Where consent stands between the technicians and the connected app.
///
/// Consent is per technician: the end user's yes to one technician lets nobody else see or
/// control the screen. A technician who joins later asks, and the end user is asked again,
/// naming them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Consent {
    /// What each technician may do (one entry per technician, none empty).
    pub grants: Vec<Grant>,
    /// The request waiting for an answer, if any (one at a time: the end user answers one
    /// popup at a time).
    pub pending: Option<PendingConsent>,
    /// The app dropped: the grants are kept only for the same app instance resuming within the
    /// grace window, and allow nothing meanwhile.
    pub suspended: bool,
}

impl Consent {
    /// Nothing asked, nothing granted.
    pub const NONE: Consent = Consent { grants: Vec::new(), pending: None, suspended: false };

    /// What the end user allows this technician right now.
    #[must_use]
    pub fn granted_to(&self, technician: TechnicianId) -> Capabilities {
        if self.suspended {
            return Capabilities::NONE;
        }
        self.grants.iter().find(|g| g.technician == technician).map_or(Capabilities::NONE, |g| g.capabilities)
    }

    /// The grants in force right now (none while suspended).
    #[must_use]
    pub fn active_grants(&self) -> &[Grant] {
        if self.suspended { &[] } else { &self.grants }
    }

    /// Is anything granted to anyone right now?
    #[must_use]
    pub fn any_granted(&self) -> bool {
        !self.active_grants().is_empty()
    }

    /// This consent with `technician`'s grant and pending request gone (they left the session).
    #[must_use]
    pub fn without(&self, technician: TechnicianId) -> Consent {
        self.retain(|t| t != technician)
    }

    /// This consent keeping only the technicians for whom `keep` holds (their grants and
    /// their pending request).
    #[must_use]
    pub fn retain(&self, keep: impl Fn(TechnicianId) -> bool) -> Consent {
        let mut next = self.clone();
        next.grants.retain(|g| keep(g.technician));
        if next.pending.is_some_and(|p| !keep(p.requested_by)) {
            next.pending = None;
        }
        next.suspended &= !next.grants.is_empty();
        next
    }
}

/// The part of a session the state machine governs. The relay stores more (name, codes, agent
/// info) beside it; none of that changes state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The channel it belongs to.
    pub channel: ChannelId,
    /// Link or PIN.
    pub kind: SessionKind,
    /// Its state.
    pub state: SessionState,
    /// The technician who owns it, if any.
    pub assigned: Option<TechnicianId>,
    /// Collaborating technicians (at most [`crate::limits::MAX_INVITED_TECHNICIANS`]).
    pub invited: Vec<TechnicianId>,
    /// Consent between the technicians and the app.
    pub consent: Consent,
    /// Deleted from its channel's lists (audit history is kept).
    pub deleted: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it expires unless closed before.
    pub expires_at: Timestamp,
}

impl Session {
    /// Is this technician assigned to or invited on the session?
    #[must_use]
    pub fn has_technician(&self, technician: TechnicianId) -> bool {
        self.assigned == Some(technician) || self.invited.contains(&technician)
    }

    /// Technicians on the session: the assigned one and the invited ones.
    pub fn technicians(&self) -> impl Iterator<Item = TechnicianId> + '_ {
        self.assigned.iter().copied().chain(self.invited.iter().copied())
    }
}

/// Who performs an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Actor {
    /// A signed-in technician.
    Technician(TechnicianId),
    /// The session's support app (the end user).
    App,
    /// The relay itself (expiry, timeouts).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Technician(id) => write!(f, "technician {id}"),
            Actor::App => f.write_str("support app"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// What the state machine needs to know about technicians. The relay answers from its store;
/// tests answer from a table.
pub trait Directory {
    /// Is this technician an administrator (who may work in every channel)?
    fn is_admin(&self, technician: TechnicianId) -> bool;
    /// Is this technician a member of the channel?
    fn is_member(&self, channel: ChannelId, technician: TechnicianId) -> bool;
    /// How many open sessions (not closed, not expired, not deleted) are assigned to them.
    fn open_sessions_assigned(&self, technician: TechnicianId) -> usize;

    /// May this technician work on the channel's sessions?
    fn works_in(&self, channel: ChannelId, technician: TechnicianId) -> bool {
        self.is_admin(technician) || self.is_member(channel, technician)
    }
}

/// The facts an action is decided on.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The current time.
    pub now: Timestamp,
    /// Who acts.
    pub actor: Actor,
    /// What is known about technicians.
    pub directory: &'a dyn Directory,
}

/// What happened, as stored in the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The session.
    pub session: SessionId,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: AuditAction,
    /// State before (`None` for creation).
    pub from: Option<SessionState>,
    /// State after.
    pub to: SessionState,
}

/// The action an audit event records, with its particulars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum AuditAction {
    /// The session was created.
    Created {
        /// Its channel.
        channel: ChannelId,
        /// Link or PIN.
        kind: SessionKind,
    },
    /// The support app connected.
    AppConnected {
        /// The same app instance came back within the grace window.
        resumed: bool,
    },
    /// The support app disconnected.
    AppDisconnected,
    /// A technician was assigned.
    Assigned {
        /// The new owner.
        technician: TechnicianId,
        /// The previous owner, if any.
        previous: Option<TechnicianId>,
    },
    /// Handed to another technician.
    TransferredToTechnician {
        /// The new owner.
        technician: TechnicianId,
        /// The previous owner.
        previous: TechnicianId,
    },
    /// Moved to another channel's queue.
    TransferredToChannel {
        /// Where it was.
        from: ChannelId,
        /// Where it is now.
        to: ChannelId,
    },
    /// A collaborating technician was added.
    Invited {
        /// Who.
        technician: TechnicianId,
    },
    /// An invited technician was taken off the session (or left it).
    Uninvited {
        /// Who.
        technician: TechnicianId,
    },
    /// The owner let go of it.
    Released {
        /// The previous owner.
        technician: TechnicianId,
    },
    /// A technician asked the end user for remote access (the event's actor is who asked).
    RemoteRequested {
        /// The request.
        request_id: u64,
        /// What was asked for.
        capabilities: Capabilities,
    },
    /// The end user answered (or the request timed out).
    ConsentDecided {
        /// The request.
        request_id: u64,
        /// The technician it was asked for (absent in events recorded before consent was per
        /// technician).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        technician: Option<TechnicianId>,
        /// The answer.
        outcome: ConsentOutcome,
    },
    /// The end user reduced what is granted.
    ConsentChanged {
        /// What remains.
        capabilities: Capabilities,
    },
    /// Closed by a technician.
    Closed,
    /// Deleted from the lists.
    Deleted,
    /// The expiry time passed.
    Expired,
    /// A chat line (the actor wrote it: a technician, or the end user as the app). Kept in
    /// the hash-chained trail, so what was said cannot be changed afterwards.
    Chat {
        /// What was written.
        text: String,
    },
    /// Copied text passed: from a technician to the end user's clipboard (the actor is the
    /// technician), or the end user's copy to the technicians granted it (the actor is the
    /// app). Only its size is kept: a clipboard often holds a password.
    Clipboard {
        /// Its length in bytes.
        bytes: u32,
    },
    /// A file passed, or did not: from a technician to the end user (the actor is the
    /// technician) or the end user's to a technician (the actor is the app). The relay never
    /// keeps the file; its name, size and SHA-256 are kept here.
    File {
        /// Its name.
        name: String,
        /// Its size in bytes.
        bytes: u64,
        /// Its SHA-256, hexadecimal.
        sha256: String,
        /// How it ended.
        outcome: FileOutcome,
    },
    /// The relay began a recording of the app's screen (the channel records its sessions): a
    /// new one at each display change and after a relay restart.
    RecordingStarted {
        /// The recording's id.
        recording: i64,
        /// Its picture size.
        width: u32,
        /// Its picture size.
        height: u32,
    },
    /// A technician played or downloaded a recording.
    RecordingViewed {
        /// The recording's id.
        recording: i64,
    },
    /// A recording was deleted: past its channel's retention (the actor is the relay).
    RecordingDeleted {
        /// The recording's id.
        recording: i64,
    },
}

/// How a file's transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    /// Saved whole (size and SHA-256 checked) under its final name.
    Saved,
    /// The receiver declined it.
    Declined,
    /// It broke off, failed its check, or could not be saved: nothing was kept.
    Failed,
}

/// The result of an allowed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The session after the action.
    pub session: Session,
    /// What to append to the audit log.
    pub event: AuditEvent,
}

/// Who a refusal blames, so the API can pick a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The actor may not do this (HTTP 403).
    Forbidden,
    /// The session's state does not allow it (HTTP 409).
    Conflict,
    /// The arguments make no sense for this session (HTTP 400).
    BadRequest,
    /// The session is gone (HTTP 404).
    Gone,
}

/// Why an action was refused. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// This kind of actor cannot perform this action (an app cannot assign, a technician
    /// cannot answer consent).
    #[error("{0} cannot perform this action")]
    WrongActor(Actor),
    /// The acting technician is not a member of the session's channel.
    #[error("you are not a member of this session's channel")]
    NotAMember,
    /// The technician named is not a member of the session's channel.
    #[error("that technician is not a member of this session's channel")]
    TargetNotAMember,
    /// A fourth technician.
    #[error("a session has at most {} technicians", crate::limits::MAX_TECHNICIANS_PER_SESSION)]
    TooManyTechnicians,
    /// The technician already owns as many open sessions as allowed.
    #[error("a technician can own at most {} open sessions", crate::limits::MAX_OPEN_SESSIONS_PER_TECHNICIAN)]
    TooManyOpenSessions,
    /// The technician named is already on the session.
    #[error("that technician is already on this session")]
    AlreadyOnSession,
    /// The technician named already owns the session.
    #[error("that technician is already assigned")]
    AlreadyAssigned,
    /// Nobody owns the session.
    #[error("nobody is assigned to this session")]
    NotAssigned,
    /// The session is already in that channel.
    #[error("the session is already in that channel")]
    SameChannel,
    /// Remote access needs an active session (app connected, technician assigned).
    #[error("remote access needs an active session")]
    NotActive,
    /// Only technicians on the session may ask for remote access.
    #[error("only the assigned or invited technicians may start remote access")]
    NotOnSession,
    /// Only the assigned technician (or an administrator) brings others onto a session or
    /// takes them off: the end user's trust is in the technician they are talking to.
    #[error("only the assigned technician or an administrator may invite or remove technicians")]
    NotOwner,
    /// The technician named is not among the session's invited technicians.
    #[error("that technician is not invited to this session")]
    NotInvited,
    /// A remote access request must ask for something.
    #[error("nothing was requested")]
    NothingRequested,
    /// A consent request is already waiting for an answer.
    #[error("a consent request is already waiting for the end user")]
    ConsentAlreadyPending,
    /// What is asked for is already granted.
    #[error("remote access is already granted")]
    AlreadyGranted,
    /// A decision for a request that is not pending.
    #[error("no such consent request is pending")]
    UnknownConsentRequest,
    /// A change of consent while nothing is granted.
    #[error("nothing is granted")]
    NothingGranted,
    /// An app is already connected with this code.
    #[error("an app is already connected to this session")]
    AppAlreadyConnected,
    /// No app is connected.
    #[error("no app is connected to this session")]
    AppNotConnected,
    /// The expiry time has not come.
    #[error("the session has not reached its expiry time")]
    NotYetExpired,
    /// The session expired.
    #[error("the session has expired")]
    Expired,
    /// The session is closed.
    #[error("the session is closed")]
    AlreadyClosed,
    /// The session was deleted.
    #[error("the session was deleted")]
    Deleted,
}

impl Refusal {
    /// The stable machine-readable code used in API errors.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Refusal::WrongActor(_) => "wrong_actor",
            Refusal::NotAMember => "not_a_member",
            Refusal::TargetNotAMember => "target_not_a_member",
            Refusal::TooManyTechnicians => "too_many_technicians",
            Refusal::TooManyOpenSessions => "too_many_open_sessions",
            Refusal::AlreadyOnSession => "already_on_session",
            Refusal::AlreadyAssigned => "already_assigned",
            Refusal::NotAssigned => "not_assigned",
            Refusal::SameChannel => "same_channel",
            Refusal::NotActive => "not_active",
            Refusal::NotOnSession => "not_on_session",
            Refusal::NotOwner => "not_owner",
            Refusal::NotInvited => "not_invited",
            Refusal::NothingRequested => "nothing_requested",
            Refusal::ConsentAlreadyPending => "consent_already_pending",
            Refusal::AlreadyGranted => "already_granted",
            Refusal::UnknownConsentRequest => "unknown_consent_request",
            Refusal::NothingGranted => "nothing_granted",
            Refusal::AppAlreadyConnected => "app_already_connected",
            Refusal::AppNotConnected => "app_not_connected",
            Refusal::NotYetExpired => "not_yet_expired",
            Refusal::Expired => "expired",
            Refusal::AlreadyClosed => "closed",
            Refusal::Deleted => "deleted",
        }
    }

    /// Who is at fault.
    #[must_use]
    pub const fn kind(self) -> RefusalKind {
        match self {
            Refusal::WrongActor(_) | Refusal::NotAMember | Refusal::NotOnSession | Refusal::NotOwner => {
                RefusalKind::Forbidden
            }
            Refusal::TargetNotAMember | Refusal::NotInvited | Refusal::NothingRequested | Refusal::SameChannel => {
                RefusalKind::BadRequest
            }
            Refusal::Deleted => RefusalKind::Gone,
            _ => RefusalKind::Conflict,
        }
    }
}
