//! The JSON shapes of the relay's HTTP API (DESIGN §5), defined once: the relay serves them
//! (and documents them in its OpenAPI document from these types), the `deskline` CLI and the
//! native viewer read and send them. A field renamed here is renamed for both, so the two
//! cannot drift (as gh shares its API models between commands).
//!
//! Answers (`…View`, [`LoginResponse`], [`RelayInfo`], [`Settings`]) accept unknown fields,
//! so an older console keeps working against a newer relay; requests deny them, so a
//! misspelt field is a 400 naming it rather than silently ignored.

use deskline_protocol::session::{Actor, AuditAction};
use deskline_protocol::{AppInfo, Capabilities};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A technician's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages technicians, channels and settings; works in every channel.
    Admin,
    /// Works in the channels they are a member of.
    Technician,
}

impl Role {
    /// The name used in JSON and in the database.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Technician => "technician",
        }
    }

    /// The role with this name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "technician" => Some(Role::Technician),
            _ => None,
        }
    }
}

/// A technician, as others see them (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TechnicianView {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Name shown to end users.
    pub display_name: String,
    /// `admin` or `technician`.
    #[schema(value_type = String, example = "technician")]
    pub role: Role,
    /// The password was set by someone else (the first admin's printed password, one an
    /// administrator gave): until the technician sets their own, their token only allows
    /// `GET /me`, `POST /me/password` and `POST /logout`.
    #[serde(default)]
    pub must_change_password: bool,
    /// Disabled by an administrator: cannot sign in, holds no token, is on no live session.
    #[serde(default)]
    pub disabled: bool,
    /// Signs in with a second factor (a code from an authenticator app, or a recovery code).
    #[serde(default)]
    pub second_factor: bool,
    /// An administrator requires a second factor and this account has none yet: until it is
    /// set up, the account's token only allows `GET /me`, `POST /me/password`,
    /// `POST /me/second-factor`, `POST /me/second-factor/confirm` and `POST /logout`.
    #[serde(default)]
    pub second_factor_required: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// A channel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Lifetime of its sessions, in seconds.
    pub session_expiry_secs: i64,
    /// Time the end user has to answer a consent prompt, in seconds.
    pub consent_timeout_secs: i64,
    /// The largest file its sessions may pass, in bytes (0: none).
    pub max_file_bytes: i64,
    /// Are its remote sessions recorded (announced to the end user before they choose)?
    pub record_sessions: bool,
    /// Days recordings are kept (0: as long as their session).
    pub recording_retention_days: i64,
    /// Ids of its members.
    pub member_ids: Vec<i64>,
    /// RFC 3339.
    pub created_at: String,
}

/// A support session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// Id.
    pub id: i64,
    /// Its channel.
    pub channel_id: i64,
    /// `link` or `pin`.
    #[schema(example = "pin")]
    pub kind: String,
    /// Name or note.
    pub name: String,
    /// `waiting`, `active`, `in_queue`, `expired` or `closed`.
    #[schema(example = "waiting")]
    pub state: String,
    /// Deleted from the lists (its history is kept; only `GET /sessions?scope=deleted` lists it).
    #[serde(default)]
    pub deleted: bool,
    /// The invite link, while the session is live (link sessions).
    pub link: Option<String>,
    /// The 6-digit PIN, while the session is live (PIN sessions).
    pub pin: Option<String>,
    /// The owner.
    pub assigned_technician_id: Option<i64>,
    /// Collaborating technicians.
    pub invited_technician_ids: Vec<i64>,
    /// What the support app reported when it connected.
    #[schema(value_type = Option<Object>)]
    pub agent: Option<AppInfo>,
    /// More about the end user's machine, as the support app last reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineView>,
    /// Where consent stands, per technician.
    pub consent: ConsentView,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl SessionView {
    /// The technicians on the session: the owner first, then the invited ones.
    pub fn technician_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.assigned_technician_id.iter().copied().chain(self.invited_technician_ids.iter().copied())
    }
}

/// Where consent stands between the session's technicians and the end user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    /// In one word: `pending` (a request waits for the end user), else `suspended` (the app
    /// dropped; kept for its resumption), else `granted` (someone may see the screen), else
    /// `none`.
    #[schema(example = "granted")]
    pub status: String,
    /// With `pending`: what is asked; otherwise what is granted to anyone
    /// (`{"view": bool, "control": bool, "files": bool, "clipboard": bool}`).
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
    /// What the end user allows each technician: the end user's yes is to one technician.
    pub grants: Vec<GrantView>,
    /// The request waiting for an answer.
    pub pending: Option<PendingView>,
}

/// What one technician may do.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    /// The technician.
    pub technician_id: i64,
    /// `{"view": bool, "control": bool, "files": bool, "clipboard": bool}`.
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
}

