//! Files between a technician and the end user (DESIGN §9): the relay forwards them and never
//! stores them.
//!
//! An offer passes the gate (`files` granted to the technician: [`FilePass`]) and the size
//! limit, and goes to the other side: a technician's to the app (the end user is asked), the
//! end user's to every native viewer whose technician may receive files (the first to accept
//! takes it). The answer comes back to the sender. The sender then opens a bidirectional stream
//! with the `FileData` head and exactly the offered bytes; the relay opens one to the receiver
//! and copies the bytes across as they come (nothing is kept: the copy waits for the receiver,
//! QUIC's flow control slows the sender), asking the gate again as it goes, and brings the
//! receiver's `FileResult` back. Every transfer that ends is one audit event.

use super::Transport;
use super::gate::FilePass;
use super::hub::{HubState, ViewerCarrier};
use deskline_net::framed::{FILE_PRIORITY, read_head, write_head};
use deskline_protocol::session::{Actor, FileOutcome};
use deskline_protocol::{FileAnswer, FileData, FileOffer, FileResult, Message, SessionId, TechnicianId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Offers waiting or transfers running on one session at once: a person passes a few files at
/// a time; the bound stops a script from filling the relay's table.
const MAX_TRANSFERS_PER_SESSION: usize = 8;

/// How long the receiver may take to check and save a file after its last byte (hashing is
/// done as it arrives; this covers a slow disk).
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One side of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Party {
    /// The session's support app.
    App,
    /// A native viewer (its connection) of a technician.
    Viewer(u64, TechnicianId),
}

/// A file offered or on its way.
#[derive(Debug, Clone)]
pub(super) struct Transfer {
    from: Party,
    /// Who accepted it (nobody yet: `None`).
    to: Option<Party>,
    offer: FileOffer,
    /// Its stream is being copied.
    running: bool,
}

/// The transfers of one session.
#[derive(Debug, Default)]
pub(super) struct Transfers(HashMap<u64, Transfer>);

impl Transfers {
    /// Forgets every transfer to or from `party` (it left); returns them, to be audited.
    pub(super) fn forget(&mut self, party: Party) -> Vec<Transfer> {
        let gone: Vec<u64> = self.0.iter().filter(|(_, t)| t.from == party || t.to == Some(party)).map(|(id, _)| *id).collect();
        gone.into_iter().filter_map(|id| self.0.remove(&id)).collect()
    }
}

/// The technician on the other side of a transfer, whose `files` grant it needs.
fn technician_of(t: &Transfer) -> Option<TechnicianId> {
    match (t.from, t.to) {
        (Party::Viewer(_, technician), _) | (_, Some(Party::Viewer(_, technician))) => Some(technician),
        _ => None,
    }
}

fn actor(party: Party) -> Actor {
    match party {
        Party::App => Actor::App,
        Party::Viewer(_, technician) => Actor::Technician(technician),
    }
}

/// Sends `message` to `party` on its control stream (if it is still there).
fn tell(state: &HubState, party: Party, message: Message) {
    let out = match party {
        Party::App => state.app.as_ref().map(|app| &app.out),
        Party::Viewer(conn, _) => state.viewers.get(&conn).map(|viewer| &viewer.out),
    };
    if let Some(out) = out {
        let _ = out.try_send(message);
    }
}

/// Tells `party` that its transfer ended without the file being sent.
fn refuse(state: &HubState, party: Party, transfer: u64, why: &str) {
    tell(state, party, Message::FileResult(FileResult { transfer, saved: false, message: why.to_owned() }));
}

/// A technician's viewer offers the end user a file.
pub(super) fn offer_from_viewer(state: &mut HubState, conn: u64, technician: TechnicianId, mut offer: FileOffer, limit: u64) {
    let from = Party::Viewer(conn, technician);
    let refused = if state.gate.admit_files(technician).is_none() {
        Some("the end user has not allowed you files".to_owned())
    } else if limit == 0 {
        Some("this channel allows no files".to_owned())
    } else if offer.size > limit {
        Some(format!("{} bytes is more than this channel allows ({limit} bytes)", offer.size))
    } else if state.transfers.0.len() >= MAX_TRANSFERS_PER_SESSION || state.transfers.0.contains_key(&offer.transfer) {
        Some("too many files on their way on this session; wait for one to finish".to_owned())
    } else if state.app.is_none() {
        Some("the end user's support app is not connected".to_owned())
    } else {
        None
    };
    if let Some(why) = refused {
        refuse(state, from, offer.transfer, &why);
        return;
    }
    offer.from = state.access.iter().find(|g| g.technician == technician).map_or_else(|| format!("technician {technician}"), |g| g.name.clone());
    tell(state, Party::App, Message::FileOffer(offer.clone()));
    state.transfers.0.insert(offer.transfer, Transfer { from, to: None, offer, running: false });
}

/// The end user offers the technicians a file: every native viewer whose technician may
/// receive files is asked.
pub(super) fn offer_from_app(state: &mut HubState, mut offer: FileOffer, limit: u64) {
    offer.from = "the end user".into();
    let receivers: Vec<(u64, TechnicianId)> = state
        .viewers
        .iter()
        .filter(|(_, v)| matches!(v.carrier, ViewerCarrier::Quic(_)) && state.gate.admit_files(v.technician).is_some())
        .map(|(conn, v)| (*conn, v.technician))
        .collect();
    let refused = if limit == 0 {
        Some("the technicians' channel allows no files".to_owned())
    } else if offer.size > limit {
        Some(format!("{} bytes is more than the technicians' channel allows ({limit} bytes)", offer.size))
    } else if state.transfers.0.len() >= MAX_TRANSFERS_PER_SESSION || state.transfers.0.contains_key(&offer.transfer) {
        Some("too many files on their way; wait for one to finish".to_owned())
    } else if receivers.is_empty() {
        Some("no technician who may receive files is connected with the viewer".to_owned())
    } else {
        None
    };
    if let Some(why) = refused {
        refuse(state, Party::App, offer.transfer, &why);
        return;
    }
    for (conn, technician) in receivers {
        tell(state, Party::Viewer(conn, technician), Message::FileOffer(offer.clone()));
    }
    state.transfers.0.insert(offer.transfer, Transfer { from: Party::App, to: None, offer, running: false });
}

/// An answer to an offer from `by` (the app, or a viewer). Returns a declined transfer, to be
/// audited.
pub(super) fn answer(state: &mut HubState, by: Party, answer: FileAnswer) -> Option<Transfer> {
    let transfer = state.transfers.0.get(&answer.transfer)?;
    let may_answer = match (transfer.from, by) {
        (Party::Viewer(..), Party::App) => true,
        // Any technician who may receive files, once: the first yes takes it.
        (Party::App, Party::Viewer(_, technician)) => state.gate.admit_files(technician).is_some(),
        _ => false,
    };
    let from = transfer.from;
    if !may_answer || transfer.to.is_some() {
        if matches!(by, Party::Viewer(..)) && answer.accepted {
            refuse(state, by, answer.transfer, "another technician took this file, or it is gone");
        }
        return None;
    }
    if !answer.accepted && matches!(by, Party::Viewer(..)) {
        // One technician's no leaves the offer to the others.
        return None;
    }
    tell(state, from, Message::FileAnswer(answer));
    if answer.accepted {
        if let Some(t) = state.transfers.0.get_mut(&answer.transfer) {
            t.to = Some(by);
        }
        None
    } else {
        state.transfers.0.remove(&answer.transfer)
    }
}

/// The offer a declined transfer made, and who made it, for the audit trail.
pub(super) fn declined(t: &Transfer) -> (Actor, &FileOffer) {
    (actor(t.from), &t.offer)
}

/// The receiver's connection for a transfer `from` starts sending, if it may still go: accepted,
/// not yet running, and the gate still admits the technician on it.
fn start(state: &mut HubState, from: Party, transfer: u64) -> Result<(Transfer, quinn::Connection, FilePass), &'static str> {
    let t = state.transfers.0.get_mut(&transfer).ok_or("no such file offered")?;
    if t.from != from || t.running {
        return Err("not this sender's file");
    }
    let to = t.to.ok_or("the file was not accepted")?;
    let technician = technician_of(t).ok_or("no technician on this transfer")?;
    let pass = state.gate.admit_files(technician).ok_or("the end user no longer allows files")?;
    let connection = match to {
        Party::App => state.app.as_ref().map(|a| a.connection.clone()),
        Party::Viewer(conn, _) => state.viewers.get(&conn).and_then(|v| match &v.carrier {
            ViewerCarrier::Quic(connection) => Some(connection.clone()),
            ViewerCarrier::Browser => None,
        }),
    }
    .ok_or("the receiver left")?;
    t.running = true;
    Ok((t.clone(), connection, pass))
}

