//! The transitions: one pure function per action.
//!
//! Each function checks, in this order: the session is not deleted; the actor is of the right
//! kind and (for technicians) works in the session's channel; the state allows the action; the
//! action's own rules. The first failed check is the refusal. On success it returns the whole
//! new session and its audit event; the caller stores both in one transaction.

use super::{
    Actor, AuditAction, AuditEvent, Consent, Context, Grant, PendingConsent, Refusal, Session, SessionKind,
    SessionState, Transition,
};
use crate::capability::Capabilities;
use crate::ids::{ChannelId, SessionId, TechnicianId, Timestamp};
use crate::limits::{MAX_INVITED_TECHNICIANS, MAX_OPEN_SESSIONS_PER_TECHNICIAN, MAX_TECHNICIANS_PER_SESSION};
use crate::message::ConsentOutcome;
use std::time::Duration;

/// Every action on an existing session, for callers that dispatch on data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The support app connected with the session's code.
    AppConnected {
        /// The same app instance came back within the grace window (the relay checked its
        /// resumption secret), so a suspended consent is restored.
        resumed: bool,
    },
    /// The support app's connection ended.
    AppDisconnected,
    /// Set the owner.
    Assign {
        /// The new owner.
        technician: TechnicianId,
    },
    /// Hand an owned session to another technician.
    TransferToTechnician {
        /// The new owner.
        technician: TechnicianId,
    },
    /// Move the session to another channel's queue.
    TransferToChannel {
        /// The channel.
        channel: ChannelId,
    },
    /// Add a collaborating technician.
    Invite {
        /// Who.
        technician: TechnicianId,
    },
    /// Take an invited technician off the session (the owner or an administrator does it, or
    /// the invited technician leaves); their consent goes with them.
    Uninvite {
        /// Who.
        technician: TechnicianId,
    },
    /// The owner lets go.
    Release,
    /// Ask the end user for remote access.
    StartRemote {
        /// Chosen by the caller, unique per session.
        request_id: u64,
        /// What to ask for.
        capabilities: Capabilities,
        /// How long the end user has to answer (the channel's consent timeout).
        timeout: Duration,
    },
    /// The end user answered, or the request timed out.
    ConsentDecided {
        /// The request answered.
        request_id: u64,
        /// The answer.
        outcome: ConsentOutcome,
    },
    /// The end user reduced what is granted (took back control, stopped sharing).
    ConsentChanged {
        /// What remains granted.
        capabilities: Capabilities,
    },
    /// End the session for good.
    Close,
    /// Remove it from the lists.
    Delete,
    /// The relay's periodic expiry check.
    ExpiryTick,
}

/// What a new session needs.
#[derive(Debug, Clone, Copy)]
pub struct NewSession {
    /// Its id (allocated by the store).
    pub id: SessionId,
    /// Its channel.
    pub channel: ChannelId,
    /// Link or PIN.
    pub kind: SessionKind,
    /// The channel's session expiry.
    pub expiry: Duration,
}

/// Creates a session in `Waiting`, assigned to the technician who creates it.
pub fn create(new: NewSession, ctx: &Context<'_>) -> Result<Transition, Refusal> {
    let technician = technician_in_channel(ctx, new.channel)?;
    if ctx.directory.open_sessions_assigned(technician) >= MAX_OPEN_SESSIONS_PER_TECHNICIAN {
        return Err(Refusal::TooManyOpenSessions);
    }
    let session = Session {
        id: new.id,
        channel: new.channel,
        kind: new.kind,
        state: SessionState::Waiting,
        assigned: Some(technician),
        invited: Vec::new(),
        consent: Consent::NONE,
        deleted: false,
        created_at: ctx.now,
        updated_at: ctx.now,
        expires_at: ctx.now.saturating_add(new.expiry),
    };
    let event = AuditEvent {
        session: new.id,
        at: ctx.now,
        actor: ctx.actor,
        action: AuditAction::Created { channel: new.channel, kind: new.kind },
        from: None,
        to: SessionState::Waiting,
    };
    Ok(Transition { session, event })
}