/// A consent request waiting for the end user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PendingView {
    /// Who asked.
    pub requested_by: i64,
    /// What they asked for.
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
    /// RFC 3339: when it denies itself.
    pub deadline: String,
}

/// One entry of a session's audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    /// The session.
    pub session_id: i64,
    /// RFC 3339.
    pub at: String,
    /// `{"kind": "technician", "id": 3}`, `{"kind": "app"}` or `{"kind": "system"}`.
    #[schema(value_type = Object)]
    pub actor: Actor,
    /// `{"action": "invited", "technician": 3}` and so on.
    #[schema(value_type = Object)]
    pub action: AuditAction,
    /// State before (absent for creation).
    pub from: Option<String>,
    /// State after.
    pub to: String,
}

/// One recording of a session's screen: a file of the app's H.264 as it came (fragmented
/// MP4), cut at display changes and relay restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordingView {
    /// Id (`GET /recordings/{id}/video`, `/recordings/{id}/log`).
    pub id: i64,
    /// The session recorded.
    pub session_id: i64,
    /// RFC 3339: when its first picture arrived.
    pub started_at: String,
    /// RFC 3339: when it ended (absent while it is being written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Length, in milliseconds (0 while it is being written).
    pub duration_ms: i64,
    /// Size of the video file in bytes.
    pub bytes: i64,
}

/// One line of a recording's timed log: what happened beside the picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordingLogLine {
    /// Milliseconds from the recording's start (the video's time).
    pub t_ms: u64,
    /// `consent`, `control`, `input`, `chat`, `clipboard`.
    pub kind: String,
    /// What happened, as text.
    pub text: String,
}

/// A live update pushed to consoles.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A session changed (or was created); the whole new view.
    Session {
        /// The session.
        session: Box<SessionView>,
    },
    /// A chat line on a session the technician may see.
    Chat {
        /// The line.
        message: ChatMessageView,
    },
    /// Updates were missed (the subscriber was too slow): reload everything.
    Resync,
}

/// Facts about the end user's machine for the technician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MachineView {
    /// The signed-in user (`ada`, `OFFICE\ada`).
    pub user_name: String,
    /// The processor's model name.
    pub cpu: String,
    /// Logical processors.
    pub cpu_threads: u32,
    /// Installed memory, bytes.
    pub memory_bytes: u64,
    /// When the machine started (RFC 3339; from its uptime, on the relay's clock).
    pub booted_at: String,
}

/// One chat line of a session, as the relay recorded it. `text` is plain text: show it as
/// text, never as markup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessageView {
    /// The session.
    pub session_id: i64,
    /// When the relay received it (RFC 3339).
    pub at: String,
    /// `end_user` or `technician`.
    #[schema(example = "technician")]
    pub from: String,
    /// The technician who wrote it (absent for the end user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technician_id: Option<i64>,
    /// Their display name ("End user" for the end user).
    pub name: String,
    /// What they wrote.
    pub text: String,
}

/// A chat line to send to everyone on the session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChatMessage {
    /// Plain text, not blank, at most 2000 bytes.
    #[schema(example = "Hello, this is Alice from the help desk.")]
    pub text: String,
}

/// Where and how technicians' viewers and apps reach this relay over QUIC.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RelayInfo {
    /// The organisation named to end users.
    pub organisation: String,
    /// The QUIC endpoint, `host:port`.
    pub quic: String,
    /// SHA-256 of the relay's certificate (lowercase hex), to pin.
    pub fingerprint: String,
}

/// Relay-wide settings an administrator changes in the console.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// The organisation named to end users: in the consent popup, the session bar and the
    /// invite page.
    pub organisation: String,
    /// Every technician must sign in with a second factor; one without it can only set it up.
    #[serde(default)]
    pub require_second_factor: bool,
}

/// A change of relay-wide settings; an absent field stays as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// The organisation named to end users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// Require a second factor of every technician.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_second_factor: Option<bool>,
}

/// Sign in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
    /// For an account with a second factor: the 6-digit code its authenticator app shows, or
    /// one of its recovery codes. Without it, such an account is answered
    /// `401 second_factor_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A new bearer token and whom it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer ...`.
    pub token: String,
    /// The signed-in technician (`must_change_password` says the token is only good for
    /// setting a password).
    pub technician: TechnicianView,
}

/// Change one's own password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The password in use (the one-time one, after a reset).
    pub current_password: String,
    /// The new password: at least 12 characters, not easy to guess.
    pub new_password: String,
}

/// A new technician account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTechnician {
    /// Login name.
    pub username: String,
    /// Name shown to end users (default: the username).
    #[serde(default)]
    pub display_name: String,
    /// A one-time password: the technician sets their own at the first sign-in.
    pub password: String,
    /// `admin` or `technician`.
    #[schema(value_type = String, example = "technician")]
    pub role: Role,
}

