//! Every message of the wire protocol (DESIGN §4) as typed values.
//!
//! One [`Message`] enum covers the control stream and the media streams; the codec applies a
//! different size limit to each kind of stream. Variants and enum members are only ever
//! appended (the wire form is their position); anything else is a new [`crate::PROTOCOL_VERSION`].

use crate::capability::Capabilities;
use crate::code::{LinkToken, Pin, ResumeSecret};
use crate::ids::{SessionId, TechnicianId, Timestamp};
use crate::keycode::KeyCode;
use crate::limits::{
    MAX_BEARER_TOKEN_BYTES, MAX_CHAT_TEXT_BYTES, MAX_CLIPBOARD_TEXT_BYTES, MAX_DISPLAY_EDGE, MAX_DISPLAYS, MAX_TECHNICIANS_PER_SESSION, MAX_TEXT_BYTES,
    MAX_VIDEO_FRAME_BYTES,
};
use serde::{Deserialize, Serialize};

#[cfg(test)]
use proptest::prelude::*;
#[cfg(test)]
use proptest_derive::Arbitrary;

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum Message {
    /// First message on a connection, from the app or a technician's viewer.
    Hello(Hello),
    /// The relay accepted the hello.
    Welcome(Welcome),
    /// The relay refused the hello; the connection closes after it.
    Reject(Reject),
    /// Relay → app: a technician asks for consent.
    ConsentRequest(ConsentRequest),
    /// App → relay: the end user's answer to a consent request.
    ConsentDecision(ConsentDecision),
    /// App → relay: the end user changed what is granted (took back control, stopped sharing).
    ConsentChanged(ConsentChanged),
    /// Relay → app: start streaming a display.
    StartStream(StartStream),
    /// Relay → app: stop streaming a display.
    StopStream(StopStream),
    /// App → relay → viewers: one encoded video frame (on its own stream).
    VideoFrame(VideoFrame),
    /// Relay → app: send a keyframe soon (a viewer joined or lost frames).
    KeyframeRequest,
    /// Controlling technician → relay → app: mouse or keyboard input.
    Input(InputEvent),
    /// Viewer → relay: hand control to a technician; relay → viewers: who holds control now.
    ControlHandover(ControlHandover),
    /// Either side: liveness and round-trip measurement.
    Ping(Ping),
    /// The answer to a [`Message::Ping`], echoing it.
    Pong(Ping),
    /// Relay → app: measurements for adaptation (viewer lag, loss, throughput), once a second
    /// while streaming.
    Stats(Stats),
    /// Viewer → relay: show this display of the end user's machine (to every viewer).
    SelectDisplay(SelectDisplay),
    /// App → relay: the displays changed (resolution, monitors plugged or unplugged); relay →
    /// viewers: the app's displays, when a viewer joins and after every change.
    DisplaysChanged(DisplaysChanged),
    /// Either side: the connection ends, and why.
    Bye(Bye),
    /// Relay → app: who may see and control the screen now, after every change (a grant given,
    /// a technician leaving the session, a withdrawal). The app shows exactly this and never
    /// allows more than the end user said yes to.
    Access(Access),
    /// App → relay → viewers: the picture stopped, and why (a UAC prompt, the lock screen, a
    /// capture failure), or came back; viewers say so instead of showing a frozen picture.
    /// Viewers joining while it is stopped get it at once.
    ScreenState(ScreenState),
    /// App or viewer → relay: a chat line to everyone on the session; relay → app and viewers:
    /// a chat line, with its sender and time as the relay recorded them (what a sender puts in
    /// `from` and `at` is ignored). Works before any consent: it shows nothing of the screen.
    Chat(ChatLine),
    /// App → relay, after its welcome: what the technician needs to know about the machine
    /// beyond the hello (who is signed in, processor, memory, uptime), for the session's detail.
    MachineFacts(MachineFacts),
    /// App → relay → technicians granted the clipboard: the end user copied this text;
    /// controlling technician → relay → app: put this text on the end user's clipboard. Passes
    /// only with `clipboard` granted (the relay's chokepoint; the app checks again). Text only.
    Clipboard(ClipboardText),
    /// Sender → relay → receiver: a file to pass, a technician's to the end user (who is asked
    /// to accept it and where to save it) or the end user's to the technicians. Passes only
    /// with `files` granted (the relay's chokepoint; the app checks again) and within the
    /// channel's size limit. Its data follows on a stream of its own once accepted.
    FileOffer(FileOffer),
    /// Receiver → relay → sender: the answer to an offer.
    FileAnswer(FileAnswer),
    /// The first message of a file's own (bidirectional) stream: the file's bytes follow it,
    /// exactly its offered size, and the receiver's [`FileResult`] comes back on it.
    FileData(FileData),
    /// Receiver → sender, on the file's stream: the file arrived whole (size and SHA-256
    /// checked) and was saved under its final name, or why not (nothing is left then).
    FileResult(FileResult),
}

