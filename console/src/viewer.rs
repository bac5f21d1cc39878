//! The technician's side of a remote session over QUIC: join a session as a viewer, receive
//! and decode its H.264 frames, take control and send input.
//!
//! Frames arrive on their own streams, possibly out of order; the decoder takes them in
//! sequence, drops late ones, and after a gap waits for (and asks for) the next keyframe.

use deskline_net::NetError;
use deskline_net::framed::{MessageReader, MessageWriter, open_control, read_frame};
use deskline_protocol::{
    Bye, ByeReason, Capabilities, ChatLine, ClipboardText, ControlHandover, FileAnswer, FileOffer, FileResult, Hello, HelloRole, InputEvent, Message, PROTOCOL_VERSION, RejectReason, SessionId,
    DisplayInfo, PauseReason, SelectDisplay, TechnicianId, VideoFrame, Welcome,
};
use deskline_protocol::limits::MAX_CLIPBOARD_TEXT_BYTES;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Why viewing failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// Network or TLS.
    #[error("{0}")]
    Net(#[from] NetError),
    /// The relay refused to let us view.
    #[error("the relay refused: {message} ({reason:?})")]
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The relay's words.
        message: String,
    },
    /// The relay ended the session.
    #[error("the relay ended the connection: {0}")]
    Ended(String),
    /// Something else.
    #[error("{0}")]
    Other(String),
}

/// Where the relay's QUIC endpoint is and which certificate to pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// Address.
    pub quic: SocketAddr,
    /// Host name for TLS.
    pub server_name: String,
    /// Pinned certificate SHA-256.
    pub fingerprint: [u8; 32],
}

impl RelayTarget {
    /// The endpoint at `quic` (`host:port`, resolved now) pinning `fingerprint` (hex).
    ///
    /// # Errors
    /// The name does not resolve, or the fingerprint is not one.
    pub async fn resolve(quic: &str, fingerprint: &str) -> Result<RelayTarget, ViewerError> {
        let addr = tokio::net::lookup_host(quic)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ViewerError::Other(format!("cannot resolve {quic}")))?;
        let server_name = deskline_net::quic::server_name(quic);
        let fingerprint = deskline_net::tls::parse_fingerprint(fingerprint).map_err(|e| ViewerError::Other(e.to_string()))?;
        Ok(RelayTarget { quic: addr, server_name, fingerprint })
    }
}

/// How long one try to join again may take: a relay that restarts answers within a round trip
/// or two once up; one that died never does.
const JOIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times in a row a join follows a relay node's "the session is on another node".
const MAX_REDIRECTS: usize = 3;

/// How long a running viewer tries to get back to the relay after losing it (a restart, a
/// crash, a network change): a restarted relay and the app's resumption fit well within it.
pub const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// A joined viewer.
pub struct Viewer {
    connection: quinn::Connection,
    writer: MessageWriter,
    reader: MessageReader,
    /// The relay's welcome.
    pub welcome: Welcome,
    /// The technician viewing.
    pub me: TechnicianId,
    /// Where it is joined (the relay node the session's app is connected to), to join again
    /// after losing the relay.
    target: RelayTarget,
    /// Where it first asked: when `target` is gone (a relay node died), this one says where the
    /// session went.
    home: RelayTarget,
    token: String,
    session: SessionId,
}

/// Joins `session` as technician `me` with an API bearer token.
/// (Several relay nodes: a node the session's app is not connected to sends the viewer there.)
pub async fn join(target: &RelayTarget, token: &str, session: SessionId, me: TechnicianId) -> Result<Viewer, ViewerError> {
    join_from(target, target, token, session, me).await
}

/// [`join`] at `target` (where the API said the session's media is) for a viewer whose own
/// relay node is `home` (the one its API answers on): when `target` dies, `home` says where the
/// session went.
pub async fn join_from(
    home: &RelayTarget,
    target: &RelayTarget,
    token: &str,
    session: SessionId,
    me: TechnicianId,
) -> Result<Viewer, ViewerError> {
    let mut joined = target.clone();
    let (connection, writer, reader, welcome) = connect(&mut joined, token, session).await?;
    Ok(Viewer { connection, writer, reader, welcome, me, target: joined, home: home.clone(), token: token.to_owned(), session })
}

/// One connection to the relay as a viewer of `session`, welcomed, following a relay node's
/// "the session is on another node" (`target` becomes where it joined).
async fn connect(
    target: &mut RelayTarget,
    token: &str,
    session: SessionId,
) -> Result<(quinn::Connection, MessageWriter, MessageReader, Welcome), ViewerError> {
    for _ in 0..MAX_REDIRECTS {
        match connect_once(target, token, session).await {
            Err(ViewerError::Rejected { reason: RejectReason::Elsewhere { quic, fingerprint }, .. }) => {
                tracing::info!(%quic, "the session's app is connected to another relay node: joining there");
                *target = RelayTarget::resolve(&quic, &fingerprint).await?;
            }
            other => return other,
        }
    }
    Err(ViewerError::Other("the relay nodes kept sending the viewer elsewhere".into()))
}

async fn connect_once(
    target: &RelayTarget,
    token: &str,
    session: SessionId,
) -> Result<(quinn::Connection, MessageWriter, MessageReader, Welcome), ViewerError> {
    let connection = deskline_net::quic::connect(target.quic, &target.server_name, Some(target.fingerprint)).await?;
    let hello = Message::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        role: HelloRole::Technician { token: token.to_owned(), session },
    });
    let (writer, mut reader) = open_control(&connection, &hello).await?;
    match tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
        Ok(Ok(Some(Message::Welcome(welcome)))) => Ok((connection, writer, reader, welcome)),
        Ok(Ok(Some(Message::Reject(r)))) => Err(ViewerError::Rejected { reason: r.reason, message: r.message }),
        Ok(Ok(other)) => Err(ViewerError::Other(format!("unexpected answer: {other:?}"))),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ViewerError::Other("no answer from the relay".into())),
    }
}