/// A change of a technician account (administrators); an absent field stays as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTechnician {
    /// Name shown to end users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `admin` or `technician`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "technician")]
    pub role: Option<Role>,
    /// Disable (`true`: tokens revoked at once, taken off every live session) or re-enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// A new one-time password (a reset): the technician's tokens are revoked and they set
    /// their own at the next sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `true`: remove the technician's second factor and recovery codes (a lost phone); their
    /// tokens are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_second_factor: Option<bool>,
}

/// Proves who asks to set up a second factor.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSecondFactor {
    /// The account's password.
    pub password: String,
}

/// A second factor being set up: the secret for an authenticator app, as a QR code and as
/// text. It takes effect once a code from the app confirms it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecondFactorEnrolment {
    /// The shared secret in base32, for apps that cannot scan.
    pub secret: String,
    /// The `otpauth://totp/…` URI the QR code carries.
    pub uri: String,
    /// The QR code as an SVG document.
    pub qr_svg: String,
}

/// A second-factor code: 6 digits from the authenticator app, or a recovery code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorCode {
    /// The code.
    pub code: String,
}

/// The second factor is on: a new token (every other token of the account is revoked) and the
/// recovery codes, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecondFactorConfirmed {
    /// Bearer token replacing the caller's.
    pub token: String,
    /// The technician.
    pub technician: TechnicianView,
    /// Single-use codes that sign in when the authenticator app is lost.
    pub recovery_codes: Vec<String>,
}

/// Turn one's second factor off.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableSecondFactor {
    /// The account's password.
    pub password: String,
    /// A code from the authenticator app, or a recovery code.
    pub code: String,
}

/// New recovery codes (the earlier ones no longer work), shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    /// Single-use codes that sign in when the authenticator app is lost.
    pub recovery_codes: Vec<String>,
}

/// A new channel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// Unique name.
    pub name: String,
    /// Lifetime of its sessions (default: a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expiry_secs: Option<i64>,
    /// Time the end user has to answer (default: 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_timeout_secs: Option<i64>,
    /// The largest file its sessions may pass, in bytes (default 2 GiB; 0: no files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<i64>,
    /// Record its remote sessions (default: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_sessions: Option<bool>,
    /// Days recordings are kept (default 30; 0: as long as their session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_retention_days: Option<i64>,
}

/// A change of a channel's settings; an absent field stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New session lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expiry_secs: Option<i64>,
    /// New consent timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_timeout_secs: Option<i64>,
    /// New largest file, in bytes (0: no files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<i64>,
    /// Record its remote sessions, or stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_sessions: Option<bool>,
    /// New retention of recordings, in days (0: as long as their session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_retention_days: Option<i64>,
}

/// Names a technician.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TechnicianRef {
    /// The technician's id.
    pub technician_id: i64,
}

/// A new support session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// `link` or `pin`.
    #[schema(value_type = String, example = "pin")]
    pub kind: deskline_protocol::session::SessionKind,
    /// Name or note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where to transfer a session.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// Hand over to this technician...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technician_id: Option<i64>,
    /// ...or move to this channel's queue (exactly one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<i64>,
}

/// What to ask the end user for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteRequest {
    /// What to ask for, comma-separated: `view`, `control`, `files`, `clipboard` (control,
    /// files and clipboard each need view; clipboard needs control). Default `view,control`
    /// (also spelt `view_and_control`). The end user may allow less.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "view,control,files,clipboard")]
    pub capabilities: Option<String>,
}

/// A WebRTC session description (SDP).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionDescription {
    /// The SDP text, ICE candidates included (no trickling).
    pub sdp: String,
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`weak_password`, `not_found`, `password_change_required`…).
    pub code: String,
    /// For people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_accept_fields_they_do_not_know_and_requests_refuse_them() {
        let newer = r#"{"id":1,"username":"ada","display_name":"Ada","role":"admin","created_at":"x","totp":true}"#;
        let t: TechnicianView = serde_json::from_str(newer).unwrap();
        assert_eq!(t.role, Role::Admin);
        assert!(!t.must_change_password, "absent in an older relay's answer: false");
        let typo = serde_json::from_str::<UpdateTechnician>(r#"{"disable": true}"#).unwrap_err();
        assert!(typo.to_string().contains("unknown field `disable`"), "{typo}");
    }

    #[test]
    fn roles_and_patches_read_and_write_as_the_api_documents() {
        assert_eq!(serde_json::to_string(&Role::Technician).unwrap(), r#""technician""#);
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
        let patch = UpdateTechnician { disabled: Some(true), ..UpdateTechnician::default() };
        assert_eq!(serde_json::to_string(&patch).unwrap(), r#"{"disabled":true}"#);
        let transfer = TransferRequest { channel_id: Some(3), ..TransferRequest::default() };
        assert_eq!(serde_json::to_string(&transfer).unwrap(), r#"{"channel_id":3}"#);
    }
}