/// Applies `action` to `session`.
pub fn apply(session: &Session, action: &Action, ctx: &Context<'_>) -> Result<Transition, Refusal> {
    match *action {
        Action::AppConnected { resumed } => app_connected(session, ctx, resumed),
        Action::AppDisconnected => app_disconnected(session, ctx),
        Action::Assign { technician } => assign(session, ctx, technician),
        Action::TransferToTechnician { technician } => transfer_to_technician(session, ctx, technician),
        Action::TransferToChannel { channel } => transfer_to_channel(session, ctx, channel),
        Action::Invite { technician } => invite(session, ctx, technician),
        Action::Uninvite { technician } => uninvite(session, ctx, technician),
        Action::Release => release(session, ctx),
        Action::StartRemote { request_id, capabilities, timeout } => {
            start_remote(session, ctx, request_id, capabilities, timeout)
        }
        Action::ConsentDecided { request_id, outcome } => {
            consent_decided(session, ctx, request_id, outcome)
        }
        Action::ConsentChanged { capabilities } => consent_changed(session, ctx, capabilities),
        Action::Close => close(session, ctx),
        Action::Delete => delete(session, ctx),
        Action::ExpiryTick => expiry_tick(session, ctx),
    }
}

/// The support app connected: `Active` with an owner, `InQueue` without.
pub fn app_connected(s: &Session, ctx: &Context<'_>, resumed: bool) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    require_actor(ctx, Actor::App)?;
    match s.state {
        SessionState::Waiting if ctx.now >= s.expires_at => return Err(Refusal::Expired),
        SessionState::Waiting => {}
        SessionState::Active | SessionState::InQueue => return Err(Refusal::AppAlreadyConnected),
        SessionState::Expired => return Err(Refusal::Expired),
        SessionState::Closed => return Err(Refusal::AlreadyClosed),
    }
    let mut next = s.clone();
    next.state = connected_state(s.assigned);
    // The same app instance resuming gets back what it had allowed, for the technicians still
    // on the session; any other app starts with nothing.
    next.consent = if resumed && s.consent.suspended {
        let mut kept = s.consent.retain(|t| s.has_technician(t));
        kept.suspended = false;
        kept.pending = None;
        kept
    } else {
        Consent::NONE
    };
    Ok(finish(s, next, ctx, AuditAction::AppConnected { resumed }))
}

/// The app's connection ended (reported by its connection, or by the system for connections a
/// restarted relay no longer has): back to `Waiting` while the code is valid. Grants are kept
/// suspended for a resumption; a pending request is dropped.
pub fn app_disconnected(s: &Session, ctx: &Context<'_>) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    match ctx.actor {
        Actor::App | Actor::System => {}
        other => return Err(Refusal::WrongActor(other)),
    }
    ended(s)?;
    if !s.state.app_connected() {
        return Err(Refusal::AppNotConnected);
    }
    let mut next = s.clone();
    next.state = SessionState::Waiting;
    next.consent.pending = None;
    next.consent.suspended = !next.consent.grants.is_empty();
    Ok(finish(s, next, ctx, AuditAction::AppDisconnected))
}

/// Sets the owner. The previous owner leaves the session; if the new one was invited, they
/// move from invited to owner.
pub fn assign(s: &Session, ctx: &Context<'_>, technician: TechnicianId) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    technician_in_channel(ctx, s.channel)?;
    ended(s)?;
    check_new_owner(s, ctx, technician)?;
    let next = with_owner(s, technician);
    Ok(finish(s, next, ctx, AuditAction::Assigned { technician, previous: s.assigned }))
}

/// Hands an owned session to another technician (same rules as [`assign`], but there must be
/// an owner to hand it over).
pub fn transfer_to_technician(
    s: &Session,
    ctx: &Context<'_>,
    technician: TechnicianId,
) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    technician_in_channel(ctx, s.channel)?;
    ended(s)?;
    let previous = s.assigned.ok_or(Refusal::NotAssigned)?;
    check_new_owner(s, ctx, technician)?;
    let next = with_owner(s, technician);
    Ok(finish(s, next, ctx, AuditAction::TransferredToTechnician { technician, previous }))
}