/// The first message of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Hello {
    /// The behaviour version the sender speaks (see [`crate::PROTOCOL_VERSION`]).
    pub protocol_version: u8,
    /// Who is connecting, with the credential of that role.
    pub role: HelloRole,
}

/// Who sends a hello, with what credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum HelloRole {
    /// The end user's support app.
    App {
        /// The session code it was given.
        code: AppCode,
        /// What the app runs on.
        info: AppInfo,
        /// Present when this app instance resumes after a drop.
        resume: Option<ResumeSecret>,
    },
    /// A technician's viewer (native or test client).
    Technician {
        /// The bearer token from the HTTP API login.
        #[cfg_attr(test, proptest(strategy = "\"[A-Za-z0-9_-]{1,64}\""))]
        token: String,
        /// The session to view.
        session: SessionId,
    },
}

/// The code an app presents to join a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum AppCode {
    /// The token from a link or a download.
    Link(LinkToken),
    /// A PIN the end user typed.
    Pin(Pin),
}

impl AppCode {
    /// `link` or `pin`, for logs (never the code itself).
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            AppCode::Link(_) => "link",
            AppCode::Pin(_) => "pin",
        }
    }
}

/// What the app runs on, shown to technicians.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct AppInfo {
    /// Operating system and version, e.g. `Debian GNU/Linux 12`.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub os: String,
    /// The machine's host name.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub host_name: String,
    /// The support app's version.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub app_version: String,
    /// The displays that can be shared.
    #[cfg_attr(test, proptest(strategy = "proptest::collection::vec(any::<DisplayInfo>(), 0..=4)"))]
    pub displays: Vec<DisplayInfo>,
}

/// One display of the end user's machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DisplayInfo {
    /// Index used in [`StartStream::display`].
    pub id: u32,
    /// A name people recognise (`HDMI-1`, `Built-in display`).
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub name: String,
    /// Width in pixels.
    #[cfg_attr(test, proptest(strategy = "1..=MAX_DISPLAY_EDGE"))]
    pub width: u32,
    /// Height in pixels.
    #[cfg_attr(test, proptest(strategy = "1..=MAX_DISPLAY_EDGE"))]
    pub height: u32,
    /// Is this the primary display?
    pub primary: bool,
}

/// The relay accepted a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Welcome {
    /// The session joined.
    pub session: SessionId,
    /// The organisation running the relay, shown to the end user.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub organisation: String,
    /// For apps: the secret to present to resume after a drop.
    pub resume: Option<ResumeSecret>,
    /// For apps: true when a resumption was accepted and the previous consent still holds.
    pub resumed: bool,
}

/// The relay refused a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Reject {
    /// Machine-readable reason, for the app to show the right screen.
    pub reason: RejectReason,
    /// Human-readable detail.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub message: String,
}