/// Microseconds since the Unix epoch (the clock frames are stamped with).
fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A decoded frame.
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    /// Sequence number.
    pub seq: u64,
    /// Which of the end user's displays it shows.
    pub display: u32,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// RGB, 3 bytes per pixel, rows top to bottom.
    pub rgb: Vec<u8>,
    /// Capture → decoded, in microseconds (meaningful when both ends share a clock).
    pub latency_us: u64,
    /// Size of the access unit.
    pub bytes: usize,
}

/// What the decoder thread reports.
pub enum DecoderEvent {
    /// A frame was decoded.
    Frame(DecodedFrame),
    /// A gap: a keyframe is needed to go on.
    NeedKeyframe,
}

/// How long a frame that arrived ahead of its predecessor waits for it. Each frame comes on a
/// QUIC stream of its own, so a lost packet makes one frame complete after the next: without
/// this wait the decoder took every such frame for a gap and asked for a keyframe (measured on
/// a lossy link: near three a second). A retransmission takes about a round trip.
pub const REORDER_WAIT: Duration = Duration::from_millis(150);

/// Passes frames on in sequence: a frame ahead of the next expected one waits (with any later
/// ones) for at most [`REORDER_WAIT`]; then the waiting frames go on, oldest first, and the
/// decoder deals with the gap. Keyframes never wait: nothing before them is needed.
pub async fn reorder(mut arrived: mpsc::Receiver<VideoFrame>, out: mpsc::Sender<VideoFrame>) {
    let mut waiting: std::collections::BTreeMap<u64, VideoFrame> = std::collections::BTreeMap::new();
    let mut next: Option<u64> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let frame = match deadline {
            Some(at) => match tokio::time::timeout_at(at, arrived.recv()).await {
                Ok(frame) => frame,
                Err(_) => {
                    // The missing frame did not come: go on from the oldest waiting one (the
                    // decoder sees the gap and asks for a keyframe if it needs one).
                    next = waiting.keys().next().copied();
                    if !flush_in_order(&mut waiting, &mut next, &out).await {
                        return;
                    }
                    deadline = (!waiting.is_empty()).then(|| tokio::time::Instant::now() + REORDER_WAIT);
                    continue;
                }
            },
            None => arrived.recv().await,
        };
        let Some(frame) = frame else { return };
        if next.is_some_and(|n| frame.seq < n) {
            continue; // late: newer frames went on already
        }
        if frame.keyframe || next.is_none_or(|n| frame.seq == n) {
            // Older waiting frames are of no use before a keyframe.
            if frame.keyframe {
                waiting.retain(|&seq, _| seq > frame.seq);
            }
            next = Some(frame.seq + 1);
            if out.send(frame).await.is_err() {
                return;
            }
            if !flush_in_order(&mut waiting, &mut next, &out).await {
                return;
            }
            deadline = (!waiting.is_empty()).then(|| tokio::time::Instant::now() + REORDER_WAIT);
        } else {
            waiting.insert(frame.seq, frame);
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + REORDER_WAIT);
        }
    }
}

/// Sends the waiting frames that follow on from `next`; false if the decoder is gone.
async fn flush_in_order(
    waiting: &mut std::collections::BTreeMap<u64, VideoFrame>,
    next: &mut Option<u64>,
    out: &mpsc::Sender<VideoFrame>,
) -> bool {
    while let Some(n) = *next
        && let Some(frame) = waiting.remove(&n)
    {
        *next = Some(n + 1);
        if out.send(frame).await.is_err() {
            return false;
        }
    }
    true
}

/// Decodes frames in sequence on a dedicated thread (the openh264 decoder is not `Send`).
pub fn spawn_decoder(mut frames: mpsc::Receiver<VideoFrame>, out: mpsc::Sender<DecoderEvent>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use openh264::formats::YUVSource as _;
        let Ok(mut decoder) = openh264::decoder::Decoder::new() else {
            tracing::error!("cannot create the H.264 decoder");
            return;
        };
        let mut last: Option<u64> = None;
        let mut waiting_for_keyframe = true;
        while let Some(frame) = frames.blocking_recv() {
            if last.is_some_and(|l| frame.seq <= l) {
                continue; // late: a newer frame was already shown
            }
            let in_sequence = last.is_some_and(|l| frame.seq == l + 1);
            if !frame.keyframe && (waiting_for_keyframe || !in_sequence) {
                waiting_for_keyframe = true;
                if out.blocking_send(DecoderEvent::NeedKeyframe).is_err() {
                    return;
                }
                continue;
            }
            waiting_for_keyframe = false;
            last = Some(frame.seq);
            match decoder.decode(&frame.data) {
                Ok(Some(yuv)) => {
                    let (width, height) = yuv.dimensions();
                    let mut rgb = vec![0u8; width * height * 3];
                    yuv.write_rgb8(&mut rgb);
                    let decoded = DecodedFrame {
                        seq: frame.seq,
                        display: frame.display,
                        width,
                        height,
                        rgb,
                        latency_us: now_us().saturating_sub(frame.capture_us),
                        bytes: frame.data.len(),
                    };
                    if out.blocking_send(DecoderEvent::Frame(decoded)).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable frame; waiting for a keyframe");
                    waiting_for_keyframe = true;
                }
            }
        }
    })
}

/// What the technician asks of a running viewer.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerCommand {
    /// Send input (passes only while this technician holds control).
    Input(InputEvent),
    /// Ask for control.
    TakeControl,
    /// Give control back.
    ReleaseControl,
    /// Show another of the end user's displays (to every viewer of the session).
    SelectDisplay(u32),
    /// Write to the end user and the other technicians (shown when the relay sends it back).
    Chat(String),
    /// Put this text on the end user's clipboard (passes only while this technician holds
    /// control with the clipboard granted).
    Clipboard(String),
    /// Offer the end user this file (they are asked; passes only with the files grant).
    SendFile(std::path::PathBuf),
    /// Answer the end user's offer `transfer`: save it in this folder (under a free name), or
    /// decline it (`None`).
    AnswerFile {
        /// The offer answered.
        transfer: u64,
        /// Where to save it.
        save_in: Option<std::path::PathBuf>,
    },
    /// Leave the session.
    Leave,
}

