//! A technician's viewer: frames out, input and control hand-over in. Admission, leaving and
//! the handling of a viewer's messages are shared by both carriers: QUIC (here) and WebRTC
//! (`browser.rs`).

use super::hub::{
    Hub, ViewerCarrier, ViewerLink, announce_controller, clipboard_to_app, forward_input, request_keyframe, select_display, update_streaming,
};
use super::{Transport, next_message, reject, spawn_writer};
use crate::limits::{MAX_CONNECTIONS_PER_TECHNICIAN, VIEWER_FRAME_QUEUE};
use deskline_net::framed::{MessageReader, MessageWriter, send_frame};
use deskline_protocol::limits::MAX_TECHNICIANS_PER_SESSION;
use deskline_protocol::session::{Actor, FileOutcome};
use super::files;
use deskline_protocol::{
    Access, ControlHandover, DisplayInfo, DisplaysChanged, Message, RejectReason, ScreenState, SessionId, TechnicianId, Welcome,
};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Control messages queued for one viewer (and, for a browser, from it): a viewer gets few
/// (welcome, hand-overs, pongs, bye), so a small bound only limits what a viewer that stops
/// reading can cost.
pub(super) const VIEWER_QUEUE: usize = 64;

/// A viewer admitted to a session: its hub and the queues the hub fills for it.
pub(super) struct Admitted {
    pub hub: Arc<Hub>,
    /// Control messages for the viewer (welcome, hand-overs, display lists, pongs, bye).
    pub queue: mpsc::Receiver<Message>,
    /// Encoded frame messages with their sequence numbers, already past the gate once.
    pub frames: mpsc::Receiver<(bytes::Bytes, u64)>,
}

/// The session's stored displays if `technician` may view it: on the session (assigned or
/// invited) and the session live.
pub(super) async fn may_view(
    transport: &Arc<Transport>,
    technician: TechnicianId,
    id: SessionId,
) -> Result<Vec<DisplayInfo>, (RejectReason, &'static str)> {
    match transport.hubs.desk.session_row(id).await {
        Ok(Some(row)) if !row.core.deleted && row.core.state.is_live() && row.core.has_technician(technician) => {
            // Several relay nodes: the session's media is where its app is connected.
            match transport.hubs.desk.media_elsewhere(&row).await {
                Ok(Some(node)) => {
                    let reason = RejectReason::Elsewhere { quic: node.quic, fingerprint: node.fingerprint };
                    return Err((reason, "the session's support app is connected to another relay node"));
                }
                Ok(None) => {}
                Err(e) => tracing::error!(session = %id, error = %e, "cannot tell where the session's app is connected"),
            }
            Ok(row.agent.map(|a| a.displays).unwrap_or_default())
        }
        _ => Err((RejectReason::Forbidden, "you are not assigned to or invited on this session")),
    }
}

/// Admits an authenticated technician's viewer (QUIC or browser) to session `id`: the
/// technician must be on the session (assigned or invited), the session live, and the
/// session's viewer slots not full. The first queued messages are the welcome, who holds
/// control and the app's displays.
pub(super) async fn admit(
    transport: &Arc<Transport>,
    conn_id: u64,
    technician: TechnicianId,
    id: SessionId,
    carrier: ViewerCarrier,
) -> Result<Admitted, (RejectReason, &'static str)> {
    let displays = may_view(transport, technician, id).await?;
    let (out, queue) = mpsc::channel(VIEWER_QUEUE);
    let (frames, frame_queue) = mpsc::channel::<(bytes::Bytes, u64)>(VIEWER_FRAME_QUEUE);
    let (hub, full) = transport.hubs.register(id, |state| {
        // A technician may have a viewer window and a scripted client (input) open at once.
        let theirs = state.viewers.values().filter(|v| v.technician == technician).count();
        let full = theirs >= MAX_CONNECTIONS_PER_TECHNICIAN
            || state.viewers.len() >= MAX_TECHNICIANS_PER_SESSION * MAX_CONNECTIONS_PER_TECHNICIAN;
        if !full {
            // Queued before the viewer is visible to others, so it is the first message.
            let welcome = Welcome { session: id, organisation: transport.hubs.desk.organisation(), resume: None, resumed: false };
            let _ = out.try_send(Message::Welcome(welcome));
            let _ = out.try_send(Message::ControlHandover(ControlHandover { holder: state.gate.controller() }));
            let displays = state.displays.clone().unwrap_or_else(|| displays.clone());
            let _ = out.try_send(Message::DisplaysChanged(DisplaysChanged { displays }));
            let _ = out.try_send(Message::Access(Access { grants: state.access.clone(), answered: None }));
            if state.paused.is_some() {
                let _ = out.try_send(Message::ScreenState(ScreenState { paused: state.paused }));
            }
            let link = ViewerLink { technician, out: out.clone(), frames, needs_keyframe: true, stale_before: None, carrier, window: Default::default() };
            state.viewers.insert(conn_id, link);
        }
        full
    });
    if full {
        transport.hubs.release_if_idle(id);
        return Err((RejectReason::TooManyViewers, "too many viewer connections for this session"));
    }
    // The session may have changed since the check above (the technician released, the
    // session closed): bring the hub in line with the store now that this viewer is in it;
    // a viewer no longer allowed is dropped by the refresh.
    transport.hubs.refresh(id).await;
    {
        let mut state = hub.lock();
        update_streaming(&mut state);
        request_keyframe(&mut state);
    }
    tracing::info!(session = %id, technician = %technician, "viewer joined");
    Ok(Admitted { hub, queue, frames: frame_queue })
}