/// Moves the session into another channel's queue: nobody owns it there and the technicians
/// of the old channel leave it (their consent goes with them).
///
/// The actor must work in the session's current channel; the target channel need not be
/// theirs — escalating to another team's queue is what this action is for.
pub fn transfer_to_channel(s: &Session, ctx: &Context<'_>, channel: ChannelId) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    technician_in_channel(ctx, s.channel)?;
    ended(s)?;
    if channel == s.channel {
        return Err(Refusal::SameChannel);
    }
    let mut next = s.clone();
    next.channel = channel;
    next.assigned = None;
    next.invited.clear();
    next.consent = Consent::NONE;
    next.state = connected_or_waiting(s, SessionState::InQueue);
    Ok(finish(s, next, ctx, AuditAction::TransferredToChannel { from: s.channel, to: channel }))
}

/// Adds a collaborating technician: at most [`MAX_TECHNICIANS_PER_SESSION`] in all. Only the
/// assigned technician or an administrator invites; the invited technician starts with no
/// consent (they ask, and the end user is asked again, naming them).
pub fn invite(s: &Session, ctx: &Context<'_>, technician: TechnicianId) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    let actor = technician_in_channel(ctx, s.channel)?;
    ended(s)?;
    if s.assigned != Some(actor) && !ctx.directory.is_admin(actor) {
        return Err(Refusal::NotOwner);
    }
    if !ctx.directory.works_in(s.channel, technician) {
        return Err(Refusal::TargetNotAMember);
    }
    if s.has_technician(technician) {
        return Err(Refusal::AlreadyOnSession);
    }
    if s.invited.len() >= MAX_INVITED_TECHNICIANS || s.technicians().count() >= MAX_TECHNICIANS_PER_SESSION {
        return Err(Refusal::TooManyTechnicians);
    }
    let mut next = s.clone();
    next.invited.push(technician);
    Ok(finish(s, next, ctx, AuditAction::Invited { technician }))
}

/// Takes an invited technician off the session: the owner or an administrator removes them,
/// or they leave themselves. What the end user allowed them goes with them (their viewers are
/// disconnected by the relay's hub, which follows the stored session).
pub fn uninvite(s: &Session, ctx: &Context<'_>, technician: TechnicianId) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    let actor = technician_in_channel(ctx, s.channel)?;
    ended(s)?;
    if actor != technician && s.assigned != Some(actor) && !ctx.directory.is_admin(actor) {
        return Err(Refusal::NotOwner);
    }
    if !s.invited.contains(&technician) {
        return Err(Refusal::NotInvited);
    }
    let mut next = s.clone();
    next.invited.retain(|t| *t != technician);
    next.consent = s.consent.without(technician);
    Ok(finish(s, next, ctx, AuditAction::Uninvited { technician }))
}

/// The owner lets go: `InQueue` if the app is connected, else `Waiting`.
pub fn release(s: &Session, ctx: &Context<'_>) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    technician_in_channel(ctx, s.channel)?;
    ended(s)?;
    let technician = s.assigned.ok_or(Refusal::NotAssigned)?;
    let mut next = s.clone();
    next.assigned = None;
    next.consent = s.consent.without(technician);
    next.state = connected_or_waiting(s, SessionState::InQueue);
    Ok(finish(s, next, ctx, AuditAction::Released { technician }))
}