/// How a file between this viewer and the end user is getting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileNews {
    /// The end user offers a file (answer with [`ViewerCommand::AnswerFile`]).
    Offered(FileOffer),
    /// Bytes of a file on its way (`incoming`: from the end user).
    Progress {
        /// The transfer.
        transfer: u64,
        /// Its name.
        name: String,
        /// From the end user (or to them).
        incoming: bool,
        /// Bytes so far.
        bytes: u64,
        /// All its bytes.
        size: u64,
    },
    /// It ended: saved (where: a path here, or the name the end user's app chose), or not
    /// (why).
    Done {
        /// The transfer.
        transfer: u64,
        /// Its name.
        name: String,
        /// From the end user (or to them).
        incoming: bool,
        /// Saved whole (size and SHA-256 checked).
        saved: bool,
        /// Where it was saved, or why not.
        message: String,
    },
}

/// What a running viewer reports.
#[derive(Debug)]
pub enum ViewerUpdate {
    /// A decoded frame.
    Frame(DecodedFrame),
    /// Who holds control now.
    Controller(Option<TechnicianId>),
    /// The end user's displays (on joining and after every change).
    Displays(Vec<DisplayInfo>),
    /// What the end user allows this viewer's technician (on joining and after every change):
    /// nothing until they say yes to them, nothing again once they stop sharing.
    Allowed(Capabilities),
    /// A file offered by the end user, on its way, or done.
    File(FileNews),
    /// Why the end user's picture stopped (a UAC prompt, the lock screen, a capture failure),
    /// or `None` once it runs again.
    Paused(Option<PauseReason>),
    /// A chat line on the session, as the relay recorded it (this technician's own too).
    Chat(ChatLine),
    /// The end user copied this text (only with the clipboard granted to this technician).
    Clipboard(String),
    /// The relay was lost (why); the viewer is getting back (for [`RECONNECT_FOR`]). Once
    /// back, the relay's welcome updates (controller, displays, allowed) and frames follow.
    Reconnecting(String),
    /// The viewer stopped; `None` when we left.
    Ended(Option<ViewerError>),
}

/// Updates buffered for the consumer of a running viewer: half a second of frames at 30 fps;
/// a consumer slower than that slows the decoder rather than queueing stale pictures.
const UPDATE_QUEUE: usize = 16;