/// Why a hello was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[non_exhaustive]
pub enum RejectReason {
    /// No live session has this link token or PIN.
    UnknownCode,
    /// The session expired.
    Expired,
    /// The session was closed by a technician.
    Closed,
    /// Too many failed attempts; try again later.
    RateLimited {
        /// Milliseconds until another attempt may succeed.
        retry_after_ms: u32,
    },
    /// The relay does not speak the sender's protocol version.
    UnsupportedVersion {
        /// The version the relay speaks.
        supported: u8,
    },
    /// Another app is connected with this code right now.
    CodeInUse,
    /// The technician token is missing, wrong or expired.
    Unauthorized,
    /// The technician may not view this session.
    Forbidden,
    /// The session already has as many viewers as technicians allowed.
    TooManyViewers,
    /// The session's support app is connected to another relay node (several nodes share
    /// one database): view it there. (Added last: older peers decode every other reason.)
    Elsewhere {
        /// That node's QUIC address, `host:port`.
        #[cfg_attr(test, proptest(regex = "[a-z0-9.]{1,20}:[0-9]{1,5}"))]
        quic: String,
        /// The SHA-256 of its certificate (lowercase hex), to pin.
        #[cfg_attr(test, proptest(regex = "[0-9a-f]{64}"))]
        fingerprint: String,
    },
}

/// Relay → app: a technician asks for consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ConsentRequest {
    /// Identifies the request; the decision echoes it.
    pub request_id: u64,
    /// The organisation the technician works for.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub organisation: String,
    /// The technician's display name.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub technician: String,
    /// The technician's id: what is allowed is allowed to them only.
    pub technician_id: TechnicianId,
    /// What is asked for.
    pub capabilities: Capabilities,
    /// Milliseconds until the app auto-denies (the channel's consent timeout).
    pub timeout_ms: u32,
    /// The channel records remote sessions: the popup says so before the end user chooses.
    pub recorded: bool,
}

/// App → relay: the end user's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ConsentDecision {
    /// The request answered.
    pub request_id: u64,
    /// The answer.
    pub outcome: ConsentOutcome,
}

/// The answer to a consent request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum ConsentOutcome {
    /// Allowed, with at most what was asked for.
    Granted(Capabilities),
    /// The end user said no.
    Denied,
    /// Nobody answered in time: treated as no.
    TimedOut,
}

/// App → relay: what is granted now (less than or equal to before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ConsentChanged {
    /// The capabilities still granted; [`Capabilities::NONE`] stops sharing.
    pub capabilities: Capabilities,
}

/// Relay → app: start streaming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct StartStream {
    /// Which display ([`DisplayInfo::id`]).
    pub display: u32,
    /// Upper bound on frames per second.
    pub max_fps: u16,
    /// Suggested bitrate in bits per second; the app adapts below it.
    pub bitrate_hint_bps: u32,
}

/// Relay → app: stop streaming a display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct StopStream {
    /// Which display.
    pub display: u32,
}

/// Video codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum VideoCodec {
    /// H.264, Annex-B access units (SPS and PPS before every IDR).
    H264,
}

/// One encoded video frame.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct VideoFrame {
    /// Increases by one per frame of a stream; gaps mean dropped frames.
    pub seq: u64,
    /// When the screen was captured, in microseconds on the app's clock (for latency).
    pub capture_us: u64,
    /// Can a decoder start here?
    pub keyframe: bool,
    /// Which display this shows ([`DisplayInfo::id`]): after a [`Message::SelectDisplay`],
    /// frames already on their way still show the previous one.
    pub display: u32,
    /// Width in pixels.
    #[cfg_attr(test, proptest(strategy = "1..=MAX_DISPLAY_EDGE"))]
    pub width: u32,
    /// Height in pixels.
    #[cfg_attr(test, proptest(strategy = "1..=MAX_DISPLAY_EDGE"))]
    pub height: u32,
    /// How `data` is encoded.
    pub codec: VideoCodec,
    /// One access unit.
    #[serde(with = "serde_bytes")]
    #[cfg_attr(test, proptest(strategy = "proptest::collection::vec(any::<u8>(), 1..512)"))]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for VideoFrame {
    /// Without the payload: a frame's bytes are useless in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFrame")
            .field("seq", &self.seq)
            .field("capture_us", &self.capture_us)
            .field("keyframe", &self.keyframe)
            .field("display", &self.display)
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .field("codec", &self.codec)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Mouse buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum MouseButton {
    /// Primary button.
    Left,
    /// Secondary button.
    Right,
    /// Wheel button.
    Middle,
    /// Browser back (button 4).
    Back,
    /// Browser forward (button 5).
    Forward,
}

