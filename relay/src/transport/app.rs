//! A support app's connection: registration by code, consent answers, frames in.

use super::hub::{
    AppLink, announce_controller, answer_decision, app_gone, clipboard_to_viewer, displays_changed, forward_frame, record_log, record_picture, screen_state, take_stats,
    update_streaming,
};
use super::{Transport, next_message, reject, spawn_writer};
use crate::error::Error;
use crate::network::Network;
use deskline_net::framed::{MessageReader, MessageWriter, read_frame};
use deskline_protocol::session::{Action, Actor, Refusal, SessionState};
use deskline_protocol::{AppCode, AppInfo, Capabilities, Message, RejectReason, ResumeSecret, Welcome};
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
    let found = match desk.find_by_code(&code).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "looking up a session code");
            connection.close(2u32.into(), b"internal error");
            return;
        }
    };
    // The same app instance coming back within the grace window (its secret checked against
    // the store) keeps its consent, may take over from its own connection that has not timed
    // out yet, and is never slowed by anybody's wrong codes.
    let resumed = match (&found, &resume) {
        (Some(row), Some(secret)) => desk.resume_allowed(row.core.id, secret).await.unwrap_or(false),
        _ => false,
    };
    let refused = if resumed { Ok(None) } else { transport.guard.retry_after(remote, now).await };
    let refused = refused.unwrap_or_else(|e| {
        // The database answers every app; if it cannot count failures, nobody is refused for it.
        tracing::error!(error = %e, "cannot read failed code attempts");
        None
    });
    if let Some(wait) = refused {
        tracing::warn!(%remote, network = %Network::of(remote), retry_after_ms = wait, "support app refused: too many wrong codes from its network");
        desk.metrics().limit_tripped("code_guessing");
        let reason = RejectReason::RateLimited { retry_after_ms: wait };
        reject(&connection, &mut writer, reason, "too many wrong codes; wait and try again").await;
        return;
    }
    let Some(session) = found else {
        wrong_code(transport, &connection, &mut writer, RejectReason::UnknownCode, "no session has this code", code.kind()).await;
        return;
    };
    let id = session.core.id;
    let (hub, ()) = transport.hubs.register(id, |_| ());
    if resumed {
        let old = hub.lock().app.as_ref().map(|a| (a.conn_id, a.connection.clone()));
        if let Some((old_id, old_connection)) = old {
            old_connection.close(3u32.into(), b"replaced by a resumed connection");
            if app_gone(&mut hub.lock(), old_id) {
                let _ = desk.app_dropped(id, Actor::App).await;
            }
        }
    }

    // Resumed here while the session still reads as connected to another relay node (that
    // node died and was not yet noticed, or the app's network took it elsewhere): the app
    // proved it is the same instance, so its session is taken over from there.
    let elsewhere = session.node.as_deref().is_some_and(|n| n != desk.node_id());
    if resumed && elsewhere && matches!(session.core.state, SessionState::Active | SessionState::InQueue) {
        match desk.app_dropped(id, Actor::System).await {
            Ok(_) => tracing::info!(session = %id, "support app resumed here from another relay node"),
            Err(e) => tracing::info!(session = %id, error = %e, "support app resumed here from another relay node; nothing to take over"),
        }
    }
    match desk.act_as(Actor::App, id, Action::AppConnected { resumed }).await {
        Ok(_) => {}
        Err(e) => {
            transport.hubs.release_if_idle(id);
            match e {
                Error::Refused(Refusal::Expired) => {
                    wrong_code(transport, &connection, &mut writer, RejectReason::Expired, "this session has expired", code.kind()).await;
                }
                Error::Refused(Refusal::AlreadyClosed | Refusal::Deleted) => {
                    wrong_code(transport, &connection, &mut writer, RejectReason::Closed, "this session was closed", code.kind()).await;
                }
                Error::Refused(Refusal::AppAlreadyConnected) => {
                    tracing::warn!(session = %id, %remote, "support app refused: another app is connected with this code");
                    let text = "another support app is connected with this code";
                    reject(&connection, &mut writer, RejectReason::CodeInUse, text).await;
                }
                other => {
                    tracing::error!(error = %other, "registering an app");
                    reject(&connection, &mut writer, RejectReason::UnknownCode, "the session cannot be joined").await;
                }
            }
            return;
        }
    }
    if let Err(e) = desk.record_agent(id, info).await {
        tracing::warn!(error = %e, "storing the app's machine info");
    }
    let secret = ResumeSecret::generate(&mut rand::rng());
    if let Err(e) = desk.set_resume(id, Some(&secret)).await {
        tracing::warn!(session = %id, error = %e, "storing the app's resumption secret");
    }
    let welcome = Welcome {
        session: id,
        organisation: transport.hubs.desk.organisation(),
        resume: Some(secret),
        resumed,
    };
    if writer.send(&Message::Welcome(welcome)).await.is_err() {
        let _ = desk.app_dropped(id, Actor::App).await;
        return;
    }
    let (out, queue) = tokio::sync::mpsc::channel(APP_QUEUE);
    let writer_task = spawn_writer(writer, queue);
    let (hub, ()) = transport.hubs.register(id, |state| {
        state.app = Some(AppLink { conn_id, out, connection: connection.clone() });
    });
    tracing::info!(session = %id, %remote, resumed, "support app connected");
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
            // A file's own stream.
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    tokio::spawn(super::files::relay_stream(transport.clone(), id, super::files::Party::App, send, recv));
                }
                Err(_) => break,
            },
            stream = connection.accept_uni() => match stream {
                Ok(stream) => {
                    let hub = hub.clone();
                    let conn = connection.clone();
                    let desk = desk.clone();
                    tokio::spawn(async move {
                        match read_frame(stream).await {
                            Ok((encoded, frame)) => {
                                // The chokepoint (per viewer, in `forward_frame`): a frame goes
                                // only to technicians the end user allows to view.
                                let mut state = hub.lock();
                                forward_frame(&mut state, desk.metrics(), &encoded, frame.seq, frame.keyframe);
                                // Recorded as it came, when the channel records its sessions.
                                record_picture(&mut state, &desk, id, frame);
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
    let was_current = app_gone(&mut hub.lock(), conn_id);
    if was_current {
        if let Err(e) = desk.app_dropped(id, Actor::App).await {
            tracing::debug!(session = %id, error = %e, "app disconnect after the session ended");
        }
        transport.hubs.refresh(id).await;
    }
    transport.hubs.release_if_idle(id);
    tracing::info!(session = %id, %remote, "support app disconnected");
}

/// Handles one control message from the app; false ends the connection.
pub(super) async fn handle_message(transport: &Arc<Transport>, id: deskline_protocol::SessionId, message: Message) -> bool {
    let desk = &transport.hubs.desk;
    let action = match message {
        Message::ConsentDecision(d) => Action::ConsentDecided { request_id: d.request_id, outcome: d.outcome },
        Message::ConsentChanged(c) => Action::ConsentChanged { capabilities: c.capabilities },
        Message::Bye(_) => {
            // A deliberate leave: nothing to resume, and what the end user allowed ends now (a
            // refusal means nothing was granted).
            if let Err(e) = desk.set_resume(id, None).await {
                tracing::warn!(session = %id, error = %e, "forgetting the app's resumption secret");
            }
            let _ = desk.act_as(Actor::App, id, Action::ConsentChanged { capabilities: Capabilities::NONE }).await;
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
        Message::Chat(line) => {
            if let Err(e) = transport.chat(Actor::App, id, line.text).await {
                tracing::info!(session = %id, error = %e, "the end user's chat line was refused");
            }
            return true;
        }
        Message::Clipboard(text) => {
            // The chokepoint, per viewer: only technicians granted the clipboard get it.
            let sent = transport.hubs.existing(id).is_some_and(|hub| {
                let state = hub.lock();
                let mut sent = false;
                for viewer in state.viewers.values() {
                    if let Some(pass) = state.gate.admit_clipboard_to(viewer.technician) {
                        sent |= clipboard_to_viewer(pass, viewer, text.clone());
                    }
                }
                if sent {
                    record_log(&state, "clipboard", format!("{} bytes of the end user's copied text to the technicians", text.text.len()));
                }
                sent
            });
            if sent {
                desk.record_clipboard(Actor::App, id, text.text.len()).await;
            }
            return true;
        }
        Message::FileOffer(offer) => {
            if let Some(hub) = transport.hubs.existing(id) {
                let limit = desk.max_file_bytes(id).await;
                super::files::offer_from_app(&mut hub.lock(), offer, limit);
            }
            return true;
        }
        Message::FileAnswer(answer) => {
            let declined = transport.hubs.existing(id).and_then(|hub| super::files::answer(&mut hub.lock(), super::files::Party::App, answer));
            if let Some(t) = declined {
                let (actor, offer) = super::files::declined(&t);
                desk.record_file(actor, id, offer, deskline_protocol::session::FileOutcome::Declined).await;
            }
            return true;
        }
        Message::ScreenState(screen) => {
            if let Some(hub) = transport.hubs.existing(id) {
                screen_state(&mut hub.lock(), screen.paused);
            }
            if let Some(reason) = screen.paused {
                tracing::info!(session = %id, reason = reason.describe(), "the app's picture stopped");
            }
            return true;
        }
        Message::MachineFacts(facts) => {
            if let Err(e) = desk.record_machine(id, facts).await {
                tracing::warn!(session = %id, error = %e, "storing the app's machine facts");
            }
            return true;
        }
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
        match desk.act_as(Actor::App, id, action.clone()).await {
            Ok(row) => {
                let mut state = hub.lock();
                let before = state.gate.controller();
                state.gate.set_grants(row.core.consent.active_grants());
                if state.gate.controller() != before {
                    announce_controller(&state);
                }
                update_streaming(&mut state);
            }
            Err(e) => tracing::info!(session = %id, error = %e, "app consent change refused"),
        }
        drop(serial);
    } else if let Err(e) = desk.act_as(Actor::App, id, action.clone()).await {
        tracing::info!(session = %id, error = %e, "app consent message refused");
    }
    transport.hubs.refresh(id).await;
    // A decision is always answered, so the app knows whether it took effect (a late one, after
    // the relay's own timeout, did not).
    if let Action::ConsentDecided { request_id, .. } = action
        && let Some(hub) = transport.hubs.existing(id)
    {
        answer_decision(&hub.lock(), request_id);
    }
    true
}

/// Answers a wrong, expired or closed code: counted against the sender's network, logged
/// (never the code), and answered only after the guard's delay, so guessing is slow.
async fn wrong_code(
    transport: &Arc<Transport>,
    connection: &quinn::Connection,
    writer: &mut MessageWriter,
    reason: RejectReason,
    text: &str,
    kind: &'static str,
) {
    let remote = connection.remote_address().ip();
    let delay = transport.guard.failed(remote, transport.hubs.desk.now()).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot count a failed code attempt");
        crate::limits::WRONG_CODE_DELAY_UNDER_ATTACK
    });
    transport.hubs.desk.metrics().code_guesses.inc();
    tracing::warn!(%remote, network = %Network::of(remote), code = kind, ?reason, "support app refused: {text}");
    tokio::time::sleep(delay).await;
    reject(connection, writer, reason, text).await;
}
