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
//!
//! A browser has no QUIC streams: its page opens a second data channel, `files`, next to the
//! control one, and the bytes travel on it as binary messages — each the transfer's id (8
//! bytes, big-endian) and up to [`BROWSER_CHUNK`] bytes of the file — in both directions. Its
//! offers, answers and results are JSON messages on the control channel, as the rest. What the
//! relay sends a page is paced by the channel's send buffer (the peer connection's limit); what
//! a page sends is paced by SCTP's flow control, since the relay reads the next message only
//! once the last one went on to the app.

use super::Transport;
use super::gate::FilePass;
use super::hub::{HubState, ViewerCarrier};
use deskline_net::framed::{FILE_PRIORITY, read_head, write_head};
use deskline_protocol::session::{Actor, FileOutcome};
use bytes::{Bytes, BytesMut};
use deskline_protocol::{FileAnswer, FileData, FileOffer, FileResult, Message, SessionId, TechnicianId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use webrtc::data_channel::DataChannel;

/// The most file bytes in one data channel message: with the transfer's id, 16 KiB, the
/// largest message every browser and the relay's WebRTC stack take whole.
pub(super) const BROWSER_CHUNK: usize = 16 * 1024 - 8;

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
pub(super) struct Transfers {
    all: HashMap<u64, Transfer>,
    /// Where a page's `FileResult` for a file sent to it goes (a QUIC receiver answers on the
    /// file's own stream instead).
    results: HashMap<u64, oneshot::Sender<FileResult>>,
}

impl Transfers {
    /// Forgets every transfer to or from `party` (it left); returns them, to be audited.
    pub(super) fn forget(&mut self, party: Party) -> Vec<Transfer> {
        let gone: Vec<u64> = self.all.iter().filter(|(_, t)| t.from == party || t.to == Some(party)).map(|(id, _)| *id).collect();
        gone.into_iter().filter_map(|id| {
            self.results.remove(&id);
            self.all.remove(&id)
        }).collect()
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
    } else if state.transfers.all.len() >= MAX_TRANSFERS_PER_SESSION || state.transfers.all.contains_key(&offer.transfer) {
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
    state.transfers.all.insert(offer.transfer, Transfer { from, to: None, offer, running: false });
}

/// Can this viewer receive a file: over QUIC, or a page whose files channel is open?
fn receives_files(carrier: &ViewerCarrier) -> bool {
    match carrier {
        ViewerCarrier::Quic(_) => true,
        ViewerCarrier::Browser(files) => files.get().is_some(),
    }
}

/// The end user offers the technicians a file: every viewer whose technician may receive files
/// is asked.
pub(super) fn offer_from_app(state: &mut HubState, mut offer: FileOffer, limit: u64) {
    offer.from = "the end user".into();
    let receivers: Vec<(u64, TechnicianId)> = state
        .viewers
        .iter()
        .filter(|(_, v)| receives_files(&v.carrier) && state.gate.admit_files(v.technician).is_some())
        .map(|(conn, v)| (*conn, v.technician))
        .collect();
    let refused = if limit == 0 {
        Some("the technicians' channel allows no files".to_owned())
    } else if offer.size > limit {
        Some(format!("{} bytes is more than the technicians' channel allows ({limit} bytes)", offer.size))
    } else if state.transfers.all.len() >= MAX_TRANSFERS_PER_SESSION || state.transfers.all.contains_key(&offer.transfer) {
        Some("too many files on their way; wait for one to finish".to_owned())
    } else if receivers.is_empty() {
        Some("no technician who may receive files is viewing".to_owned())
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
    state.transfers.all.insert(offer.transfer, Transfer { from: Party::App, to: None, offer, running: false });
}

/// An answer to an offer from `by` (the app, or a viewer). Returns a declined transfer, to be
/// audited.
pub(super) fn answer(state: &mut HubState, by: Party, answer: FileAnswer) -> Option<Transfer> {
    let transfer = state.transfers.all.get(&answer.transfer)?;
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
        if let Some(t) = state.transfers.all.get_mut(&answer.transfer) {
            t.to = Some(by);
        }
        None
    } else {
        state.transfers.all.remove(&answer.transfer)
    }
}

/// The offer a declined transfer made, and who made it, for the audit trail.
pub(super) fn declined(t: &Transfer) -> (Actor, &FileOffer) {
    (actor(t.from), &t.offer)
}

/// Where a file's bytes go.
enum Sink {
    /// A new stream on the receiver's QUIC connection.
    Quic(quinn::Connection),
    /// A page's files channel, and where its result will arrive.
    Browser(Arc<dyn DataChannel>, oneshot::Receiver<FileResult>),
}

/// Where a file's bytes come from.
enum Source<'a> {
    /// The sender's stream.
    Quic(&'a mut quinn::RecvStream),
    /// The chunks a page sent on its files channel.
    Browser(&'a mut mpsc::Receiver<Bytes>),
}

impl Source<'_> {
    /// The next chunk (`None`: the stream ended, or the page's channel closed).
    async fn next(&mut self) -> Result<Option<Bytes>, String> {
        match self {
            Source::Quic(recv) => recv.read_chunk(256 * 1024, true).await.map(|c| c.map(|c| c.bytes)).map_err(|e| e.to_string()),
            Source::Browser(rx) => Ok(rx.recv().await),
        }
    }

    /// Tells a QUIC sender to stop sending.
    fn stop(&mut self) {
        if let Source::Quic(recv) = self {
            let _ = recv.stop(1u32.into());
        }
    }
}

/// The receiver for a transfer `from` starts sending, if it may still go: accepted, not yet
/// running, and the gate still admits the technician on it.
fn start(state: &mut HubState, from: Party, transfer: u64) -> Result<(Transfer, Sink, FilePass), &'static str> {
    let t = state.transfers.all.get_mut(&transfer).ok_or("no such file offered")?;
    if t.from != from || t.running {
        return Err("not this sender's file");
    }
    let to = t.to.ok_or("the file was not accepted")?;
    let technician = technician_of(t).ok_or("no technician on this transfer")?;
    let pass = state.gate.admit_files(technician).ok_or("the end user no longer allows files")?;
    let sink = match to {
        Party::App => state.app.as_ref().map(|a| Sink::Quic(a.connection.clone())),
        Party::Viewer(conn, _) => state.viewers.get(&conn).and_then(|v| match &v.carrier {
            ViewerCarrier::Quic(connection) => Some(Sink::Quic(connection.clone())),
            ViewerCarrier::Browser(files) => files.get().cloned().map(|channel| {
                let (tx, rx) = oneshot::channel();
                state.transfers.results.insert(transfer, tx);
                Sink::Browser(channel, rx)
            }),
        }),
    }
    .ok_or("the receiver left")?;
    let t = state.transfers.all.get_mut(&transfer).ok_or("no such file offered")?;
    t.running = true;
    Ok((t.clone(), sink, pass))
}

/// A page's result for a file the relay sent it (a JSON message on its control channel).
pub(super) fn result_from_browser(state: &mut HubState, conn: u64, result: FileResult) {
    let to_this_page = state.transfers.all.get(&result.transfer).is_some_and(|t| matches!(t.to, Some(Party::Viewer(c, _)) if c == conn));
    if to_this_page && let Some(waiting) = state.transfers.results.remove(&result.transfer) {
        let _ = waiting.send(result);
    }
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
    let (t, sink, pass) = match started {
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
    let mut source = Source::Quic(&mut recv);
    let result = copy(&transport, id, &t, pass, sink, &mut source).await.unwrap_or_else(|why| {
        source.stop();
        FileResult { transfer, saved: false, message: why }
    });
    if write_head(&mut send, &Message::FileResult(result.clone())).await.is_ok() {
        let _ = send.finish();
        let _ = tokio::time::timeout(RESULT_TIMEOUT, send.stopped()).await;
    }
    // A page receiving it is told it failed (a QUIC receiver saw its stream reset).
    if let (false, Some(to @ Party::Viewer(conn, _))) = (result.saved, t.to) {
        let state = hub.lock();
        if state.viewers.get(&conn).is_some_and(|v| matches!(v.carrier, ViewerCarrier::Browser(_))) {
            tell(&state, to, Message::FileResult(result.clone()));
        }
    }
    finished(&transport, id, &t, &result).await;
}

/// A transfer is over: forgotten by the hub, written to the audit trail.
async fn finished(transport: &Transport, id: SessionId, t: &Transfer, result: &FileResult) {
    if let Some(hub) = transport.hubs.existing(id) {
        let mut state = hub.lock();
        state.transfers.all.remove(&t.offer.transfer);
        state.transfers.results.remove(&t.offer.transfer);
    }
    let outcome = if result.saved { FileOutcome::Saved } else { FileOutcome::Failed };
    transport.hubs.desk.record_file(actor(t.from), id, &t.offer, outcome).await;
}

/// A page sends a file it offered (and the end user accepted): its chunks come from the page's
/// files channel through `chunks`; the app's result goes back to the page as a JSON message.
pub(super) async fn browser_upload(transport: Arc<Transport>, id: SessionId, conn: u64, technician: TechnicianId, transfer: u64, mut chunks: mpsc::Receiver<Bytes>) {
    let Some(hub) = transport.hubs.existing(id) else { return };
    let from = Party::Viewer(conn, technician);
    let started = start(&mut hub.lock(), from, transfer);
    let result = match started {
        Ok((t, sink, pass)) => {
            let result = copy(&transport, id, &t, pass, sink, &mut Source::Browser(&mut chunks))
                .await
                .unwrap_or_else(|why| FileResult { transfer, saved: false, message: why });
            finished(&transport, id, &t, &result).await;
            result
        }
        Err(why) => {
            tracing::info!(session = %id, transfer, why, "a page's file refused");
            FileResult { transfer, saved: false, message: why.into() }
        }
    };
    if let Some(hub) = transport.hubs.existing(id) {
        tell(&hub.lock(), from, Message::FileResult(result));
    }
}

/// Where the copy writes: the receiver's stream, or a page's files channel.
enum Out {
    Quic(quinn::SendStream, quinn::RecvStream),
    Browser(Arc<dyn DataChannel>, oneshot::Receiver<FileResult>),
}

impl Out {
    async fn open(sink: Sink, transfer: u64) -> Result<Out, String> {
        match sink {
            Sink::Quic(connection) => {
                let (mut out, back) = connection.open_bi().await.map_err(|e| broke(&e))?;
                let _ = out.set_priority(FILE_PRIORITY);
                write_head(&mut out, &Message::FileData(FileData { transfer })).await.map_err(|e| broke(&e))?;
                Ok(Out::Quic(out, back))
            }
            Sink::Browser(channel, result) => Ok(Out::Browser(channel, result)),
        }
    }

    async fn write(&mut self, transfer: u64, bytes: Bytes) -> Result<(), String> {
        match self {
            Out::Quic(out, _) => out.write_chunk(bytes).await.map_err(|e| broke(&e)),
            Out::Browser(channel, _) => {
                // (`send` waits while the channel's send buffer is full: the page's pace.)
                for piece in bytes.chunks(BROWSER_CHUNK) {
                    let mut message = BytesMut::with_capacity(8 + piece.len());
                    message.extend_from_slice(&transfer.to_be_bytes());
                    message.extend_from_slice(piece);
                    channel.send(message).await.map_err(|e| broke(&e))?;
                }
                Ok(())
            }
        }
    }

    /// Gives up: the receiver keeps nothing.
    fn abort(&mut self) {
        if let Out::Quic(out, _) = self {
            let _ = out.reset(1u32.into());
        }
    }

    /// The whole file is written: the receiver's result.
    async fn result(self, transfer: u64) -> Result<FileResult, String> {
        let answer = match self {
            Out::Quic(mut out, mut back) => {
                out.finish().map_err(|e| broke(&e))?;
                match tokio::time::timeout(RESULT_TIMEOUT, read_head(&mut back)).await {
                    Ok(Ok(Message::FileResult(result))) => Ok(result),
                    Ok(Ok(other)) => Err(format!("the receiver answered {other:?}")),
                    Ok(Err(e)) => Err(broke(&e)),
                    Err(_) => Err("the receiver did not confirm the file".into()),
                }
            }
            Out::Browser(_, result) => match tokio::time::timeout(RESULT_TIMEOUT, result).await {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(_)) => Err("the technician's page left".into()),
                Err(_) => Err("the receiver did not confirm the file".into()),
            },
        };
        answer.and_then(|r| if r.transfer == transfer { Ok(r) } else { Err("the receiver confirmed another file".into()) })
    }
}

fn broke(e: &dyn std::fmt::Display) -> String {
    format!("the transfer broke off: {e}")
}

/// The copy itself: the receiver's result, or why there is none.
async fn copy(transport: &Transport, id: SessionId, t: &Transfer, _pass: FilePass, sink: Sink, source: &mut Source<'_>) -> Result<FileResult, String> {
    let transfer = t.offer.transfer;
    let mut out = Out::open(sink, transfer).await?;
    let technician = technician_of(t);
    let mut copied = 0u64;
    // A QUIC sender's stream ends after the file; a page's chunks stop at its size.
    while !(matches!(source, Source::Browser(_)) && copied == t.offer.size) {
        let chunk = match source.next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) if matches!(source, Source::Quic(_)) => break,
            Ok(None) => {
                out.abort();
                return Err("the technician's page stopped sending".into());
            }
            Err(e) => {
                out.abort();
                return Err(broke(&e));
            }
        };
        copied += chunk.len() as u64;
        // The gate, asked again as the bytes pass: a withdrawal stops the file midway.
        let allowed = transport.hubs.existing(id).is_some_and(|hub| technician.is_some_and(|t| hub.lock().gate.admit_files(t).is_some()));
        if copied > t.offer.size || !allowed {
            out.abort();
            return Err(if allowed { "more bytes than offered".into() } else { "the end user stopped allowing files".into() });
        }
        out.write(transfer, chunk).await?;
    }
    out.result(transfer).await
}