impl Viewer {
    /// Runs the viewer in the background: frames are received, decoded in order and reported;
    /// commands are sent to the relay. The task ends when the session ends, the relay goes
    /// away, [`ViewerCommand::Leave`] is sent, or the update receiver is dropped.
    pub fn spawn(self) -> (mpsc::UnboundedSender<ViewerCommand>, mpsc::Receiver<ViewerUpdate>) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (updates_tx, updates) = mpsc::channel(UPDATE_QUEUE);
        tokio::spawn(self.run(command_rx, updates_tx));
        (commands, updates)
    }

    /// Runs connection after connection: when the relay is lost (not when it ends the session)
    /// the viewer joins again and goes on.
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<ViewerCommand>, updates: mpsc::Sender<ViewerUpdate>) {
        let ended = loop {
            match self.serve(&mut commands, &updates).await {
                Served::Ended(ended) => break ended,
                Served::Lost(why) => {
                    tracing::info!(why = %why, "lost the relay; joining again");
                    if updates.send(ViewerUpdate::Reconnecting(why)).await.is_err() {
                        break None;
                    }
                    match self.rejoin(&mut commands).await {
                        Ok(true) => {}
                        Ok(false) => break None, // left meanwhile
                        Err(e) => break Some(e),
                    }
                }
            }
        };
        self.leave().await;
        let _ = updates.send(ViewerUpdate::Ended(ended)).await;
    }

    /// Joins again, retrying with back-off for [`RECONNECT_FOR`]; `Ok(false)` if the technician
    /// left meanwhile. A refusal (the session ended, the token was revoked) is final.
    async fn rejoin(&mut self, commands: &mut mpsc::UnboundedReceiver<ViewerCommand>) -> Result<bool, ViewerError> {
        let deadline = tokio::time::Instant::now() + RECONNECT_FOR;
        let mut pause = Duration::from_millis(250);
        let mut attempt = 0u32;
        loop {
            // Every other attempt asks where it first asked, when that is elsewhere: a node that
            // died is not coming back, and the one asked knows where the session went.
            attempt += 1;
            let mut target = if attempt.is_multiple_of(2) { self.home.clone() } else { self.target.clone() };
            // A node that died does not answer at all: each try gets a short bound.
            let attempt_result = tokio::time::timeout(JOIN_ATTEMPT_TIMEOUT, connect(&mut target, &self.token, self.session))
                .await
                .unwrap_or_else(|_| Err(ViewerError::Other("no answer".into())));
            match attempt_result {
                Ok((connection, writer, reader, welcome)) => {
                    self.connection.close(0u32.into(), b"replaced");
                    (self.connection, self.writer, self.reader, self.welcome) = (connection, writer, reader, welcome);
                    self.target = target;
                    return Ok(true);
                }
                Err(e @ ViewerError::Rejected { .. }) => return Err(e),
                Err(e) if tokio::time::Instant::now() + pause >= deadline => {
                    return Err(ViewerError::Ended(format!("the relay did not come back within {} s ({e})", RECONNECT_FOR.as_secs())));
                }
                Err(_) => {}
            }
            // Input while away is dropped (the end user's machine must not get it late).
            let wait = tokio::time::sleep(pause);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    command = commands.recv() => {
                        if matches!(command, Some(ViewerCommand::Leave) | None) {
                            return Ok(false);
                        }
                    }
                }
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Serves one connection: frames are received and decoded (a decoder per connection: a
    /// new connection's frames start over), commands sent, the relay's messages reported.
    async fn serve(&mut self, commands: &mut mpsc::UnboundedReceiver<ViewerCommand>, updates: &mpsc::Sender<ViewerUpdate>) -> Served {
        let (arrived_tx, arrived_rx) = mpsc::channel::<VideoFrame>(16);
        let (raw_tx, raw_rx) = mpsc::channel::<VideoFrame>(16);
        let (dec_tx, mut dec_rx) = mpsc::channel::<DecoderEvent>(16);
        let _decoder = spawn_decoder(raw_rx, dec_tx);
        let reordering = tokio::spawn(reorder(arrived_rx, raw_tx));
        let connection = self.connection.clone();
        let receiver = tokio::spawn(async move {
            while let Ok(stream) = connection.accept_uni().await {
                let arrived_tx = arrived_tx.clone();
                tokio::spawn(async move {
                    if let Ok((_, frame)) = read_frame(stream).await {
                        let _ = arrived_tx.send(frame).await;
                    }
                });
            }
        });
        // Files on this connection: what this viewer offered (and from where), what the end user
        // offered and was accepted (and where to); their tasks report here.
        let mut files = Files::default();
        let (file_tx, mut file_rx) = mpsc::unbounded_channel::<FileEvent>();
        let streams = self.connection.clone();
        let file_streams = file_tx.clone();
        let stream_receiver = tokio::spawn(async move {
            while let Ok((send, mut recv)) = streams.accept_bi().await {
                let file_streams = file_streams.clone();
                tokio::spawn(async move {
                    if let Ok(transfer) = deskline_net::files::read_file_head(&mut recv).await {
                        let _ = file_streams.send(FileEvent::Stream(transfer, send, recv));
                    }
                });
            }
        });
        let served = loop {
            tokio::select! {
                Some(event) = file_rx.recv() => {
                    let message = match files.on_event(event, &file_tx) {
                        FileStep::Send(message) => message,
                        FileStep::Tell(news) => {
                            if updates.send(ViewerUpdate::File(news)).await.is_err() {
                                break Served::Ended(None);
                            }
                            continue;
                        }
                        FileStep::Nothing => continue,
                    };
                    if let Err(e) = self.writer.send(&message).await {
                        break Served::Lost(e.to_string());
                    }
                }
                command = commands.recv() => {
                    let message = match command {
                        Some(ViewerCommand::Input(event)) => Message::Input(event),
                        Some(ViewerCommand::TakeControl) => Message::ControlHandover(ControlHandover { holder: Some(self.me) }),
                        Some(ViewerCommand::ReleaseControl) => Message::ControlHandover(ControlHandover { holder: None }),
                        Some(ViewerCommand::SelectDisplay(display)) => Message::SelectDisplay(SelectDisplay { display }),
                        Some(ViewerCommand::Chat(text)) => {
                            // A blank or over-long line would be refused by the relay as a
                            // protocol error: it is not sent.
                            let line = Message::Chat(ChatLine::to_send(text));
                            if line.validate().is_err() {
                                continue;
                            }
                            line
                        }
                        Some(ViewerCommand::Clipboard(text)) => {
                            // Empty or over-long text is not sent (the relay would end the
                            // connection for it).
                            let clip = Message::Clipboard(ClipboardText { text });
                            if clip.validate().is_err() {
                                continue;
                            }
                            clip
                        }
                        Some(ViewerCommand::SendFile(path)) => {
                            files.hash(path, &file_tx);
                            continue;
                        }
                        Some(ViewerCommand::AnswerFile { transfer, save_in }) => match files.answer(transfer, save_in) {
                            Some(answer) => answer,
                            None => continue,
                        },
                        Some(ViewerCommand::Leave) | None => break Served::Ended(None),
                    };
                    if let Err(e) = self.writer.send(&message).await {
                        break Served::Lost(e.to_string());
                    }
                }
                event = dec_rx.recv() => match event {
                    Some(DecoderEvent::Frame(frame)) => {
                        if updates.send(ViewerUpdate::Frame(frame)).await.is_err() {
                            break Served::Ended(None);
                        }
                    }
                    Some(DecoderEvent::NeedKeyframe) => {
                        if let Err(e) = self.writer.send(&Message::KeyframeRequest).await {
                            break Served::Lost(e.to_string());
                        }
                    }
                    None => break Served::Ended(Some(ViewerError::Other("the decoder stopped".into()))),
                },
                message = self.reader.next() => {
                    let update = match message {
                        Ok(Some(Message::ControlHandover(ControlHandover { holder }))) => ViewerUpdate::Controller(holder),
                        Ok(Some(Message::DisplaysChanged(changed))) => ViewerUpdate::Displays(changed.displays),
                        Ok(Some(Message::Access(access))) => ViewerUpdate::Allowed(
                            access.grants.iter().find(|g| g.technician == self.me).map_or(Capabilities::NONE, |g| g.capabilities),
                        ),
                        Ok(Some(Message::ScreenState(screen))) => ViewerUpdate::Paused(screen.paused),
                        Ok(Some(Message::Chat(line))) => ViewerUpdate::Chat(line),
                        Ok(Some(Message::Clipboard(clip))) => ViewerUpdate::Clipboard(clip.text),
                        Ok(Some(message @ (Message::FileOffer(_) | Message::FileAnswer(_) | Message::FileResult(_)))) => {
                            match files.on_message(message, &self.connection, &file_tx) {
                                Some(news) => ViewerUpdate::File(news),
                                None => continue,
                            }
                        }
                        // A relay going down for a restart says so: come back with it.
                        Ok(Some(Message::Bye(bye))) if bye.reason == ByeReason::ServerShutdown => break Served::Lost(bye.message),
                        Ok(Some(Message::Bye(bye))) => break Served::Ended(Some(ViewerError::Ended(bye.message))),
                        Ok(Some(_)) => continue,
                        Ok(None) => break Served::Lost("the relay closed the connection".into()),
                        Err(e) => break Served::Lost(e.to_string()),
                    };
                    if updates.send(update).await.is_err() {
                        break Served::Ended(None);
                    }
                }
            }
        };
        receiver.abort();
        reordering.abort();
        stream_receiver.abort();
        served
    }

    /// Receives and decodes frames, calling `on_frame` for each until it returns false, the
    /// relay ends the connection, or `timeout` passes without a decoded frame.
    pub async fn watch(self, timeout: Duration, on_frame: impl FnMut(DecodedFrame) -> bool) -> Result<(), ViewerError> {
        self.watch_reporting(timeout, on_frame, |_| {}).await
    }

    /// [`Viewer::watch`], also calling `on_reconnect` with the reason whenever the relay was
    /// lost and the viewer is joining again.
    pub async fn watch_reporting(
        self,
        timeout: Duration,
        mut on_frame: impl FnMut(DecodedFrame) -> bool,
        mut on_reconnect: impl FnMut(&str),
    ) -> Result<(), ViewerError> {
        let (commands, mut updates) = self.spawn();
        let mut paused = None;
        loop {
            match tokio::time::timeout(timeout, updates.recv()).await {
                Ok(Some(ViewerUpdate::Frame(frame))) => {
                    if !on_frame(frame) {
                        let _ = commands.send(ViewerCommand::Leave);
                        return finish(&mut updates).await;
                    }
                }
                Ok(Some(
                    ViewerUpdate::Controller(_)
                    | ViewerUpdate::Displays(_)
                    | ViewerUpdate::Allowed(_)
                    | ViewerUpdate::Chat(_)
                    | ViewerUpdate::Clipboard(_)
                    | ViewerUpdate::File(_),
                )) => {}
                Ok(Some(ViewerUpdate::Reconnecting(why))) => on_reconnect(&why),
                Ok(Some(ViewerUpdate::Paused(reason))) => paused = reason,
                Ok(Some(ViewerUpdate::Ended(e))) => return e.map_or(Ok(()), Err),
                Ok(None) => return Err(ViewerError::Other("the viewer stopped".into())),
                Err(_) => {
                    let _ = commands.send(ViewerCommand::Leave);
                    finish(&mut updates).await?;
                    let why = paused.map_or("the end user has not allowed viewing, or nothing is streamed", PauseReason::describe);
                    return Err(ViewerError::Other(format!("no frame for {} s: {why}", timeout.as_secs())));
                }
            }
        }
    }

    /// Takes control, sends the events, and leaves. Fails if the end user has not granted
    /// control (or another technician holds it and the relay refuses).
    pub async fn send_input(self, events: &[InputEvent]) -> Result<(), ViewerError> {
        self.controlling(|_| Ok(events.iter().cloned().map(ViewerCommand::Input).collect())).await
    }

    /// Takes control, puts `text` on the end user's clipboard, and leaves. Fails if the end
    /// user has not granted this technician control and the clipboard.
    pub async fn send_clipboard(self, text: String) -> Result<(), ViewerError> {
        let bytes = text.len();
        if text.is_empty() || bytes > MAX_CLIPBOARD_TEXT_BYTES {
            return Err(ViewerError::Other(format!("clipboard text must be 1 to {MAX_CLIPBOARD_TEXT_BYTES} bytes, not {bytes}")));
        }
        self.controlling(|allowed| {
            if allowed.clipboard() {
                Ok(vec![ViewerCommand::Clipboard(text)])
            } else {
                Err(ViewerError::Other("the end user has not allowed you the clipboard".into()))
            }
        })
        .await
    }

    /// Waits (at most `timeout`) for the end user to copy text, and returns it. Fails at once if
    /// the end user has not allowed this technician the clipboard.
    pub async fn receive_clipboard(self, timeout: Duration) -> Result<String, ViewerError> {
        let (commands, mut updates) = self.spawn();
        let deadline = tokio::time::Instant::now() + timeout;
        let result = loop {
            match tokio::time::timeout_at(deadline, updates.recv()).await {
                Ok(Some(ViewerUpdate::Clipboard(text))) => break Ok(text),
                Ok(Some(ViewerUpdate::Allowed(allowed))) if !allowed.clipboard() => {
                    break Err(ViewerError::Other("the end user has not allowed you the clipboard".into()));
                }
                Ok(Some(ViewerUpdate::Ended(e))) => return Err(e.unwrap_or_else(|| ViewerError::Ended("left".into()))),
                Ok(Some(_)) => {}
                Ok(None) => return Err(ViewerError::Other("the viewer stopped".into())),
                Err(_) => break Err(ViewerError::Other(format!("the end user copied nothing within {} s", timeout.as_secs()))),
            }
        };
        let _ = commands.send(ViewerCommand::Leave);
        let finished = finish(&mut updates).await;
        result.and_then(|text| finished.map(|()| text))
    }

    /// Offers the end user `path` and, once they accept it, sends it (`progress` gets the bytes
    /// sent so far; `on_accept` is called when the end user accepted). Waits at most `timeout`
    /// for the answer. Returns where the end user's app saved it (a file name). Fails if the
    /// end user has not allowed this technician files, declines, or the file did not arrive
    /// whole.
    pub async fn send_file(
        mut self,
        path: &std::path::Path,
        timeout: Duration,
        on_accept: impl FnOnce(u64),
        progress: impl FnMut(u64),
    ) -> Result<String, ViewerError> {
        let name = deskline_net::files::plain_name(path).ok_or_else(|| ViewerError::Other(format!("{} is not a file name that can be sent", path.display())))?;
        let (size, sha256) = deskline_net::files::size_and_hash(path).await.map_err(|e| ViewerError::Other(format!("{}: {e}", path.display())))?;
        let allowed = self.allowed().await?;
        if !allowed.files() {
            self.leave().await;
            return Err(ViewerError::Other("the end user has not allowed you files".into()));
        }
        let offer = FileOffer { transfer: now_us(), name, size, sha256, from: String::new() };
        self.writer.send(&Message::FileOffer(offer.clone())).await?;
        let answered = self.next_file_message(offer.transfer, timeout).await;
        let result = match answered {
            Ok(Message::FileAnswer(answer)) if answer.accepted => {
                on_accept(size);
                match deskline_net::files::send(&self.connection, &offer, path, progress).await {
                    Ok(result) if result.saved => Ok(result.message),
                    Ok(result) => Err(ViewerError::Other(format!("the file was not saved: {}", result.message))),
                    Err(e) => Err(e.into()),
                }
            }
            Ok(Message::FileAnswer(_)) => Err(ViewerError::Other("the end user declined the file".into())),
            Ok(Message::FileResult(result)) => Err(ViewerError::Other(result.message)),
            Ok(other) => Err(ViewerError::Other(format!("unexpected {other:?}"))),
            Err(e) => Err(e),
        };
        self.leave().await;
        result
    }

    /// Waits (at most `timeout`) for the end user to send a file, accepts it, and saves it in
    /// `dir` (never over a file there: a taken name gets a number). `on_offer` is called with
    /// the offer when it comes, `progress` with the bytes so far. Returns where it was saved.
    pub async fn receive_file(
        mut self,
        dir: &std::path::Path,
        timeout: Duration,
        on_offer: impl FnOnce(&FileOffer),
        progress: impl FnMut(u64),
    ) -> Result<std::path::PathBuf, ViewerError> {
        let allowed = self.allowed().await?;
        if !allowed.files() {
            self.leave().await;
            return Err(ViewerError::Other("the end user has not allowed you files".into()));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let offer = loop {
            match tokio::time::timeout_at(deadline, self.reader.next()).await {
                Ok(Ok(Some(Message::FileOffer(offer)))) => break offer,
                Ok(Ok(Some(Message::Bye(bye)))) => return Err(ViewerError::Ended(bye.message)),
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => return Err(ViewerError::Other("the relay closed the connection".into())),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    self.leave().await;
                    return Err(ViewerError::Other(format!("the end user sent no file within {} s", timeout.as_secs())));
                }
            }
        };
        on_offer(&offer);
        self.writer.send(&Message::FileAnswer(FileAnswer { transfer: offer.transfer, accepted: true })).await?;
        let result = loop {
            tokio::select! {
                stream = self.connection.accept_bi() => {
                    let (send, mut recv) = stream.map_err(deskline_net::NetError::from)?;
                    if deskline_net::files::read_file_head(&mut recv).await? != offer.transfer {
                        let _ = recv.stop(1u32.into());
                        continue;
                    }
                    let dest = deskline_net::files::free_path(dir, &offer.name);
                    break match deskline_net::files::receive(send, recv, &offer, &dest, progress).await {
                        (_, Some(saved)) => Ok(saved),
                        (result, None) => Err(ViewerError::Other(format!("the file was not saved: {}", result.message))),
                    };
                }
                message = self.reader.next() => match message? {
                    // Another technician took it, or the relay refused.
                    Some(Message::FileResult(result)) if result.transfer == offer.transfer => break Err(ViewerError::Other(result.message)),
                    Some(Message::Bye(bye)) => break Err(ViewerError::Ended(bye.message)),
                    Some(_) => {}
                    None => break Err(ViewerError::Other("the relay closed the connection".into())),
                },
            }
        };
        self.leave().await;
        result
    }

    /// What the end user allows this technician, as the relay says on joining.
    async fn allowed(&mut self) -> Result<Capabilities, ViewerError> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.reader.next()).await {
                Ok(Ok(Some(Message::Access(access)))) => {
                    return Ok(access.grants.iter().find(|g| g.technician == self.me).map_or(Capabilities::NONE, |g| g.capabilities));
                }
                Ok(Ok(Some(Message::Bye(bye)))) => return Err(ViewerError::Ended(bye.message)),
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => return Err(ViewerError::Other("the relay closed the connection".into())),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(ViewerError::Other("the relay did not say what the end user allows".into())),
            }
        }
    }

    /// The relay's next word on `transfer` (its answer, or a refusal), other messages skipped.
    async fn next_file_message(&mut self, transfer: u64, timeout: Duration) -> Result<Message, ViewerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.reader.next()).await {
                Ok(Ok(Some(message @ Message::FileAnswer(FileAnswer { transfer: t, .. })))) if t == transfer => return Ok(message),
                Ok(Ok(Some(message @ Message::FileResult(FileResult { transfer: t, .. })))) if t == transfer => return Ok(message),
                Ok(Ok(Some(Message::Bye(bye)))) => return Err(ViewerError::Ended(bye.message)),
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => return Err(ViewerError::Other("the relay closed the connection".into())),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(ViewerError::Other(format!("the end user did not answer within {} s", timeout.as_secs()))),
            }
        }
    }

    /// Takes control, sends what `then` makes of what the end user allows, and leaves.
    async fn controlling(
        self,
        then: impl FnOnce(Capabilities) -> Result<Vec<ViewerCommand>, ViewerError>,
    ) -> Result<(), ViewerError> {
        let me = self.me;
        let (commands, mut updates) = self.spawn();
        let result = take_control(me, &commands, &mut updates).await.and_then(then).and_then(|sends| {
            sends.into_iter().try_for_each(|command| commands.send(command).map_err(|_| ViewerError::Other("the viewer stopped".into())))
        });
        let _ = commands.send(ViewerCommand::Leave);
        let finished = finish(&mut updates).await;
        result.and(finished)
    }

    /// Asks for another of the end user's displays (before [`Viewer::watch`] or
    /// [`Viewer::spawn`]; a running viewer takes [`ViewerCommand::SelectDisplay`]).
    pub async fn select_display(&mut self, display: u32) -> Result<(), ViewerError> {
        self.writer.send(&Message::SelectDisplay(SelectDisplay { display })).await?;
        Ok(())
    }

    async fn leave(&mut self) {
        let bye = Message::Bye(Bye { reason: ByeReason::Normal, message: String::new() });
        let _ = self.writer.send(&bye).await;
        let _ = self.writer.finish();
        // Give the relay the bye (and queued input) before closing.
        let _ = tokio::time::timeout(Duration::from_millis(500), self.connection.closed()).await;
        self.connection.close(0u32.into(), b"bye");
    }
}

