//! A support app's connection: registration by code, consent answers, frames in.

use super::hub::{AppLink, Resume, announce_controller, app_gone, displays_changed, forward_frame, take_stats, update_streaming};
use super::{Transport, next_message, reject, spawn_writer};
use crate::error::Error;
use crate::limits::RESUME_GRACE;
use deskline_net::framed::{MessageReader, MessageWriter, read_frame};
use deskline_protocol::session::{Action, Actor, Refusal};
use deskline_protocol::{AppCode, AppInfo, Message, RejectReason, ResumeSecret, Welcome};
use std::sync::Arc;

/// Outgoing control messages queued for one app: input bursts (a fast pointer) need room, but
/// an app that stops reading must not grow the relay's memory without bound (input is dropped
/// past this, see `hub::forward_input`).
const APP_QUEUE: usize = 1024;

/// How often the app hears how its viewers are served (for rate adaptation): often enough to
/// react within a second or two, rarely enough that one report covers ~30 frames.
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

#[allow(clippy::too_many_arguments)] // one connection's parts, handed over once
pub(super) async fn run(
    transport: &Arc<Transport>,
    conn_id: u64,
    connection: quinn::Connection,
    mut writer: MessageWriter,
    mut reader: MessageReader,
    code: AppCode,
    info: AppInfo,
    resume: Option<ResumeSecret>,
) {
    let desk = &transport.hubs.desk;
    let remote = connection.remote_address().ip();
    let now = desk.now();
    if let Some(wait) = transport.guard.retry_after(remote, now) {
        let reason = RejectReason::RateLimited { retry_after_ms: wait };
        reject(&connection, &mut writer, reason, "too many wrong codes; wait and try again").await;
        return;
    }
    let session = match desk.find_by_code(&code).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            transport.guard.failed(remote, now);
            reject(&connection, &mut writer, RejectReason::UnknownCode, "no session has this code").await;
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "looking up a session code");
            connection.close(2u32.into(), b"internal error");
            return;
        }
    };
    let id = session.core.id;
    let (hub, known_resume) = transport.hubs.register(id, |state| {
        state.resume.as_ref().map(|r| Resume { secret: r.secret.clone(), dropped_at: r.dropped_at })
    });

    // The same app instance coming back within the grace window keeps its consent, and may
    // take over from its own connection that has not timed out yet.
    let resumed = resume_allowed(resume.as_ref(), known_resume.as_ref(), now);
    if resumed {
        let old = hub.lock().app.as_ref().map(|a| (a.conn_id, a.connection.clone()));
        if let Some((old_id, old_connection)) = old {
            old_connection.close(3u32.into(), b"replaced by a resumed connection");
            if app_gone(&mut hub.lock(), old_id, now) {
                let _ = desk.act_as(Actor::App, id, Action::AppDisconnected).await;
            }
        }
    }

    match desk.act_as(Actor::App, id, Action::AppConnected { resumed }).await {
        Ok(_) => {}
        Err(e) => {
            let (reason, text) = match e {
                Error::Refused(Refusal::Expired) => (RejectReason::Expired, "this session has expired"),
                Error::Refused(Refusal::AlreadyClosed | Refusal::Deleted) => (RejectReason::Closed, "this session was closed"),
                Error::Refused(Refusal::AppAlreadyConnected) => {
                    (RejectReason::CodeInUse, "another support app is connected with this code")
                }
                other => {
                    tracing::error!(error = %other, "registering an app");
                    (RejectReason::UnknownCode, "the session cannot be joined")
                }
            };
            if matches!(reason, RejectReason::Expired | RejectReason::Closed) {
                transport.guard.failed(remote, now);
            }
            transport.hubs.release_if_idle(id);
            reject(&connection, &mut writer, reason, text).await;
            return;
        }
    }
    if let Err(e) = desk.record_agent(id, info).await {
        tracing::warn!(error = %e, "storing the app's machine info");
    }
    let secret = ResumeSecret::generate(&mut rand::rng());
    let welcome = Welcome {
        session: id,
        organisation: transport.hubs.organisation.clone(),
        resume: Some(secret.clone()),
        resumed,
    };
    if writer.send(&Message::Welcome(welcome)).await.is_err() {
        let _ = desk.act_as(Actor::App, id, Action::AppDisconnected).await;
        return;
    }
    let (out, queue) = tokio::sync::mpsc::channel(APP_QUEUE);
    let writer_task = spawn_writer(writer, queue);
    let (hub, ()) = transport.hubs.register(id, |state| {
        state.app = Some(AppLink { conn_id, out, connection: connection.clone() });
        state.resume = Some(Resume { secret, dropped_at: None });
    });
    tracing::info!(session = %id, resumed, "support app connected");
    transport.hubs.refresh(id).await;

    let mut stats_timer = tokio::time::interval(STATS_INTERVAL);
    stats_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stats_timer.tick() => {
                let mut state = hub.lock();
                if state.app.as_ref().is_some_and(|a| a.conn_id == conn_id)
                    && let Some(stats) = take_stats(&mut state)
                    && let Some(app) = &state.app
                {
                    let _ = app.out.try_send(Message::Stats(stats));
                }
            }
            message = next_message(&mut reader) => match message {
                Some(Ok(message)) => {
                    if !handle_message(transport, id, message).await {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::info!(session = %id, error = %e, "app sent a bad message");
                    connection.close(1u32.into(), b"protocol error");
                    break;
                }
                None => break,
            },
            stream = connection.accept_uni() => match stream {
                Ok(stream) => {
                    let hub = hub.clone();
                    let conn = connection.clone();
                    tokio::spawn(async move {
                        match read_frame(stream).await {
                            Ok((encoded, frame)) => {
                                let mut state = hub.lock();
                                // The chokepoint: without a view grant the frame goes nowhere.
                                if let Some(pass) = state.gate.admit_frame() {
                                    forward_frame(&pass, &mut state, &encoded, frame.seq, frame.keyframe);
                                }
                            }
                            Err(e) => {
                                tracing::info!(error = %e, "app sent a bad frame stream");
                                conn.close(1u32.into(), b"bad frame");
                            }
                        }
                    });
                }
                Err(_) => break,
            },
        }
    }
    writer_task.abort();
    let now = desk.now();
    let was_current = app_gone(&mut hub.lock(), conn_id, now);
    if was_current {
        if let Err(e) = desk.act_as(Actor::App, id, Action::AppDisconnected).await {
            tracing::debug!(session = %id, error = %e, "app disconnect after the session ended");
        }
        transport.hubs.refresh(id).await;
    }
    transport.hubs.release_if_idle(id);
    tracing::info!(session = %id, "support app disconnected");
}