/// Takes a viewer out of its hub: control held by a technician with no other viewer left
/// goes back to nobody, and the app stops streaming when nobody views.
pub(super) fn leave(transport: &Arc<Transport>, hub: &Hub, id: SessionId, conn_id: u64, technician: TechnicianId) {
    {
        let mut state = hub.lock();
        if state.viewers.remove(&conn_id).is_some() {
            state.transfers.forget(super::files::Party::Viewer(conn_id, technician));
            if state.gate.controller() == Some(technician) && !state.viewers.values().any(|v| v.technician == technician) {
                state.gate.hand_control_to(None);
                announce_controller(&state);
            }
            update_streaming(&mut state);
        }
    }
    transport.hubs.release_if_idle(id);
    tracing::info!(session = %id, technician = %technician, "viewer left");
}

/// A native viewer (or the CLI) over QUIC.
pub(super) async fn run(
    transport: &Arc<Transport>,
    conn_id: u64,
    connection: quinn::Connection,
    mut writer: MessageWriter,
    mut reader: MessageReader,
    token: String,
    id: SessionId,
) {
    let Ok(technician) = transport.hubs.desk.authenticate(&token).await else {
        tracing::warn!(remote = %connection.remote_address(), session = %id, "viewer refused: invalid or expired token");
        reject(&connection, &mut writer, RejectReason::Unauthorized, "invalid or expired token; log in again").await;
        return;
    };
    // Found in review: a token good only for setting a password (or a required second factor)
    // could still watch over QUIC.
    if let Some(restricted) = transport.hubs.desk.restriction(&technician) {
        tracing::warn!(remote = %connection.remote_address(), session = %id, technician = %technician.username, "viewer refused: {restricted}");
        reject(&connection, &mut writer, RejectReason::Forbidden, &restricted.to_string()).await;
        return;
    }
    let technician = technician.id;
    let admitted = admit(transport, conn_id, technician, id, ViewerCarrier::Quic(connection.clone())).await;
    let Admitted { hub, queue, frames: mut frame_queue } = match admitted {
        Ok(admitted) => admitted,
        Err((reason, message)) => {
            reject(&connection, &mut writer, reason, message).await;
            return;
        }
    };
    let writer_task = spawn_writer(writer, queue);

    // Frames go out on their own streams, oldest first when several are in flight. The gate is
    // asked again for every queued frame: a withdrawal also stops what was already queued.
    let frame_connection = connection.clone();
    let frame_hub = hub.clone();
    let frame_task = tokio::spawn(async move {
        while let Some((encoded, seq)) = frame_queue.recv().await {
            if frame_hub.lock().gate.admit_frame(technician).is_none() {
                continue;
            }
            let priority = deskline_net::framed::frame_priority(seq);
            if send_frame(&frame_connection, &encoded, priority).await.is_err() {
                return;
            }
        }
    });

    loop {
        tokio::select! {
            message = next_message(&mut reader) => match message {
                Some(Ok(message)) => {
                    if !on_message(transport, id, conn_id, technician, message).await {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::info!(session = %id, error = %e, "viewer sent a bad message");
                    connection.close(1u32.into(), b"protocol error");
                    break;
                }
                None => break,
            },
            // A file's own stream (the relay opens none towards a viewer's side on its own).
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    tokio::spawn(files::relay_stream(transport.clone(), id, files::Party::Viewer(conn_id, technician), send, recv));
                }
                Err(_) => break,
            },
        }
    }
    frame_task.abort();
    writer_task.abort();
    leave(transport, &hub, id, conn_id, technician);
}

