//! The support app's connection to the relay: register with a code, answer consent requests,
//! stream frames while the end user allows viewing, apply input while they allow control.
//!
//! Consent is enforced here a second time, whatever the relay sends: the capture thread runs
//! only with a view grant, and input reaches the [`InputSink`] only with a control grant.

use crate::clipboard::{Clipboard, ClipboardNews};
use crate::encode::{EncodeError, EncodedFrame};
use crate::grants::{Answered, Grants};
use crate::prompt::ConsentPrompt;
use crate::rate::{Rate, RateController};
use crate::sink::InputSink;
use crate::source::FrameSource;
use deskline_net::NetError;
use deskline_net::framed::{MessageReader, MessageWriter, encode_frame, open_control, send_frame};
use deskline_protocol::{
    AppCode, AppInfo, Bye, ByeReason, Capabilities, ChatLine, ClipboardText, ConsentChanged, FileAnswer, FileOffer, FileResult, ConsentDecision, ConsentOutcome, ConsentRequest,
    DisplayInfo, DisplaysChanged, Hello, HelloRole, MachineFacts, Message, PROTOCOL_VERSION, PauseReason, RejectReason, ResumeSecret,
    ScreenState, SessionId, TechnicianId, VideoCodec, VideoFrame, Welcome,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Frames encoded but not yet sent. Small: when the network is slower than the encoder, the
/// capture thread waits, and the frame it captures next is fresher than a queued one.
const FRAME_QUEUE: usize = 2;

/// Frames being sent at once. More means the network is behind: frames are dropped at the
/// source rather than queued (at 30 fps, four frames are 130 ms of backlog).
const MAX_FRAMES_IN_FLIGHT: usize = 4;

/// After a frame was dropped at the source, a keyframe is asked for once the frames in flight
/// are down to this many (a keyframe sent into a full pipe is dropped in turn and asks for
/// another: a spiral measured on a lossy link, 7 keyframes in a second)...
const KEYFRAME_WHEN_IN_FLIGHT: usize = MAX_FRAMES_IN_FLIGHT / 2;

/// ...and asked for again at most this often while it does not come through.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// Keyframes asked for (by viewers through the relay, or after a frame dropped here) are
/// encoded at most this often; one asked sooner comes when the interval ends. A keyframe is
/// 10–20 P-frames' worth of bytes: sent into a lossy link faster than this, they were lost in
/// turn and asked for again (measured: 3–5 in the second after a loss burst). A new stream,
/// display or capture after a pause gets its keyframe at once.
pub const KEYFRAME_MIN_SPACING: Duration = Duration::from_secs(1);

/// How long to wait for the relay's answer to the hello: the relay's own hello timeout, so a
/// silent relay is reported as such instead of hanging the "Connecting…" screen.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to reach the relay.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The relay's QUIC address.
    pub relay: SocketAddr,
    /// The name to present in TLS (the relay's host name).
    pub server_name: String,
    /// SHA-256 of the relay's certificate, from the link or download.
    pub fingerprint: Option<[u8; 32]>,
    /// The session code.
    pub code: AppCode,
    /// Every relay endpoint the app may use (`host:port`, several relay nodes or a name that
    /// resolves to several addresses), in the order to try when the current one is gone;
    /// empty: `relay` only.
    pub relays: Vec<String>,
}

impl AgentConfig {
    /// Makes a relay that answers a QUIC handshake within `timeout` the one to register with:
    /// the current one when there is no other; else every endpoint (each address a name
    /// resolves to) is tried at once — a dead node never answers, so trying it first would
    /// only add its timeout — and the first to answer wins. `false` when none answers.
    pub async fn reach(&mut self, timeout: std::time::Duration) -> bool {
        let fingerprint = self.fingerprint;
        let answers = move |addr: SocketAddr, name: String| async move {
            matches!(tokio::time::timeout(timeout, deskline_net::quic::connect(addr, &name, fingerprint)).await, Ok(Ok(_)))
        };
        if self.relays.is_empty() {
            return answers(self.relay, self.server_name.clone()).await;
        }
        let mut candidates = Vec::new();
        for text in &self.relays {
            if let Ok(addrs) = tokio::net::lookup_host(text).await {
                candidates.extend(addrs.map(|addr| (addr, deskline_net::quic::server_name(text))));
            }
        }
        let mut tries = tokio::task::JoinSet::new();
        for (addr, name) in candidates {
            tries.spawn(async move { answers(addr, name.clone()).await.then_some((addr, name)) });
        }
        while let Some(done) = tries.join_next().await {
            if let Ok(Some((addr, name))) = done {
                (self.relay, self.server_name) = (addr, name);
                return true;
            }
        }
        false
    }
}