/// A technician on an active session asks the end user for remote access.
pub fn start_remote(
    s: &Session,
    ctx: &Context<'_>,
    request_id: u64,
    capabilities: Capabilities,
    timeout: Duration,
) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    let technician = technician_in_channel(ctx, s.channel)?;
    ended(s)?;
    if s.state != SessionState::Active {
        return Err(Refusal::NotActive);
    }
    if !s.has_technician(technician) {
        return Err(Refusal::NotOnSession);
    }
    if capabilities.is_empty() {
        return Err(Refusal::NothingRequested);
    }
    if s.consent.pending.is_some() {
        return Err(Refusal::ConsentAlreadyPending);
    }
    if s.consent.granted_to(technician).covers(capabilities) {
        return Err(Refusal::AlreadyGranted);
    }
    let mut next = s.clone();
    next.consent.pending = Some(PendingConsent {
        request_id,
        requested_by: technician,
        capabilities,
        deadline: ctx.now.saturating_add(timeout),
    });
    Ok(finish(s, next, ctx, AuditAction::RemoteRequested { request_id, capabilities }))
}

/// The end user's answer (from the app), or the relay's timeout (from the system). A grant goes
/// to the technician who asked, limited to what they asked for, on top of what they already
/// had; an empty grant counts as a denial, which leaves what they already had.
pub fn consent_decided(
    s: &Session,
    ctx: &Context<'_>,
    request_id: u64,
    outcome: ConsentOutcome,
) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    // Only the end user's app answers; the system only says that time ran out (found by the
    // state machine's fuzz target: the system could grant).
    match (ctx.actor, outcome) {
        (Actor::App, _) | (Actor::System, ConsentOutcome::TimedOut) => {}
        (other, _) => return Err(Refusal::WrongActor(other)),
    }
    ended(s)?;
    let Some(PendingConsent { request_id: pending, requested_by, capabilities: asked, .. }) = s.consent.pending else {
        return Err(Refusal::UnknownConsentRequest);
    };
    if pending != request_id {
        return Err(Refusal::UnknownConsentRequest);
    }
    let mut next = s.clone();
    next.consent.pending = None;
    let outcome = match outcome {
        ConsentOutcome::Granted(given) if !given.intersect(asked).is_empty() => {
            let capabilities = given.intersect(asked);
            let total = s.consent.granted_to(requested_by).union(capabilities);
            next.consent.grants.retain(|g| g.technician != requested_by);
            next.consent.grants.push(Grant { technician: requested_by, capabilities: total });
            ConsentOutcome::Granted(capabilities)
        }
        ConsentOutcome::Granted(_) => ConsentOutcome::Denied,
        other => other,
    };
    let technician = Some(requested_by);
    Ok(finish(s, next, ctx, AuditAction::ConsentDecided { request_id, technician, outcome }))
}

/// The end user reduced what every technician may do: took back control, or stopped sharing
/// altogether. It can only shrink: anything more needs a new request and a new answer.
pub fn consent_changed(s: &Session, ctx: &Context<'_>, capabilities: Capabilities) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    require_actor(ctx, Actor::App)?;
    ended(s)?;
    if !s.consent.any_granted() {
        return Err(Refusal::NothingGranted);
    }
    let mut next = s.clone();
    for grant in &mut next.consent.grants {
        grant.capabilities = grant.capabilities.intersect(capabilities);
    }
    next.consent.grants.retain(|g| !g.capabilities.is_empty());
    let remaining = next.consent.grants.iter().fold(Capabilities::NONE, |all, g| all.union(g.capabilities));
    Ok(finish(s, next, ctx, AuditAction::ConsentChanged { capabilities: remaining }))
}

/// Ends the session for good: any remote connection ends and its code stops working.
/// An expired session can still be closed (to file it as done).
pub fn close(s: &Session, ctx: &Context<'_>) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    technician_in_channel(ctx, s.channel)?;
    if s.state == SessionState::Closed {
        return Err(Refusal::AlreadyClosed);
    }
    let mut next = s.clone();
    next.state = SessionState::Closed;
    next.consent = Consent::NONE;
    Ok(finish(s, next, ctx, AuditAction::Closed))
}

/// Removes the session from its channel's lists. A live session is closed first, so deleting
/// never leaves a working code behind. The audit history stays.
pub fn delete(s: &Session, ctx: &Context<'_>) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    technician_in_channel(ctx, s.channel)?;
    let mut next = s.clone();
    next.deleted = true;
    next.consent = Consent::NONE;
    if s.state.is_live() {
        next.state = SessionState::Closed;
    }
    Ok(finish(s, next, ctx, AuditAction::Deleted))
}