/// Press or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum Press {
    /// Pressed.
    Down,
    /// Released.
    Up,
}

/// Mouse and keyboard input from the controlling technician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum InputEvent {
    /// Move the pointer to a position in the streamed display's pixels.
    PointerMove {
        /// Pixels from the display's left edge.
        x: u32,
        /// Pixels from the display's top edge.
        y: u32,
    },
    /// Press or release a mouse button at the current position.
    Button {
        /// Which button.
        button: MouseButton,
        /// Press or release.
        press: Press,
    },
    /// Scroll, in wheel notches (positive: right / down).
    Wheel {
        /// Horizontal notches.
        dx: i32,
        /// Vertical notches.
        dy: i32,
    },
    /// Press or release a physical key.
    Key {
        /// The key position (layout-independent).
        code: KeyCode,
        /// Press or release.
        press: Press,
        /// The character the technician's layout produced, when it matters (dead keys, IMEs).
        #[cfg_attr(test, proptest(strategy = "proptest::option::of(\"[a-z]{1,2}\")"))]
        text: Option<String>,
    },
    /// Type this text as it is, whatever the end user's layout.
    Text {
        /// The text.
        #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
        text: String,
    },
}

/// Who holds control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ControlHandover {
    /// The technician holding (or to hold) control; `None`: nobody.
    pub holder: Option<TechnicianId>,
}

/// Liveness and round-trip probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Ping {
    /// Chosen by the sender, echoed back.
    pub nonce: u64,
    /// The sender's clock when sent, in microseconds, echoed back.
    pub sent_us: u64,
}

/// Measurements over a window, for rate adaptation and the viewers' overlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Stats {
    /// Length of the measurement window in milliseconds.
    pub window_ms: u32,
    /// Frames delivered in the window.
    pub frames: u32,
    /// Frames skipped or lost in the window.
    pub frames_dropped: u32,
    /// Bytes delivered in the window.
    pub bytes: u64,
    /// Median capture-to-delivery latency in microseconds (0 if unknown).
    pub latency_p50_us: u32,
    /// Round-trip time in microseconds (0 if unknown).
    pub rtt_us: u32,
}

/// Who may see and control the end user's screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Access {
    /// One entry per technician with something granted (at most
    /// [`crate::limits::MAX_TECHNICIANS_PER_SESSION`]).
    #[cfg_attr(test, proptest(strategy = "proptest::collection::vec(any::<AccessGrant>(), 0..=3)"))]
    pub grants: Vec<AccessGrant>,
    /// Set when this is the relay's answer to the app's decision on this consent request: the
    /// grants after it was applied (or refused, when it came too late). Until then the app
    /// keeps the grant it just gave; every other message only takes away.
    pub answered: Option<u64>,
}

/// What one technician may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct AccessGrant {
    /// The technician.
    pub technician: TechnicianId,
    /// Their display name, for the session bar.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub name: String,
    /// What the end user allows them.
    pub capabilities: Capabilities,
}

/// Which display a viewer wants to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct SelectDisplay {
    /// A [`DisplayInfo::id`] the app reported; an unknown one falls back to the primary display.
    pub display: u32,
}

/// The app's displays now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct DisplaysChanged {
    /// Every display that can be shared, as in [`AppInfo::displays`].
    #[cfg_attr(test, proptest(strategy = "proptest::collection::vec(any::<DisplayInfo>(), 0..=4)"))]
    pub displays: Vec<DisplayInfo>,
}

