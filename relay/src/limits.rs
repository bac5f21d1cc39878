//! The relay's own limits (the protocol's are in `deskline_protocol::limits`), each with its
//! reason.

use std::time::Duration;

/// How long a login token is valid: a working day plus margin, so a technician logs in once a
/// day and a stolen token does not work for long.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Failed logins allowed per username per [`LOGIN_FAILURE_WINDOW`] before further attempts are
/// refused with 429: enough for typos, far too few for guessing.
pub const MAX_LOGIN_FAILURES_PER_WINDOW: usize = 10;

/// The window over which failed logins are counted.
pub const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Largest JSON request body: every request is a handful of short fields.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;

/// Default lifetime of a session before it expires (DESIGN §2).
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Default time the end user has to answer a consent prompt before it auto-denies.
pub const DEFAULT_CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest session expiry a channel may set: a month. Longer-lived codes are a standing risk.
pub const MAX_SESSION_EXPIRY: Duration = Duration::from_secs(31 * 24 * 3600);

/// Longest consent timeout a channel may set.
pub const MAX_CONSENT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How often the relay looks for sessions whose expiry time has passed: "within a few seconds".
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Tries to draw a PIN not used by another live session before giving up (with a million PINs
/// and at most a few thousand live sessions, one try almost always suffices).
pub const PIN_DRAW_ATTEMPTS: usize = 32;

/// Longest username, display name or channel name.
pub const MAX_NAME_BYTES: usize = 100;

/// Shortest password accepted for a technician account.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Events buffered per live-events subscriber before it is told to reload.
pub const EVENT_BUFFER: usize = 1024;

/// Failed session-code attempts (unknown, expired or closed PIN or link) allowed per source
/// address per [`CODE_FAILURE_WINDOW`]: a person mistyping a PIN needs a few, a guesser needs
/// about 500,000 for an even chance.
pub const MAX_CODE_FAILURES_PER_ADDRESS: usize = 5;

/// Failed session-code attempts allowed over all addresses per [`CODE_FAILURE_WINDOW`]: stops a
/// guesser spread over many addresses while a desk's real traffic stays far below it.
pub const MAX_CODE_FAILURES_GLOBAL: usize = 100;

/// The window over which failed code attempts are counted.
pub const CODE_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// How long after a drop the same app instance may resume with its consent intact.
pub const RESUME_GRACE: Duration = Duration::from_secs(60);

/// How long a new connection has to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued for one viewer. A viewer further behind than this is skipped to the next
/// keyframe instead of slowing the app or the other viewers (at 30 fps: a quarter second).
pub const VIEWER_FRAME_QUEUE: usize = 8;

/// Simultaneous QUIC connections the relay accepts: bounds memory under a connection flood.
pub const MAX_QUIC_CONNECTIONS: usize = 4096;

/// Frames per second asked of the app when streaming starts.
pub const DEFAULT_MAX_FPS: u16 = 30;

/// The highest frame rate `serve --max-fps` accepts: what the support app captures at most;
/// beyond it a 1080p encode no longer fits in a frame's time on one core.
pub const MAX_ASKED_FPS: u16 = 60;

/// Bitrate suggested to the app when streaming starts: enough for crisp 1080p screen content.
pub const DEFAULT_BITRATE_BPS: u32 = 4_000_000;

/// Viewer connections one technician may hold on a session at once: a viewer window and a
/// scripted client (`deskline input`).
pub const MAX_CONNECTIONS_PER_TECHNICIAN: usize = 2;

/// How long a browser has to complete its WebRTC connection after the relay answered its
/// offer: ICE and DTLS take well under a second on a working network; after this the viewer
/// slot it holds is given back.
pub const BROWSER_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