/// How serving one connection ended.
/// What a file's task reports to the viewer's loop.
enum FileEvent {
    /// A file to offer was hashed.
    Hashed(std::path::PathBuf, std::io::Result<(u64, [u8; 32])>),
    /// The relay opened a file's stream (its head read).
    Stream(u64, quinn::SendStream, quinn::RecvStream),
    /// News for the window.
    News(FileNews),
}

/// What the loop does with a file event.
enum FileStep {
    Send(Message),
    Tell(FileNews),
    Nothing,
}

/// The files of one connection.
#[derive(Default)]
struct Files {
    /// Offered by this viewer: the offer and the file.
    mine: std::collections::HashMap<u64, (FileOffer, std::path::PathBuf)>,
    /// Offered by the end user, not yet answered.
    offered: std::collections::HashMap<u64, FileOffer>,
    /// Accepted: the offer and the folder to save it in.
    accepted: std::collections::HashMap<u64, (FileOffer, std::path::PathBuf)>,
}

/// Reports a file's bytes at most once per percent.
fn progress_reporter(news: mpsc::UnboundedSender<FileEvent>, offer: &FileOffer, incoming: bool) -> impl FnMut(u64) + use<> {
    let (transfer, name, size) = (offer.transfer, offer.name.clone(), offer.size);
    let step = (size / 100).max(1);
    let mut reported = 0;
    move |bytes| {
        if bytes == size || bytes >= reported + step {
            reported = bytes;
            let _ = news.send(FileEvent::News(FileNews::Progress { transfer, name: name.clone(), incoming, bytes, size }));
        }
    }
}