/// Facts about the end user's machine, as its system reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct MachineFacts {
    /// The signed-in user, as the system names them (`ada`, `OFFICE\ada`).
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .\\-]{0,24}"))]
    pub user_name: String,
    /// The processor's model name.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .()@-]{0,40}"))]
    pub cpu: String,
    /// Logical processors.
    pub cpu_threads: u32,
    /// Installed memory, bytes.
    pub memory_bytes: u64,
    /// Seconds since the system started.
    pub uptime_secs: u64,
}

/// One chat line of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ChatLine {
    /// Who wrote it.
    pub from: ChatFrom,
    /// When the relay received it.
    pub at: Timestamp,
    /// What they wrote: plain text, shown as text everywhere (never markup), at most
    /// [`crate::limits::MAX_CHAT_TEXT_BYTES`], not blank.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9<>&.,!?-][a-zA-Z0-9<>&.,!? \n-]{0,39}"))]
    pub text: String,
}

/// Who wrote a chat line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub enum ChatFrom {
    /// The end user, at the support app.
    EndUser,
    /// A technician on the session.
    Technician {
        /// Who.
        id: TechnicianId,
        /// Their display name.
        name: String,
    },
}

impl ChatLine {
    /// A line as a sender writes it: the relay fills in the sender and the time.
    #[must_use]
    pub fn to_send(text: impl Into<String>) -> ChatLine {
        ChatLine { from: ChatFrom::EndUser, at: Timestamp(0), text: text.into() }
    }
}

/// Copied text passing between a technician and the end user's clipboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ClipboardText {
    /// The text, not empty, at most [`crate::limits::MAX_CLIPBOARD_TEXT_BYTES`].
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9<>&.,!? \n-]{1,40}"))]
    pub text: String,
}

/// A file offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct FileOffer {
    /// Chosen by the sender, unique on the session (the apps and viewers take the time in
    /// microseconds): names the transfer in the answer and on its stream. Below 2^53, so that
    /// it stays exact in a browser's JSON.
    pub transfer: u64,
    /// The file's name without any folder: no `/`, `\`, `:` or control characters, not `.` or
    /// `..`, at most [`crate::limits::MAX_FILE_NAME_BYTES`].
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9_-][a-zA-Z0-9 _-]{0,19}\\.[a-z]{1,4}"))]
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its content.
    pub sha256: [u8; 32],
    /// Who sends it, as the relay names them (what a sender puts here is replaced).
    #[cfg_attr(test, proptest(regex = "[a-zA-Z ]{0,20}"))]
    pub from: String,
}

/// The receiver's answer to a [`FileOffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct FileAnswer {
    /// The transfer answered.
    pub transfer: u64,
    /// Accepted: the sender may send its data.
    pub accepted: bool,
}

/// The head of a file's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct FileData {
    /// The transfer whose bytes follow.
    pub transfer: u64,
}

/// How a file's transfer ended, as the receiver says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct FileResult {
    /// The transfer.
    pub transfer: u64,
    /// Saved under its final name, whole and checked.
    pub saved: bool,
    /// Where it was saved (as the receiver names it: a file name, not a path on their
    /// machine), or why not.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .]{0,40}"))]
    pub message: String,
}

/// Is `name` a file name alone, safe to create in a folder the receiver chose?
#[must_use]
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= crate::limits::MAX_FILE_NAME_BYTES
        && name != "."
        && name != ".."
        && !name.chars().any(|c| matches!(c, '/' | '\\' | ':') || c.is_control())
        && name.trim() == name
}

/// Whether the app can show its screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct ScreenState {
    /// Why the picture stopped; `None`: it runs again.
    pub paused: Option<PauseReason>,
}