/// Copies a file's stream from `from` (its head still unread) to its receiver, and the
/// receiver's result back. Runs as a task of its own.
pub(super) async fn relay_stream(transport: Arc<Transport>, id: SessionId, from: Party, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let Ok(Message::FileData(FileData { transfer })) = read_head(&mut recv).await else {
        let _ = recv.stop(1u32.into());
        return;
    };
    let Some(hub) = transport.hubs.existing(id) else { return };
    let started = start(&mut hub.lock(), from, transfer);
    let (t, connection, pass) = match started {
        Ok(started) => started,
        Err(why) => {
            tracing::info!(session = %id, transfer, why, "a file stream refused");
            let _ = recv.stop(1u32.into());
            let result = FileResult { transfer, saved: false, message: why.into() };
            let _ = write_head(&mut send, &Message::FileResult(result)).await;
            let _ = send.finish();
            return;
        }
    };
    let result = copy(&transport, id, &t, pass, &connection, &mut recv).await;
    let result = result.unwrap_or_else(|why| {
        let _ = recv.stop(1u32.into());
        FileResult { transfer, saved: false, message: why }
    });
    if write_head(&mut send, &Message::FileResult(result.clone())).await.is_ok() {
        let _ = send.finish();
        let _ = tokio::time::timeout(RESULT_TIMEOUT, send.stopped()).await;
    }
    hub.lock().transfers.0.remove(&transfer);
    let outcome = if result.saved { FileOutcome::Saved } else { FileOutcome::Failed };
    transport.hubs.desk.record_file(actor(t.from), id, &t.offer, outcome).await;
}