impl Files {
    /// Hashes a file to offer, on a task (it may be large).
    fn hash(&self, path: std::path::PathBuf, events: &mpsc::UnboundedSender<FileEvent>) {
        let events = events.clone();
        tokio::spawn(async move {
            let hashed = deskline_net::files::size_and_hash(&path).await;
            let _ = events.send(FileEvent::Hashed(path, hashed));
        });
    }

    /// The answer to send for the end user's offer `transfer`, if it is still open.
    fn answer(&mut self, transfer: u64, save_in: Option<std::path::PathBuf>) -> Option<Message> {
        let offer = self.offered.remove(&transfer)?;
        let accepted = save_in.is_some();
        if let Some(dir) = save_in {
            self.accepted.insert(transfer, (offer, dir));
        }
        Some(Message::FileAnswer(FileAnswer { transfer, accepted }))
    }

    fn on_event(&mut self, event: FileEvent, events: &mpsc::UnboundedSender<FileEvent>) -> FileStep {
        match event {
            FileEvent::Hashed(path, hashed) => {
                let name = deskline_net::files::plain_name(&path).unwrap_or_default();
                let transfer = now_us();
                match hashed {
                    Ok((size, sha256)) if !name.is_empty() => {
                        let offer = FileOffer { transfer, name, size, sha256, from: String::new() };
                        self.mine.insert(transfer, (offer.clone(), path));
                        FileStep::Send(Message::FileOffer(offer))
                    }
                    Ok(_) => FileStep::Tell(done(transfer, name, false, false, format!("{} is not a file that can be sent", path.display()))),
                    Err(e) => FileStep::Tell(done(transfer, name, false, false, format!("{}: {e}", path.display()))),
                }
            }
            FileEvent::Stream(transfer, send, mut recv) => {
                // Only a file this technician accepted.
                let Some((offer, dir)) = self.accepted.remove(&transfer) else {
                    let _ = recv.stop(1u32.into());
                    return FileStep::Nothing;
                };
                let events = events.clone();
                tokio::spawn(async move {
                    let dest = deskline_net::files::free_path(&dir, &offer.name);
                    let progress = progress_reporter(events.clone(), &offer, true);
                    let news = match deskline_net::files::receive(send, recv, &offer, &dest, progress).await {
                        (_, Some(saved)) => done(transfer, offer.name, true, true, saved.display().to_string()),
                        (result, None) => done(transfer, offer.name, true, false, result.message),
                    };
                    let _ = events.send(FileEvent::News(news));
                });
                FileStep::Nothing
            }
            FileEvent::News(news) => FileStep::Tell(news),
        }
    }