/// Why the app cannot show its screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PauseReason {
    /// The system shows a screen no app may capture: a UAC prompt on the secure desktop, or
    /// the lock screen. The picture comes back when the end user answers or unlocks.
    SecureDesktop,
    /// The screen saver runs.
    ScreenSaver,
    /// Capturing the screen failed (the app's log says why); sharing has stopped.
    CaptureFailed,
}

impl PauseReason {
    /// What a technician is told.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            PauseReason::SecureDesktop => "the end user's screen shows a UAC prompt or the lock screen, which no app may capture",
            PauseReason::ScreenSaver => "the end user's screen saver is running",
            PauseReason::CaptureFailed => "the support app cannot capture the screen any more",
        }
    }
}

/// The connection ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
pub struct Bye {
    /// Why.
    pub reason: ByeReason,
    /// Human-readable detail.
    #[cfg_attr(test, proptest(regex = "[a-zA-Z0-9 .-]{0,24}"))]
    pub message: String,
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ByeReason {
    /// Finished normally.
    Normal,
    /// The end user pressed Stop sharing.
    StoppedByUser,
    /// A technician closed the session.
    SessionClosed,
    /// The session expired.
    SessionExpired,
    /// Consent was withdrawn for what this connection does.
    ConsentWithdrawn,
    /// The peer broke the protocol.
    ProtocolError,
    /// A newer connection took this one's place.
    Replaced,
    /// The relay is shutting down.
    ServerShutdown,
    /// The peer stopped answering.
    Timeout,
}

/// A message that decodes but breaks a protocol rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A text field is longer than allowed.
    #[error("{field} is {len} bytes, more than {max}")]
    TextTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More displays than allowed.
    #[error("{0} displays reported, at most {MAX_DISPLAYS} allowed")]
    TooManyDisplays(usize),
    /// A width or height of zero or beyond [`MAX_DISPLAY_EDGE`].
    #[error("dimension {0} is outside 1..={MAX_DISPLAY_EDGE}")]
    BadDimension(u32),
    /// A video frame without data.
    #[error("video frame without data")]
    EmptyFrame,
    /// A video frame larger than [`MAX_VIDEO_FRAME_BYTES`].
    #[error("video frame of {0} bytes")]
    FrameTooLarge(usize),
    /// More grants than technicians on a session.
    #[error("{0} grants, at most {MAX_TECHNICIANS_PER_SESSION} allowed")]
    TooManyGrants(usize),
    /// A chat line with nothing but white space.
    #[error("empty chat message")]
    BlankChat,
    /// Clipboard text without a character.
    #[error("empty clipboard text")]
    EmptyClipboard,
    /// A file name with a folder in it, or otherwise not a plain name.
    #[error("{0:?} is not a plain file name")]
    BadFileName(String),
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), ValidationError> {
    if text.len() > max {
        return Err(ValidationError::TextTooLong { field, len: text.len(), max });
    }
    Ok(())
}

fn check_displays(displays: &[DisplayInfo]) -> Result<(), ValidationError> {
    if displays.len() > MAX_DISPLAYS {
        return Err(ValidationError::TooManyDisplays(displays.len()));
    }
    for display in displays {
        check_text("display name", &display.name, MAX_TEXT_BYTES)?;
        check_dimension(display.width)?;
        check_dimension(display.height)?;
    }
    Ok(())
}

fn check_dimension(n: u32) -> Result<(), ValidationError> {
    if n == 0 || n > MAX_DISPLAY_EDGE {
        return Err(ValidationError::BadDimension(n));
    }
    Ok(())
}

impl Message {
    /// How many kinds of message this version knows (the variants of [`Message`]).
    pub const KINDS: u32 = 27;

