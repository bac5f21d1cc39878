//! Every hard limit of the protocol and the domain, each with the reason it has the value it has.
//!
//! Limits are checked where data enters (the codec, the code parsers, the state machine), so the
//! rest of the system can rely on them. Changing one is a protocol change: bump
//! [`crate::PROTOCOL_VERSION`] if peers would disagree.

/// Largest control message, encoded. Control messages are small (hello, consent, input, stats);
/// 64 KiB leaves room for long host names and pasted text while keeping a hostile peer from
/// making the relay buffer much per stream.
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest video frame message, encoded. A 4K H.264 keyframe of busy screen content is about
/// 1–2 MB at sane bitrates; 8 MiB keeps a margin while bounding what one frame stream can hold.
pub const MAX_VIDEO_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Bytes in front of every encoded message: a 4-byte big-endian length and a 1-byte version.
pub const FRAME_HEADER_BYTES: usize = 5;

/// Longest text carried in one message (host names, organisation, typed text, reasons).
/// Nothing a person types in one go or a host reports needs more.
pub const MAX_TEXT_BYTES: usize = 4096;

/// Displays an app may report. Real machines have a handful; the bound keeps hello small.
pub const MAX_DISPLAYS: usize = 16;

/// Largest display edge in pixels. 8K is 7680; 16384 is the H.264 level 6.2 ceiling we accept.
pub const MAX_DISPLAY_EDGE: u32 = 16_384;

/// Technicians on one session in all: the assigned one plus the invited ones (DESIGN §2).
pub const MAX_TECHNICIANS_PER_SESSION: usize = 3;

/// Invited technicians on one session: everyone but the assigned technician.
pub const MAX_INVITED_TECHNICIANS: usize = MAX_TECHNICIANS_PER_SESSION - 1;

/// Open (not closed, not expired) sessions assigned to one technician. Nobody supports more
/// people at once; the bound stops a runaway script from filling a technician's Home.
pub const MAX_OPEN_SESSIONS_PER_TECHNICIAN: usize = 10;

/// Digits in a PIN: six can be read out on the phone and typed without mistakes.
pub const PIN_DIGITS: usize = 6;

/// Random bytes in a link token: 128 bits, so guessing one is hopeless (DESIGN §7).
pub const LINK_TOKEN_BYTES: usize = 16;

/// Random bytes in a resumption secret given to an app: same strength as a link token.
pub const RESUME_SECRET_BYTES: usize = 32;

/// Longest bearer token a technician may present on the QUIC endpoint.
pub const MAX_BEARER_TOKEN_BYTES: usize = 256;

/// Longest session name or note a technician may set.
pub const MAX_SESSION_NAME_BYTES: usize = 200;

/// Longest link a support app download may carry: a link is its public URL, a 26-character
/// token and the QUIC address and certificate hash, well under this.
pub const MAX_EMBEDDED_LINK_BYTES: usize = 1024;

/// Longest chat line, in bytes: a few paragraphs, the most anyone types into a support chat
/// (a log excerpt is a file to send, not a chat line).
pub const MAX_CHAT_TEXT_BYTES: usize = 2000;

/// Chat lines one sender may post on one session in a burst, and one more per
/// [`CHAT_REFILL`]: a person never types faster; a script flooding the end user's window is
/// refused (and told so) instead.
pub const CHAT_BURST: u32 = 10;

/// See [`CHAT_BURST`].
pub const CHAT_REFILL: std::time::Duration = std::time::Duration::from_secs(1);

/// Longest clipboard text, in bytes: a command, a configuration excerpt, a page of a document
/// (it rides the control stream, whose messages stay under [`MAX_CONTROL_MESSAGE_BYTES`]); more
/// is a file to send. The side that copied says so instead of sending it cut short.
pub const MAX_CLIPBOARD_TEXT_BYTES: usize = 32 * 1024;

/// Longest file name passed, in bytes: what file systems allow (255 on ext4 and NTFS).
pub const MAX_FILE_NAME_BYTES: usize = 255;