    /// A message from the relay about files: news for the window, if any.
    fn on_message(&mut self, message: Message, connection: &quinn::Connection, events: &mpsc::UnboundedSender<FileEvent>) -> Option<FileNews> {
        match message {
            Message::FileOffer(offer) => {
                self.offered.insert(offer.transfer, offer.clone());
                Some(FileNews::Offered(offer))
            }
            Message::FileAnswer(answer) => {
                let (offer, path) = self.mine.remove(&answer.transfer)?;
                if !answer.accepted {
                    return Some(done(offer.transfer, offer.name, false, false, "the end user declined it".into()));
                }
                let (connection, events) = (connection.clone(), events.clone());
                tokio::spawn(async move {
                    let progress = progress_reporter(events.clone(), &offer, false);
                    let news = match deskline_net::files::send(&connection, &offer, &path, progress).await {
                        Ok(result) => done(offer.transfer, offer.name, false, result.saved, result.message),
                        Err(e) => done(offer.transfer, offer.name, false, false, e.to_string()),
                    };
                    let _ = events.send(FileEvent::News(news));
                });
                // (Its progress comes from the task.)
                None
            }
            // The relay refused an offer of ours, or one we accepted went to someone else.
            Message::FileResult(result) => {
                let (offer, incoming) = match self.mine.remove(&result.transfer) {
                    Some((offer, _)) => (offer, false),
                    None => (self.accepted.remove(&result.transfer)?.0, true),
                };
                Some(done(result.transfer, offer.name, incoming, false, result.message))
            }
            _ => None,
        }
    }
}