    /// Checks the rules a decoder cannot express: text lengths, counts, dimensions.
    /// The codec runs it on every message it encodes or decodes.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Message::Hello(hello) => match &hello.role {
                HelloRole::App { info, .. } => {
                    check_text("os", &info.os, MAX_TEXT_BYTES)?;
                    check_text("host_name", &info.host_name, MAX_TEXT_BYTES)?;
                    check_text("app_version", &info.app_version, MAX_TEXT_BYTES)?;
                    check_displays(&info.displays)
                }
                HelloRole::Technician { token, .. } => {
                    check_text("token", token, MAX_BEARER_TOKEN_BYTES)
                }
            },
            Message::DisplaysChanged(changed) => check_displays(&changed.displays),
            Message::Welcome(w) => check_text("organisation", &w.organisation, MAX_TEXT_BYTES),
            Message::Reject(r) => {
                if let RejectReason::Elsewhere { quic, fingerprint } = &r.reason {
                    check_text("quic", quic, MAX_TEXT_BYTES)?;
                    check_text("fingerprint", fingerprint, MAX_TEXT_BYTES)?;
                }
                check_text("message", &r.message, MAX_TEXT_BYTES)
            }
            Message::ConsentRequest(r) => {
                check_text("organisation", &r.organisation, MAX_TEXT_BYTES)?;
                check_text("technician", &r.technician, MAX_TEXT_BYTES)
            }
            Message::VideoFrame(f) => {
                check_dimension(f.width)?;
                check_dimension(f.height)?;
                if f.data.is_empty() {
                    return Err(ValidationError::EmptyFrame);
                }
                if f.data.len() > MAX_VIDEO_FRAME_BYTES {
                    return Err(ValidationError::FrameTooLarge(f.data.len()));
                }
                Ok(())
            }
            Message::Input(InputEvent::Key { text: Some(text), .. }) => {
                check_text("key text", text, MAX_TEXT_BYTES)
            }
            Message::Input(InputEvent::Text { text }) => check_text("text", text, MAX_TEXT_BYTES),
            Message::Bye(b) => check_text("message", &b.message, MAX_TEXT_BYTES),
            Message::Access(access) => {
                if access.grants.len() > MAX_TECHNICIANS_PER_SESSION {
                    return Err(ValidationError::TooManyGrants(access.grants.len()));
                }
                access.grants.iter().try_for_each(|g| check_text("technician name", &g.name, MAX_TEXT_BYTES))
            }
            Message::Chat(line) => {
                if line.text.trim().is_empty() {
                    return Err(ValidationError::BlankChat);
                }
                check_text("chat text", &line.text, MAX_CHAT_TEXT_BYTES)?;
                match &line.from {
                    ChatFrom::Technician { name, .. } => check_text("chat sender", name, MAX_TEXT_BYTES),
                    ChatFrom::EndUser => Ok(()),
                }
            }
            Message::Clipboard(clip) => {
                if clip.text.is_empty() {
                    return Err(ValidationError::EmptyClipboard);
                }
                check_text("clipboard text", &clip.text, MAX_CLIPBOARD_TEXT_BYTES)
            }
            Message::FileOffer(offer) => {
                if !is_plain_file_name(&offer.name) {
                    return Err(ValidationError::BadFileName(offer.name.clone()));
                }
                check_text("sender", &offer.from, MAX_TEXT_BYTES)
            }
            Message::FileResult(result) => check_text("message", &result.message, MAX_TEXT_BYTES),
            Message::MachineFacts(facts) => {
                check_text("user_name", &facts.user_name, MAX_TEXT_BYTES)?;
                check_text("cpu", &facts.cpu, MAX_TEXT_BYTES)
            }
            Message::ConsentDecision(_)
            | Message::ConsentChanged(_)
            | Message::StartStream(_)
            | Message::StopStream(_)
            | Message::KeyframeRequest
            | Message::Input(_)
            | Message::ControlHandover(_)
            | Message::Ping(_)
            | Message::Pong(_)
            | Message::Stats(_)
            | Message::SelectDisplay(_)
            | Message::ScreenState(_)
            | Message::FileAnswer(_)
            | Message::FileData(_) => Ok(()),
        }
    }

    /// Is this a video frame (carried on media streams with their larger limit)?
    #[must_use]
    pub const fn is_video(&self) -> bool {
        matches!(self, Message::VideoFrame(_))
    }
}