/// Handles one message from a viewer, native or browser; false ends the connection. A chat
/// line goes to the desk (it is stored before anyone sees it), clipboard text through the gate
/// to the app (and into the audit trail); everything else to [`handle_message`].
pub(super) async fn on_message(transport: &Arc<Transport>, id: SessionId, conn_id: u64, technician: TechnicianId, message: Message) -> bool {
    match message {
        Message::Chat(line) => {
            if !still_viewing(transport, id, conn_id) {
                return false;
            }
            if let Err(e) = transport.chat(Actor::Technician(technician), id, line.text).await {
                tracing::info!(session = %id, technician = %technician, error = %e, "a viewer's chat line was refused");
            }
            true
        }
        Message::Clipboard(text) => {
            let Some(hub) = transport.hubs.existing(id) else { return false };
            let bytes = text.text.len();
            let sent = {
                let state = hub.lock();
                if !state.viewers.contains_key(&conn_id) {
                    return false;
                }
                // The chokepoint: only the controlling technician, only with the clipboard granted.
                state.gate.admit_clipboard_from(technician).is_some_and(|pass| clipboard_to_app(pass, &state, text))
            };
            if sent {
                transport.hubs.desk.record_clipboard(Actor::Technician(technician), id, bytes).await;
            } else {
                tracing::info!(session = %id, technician = %technician, "clipboard text without the clipboard grant or control: not sent");
            }
            true
        }
        Message::FileOffer(offer) => {
            let Some(hub) = transport.hubs.existing(id) else { return false };
            let limit = transport.hubs.desk.max_file_bytes(id).await;
            files::offer_from_viewer(&mut hub.lock(), conn_id, technician, offer, limit);
            true
        }
        Message::FileResult(result) => {
            // A page's check of a file the relay sent it (a QUIC viewer's comes on the file's
            // own stream).
            let Some(hub) = transport.hubs.existing(id) else { return false };
            files::result_from_browser(&mut hub.lock(), conn_id, result);
            true
        }
        Message::FileAnswer(answer) => {
            let Some(hub) = transport.hubs.existing(id) else { return false };
            let declined = files::answer(&mut hub.lock(), files::Party::Viewer(conn_id, technician), answer);
            if let Some(t) = declined {
                let (actor, offer) = files::declined(&t);
                transport.hubs.desk.record_file(actor, id, offer, FileOutcome::Declined).await;
            }
            true
        }
        other => handle_message(transport, id, conn_id, technician, other),
    }
}

fn still_viewing(transport: &Transport, id: SessionId, conn_id: u64) -> bool {
    transport.hubs.existing(id).is_some_and(|hub| hub.lock().viewers.contains_key(&conn_id))
}

/// Handles one message from a viewer; false ends the connection.
pub(super) fn handle_message(transport: &Arc<Transport>, id: SessionId, conn_id: u64, technician: TechnicianId, message: Message) -> bool {
    let Some(hub) = transport.hubs.existing(id) else { return false };
    let mut state = hub.lock();
    if !state.viewers.contains_key(&conn_id) {
        return false; // dropped by a refresh: no longer allowed to view
    }
    match message {
        Message::Input(event) => {
            // The chokepoint: only the controlling technician, only with control granted.
            if let Some(pass) = state.gate.admit_input(technician) {
                forward_input(pass, &mut state, event);
            }
        }
        Message::ControlHandover(ControlHandover { holder }) => {
            // Any technician on the session may take control or hand it to another viewer who
            // is on the session too; the gate refuses anyone the end user did not allow
            // control.
            let holder_allowed = holder.is_none_or(|h| {
                state.on_session.contains(&h) && state.viewers.values().any(|v| v.technician == h)
            });
            if holder_allowed && state.gate.hand_control_to(holder) {
                announce_controller(&state);
            } else if let Some(viewer) = state.viewers.get(&conn_id) {
                // Refused: tell the asker who holds control.
                let _ = viewer.out.try_send(Message::ControlHandover(ControlHandover { holder: state.gate.controller() }));
            }
        }
        Message::KeyframeRequest => request_keyframe(&mut state),
        Message::SelectDisplay(selection) => select_display(&mut state, selection.display),
        Message::Ping(p) => {
            if let Some(viewer) = state.viewers.get(&conn_id) {
                let _ = viewer.out.try_send(Message::Pong(p));
            }
        }
        Message::Pong(_) | Message::Stats(_) => {}
        Message::Bye(_) => return false,
        other => {
            tracing::info!(session = %id, message = ?other, "unexpected message from a viewer");
            return false;
        }
    }
    true
}