/// Why the app could not join or stay.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The network or the relay's TLS failed.
    #[error("{0}")]
    Net(#[from] NetError),
    /// The relay refused the code.
    #[error("{message}")]
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The relay's words.
        message: String,
    },
    /// The relay broke the protocol.
    #[error("the relay sent something unexpected: {0}")]
    Protocol(String),
}

/// What happened, for the app's windows.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A technician asks for consent.
    ConsentRequested(ConsentRequest),
    /// The answer that was sent.
    ConsentAnswered(ConsentOutcome),
    /// The relay had already denied the request when the end user's yes arrived: nothing was
    /// granted.
    AnswerTooLate,
    /// Who may see and control now.
    Access(Grants),
    /// Whether the screen is being streamed.
    Streaming(bool),
    /// Who holds control.
    Controller(Option<TechnicianId>),
    /// A chat line, as the relay recorded it (the end user's own lines come back this way
    /// too: what the window shows is what the technicians got).
    Chat(ChatLine),
    /// Copied text passed, or could not (what the windows say about it: never the text).
    Clipboard(ClipboardNote),
    /// A technician offers a file; the end user answers with [`AgentCommand::AnswerFile`].
    FileOffered(FileOffer),
    /// A file on its way to or from the end user: the bytes so far.
    FileProgress {
        /// The transfer.
        transfer: u64,
        /// Bytes so far.
        bytes: u64,
    },
    /// A file's transfer ended: saved (where) or not (why).
    FileDone {
        /// The transfer.
        transfer: u64,
        /// To the end user (`true`) or from them.
        incoming: bool,
        /// The file's name.
        name: String,
        /// Saved whole at the other end, or here.
        saved: bool,
        /// Where it was saved (the file's name), or why not.
        message: String,
    },
}

/// What happened on the clipboard, for the end user to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClipboardNote {
    /// The controlling technician put text on the clipboard.
    Received {
        /// Their name.
        from: String,
        /// Its length in characters.
        chars: usize,
    },
    /// The end user's copy went to the technicians granted the clipboard.
    Sent {
        /// Its length in characters.
        chars: usize,
    },
    /// The end user copied more than may be sent.
    TooLong {
        /// Its length in bytes.
        bytes: usize,
    },
}

/// What the end user asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    /// Stop sharing: nothing more is seen or controlled.
    StopSharing,
    /// Keep sharing the view, end remote control.
    TakeBackControl,
    /// Leave the session.
    Disconnect,
    /// Write to the technicians (shown when it comes back from the relay).
    Chat(String),
    /// Accept an offered file into this path (the end user chose it; nothing is replaced: a
    /// name taken meanwhile gets a number), or decline it (`None`).
    AnswerFile {
        /// The transfer.
        transfer: u64,
        /// Where to save it.
        save_to: Option<std::path::PathBuf>,
    },
    /// Send this file to the technicians (with files granted), as this transfer (chosen by
    /// the caller, unique on the session: progress and the end are reported under it).
    SendFile {
        /// The transfer's number.
        transfer: u64,
        /// The file.
        path: std::path::PathBuf,
    },
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// The relay said goodbye (session closed, expired, ...).
    ByRelay(Bye),
    /// The end user left.
    Disconnected,
    /// The connection broke; resuming within the grace window keeps consent.
    ConnectionLost(String),
}

/// A registered app, before it starts serving.
pub struct Registered {
    connection: quinn::Connection,
    writer: MessageWriter,
    reader: MessageReader,
    welcome: Welcome,
}

/// Connects to the relay and registers with the session code.
pub async fn register(config: &AgentConfig, info: AppInfo, resume: Option<ResumeSecret>) -> Result<Registered, AgentError> {
    let connection = deskline_net::quic::connect(config.relay, &config.server_name, config.fingerprint).await?;
    let hello = Message::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        role: HelloRole::App { code: config.code.clone(), info, resume },
    });
    let (writer, mut reader) = open_control(&connection, &hello).await?;
    let answer = tokio::time::timeout(WELCOME_TIMEOUT, reader.next())
        .await
        .map_err(|_| AgentError::Protocol("no answer to the hello".into()))??;
    match answer {
        Some(Message::Welcome(welcome)) => Ok(Registered { connection, writer, reader, welcome }),
        Some(Message::Reject(r)) => Err(AgentError::Rejected { reason: r.reason, message: r.message }),
        Some(other) => Err(AgentError::Protocol(format!("{other:?} instead of a welcome"))),
        None => Err(AgentError::Protocol("the relay closed the stream".into())),
    }
}

enum CaptureCommand {
    /// Start (or keep) capturing this display at this rate.
    Start { rate: Rate, display: u32 },
    Stop,
    Keyframe,
    /// Switch to another display.
    Display(u32),
    /// Adapt to the network (see [`crate::rate`]).
    Rate(Rate),
}