fn done(transfer: u64, name: String, incoming: bool, saved: bool, message: String) -> FileNews {
    FileNews::Done { transfer, name, incoming, saved, message }
}

enum Served {
    /// For good (`None`: we left).
    Ended(Option<ViewerError>),
    /// The relay was lost, not the session: join again.
    Lost(String),
}

/// Waits for the viewer task to end after a leave.
async fn finish(updates: &mut mpsc::Receiver<ViewerUpdate>) -> Result<(), ViewerError> {
    while let Some(update) = updates.recv().await {
        if let ViewerUpdate::Ended(e) = update {
            return e.map_or(Ok(()), Err);
        }
    }
    Ok(())
}

/// Waits for the relay's word on who holds control and on what the end user allows this
/// technician (both come on joining), takes control if someone else has it, and returns what
/// is allowed.
async fn take_control(
    me: TechnicianId,
    commands: &mpsc::UnboundedSender<ViewerCommand>,
    updates: &mut mpsc::Receiver<ViewerUpdate>,
) -> Result<Capabilities, ViewerError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (mut holder, mut allowed) = (None, None);
    let mut next = async |holder: &mut Option<Option<TechnicianId>>, allowed: &mut Option<Capabilities>| {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some(ViewerUpdate::Controller(h))) => *holder = Some(h),
            Ok(Some(ViewerUpdate::Allowed(a))) => *allowed = Some(a),
            Ok(Some(ViewerUpdate::Ended(e))) => return Err(e.unwrap_or_else(|| ViewerError::Ended("left".into()))),
            Ok(Some(ViewerUpdate::Reconnecting(why))) => return Err(ViewerError::Other(format!("lost the relay: {why}"))),
            Ok(Some(_)) => {}
            Ok(None) => return Err(ViewerError::Other("the viewer stopped".into())),
            Err(_) => return Err(ViewerError::Other("the relay did not answer the control request".into())),
        }
        Ok(())
    };
    while holder.is_none() || allowed.is_none() {
        next(&mut holder, &mut allowed).await?;
    }
    let allowed = allowed.unwrap_or(Capabilities::NONE);
    // If not us, ask: the relay's next word on control is the answer.
    if holder != Some(Some(me)) {
        commands.send(ViewerCommand::TakeControl).map_err(|_| ViewerError::Other("the viewer stopped".into()))?;
        holder = None;
        let mut ignored = None;
        while holder.is_none() {
            next(&mut holder, &mut ignored).await?;
        }
        match holder.flatten() {
            Some(holder) if holder == me => {}
            Some(other) => return Err(ViewerError::Other(format!("control is held by technician {other}"))),
            None => return Err(ViewerError::Other("the end user has not granted control".into())),
        }
    }
    Ok(allowed)
}

/// Writes RGB pixels as a PNG file.
pub fn save_png(path: &std::path::Path, width: usize, height: usize, rgb: &[u8]) -> anyhow::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, u32::try_from(width)?, u32::try_from(height)?);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(rgb)?;
    Ok(())
}

/// Median, 99th percentile and maximum of latencies in microseconds.
#[must_use]
pub fn latency_summary(mut latencies: Vec<u64>) -> serde_json::Value {
    if latencies.is_empty() {
        return serde_json::json!(null);
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({"p50_us": at(0.5), "p99_us": at(0.99), "max_us": latencies[latencies.len() - 1], "count": latencies.len()})
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskline_protocol::VideoCodec;

    fn frame(seq: u64, keyframe: bool) -> VideoFrame {
        VideoFrame { seq, capture_us: 0, keyframe, display: 0, width: 2, height: 2, codec: VideoCodec::H264, data: Vec::new() }
    }

    async fn passed(arrivals: Vec<VideoFrame>, pause_after: Option<usize>) -> Vec<u64> {
        let (arrived, arrived_rx) = mpsc::channel(16);
        let (out, mut out_rx) = mpsc::channel(16);
        let task = tokio::spawn(reorder(arrived_rx, out));
        for (i, f) in arrivals.into_iter().enumerate() {
            arrived.send(f).await.unwrap();
            if pause_after == Some(i) {
                tokio::time::sleep(REORDER_WAIT * 2).await;
            }
        }
        drop(arrived);
        task.await.unwrap();
        let mut seqs = Vec::new();
        while let Ok(f) = out_rx.try_recv() {
            seqs.push(f.seq);
        }
        seqs
    }

    /// Found on a lossy link: a frame completing after its successor was taken for a gap, and
    /// every such gap cost a keyframe.
    #[tokio::test]
    async fn frames_that_complete_out_of_order_go_on_in_order() {
        let out = passed(vec![frame(10, true), frame(12, false), frame(11, false), frame(13, false)], None).await;
        assert_eq!(out, [10, 11, 12, 13]);
        // Late frames (older than what went on) are dropped.
        let out = passed(vec![frame(10, true), frame(11, false), frame(10, false), frame(12, false)], None).await;
        assert_eq!(out, [10, 11, 12]);
    }

    #[tokio::test]
    async fn a_missing_frame_is_waited_for_only_so_long_and_a_keyframe_never_waits() {
        // 11 never comes: 12 and 13 go on after the wait, in order (the decoder sees the gap).
        let out = passed(vec![frame(10, true), frame(12, false), frame(13, false)], Some(2)).await;
        assert_eq!(out, [10, 12, 13]);
        // A keyframe goes on at once and makes older waiting frames useless.
        let out = passed(vec![frame(10, true), frame(12, false), frame(14, true), frame(15, false)], None).await;
        assert_eq!(out, [10, 14, 15]);
    }
}
