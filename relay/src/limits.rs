//! The relay's own limits (the protocol's are in `deskline_protocol::limits`), each with its
//! reason.

use std::time::Duration;

/// How long a login token is valid: a working day plus margin, so a technician logs in once a
/// day and a stolen token does not work for long.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Failed logins from one network per [`LOGIN_FAILURE_WINDOW`] that cost nothing: enough for
/// typos. After them each attempt from that network waits (see `auth::backoff`).
pub const LOGIN_FREE_FAILURES: usize = 5;

/// The longest wait between two login attempts from a guessing network: with a doubling from
/// one second it is reached after nine failures; a guesser then gets a dozen tries an hour.
pub const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

/// The window over which failed logins are counted.
pub const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Password checks (argon2, about 19 MiB and tens of milliseconds each) running at once; more
/// logins wait their turn, so a flood of logins costs queue places, not memory.
pub const MAX_CONCURRENT_PASSWORD_CHECKS: usize = 2;

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

/// The least zxcvbn score a technician's password must reach: 3 is "safely unguessable"
/// (over 10^8 guesses), what an online attacker slowed by argon2 and back-off never reaches.
pub const MIN_PASSWORD_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// Events buffered per live-events subscriber before it is told to reload.
pub const EVENT_BUFFER: usize = 1024;

/// Failed session-code attempts (unknown, expired or closed PIN or link) allowed per source
/// network (IPv4 /24, IPv6 /56) per [`CODE_FAILURE_WINDOW`]: a person mistyping a PIN needs a
/// few, a household or an office behind one address a few more; a guesser needs about 500,000
/// for an even chance.
pub const MAX_CODE_FAILURES_PER_NETWORK: usize = 10;

/// The same while an attack is under way ([`CODE_ATTACK_THRESHOLD`] passed): still enough for a
/// person's typos, half as much for every guessing network.
pub const MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK: usize = 5;

/// Failed code attempts over all networks per [`CODE_FAILURE_WINDOW`] that mean an attack: a
/// desk's real traffic stays far below it. It never refuses anyone by itself (strangers'
/// failures must not lock an honest end user out); it shrinks every network's allowance and
/// slows the answers to wrong codes.
pub const CODE_ATTACK_THRESHOLD: usize = 100;

/// Source networks a per-network counter (code guessing, login back-off) remembers at most;
/// beyond it, networks without a recent failure are forgotten: bounds memory under a flood of
/// addresses.
pub const MAX_NETWORKS_TRACKED: usize = 100_000;

/// How long a wrong code waits for its answer: a person retyping does not notice, a guesser's
/// connection is held (and counts against its network's connection limit).
pub const WRONG_CODE_DELAY: Duration = Duration::from_secs(1);

/// The same while an attack is under way.
pub const WRONG_CODE_DELAY_UNDER_ATTACK: Duration = Duration::from_secs(3);

/// The window over which failed code attempts are counted.
pub const CODE_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// How long after a drop the same app instance may resume with its consent intact.
pub const RESUME_GRACE: Duration = Duration::from_secs(60);

/// How long a new QUIC connection has from its first packet to its hello (handshake
/// included): a few round trips on any network; a silent client is closed after it.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued for one viewer. A viewer further behind than this is skipped to the next
/// keyframe instead of slowing the app or the other viewers (at 30 fps: a quarter second).
pub const VIEWER_FRAME_QUEUE: usize = 8;

/// Simultaneous QUIC connections the relay accepts: bounds memory under a connection flood.
pub const MAX_QUIC_CONNECTIONS: usize = 4096;

/// Simultaneous QUIC connections, and HTTPS connections, from one source network (IPv4 /24,
/// IPv6 /56) by default (`serve --connections-per-network`): an office behind one NAT with
/// dozens of end users and technicians fits; one host can no longer take every slot.
pub const DEFAULT_CONNECTIONS_PER_NETWORK: u16 = 64;

/// Simultaneous HTTPS connections the relay accepts (consoles hold one open for live events).
pub const MAX_HTTP_CONNECTIONS: usize = 4096;

/// How long a new HTTPS connection has to complete its TLS handshake.
pub const HTTP_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new HTTPS connection has, after its TLS handshake, to send its first request: a
/// connection that says nothing is closed after it.
pub const HTTP_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kept-alive HTTPS connection may wait for (and take to send) its next request's
/// headers before it is closed: long enough that a console's next click reuses it (clients
/// racing a close must retry, as browsers do), short enough that idle connections do not pile
/// up. (A response in progress, such as the live-events stream, is not idle.)
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest HTTP request body the relay reads (the largest real one, a browser's WebRTC
/// offer, is a few KiB); a larger one is refused with 413 and the connection closed.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// How long a request's body may take to arrive once its headers have: a client that sends
/// its body slowly, or never, is answered 408 and closed instead of holding the connection.
pub const HTTP_BODY_TIMEOUT: Duration = Duration::from_secs(30);

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

/// How long a stopping relay waits for its QUIC connections to close after saying goodbye: a
/// few round trips on any network a session works over.
pub const SHUTDOWN_QUIC_DRAIN: Duration = Duration::from_secs(2);

/// The largest file a channel allows unless set otherwise (the migration's column default):
/// an installer or a log archive fits; a disk image is not something to pass through a
/// support session's relay.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The largest file limit a channel may set: above the files a support session passes
/// (installers, log archives, a video of the problem), and what the relay's copy is tested for.
pub const MAX_FILE_BYTES_SETTING: u64 = 64 * 1024 * 1024 * 1024;

/// The longest a channel may keep recordings, in days (ten years).
pub const MAX_RECORDING_RETENTION_DAYS: i64 = 3650;

/// How often a relay node sharing PostgreSQL with others renews its heartbeat row.
pub const NODE_HEARTBEAT: Duration = Duration::from_secs(2);

/// A node whose heartbeat is older than this is dead for the others: the sessions whose app
/// was connected to it go back to `waiting` (their apps resume on another node within
/// [`RESUME_GRACE`]). Five heartbeats: a node under load or a short database hiccup is not
/// taken for dead, and nodes' clocks may differ by a few seconds (they are NTP-synchronised).
pub const NODE_DEAD_AFTER: Duration = Duration::from_secs(10);

/// Dead nodes' rows are deleted after this long.
pub const NODE_FORGOTTEN_AFTER: Duration = Duration::from_secs(24 * 3600);