/// Handles one control message from the app; false ends the connection.
async fn handle_message(transport: &Arc<Transport>, id: deskline_protocol::SessionId, message: Message) -> bool {
    let desk = &transport.hubs.desk;
    let action = match message {
        Message::ConsentDecision(d) => Action::ConsentDecided { request_id: d.request_id, outcome: d.outcome },
        Message::ConsentChanged(c) => Action::ConsentChanged { capabilities: c.capabilities },
        Message::Bye(_) => {
            // A deliberate leave: nothing to resume.
            if let Some(hub) = transport.hubs.existing(id) {
                hub.lock().resume = None;
            }
            return false;
        }
        Message::Ping(p) => {
            if let Some(hub) = transport.hubs.existing(id)
                && let Some(app) = &hub.lock().app
            {
                let _ = app.out.try_send(Message::Pong(p));
            }
            return true;
        }
        Message::Pong(_) => return true,
        Message::DisplaysChanged(changed) => {
            if let Some(hub) = transport.hubs.existing(id) {
                displays_changed(&mut hub.lock(), changed.displays.clone());
            }
            if let Err(e) = desk.record_displays(id, changed.displays).await {
                tracing::warn!(session = %id, error = %e, "storing the app's displays");
            }
            return true;
        }
        other => {
            tracing::info!(session = %id, message = ?other, "unexpected message from an app");
            return false;
        }
    };
    if let Action::ConsentChanged { .. } = action {
        // A withdrawal takes effect at once, before the next frame. The hub's refresh lock is
        // held across the change so that a refresh that read the session before it cannot
        // apply its older view afterwards.
        let Some(hub) = transport.hubs.existing(id) else { return true };
        let serial = hub.refreshing.lock().await;
        match desk.act_as(Actor::App, id, action).await {
            Ok(row) => {
                let mut state = hub.lock();
                let before = state.gate.controller();
                state.gate.set_grant(row.core.consent.granted());
                if state.gate.controller() != before {
                    announce_controller(&state);
                }
                update_streaming(&mut state);
            }
            Err(e) => tracing::info!(session = %id, error = %e, "app consent change refused"),
        }
        drop(serial);
    } else if let Err(e) = desk.act_as(Actor::App, id, action).await {
        tracing::info!(session = %id, error = %e, "app consent message refused");
    }
    transport.hubs.refresh(id).await;
    true
}

/// May an app presenting `presented` resume with its consent? Only the same instance (the
/// secret the relay gave it) and only within [`RESUME_GRACE`] of its drop (or while its old
/// connection has not timed out yet).
fn resume_allowed(presented: Option<&ResumeSecret>, known: Option<&Resume>, now: deskline_protocol::Timestamp) -> bool {
    match (presented, known) {
        (Some(presented), Some(known)) if presented == &known.secret => {
            known.dropped_at.is_none_or(|t| now.duration_since(t) <= RESUME_GRACE)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskline_protocol::Timestamp;

    #[test]
    fn only_the_same_app_within_the_grace_window_resumes() {
        let secret = ResumeSecret::from_bytes([7; 32]);
        let other = ResumeSecret::from_bytes([8; 32]);
        let dropped = Timestamp(1_000_000);
        let known = Resume { secret: secret.clone(), dropped_at: Some(dropped) };
        let grace_ms = RESUME_GRACE.as_millis() as i64;
        assert!(resume_allowed(Some(&secret), Some(&known), Timestamp(dropped.0 + grace_ms)));
        assert!(!resume_allowed(Some(&secret), Some(&known), Timestamp(dropped.0 + grace_ms + 1)));
        assert!(!resume_allowed(Some(&other), Some(&known), dropped));
        assert!(!resume_allowed(None, Some(&known), dropped));
        assert!(!resume_allowed(Some(&secret), None, dropped));
        // Still connected (the old connection has not noticed the drop yet): allowed.
        let live = Resume { secret: secret.clone(), dropped_at: None };
        assert!(resume_allowed(Some(&secret), Some(&live), Timestamp(i64::MAX)));
    }
}