/// The relay's periodic check: a live session past its expiry time becomes `Expired`.
pub fn expiry_tick(s: &Session, ctx: &Context<'_>) -> Result<Transition, Refusal> {
    not_deleted(s)?;
    require_actor(ctx, Actor::System)?;
    ended(s)?;
    if ctx.now < s.expires_at {
        return Err(Refusal::NotYetExpired);
    }
    let mut next = s.clone();
    next.state = SessionState::Expired;
    next.consent = Consent::NONE;
    Ok(finish(s, next, ctx, AuditAction::Expired))
}

// ---- shared checks and helpers ----

fn not_deleted(s: &Session) -> Result<(), Refusal> {
    if s.deleted { Err(Refusal::Deleted) } else { Ok(()) }
}

fn require_actor(ctx: &Context<'_>, expected: Actor) -> Result<(), Refusal> {
    if ctx.actor == expected { Ok(()) } else { Err(Refusal::WrongActor(ctx.actor)) }
}

/// The acting technician, who must work in `channel`.
fn technician_in_channel(ctx: &Context<'_>, channel: ChannelId) -> Result<TechnicianId, Refusal> {
    let Actor::Technician(technician) = ctx.actor else {
        return Err(Refusal::WrongActor(ctx.actor));
    };
    if !ctx.directory.works_in(channel, technician) {
        return Err(Refusal::NotAMember);
    }
    Ok(technician)
}

/// Refuses actions on sessions that are over.
fn ended(s: &Session) -> Result<(), Refusal> {
    match s.state {
        SessionState::Expired => Err(Refusal::Expired),
        SessionState::Closed => Err(Refusal::AlreadyClosed),
        _ => Ok(()),
    }
}

fn check_new_owner(s: &Session, ctx: &Context<'_>, technician: TechnicianId) -> Result<(), Refusal> {
    if !ctx.directory.works_in(s.channel, technician) {
        return Err(Refusal::TargetNotAMember);
    }
    if s.assigned == Some(technician) {
        return Err(Refusal::AlreadyAssigned);
    }
    if ctx.directory.open_sessions_assigned(technician) >= MAX_OPEN_SESSIONS_PER_TECHNICIAN {
        return Err(Refusal::TooManyOpenSessions);
    }
    Ok(())
}

/// `s` owned by `technician`: the previous owner leaves, the new one leaves the invited list,
/// consent given to the previous owner goes with them.
fn with_owner(s: &Session, technician: TechnicianId) -> Session {
    let mut next = s.clone();
    next.invited.retain(|&t| t != technician);
    next.assigned = Some(technician);
    if let Some(previous) = s.assigned {
        next.consent = s.consent.without(previous);
    }
    next.state = connected_or_waiting(s, SessionState::Active);
    next
}

fn connected_state(assigned: Option<TechnicianId>) -> SessionState {
    if assigned.is_some() { SessionState::Active } else { SessionState::InQueue }
}

/// `if_connected` when the app is connected, else `Waiting`.
fn connected_or_waiting(s: &Session, if_connected: SessionState) -> SessionState {
    if s.state.app_connected() { if_connected } else { SessionState::Waiting }
}

fn finish(before: &Session, mut after: Session, ctx: &Context<'_>, action: AuditAction) -> Transition {
    after.updated_at = ctx.now;
    let event = AuditEvent {
        session: before.id,
        at: ctx.now,
        actor: ctx.actor,
        action,
        from: Some(before.state),
        to: after.state,
    };
    Transition { session: after, event }
}

/// When a pending consent request times out (the relay turns this into
/// [`Action::ConsentDecided`] with [`ConsentOutcome::TimedOut`]).
#[must_use]
pub fn consent_deadline(s: &Session) -> Option<Timestamp> {
    s.consent.pending.map(|p| p.deadline)
}