/// What the capture thread tells the connection besides frames.
enum CaptureNews {
    /// The displays changed.
    Displays(Vec<DisplayInfo>),
    /// The picture stopped (and why) or runs again.
    Screen(Option<PauseReason>),
}

/// How often capture looks again while the system hides the screen (a UAC prompt, the lock
/// screen).
const PAUSED_RETRY: Duration = Duration::from_millis(250);

/// Creates a [`FrameSource`] on its own thread and runs it there, paused until started.
fn spawn_capture<S, F>(
    make_source: F,
    max_fps: u16,
    frames: mpsc::Sender<EncodedFrame>,
    news: mpsc::UnboundedSender<CaptureNews>,
) -> std_mpsc::Sender<CaptureCommand>
where
    S: FrameSource,
    F: FnOnce() -> Result<S, EncodeError> + Send + 'static,
{
    let (commands, inbox) = std_mpsc::channel();
    let interval_for = move |fps: u16| Duration::from_secs_f64(1.0 / f64::from(fps.clamp(1, max_fps.max(1))));
    let mut interval = interval_for(max_fps);
    std::thread::spawn(move || {
        let mut source = match make_source() {
            Ok(source) => source,
            Err(e) => {
                tracing::error!(error = %e, "cannot capture the screen");
                let _ = news.send(CaptureNews::Screen(Some(PauseReason::CaptureFailed)));
                return;
            }
        };
        let mut paused: Option<PauseReason> = None;
        let mut running = false;
        // A keyframe the stream needs now (start, display, resume) / one asked for, spaced.
        let mut force_keyframe = true;
        let mut keyframe_asked = false;
        let mut last_asked_keyframe: Option<Instant> = None;
        let mut display = 0;
        loop {
            // Paused: sleep until told otherwise. Running: take commands without waiting.
            let command = if running { inbox.try_recv().ok() } else { inbox.recv().ok() };
            let mut switch_to = None;
            match command {
                Some(CaptureCommand::Start { rate, display: wanted }) => {
                    interval = interval_for(rate.fps);
                    source.set_rate(rate);
                    running = true;
                    force_keyframe = true;
                    switch_to = Some(wanted);
                }
                Some(CaptureCommand::Stop) => {
                    running = false;
                    if paused.take().is_some() {
                        let _ = news.send(CaptureNews::Screen(None));
                    }
                }
                Some(CaptureCommand::Keyframe) => keyframe_asked = true,
                Some(CaptureCommand::Display(wanted)) => switch_to = Some(wanted),
                Some(CaptureCommand::Rate(rate)) => {
                    interval = interval_for(rate.fps);
                    source.set_rate(rate);
                }
                None if !running => return, // the session ended
                None => {}
            }
            if let Some(wanted) = switch_to.filter(|&d| d != display) {
                match source.select_display(wanted) {
                    Ok(()) => display = wanted,
                    Err(e) => tracing::warn!(error = %e, display = wanted, "cannot switch display"),
                }
                force_keyframe = true;
            }
            if !running {
                continue;
            }
            let started = Instant::now();
            let asked_now = keyframe_asked && last_asked_keyframe.is_none_or(|t| started.duration_since(t) >= KEYFRAME_MIN_SPACING);
            let result = source.next_frame(force_keyframe || asked_now);
            if result.is_ok() && paused.take().is_some() {
                tracing::info!("the screen can be captured again");
                let _ = news.send(CaptureNews::Screen(None));
                // Viewers that joined meanwhile wait for a keyframe.
                force_keyframe = true;
            }
            match result {
                Ok(Some(frame)) => {
                    if asked_now && !force_keyframe {
                        last_asked_keyframe = Some(started);
                    }
                    if frame.keyframe {
                        keyframe_asked = false;
                    }
                    force_keyframe = false;
                    if frames.blocking_send(frame).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => match e.pause_reason() {
                    Some(reason) => {
                        if paused != Some(reason) {
                            tracing::warn!(error = %e, "the screen cannot be captured for now");
                            paused = Some(reason);
                            let _ = news.send(CaptureNews::Screen(Some(reason)));
                        }
                    }
                    None => {
                        tracing::error!(error = %e, "capture failed");
                        let _ = news.send(CaptureNews::Screen(Some(PauseReason::CaptureFailed)));
                        return;
                    }
                },
            }
            if let Some(list) = source.displays_changed() {
                let _ = news.send(CaptureNews::Displays(list));
            }
            let interval = if paused.is_some() { PAUSED_RETRY } else { interval };
            if let Some(rest) = interval.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    });
    commands
}

/// After the grants changed (only ever shrinking): capture stops when nobody may view any more,
/// and the windows are told who sees and controls.
fn grants_changed(
    grants: &Grants,
    streaming: &mut bool,
    capture: &std_mpsc::Sender<CaptureCommand>,
    events: &mpsc::UnboundedSender<AgentEvent>,
) {
    if !grants.any().view() && *streaming {
        *streaming = false;
        let _ = capture.send(CaptureCommand::Stop);
        let _ = events.send(AgentEvent::Streaming(false));
    }
    let _ = events.send(AgentEvent::Access(grants.clone()));
}

/// Files offered to the end user and not answered yet, at most: more wait at the relay's
/// bound anyway; a flood from a compromised relay is declined.
const MAX_FILES_ASKED: usize = 8;

/// The session's files in flight, as far as the connection loop knows them.
#[derive(Default)]
struct Files {
    /// Offered to the end user, not answered yet.
    offered: std::collections::HashMap<u64, FileOffer>,
    /// Accepted, with where to save them, waiting for their stream.
    accepted: std::collections::HashMap<u64, (FileOffer, std::path::PathBuf)>,
    /// The end user's offers, with the file, waiting for an answer.
    mine: std::collections::HashMap<u64, (FileOffer, std::path::PathBuf)>,
}

/// What file tasks tell the connection loop.
enum FileNews {
    /// A file stream arrived, its head read: the transfer it carries.
    Stream(u64, quinn::SendStream, quinn::RecvStream),
    /// A file the end user chose to send (as this transfer) was read: its size and hash, or
    /// why not.
    Hashed(u64, std::path::PathBuf, Result<(u64, [u8; 32]), String>),
}

fn done(offer: &FileOffer, incoming: bool, saved: bool, message: String) -> AgentEvent {
    AgentEvent::FileDone { transfer: offer.transfer, incoming, name: offer.name.clone(), saved, message }
}

/// Receives an accepted file in the background, reporting progress and the end.
fn spawn_receive(send: quinn::SendStream, recv: quinn::RecvStream, offer: FileOffer, dest: std::path::PathBuf, events: &mpsc::UnboundedSender<AgentEvent>) {
    let events = events.clone();
    tokio::spawn(async move {
        let progress = progress_reporter(offer.transfer, offer.size, &events);
        // The Downloads folder of a new account may not exist yet.
        if let Some(folder) = dest.parent() {
            let _ = tokio::fs::create_dir_all(folder).await;
        }
        let (result, _) = deskline_net::files::receive(send, recv, &offer, &dest, progress).await;
        let _ = events.send(done(&offer, true, result.saved, result.message));
    });
}

/// Sends an accepted file of the end user's in the background.
fn spawn_send(connection: &quinn::Connection, offer: FileOffer, path: std::path::PathBuf, events: &mpsc::UnboundedSender<AgentEvent>) {
    let (connection, events) = (connection.clone(), events.clone());
    tokio::spawn(async move {
        let progress = progress_reporter(offer.transfer, offer.size, &events);
        let event = match deskline_net::files::send(&connection, &offer, &path, progress).await {
            Ok(result) => done(&offer, false, result.saved, result.message),
            Err(e) => done(&offer, false, false, e.to_string()),
        };
        let _ = events.send(event);
    });
}

/// Progress events for a transfer: about a hundred over the whole file, not one per chunk.
fn progress_reporter(transfer: u64, size: u64, events: &mpsc::UnboundedSender<AgentEvent>) -> impl FnMut(u64) + use<> {
    let events = events.clone();
    let step = (size / 100).max(1);
    let mut next = 0;
    move |bytes| {
        if bytes >= next || bytes == size {
            next = bytes + step;
            let _ = events.send(AgentEvent::FileProgress { transfer, bytes });
        }
    }
}

/// Watches the end user's clipboard exactly while some grant includes it (starting the
/// clipboard thread the first time).
fn sync_clipboard(grants: &Grants, clipboard: &mut Option<Clipboard>, news: &mpsc::UnboundedSender<ClipboardNews>) {
    let wanted = grants.any().clipboard();
    if wanted && clipboard.is_none() {
        *clipboard = Some(Clipboard::start(news.clone()));
    }
    if let Some(clipboard) = clipboard {
        clipboard.watch(wanted);
    }
}

impl Registered {
    /// The relay's welcome (session, organisation, resumption secret).
    #[must_use]
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The session joined.
    #[must_use]
    pub fn session(&self) -> SessionId {
        self.welcome.session
    }

    /// Tells the relay about the machine (shown in the technician's session detail).
    ///
    /// # Errors
    /// The connection failed, or the facts break the protocol's limits.
    pub async fn tell_machine(&mut self, facts: MachineFacts) -> Result<(), AgentError> {
        Ok(self.writer.send(&Message::MachineFacts(facts)).await?)
    }

    /// Serves the session until it ends. `make_source` creates the frame source on the capture
    /// thread. `previous` is what the end user had allowed before a drop; it applies again only
    /// if the relay accepted the resumption (and then only as far as the relay still agrees).
    pub async fn serve<S, F, I, P>(
        self,
        make_source: F,
        mut sink: I,
        prompt: Arc<P>,
        previous: Grants,
        events: mpsc::UnboundedSender<AgentEvent>,
        mut commands: mpsc::UnboundedReceiver<AgentCommand>,
    ) -> Result<Ended, AgentError>
    where
        S: FrameSource,
        F: FnOnce() -> Result<S, EncodeError> + Send + 'static,
        I: InputSink,
        P: ConsentPrompt,
    {
        let Registered { connection, mut writer, mut reader, welcome } = self;
        let mut grants = if welcome.resumed { previous } else { Grants::default() };
        let _ = events.send(AgentEvent::Access(grants.clone()));
        let (frame_tx, mut frame_rx) = mpsc::channel(FRAME_QUEUE);
        let (news_tx, mut news_rx) = mpsc::unbounded_channel();
        let capture = spawn_capture(make_source, crate::limits::MAX_FPS, frame_tx, news_tx);
        let (answer_tx, mut answer_rx) = mpsc::unbounded_channel::<(u64, ConsentOutcome)>();
        // Sequence numbers start from the clock (milliseconds), so they keep increasing across
        // reconnects and viewers never take a resumed stream's frames for late ones.
        let mut seq: u64 = crate::source::now_us() / 1000;
        let mut streaming = false;
        let mut pending_request: Option<ConsentRequest> = None;
        let mut controller: Option<TechnicianId> = None;
        let mut in_flight = tokio::task::JoinSet::new();
        let mut rate: Option<RateController> = None;
        let mut dropped_locally: u32 = 0;
        // A frame was dropped at the source: the P-frames that follow would not decode (the
        // viewer sees no gap in the sequence, so they would show a broken picture), so none is
        // sent until a keyframe, asked for when the pipe has room (and when).
        let mut awaiting_keyframe = false;
        let mut keyframe_asked: Option<Instant> = None;
        // The clipboard thread, started at the first grant that includes the clipboard.
        let (clip_tx, mut clip_rx) = mpsc::unbounded_channel();
        let mut clipboard: Option<Clipboard> = None;
        sync_clipboard(&grants, &mut clipboard, &clip_tx);
        // Files: offers to the end user not answered yet, accepted ones waiting for their
        // stream, the end user's own offers waiting for an answer; file streams and hashed
        // files come back to this loop through channels.
        let mut files = Files::default();
        let (file_tx, mut file_rx) = mpsc::unbounded_channel::<FileNews>();

        let ended: Result<Ended, AgentError> = async { Ok(loop {
            tokio::select! {
                message = reader.next() => {
                    let message = match message {
                        Ok(Some(m)) => m,
                        Ok(None) => break Ended::ConnectionLost("the relay closed the control stream".into()),
                        Err(e) => break Ended::ConnectionLost(e.to_string()),
                    };
                    match message {
                        Message::ConsentRequest(request) => {
                            pending_request = Some(request.clone());
                            let _ = events.send(AgentEvent::ConsentRequested(request.clone()));
                            let prompt = prompt.clone();
                            let answers = answer_tx.clone();
                            tokio::spawn(async move {
                                let timeout = Duration::from_millis(u64::from(request.timeout_ms));
                                let outcome = tokio::time::timeout(timeout, prompt.ask(&request)).await.unwrap_or(ConsentOutcome::TimedOut);
                                let _ = answers.send((request.request_id, outcome));
                            });
                        }
                        Message::StartStream(start) => {
                            if grants.any().view() && !streaming {
                                streaming = true;
                                // The relay's frame rate and bitrate are the ceiling; ours caps it.
                                let ceiling = Rate { fps: start.max_fps.min(crate::limits::MAX_FPS), bitrate_bps: start.bitrate_hint_bps };
                                let controller = RateController::new(ceiling);
                                let _ = capture.send(CaptureCommand::Start { rate: controller.rate(), display: start.display });
                                rate = Some(controller);
                                dropped_locally = 0;
                                let _ = events.send(AgentEvent::Streaming(true));
                            } else if streaming {
                                // Already streaming: a viewer chose another display.
                                let _ = capture.send(CaptureCommand::Display(start.display));
                            }
                        }
                        Message::Stats(stats) => {
                            if let Some(controller) = rate.as_mut().filter(|_| streaming)
                                && let Some(new_rate) = controller.on_report(&stats, std::mem::take(&mut dropped_locally))
                            {
                                tracing::debug!(?new_rate, ?stats, "adapting the stream");
                                let _ = capture.send(CaptureCommand::Rate(new_rate));
                            }
                        }
                        Message::StopStream(_) => {
                            if streaming {
                                streaming = false;
                                let _ = capture.send(CaptureCommand::Stop);
                                let _ = events.send(AgentEvent::Streaming(false));
                            }
                        }
                        Message::KeyframeRequest => {
                            let _ = capture.send(CaptureCommand::Keyframe);
                        }
                        Message::Input(event) => {
                            // Local enforcement: only the controlling technician's input, and
                            // only if the end user allowed that technician control.
                            if controller.is_some_and(|t| grants.of(t).control())
                                && let Err(e) = sink.apply(&event)
                            {
                                tracing::warn!(error = %e, "input could not be applied");
                            }
                        }
                        Message::ControlHandover(handover) => {
                            // Whoever controlled before leaves nothing pressed for the next one.
                            if handover.holder != controller {
                                sink.release_all();
                                controller = handover.holder;
                            }
                            let _ = events.send(AgentEvent::Controller(handover.holder));
                        }
                        Message::Ping(p) => {
                            writer.send(&Message::Pong(p)).await?;
                        }
                        Message::Access(access) => {
                            if grants.follow(&access) == Answered::TooLate {
                                let _ = events.send(AgentEvent::AnswerTooLate);
                            }
                            if controller.is_some_and(|t| !grants.of(t).control()) {
                                sink.release_all();
                            }
                            grants_changed(&grants, &mut streaming, &capture, &events);
                            sync_clipboard(&grants, &mut clipboard, &clip_tx);
                        }
                        // A relay going down for a restart or an upgrade comes back: get back in
                        // (with the consent kept for the resumption), as after a lost connection.
                        Message::Bye(bye) if bye.reason == ByeReason::ServerShutdown => {
                            break Ended::ConnectionLost(format!("the relay is restarting ({})", bye.message));
                        }
                        Message::Bye(bye) => break Ended::ByRelay(bye),
                        Message::Pong(_) => {}
                        Message::Chat(line) => {
                            let _ = events.send(AgentEvent::Chat(line));
                        }
                        Message::FileOffer(offer) => {
                            // Local enforcement: only while some technician may pass files.
                            if grants.any().files() && files.offered.len() < MAX_FILES_ASKED {
                                files.offered.insert(offer.transfer, offer.clone());
                                let _ = events.send(AgentEvent::FileOffered(offer));
                            } else {
                                writer.send(&Message::FileAnswer(FileAnswer { transfer: offer.transfer, accepted: false })).await?;
                            }
                        }
                        Message::FileAnswer(answer) => {
                            if let Some((offer, path)) = files.mine.remove(&answer.transfer) {
                                if answer.accepted && grants.any().files() {
                                    spawn_send(&connection, offer, path, &events);
                                } else {
                                    let _ = events.send(done(&offer, false, false, "the technician declined it".into()));
                                }
                            }
                        }
                        // The relay refused an offer of ours (no technician may receive it, too
                        // large).
                        Message::FileResult(FileResult { transfer, message, .. }) => {
                            if let Some((offer, _)) = files.mine.remove(&transfer) {
                                let _ = events.send(done(&offer, false, false, message));
                            }
                        }
                        Message::Clipboard(ClipboardText { text }) => {
                            // Local enforcement: only from the controlling technician, only with
                            // the clipboard granted to them.
                            let from = controller.filter(|t| grants.of(*t).clipboard());
                            match (from, &clipboard) {
                                (Some(from), Some(clipboard)) => {
                                    let name = grants.list().iter().find(|g| g.technician == from).map(|g| g.name.clone()).unwrap_or_default();
                                    let _ = events.send(AgentEvent::Clipboard(ClipboardNote::Received { from: name, chars: text.chars().count() }));
                                    clipboard.set(text).await;
                                }
                                _ => tracing::info!("clipboard text without a clipboard grant: ignored"),
                            }
                        }
                        other => return Err(AgentError::Protocol(format!("{other:?} is not for an app"))),
                    }
                }
                Some((request_id, outcome)) = answer_rx.recv() => {
                    // Only the request the relay is waiting for counts; an answer to a replaced
                    // one grants nothing.
                    let Some(request) = pending_request.take_if(|r| r.request_id == request_id) else {
                        continue;
                    };
                    writer.send(&Message::ConsentDecision(ConsentDecision { request_id, outcome })).await?;
                    if let ConsentOutcome::Granted(capabilities) = outcome {
                        // Never more than was asked, whatever the prompt returned.
                        let capabilities = capabilities.intersect(request.capabilities);
                        grants.allow(request_id, request.technician_id, &request.technician, capabilities);
                    }
                    let _ = events.send(AgentEvent::ConsentAnswered(outcome));
                    let _ = events.send(AgentEvent::Access(grants.clone()));
                    sync_clipboard(&grants, &mut clipboard, &clip_tx);
                }
                Some(frame) = frame_rx.recv() => {
                    // Local enforcement: a frame captured just before a withdrawal is not sent.
                    if !grants.any().view() || !streaming {
                        continue;
                    }
                    let video = VideoFrame {
                        seq,
                        capture_us: frame.capture_us,
                        keyframe: frame.keyframe,
                        display: frame.display,
                        width: frame.width,
                        height: frame.height,
                        codec: VideoCodec::H264,
                        data: frame.data,
                    };
                    // Bounded sending: when the network is slower than capture, a frame is
                    // dropped here (and a keyframe asked for, since the next P-frame would not
                    // decode) instead of piling up.
                    while in_flight.try_join_next().is_some() {}
                    if awaiting_keyframe && !video.keyframe {
                        if in_flight.len() <= KEYFRAME_WHEN_IN_FLIGHT && keyframe_asked.is_none_or(|t| t.elapsed() >= KEYFRAME_RETRY) {
                            let _ = capture.send(CaptureCommand::Keyframe);
                            keyframe_asked = Some(Instant::now());
                        }
                        continue;
                    }
                    if in_flight.len() >= MAX_FRAMES_IN_FLIGHT {
                        dropped_locally = dropped_locally.saturating_add(1);
                        awaiting_keyframe = true;
                        keyframe_asked = None;
                        continue;
                    }
                    if video.keyframe {
                        awaiting_keyframe = false;
                    }
                    let priority = deskline_net::framed::frame_priority(seq);
                    seq += 1;
                    let encoded = encode_frame(video)?;
                    let connection = connection.clone();
                    in_flight.spawn(async move {
                        if let Err(e) = send_frame(&connection, &encoded, priority).await {
                            tracing::debug!(error = %e, "frame not sent");
                        }
                    });
                }
                Some(news) = news_rx.recv() => match news {
                    CaptureNews::Displays(displays) => {
                        writer.send(&Message::DisplaysChanged(DisplaysChanged { displays })).await?;
                    }
                    CaptureNews::Screen(paused) => writer.send(&Message::ScreenState(ScreenState { paused })).await?,
                },
                stream = connection.accept_bi() => {
                    let Ok((send, recv)) = stream else { break Ended::ConnectionLost("the relay closed the connection".into()) };
                    let file_tx = file_tx.clone();
                    tokio::spawn(async move {
                        let mut recv = recv;
                        if let Ok(transfer) = deskline_net::files::read_file_head(&mut recv).await {
                            let _ = file_tx.send(FileNews::Stream(transfer, send, recv));
                        }
                    });
                }
                Some(news) = file_rx.recv() => match news {
                    FileNews::Stream(transfer, send, recv) => {
                        // Only a file the end user accepted, only while files are allowed.
                        match files.accepted.remove(&transfer).filter(|_| grants.any().files()) {
                            Some((offer, dest)) => spawn_receive(send, recv, offer, dest, &events),
                            None => {
                                let mut recv = recv;
                                let _ = recv.stop(1u32.into());
                            }
                        }
                    }
                    FileNews::Hashed(transfer, path, Ok((size, sha256))) => {
                        let name = deskline_net::files::plain_name(&path).unwrap_or_default();
                        if !grants.any().files() || files.mine.contains_key(&transfer) {
                            let _ = events.send(AgentEvent::FileDone { transfer, incoming: false, name, saved: false, message: "no technician may receive files".into() });
                            continue;
                        }
                        let offer = FileOffer { transfer, name, size, sha256, from: String::new() };
                        writer.send(&Message::FileOffer(offer.clone())).await?;
                        files.mine.insert(transfer, (offer, path));
                    }
                    FileNews::Hashed(transfer, path, Err(e)) => {
                        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        let _ = events.send(AgentEvent::FileDone { transfer, incoming: false, name, saved: false, message: e });
                    }
                },
                Some(news) = clip_rx.recv() => match news {
                    // Checked again here: the grant may have ended since the thread looked.
                    ClipboardNews::Copied(text) if grants.any().clipboard() => {
                        let chars = text.chars().count();
                        writer.send(&Message::Clipboard(ClipboardText { text })).await?;
                        let _ = events.send(AgentEvent::Clipboard(ClipboardNote::Sent { chars }));
                    }
                    ClipboardNews::Copied(_) => {}
                    ClipboardNews::TooLong(bytes) => {
                        let _ = events.send(AgentEvent::Clipboard(ClipboardNote::TooLong { bytes }));
                    }
                    ClipboardNews::Unavailable(e) => tracing::warn!(error = %e, "the clipboard cannot be used: copied text does not pass"),
                },
                // A closed command channel (no window) disables this branch.
                Some(command) = commands.recv() => {
                    let reduced = match command {
                        AgentCommand::StopSharing => Capabilities::NONE,
                        AgentCommand::TakeBackControl => Capabilities::ALL.without_control(),
                        AgentCommand::Chat(text) => {
                            // The window keeps blank and over-long lines from being sent; one
                            // that got here anyway is dropped rather than end the session.
                            let message = Message::Chat(ChatLine::to_send(text));
                            if message.validate().is_ok() {
                                writer.send(&message).await?;
                            }
                            continue;
                        }
                        AgentCommand::AnswerFile { transfer, save_to } => {
                            if let Some(offer) = files.offered.remove(&transfer) {
                                let accepted = save_to.is_some() && grants.any().files();
                                if let Some(dest) = save_to.filter(|_| accepted) {
                                    files.accepted.insert(transfer, (offer, dest));
                                }
                                writer.send(&Message::FileAnswer(FileAnswer { transfer, accepted })).await?;
                            }
                            continue;
                        }
                        AgentCommand::SendFile { transfer, path } => {
                            let file_tx = file_tx.clone();
                            tokio::spawn(async move {
                                let hashed = match deskline_net::files::plain_name(&path) {
                                    Some(_) => deskline_net::files::size_and_hash(&path).await.map_err(|e| format!("cannot read it: {e}")),
                                    None => Err("not a file name that can be sent".into()),
                                };
                                let _ = file_tx.send(FileNews::Hashed(transfer, path, hashed));
                            });
                            continue;
                        }
                        AgentCommand::Disconnect => {
                            let bye = Message::Bye(Bye { reason: ByeReason::StoppedByUser, message: "the end user left".into() });
                            let _ = writer.send(&bye).await;
                            let _ = writer.finish();
                            break Ended::Disconnected;
                        }
                    };
                    // Enforce locally first, then tell the relay.
                    grants.restrict(reduced);
                    sink.release_all();
                    grants_changed(&grants, &mut streaming, &capture, &events);
                    sync_clipboard(&grants, &mut clipboard, &clip_tx);
                    writer.send(&Message::ConsentChanged(ConsentChanged { capabilities: reduced })).await?;
                }
            }
        }) }
        .await;
        // However the session ended, nothing stays pressed on the end user's machine.
        sink.release_all();
        drop(capture);
        if matches!(ended, Ok(Ended::Disconnected)) {
            // Let the bye reach the relay before the connection closes.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        connection.close(0u32.into(), b"done");
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SyntheticSource;

    /// The synthetic source (really H.264-encoded), noting when a keyframe was forced.
    struct Noting {
        inner: SyntheticSource,
        forced: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
    }

    impl FrameSource for Noting {
        fn displays(&self) -> Vec<DisplayInfo> {
            self.inner.displays()
        }

        fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
            if force_keyframe {
                self.forced.lock().unwrap().push(Instant::now());
            }
            self.inner.next_frame(force_keyframe)
        }
    }

    /// Keyframes asked for ten times a second (a lossy link's viewers and drops) are encoded
    /// at most once per `KEYFRAME_MIN_SPACING`, and still encoded; the stream's own first
    /// keyframe is not held back.
    #[test]
    fn asked_keyframes_are_spaced_and_still_come() {
        let forced: std::sync::Arc<std::sync::Mutex<Vec<Instant>>> = std::sync::Arc::default();
        let noted = forced.clone();
        let (frames, mut frames_rx) = mpsc::channel(64);
        let (news, _news_rx) = mpsc::unbounded_channel();
        let capture = spawn_capture(move || Ok(Noting { inner: SyntheticSource::new(320, 240)?, forced: noted }), 30, frames, news);
        let drain = std::thread::spawn(move || {
            let mut keyframes = 0;
            while let Some(frame) = frames_rx.blocking_recv() {
                keyframes += usize::from(frame.keyframe);
            }
            keyframes
        });
        capture.send(CaptureCommand::Start { rate: Rate { fps: 30, bitrate_bps: 1_000_000 }, display: 0 }).unwrap();
        let asking = Instant::now();
        while asking.elapsed() < KEYFRAME_MIN_SPACING * 5 / 2 {
            capture.send(CaptureCommand::Keyframe).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        // Asked once more after a quiet spell: served at once.
        std::thread::sleep(KEYFRAME_MIN_SPACING);
        capture.send(CaptureCommand::Keyframe).unwrap();
        std::thread::sleep(KEYFRAME_MIN_SPACING / 2);
        capture.send(CaptureCommand::Stop).unwrap();
        drop(capture);
        let keyframes = drain.join().unwrap();

        let forced = forced.lock().unwrap().clone();
        assert!(forced.len() >= 4, "the start, at least two of the asked ones, the last one: {forced:?}");
        for pair in forced[1..].windows(2) {
            assert!(pair[1] - pair[0] >= KEYFRAME_MIN_SPACING, "asked keyframes {:?} apart", pair[1] - pair[0]);
        }
        assert!(forced[1] - forced[0] < KEYFRAME_MIN_SPACING, "the first one asked after the start is not held back");
        assert!(keyframes >= forced.len(), "each forced frame is a keyframe: {keyframes} of {}", forced.len());
    }
}