/// The copy itself: the receiver's result, or why there is none.
async fn copy(
    transport: &Transport,
    id: SessionId,
    t: &Transfer,
    _pass: FilePass,
    connection: &quinn::Connection,
    recv: &mut quinn::RecvStream,
) -> Result<FileResult, String> {
    let broke = |e: &dyn std::fmt::Display| format!("the transfer broke off: {e}");
    let (mut out, mut back) = connection.open_bi().await.map_err(|e| broke(&e))?;
    let _ = out.set_priority(FILE_PRIORITY);
    write_head(&mut out, &Message::FileData(FileData { transfer: t.offer.transfer })).await.map_err(|e| broke(&e))?;
    let technician = technician_of(t);
    let mut copied = 0u64;
    loop {
        let chunk = match recv.read_chunk(256 * 1024, true).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                let _ = out.reset(1u32.into());
                return Err(broke(&e));
            }
        };
        copied += chunk.bytes.len() as u64;
        // The gate, asked again as the bytes pass: a withdrawal stops the file midway.
        let allowed = transport.hubs.existing(id).is_some_and(|hub| technician.is_some_and(|t| hub.lock().gate.admit_files(t).is_some()));
        if copied > t.offer.size || !allowed {
            let _ = out.reset(1u32.into());
            return Err(if allowed { "more bytes than offered".into() } else { "the end user stopped allowing files".into() });
        }
        out.write_chunk(chunk.bytes).await.map_err(|e| broke(&e))?;
    }
    out.finish().map_err(|e| broke(&e))?;
    match tokio::time::timeout(RESULT_TIMEOUT, read_head(&mut back)).await {
        Ok(Ok(Message::FileResult(result))) if result.transfer == t.offer.transfer => Ok(result),
        Ok(Ok(other)) => Err(format!("the receiver answered {other:?}")),
        Ok(Err(e)) => Err(broke(&e)),
        Err(_) => Err("the receiver did not confirm the file".into()),
    }
}
