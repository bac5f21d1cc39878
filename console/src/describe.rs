//! The API's answers in words for people: tables with names next to ids, a session as
//! labelled rows (its consent and the end user's computer spelt out). `--json` bypasses all
//! of this and prints the answers themselves.
//!
//! Pure functions of the typed views and a [`Names`] lookup, so what people read is tested
//! without a relay.

use crate::table::render;
use crate::window::display_labels;
use deskline_api::{AuditEventView, ChannelView, ConsentView, SecondFactorEnrolment, SessionView, Settings, TechnicianView};
use deskline_protocol::AppInfo;
use deskline_protocol::ConsentOutcome;
use deskline_protocol::session::{Actor, AuditAction, FileOutcome};

/// Shown for an empty cell.
const NOTHING: &str = "-";

/// Names for the ids in the API's answers: technicians' usernames, channels' names. An id
/// missing from the lists (a channel the caller is not a member of) is shown alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Names<'a> {
    technicians: &'a [TechnicianView],
    channels: &'a [ChannelView],
}

impl<'a> Names<'a> {
    /// Names from these lists (either may be empty when not needed).
    #[must_use]
    pub fn new(technicians: &'a [TechnicianView], channels: &'a [ChannelView]) -> Names<'a> {
        Names { technicians, channels }
    }

    /// The technician's username, if known.
    #[must_use]
    pub fn username(&self, id: i64) -> Option<&'a str> {
        self.technicians.iter().find(|t| t.id == id).map(|t| t.username.as_str())
    }

    /// `alice (2)`, or `2` for a technician not in the list.
    #[must_use]
    pub fn technician(&self, id: i64) -> String {
        named(self.username(id), id)
    }

    /// `alice`, or `technician 2`: a technician in a sentence.
    #[must_use]
    pub fn person(&self, id: i64) -> String {
        self.username(id).map_or_else(|| format!("technician {id}"), str::to_owned)
    }

    /// `Default (1)`, or `1` for a channel not in the list.
    #[must_use]
    pub fn channel(&self, id: i64) -> String {
        named(self.channels.iter().find(|c| c.id == id).map(|c| c.name.as_str()), id)
    }

    fn technician_list(&self, ids: &[i64]) -> String {
        list(ids.iter().map(|&id| self.technician(id)))
    }
}

fn named(name: Option<&str>, id: i64) -> String {
    name.map_or_else(|| id.to_string(), |name| format!("{name} ({id})"))
}

/// Items separated by commas, or `-`.
fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() { NOTHING.into() } else { items.join(", ") }
}

fn or_nothing(text: &str) -> String {
    if text.is_empty() { NOTHING.into() } else { text.to_owned() }
}

/// Where an account stands: `active`, `disabled`, or `must change password` (signed in
/// with a one-time password it may only set its own).
#[must_use]
pub fn technician_status(t: &TechnicianView) -> &'static str {
    if t.disabled {
        "disabled"
    } else if t.must_change_password {
        "must change password"
    } else if t.second_factor_required {
        "must set up a second factor"
    } else if t.second_factor {
        "active, second factor"
    } else {
        "active"
    }
}

/// The relay-wide settings, one per line.
#[must_use]
pub fn settings(s: &Settings) -> String {
    let second = if s.require_second_factor { "required of every technician" } else { "each technician's choice" };
    format!("organisation: {}\nsecond factor: {second}", s.organisation)
}

/// What an authenticator app needs: the QR code drawn in the terminal, the secret for typing,
/// the URI.
pub fn enrolment(e: &SecondFactorEnrolment) -> anyhow::Result<String> {
    let qr = qrcode::QrCode::new(e.uri.as_bytes())?;
    let drawn = qr.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build();
    Ok(format!(
        "Scan this with an authenticator app (or type the secret in it):\n\n{drawn}\n\nsecret: {}\nuri: {}",
        e.secret, e.uri
    ))
}

/// Recovery codes, with what they are for.
#[must_use]
pub fn recovery_codes(codes: &[String]) -> String {
    format!(
        "Recovery codes — keep them somewhere safe; each signs in once if the authenticator app is lost:\n{}",
        codes.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n")
    )
}

/// The technicians as a table.
#[must_use]
pub fn technician_table(technicians: &[TechnicianView]) -> String {
    let rows: Vec<Vec<String>> = technicians
        .iter()
        .map(|t| {
            vec![t.id.to_string(), t.username.clone(), or_nothing(&t.display_name), t.role.as_str().into(), technician_status(t).into()]
        })
        .collect();
    render(&["ID", "USERNAME", "NAME", "ROLE", "STATUS"], &rows)
}

/// The channels as a table, members by name.
#[must_use]
pub fn channel_table(channels: &[ChannelView], names: &Names<'_>) -> String {
    let rows: Vec<Vec<String>> = channels
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.name.clone(),
                c.session_expiry_secs.to_string(),
                c.consent_timeout_secs.to_string(),
                (c.max_file_bytes / (1024 * 1024)).to_string(),
                if c.record_sessions { format!("{} days", c.recording_retention_days) } else { "no".into() },
                names.technician_list(&c.member_ids),
            ]
        })
        .collect();
    render(&["ID", "NAME", "EXPIRY(S)", "CONSENT(S)", "FILES(MB)", "RECORDED", "MEMBERS"], &rows)
}

/// A session's recordings as a table.
#[must_use]
pub fn recording_table(recordings: &[deskline_api::RecordingView]) -> String {
    let rows: Vec<Vec<String>> = recordings
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.started_at.clone(),
                if r.ended_at.is_some() { format!("{:.1} s", r.duration_ms as f64 / 1000.0) } else { "recording".into() },
                format!("{}x{}", r.width, r.height),
                r.bytes.to_string(),
            ]
        })
        .collect();
    render(&["ID", "STARTED", "LENGTH", "SIZE", "BYTES"], &rows)
}

/// A recording's timed log, one line per entry (text escaped: a terminal has no markup, but
/// control characters would move the cursor).
#[must_use]
pub fn recording_log(log: &[deskline_api::RecordingLogLine]) -> String {
    let rows: Vec<Vec<String>> = log
        .iter()
        .map(|l| vec![format!("{:.1}", l.t_ms as f64 / 1000.0), l.kind.clone(), l.text.escape_debug().to_string()])
        .collect();
    render(&["AT(S)", "KIND", "WHAT"], &rows)
}

/// The sessions as a table: channel and technicians by name.
#[must_use]
pub fn session_table(sessions: &[SessionView], names: &Names<'_>) -> String {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                names.channel(s.channel_id),
                s.state.clone(),
                s.kind.clone(),
                s.pin.clone().or_else(|| s.link.clone()).unwrap_or_else(|| NOTHING.into()),
                s.assigned_technician_id.map_or_else(|| NOTHING.into(), |id| names.technician(id)),
                names.technician_list(&s.invited_technician_ids),
                or_nothing(&s.name),
            ]
        })
        .collect();
    render(&["ID", "CHANNEL", "STATE", "KIND", "CODE", "ASSIGNED", "INVITED", "NAME"], &rows)
}

/// How the end user joins: `PIN 123456`, `link https://…`, or `-` once the session is over.
#[must_use]
pub fn session_code(s: &SessionView) -> String {
    match (&s.pin, &s.link) {
        (Some(pin), _) => format!("PIN {pin}"),
        (None, Some(link)) => format!("link {link}"),
        (None, None) => NOTHING.into(),
    }
}

/// One session as labelled rows (a label left empty continues the row above).
#[must_use]
pub fn session_rows(s: &SessionView, names: &Names<'_>) -> Vec<(&'static str, String)> {
    let state = if s.deleted { format!("{} (deleted)", s.state) } else { s.state.clone() };
    let mut rows = vec![
        ("id", s.id.to_string()),
        ("name", or_nothing(&s.name)),
        ("channel", names.channel(s.channel_id)),
        ("kind", s.kind.clone()),
        ("state", state),
        ("code", session_code(s)),
        ("assigned", s.assigned_technician_id.map_or_else(|| NOTHING.into(), |id| names.technician(id))),
        ("invited", names.technician_list(&s.invited_technician_ids)),
    ];
    for (i, line) in consent(&s.consent, names).into_iter().enumerate() {
        rows.push((if i == 0 { "consent" } else { "" }, line));
    }
    rows.extend(computer(s.agent.as_ref()));
    rows.extend(machine(s.machine.as_ref()));
    rows.push(("created", s.created_at.clone()));
    rows.push(("expires", s.expires_at.clone()));
    rows
}

/// Where values start in [`session_detail`]: past the longest label (`support app:`), fixed
/// so that every session's rows line up the same way.
const LABEL_WIDTH: usize = 14;

/// [`session_rows`] as text, values aligned.
#[must_use]
pub fn session_detail(s: &SessionView, names: &Names<'_>) -> String {
    let lines: Vec<String> = session_rows(s, names)
        .iter()
        .map(|(label, value)| {
            let label = if label.is_empty() { String::new() } else { format!("{label}:") };
            format!("{label:<LABEL_WIDTH$}{value}")
        })
        .collect();
    lines.join("\n")
}

/// Where consent stands, in words: what waits for the end user's answer, then what they
/// allowed whom — `pending: view and control asked by alice, until …`,
/// `granted: view and control to alice; view to bob`, or `none`. One line each.
#[must_use]
pub fn consent(c: &ConsentView, names: &Names<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(p) = &c.pending {
        lines.push(format!("pending: {} asked by {}, until {}", p.capabilities, names.person(p.requested_by), p.deadline));
    }
    let grants: Vec<String> = c
        .grants
        .iter()
        .filter(|g| !g.capabilities.is_empty())
        .map(|g| format!("{} to {}", g.capabilities, names.person(g.technician_id)))
        .collect();
    if !grants.is_empty() {
        // Suspended: the app dropped; what it allowed comes back only if the same app resumes.
        let word = if c.status == "suspended" { "suspended until the support app reconnects" } else { "granted" };
        lines.push(format!("{word}: {}", grants.join("; ")));
    }
    if lines.is_empty() {
        lines.push("none".into());
    }
    lines
}

/// The end user's computer as the support app reported it: host name, system, app version,
/// and its displays with their sizes.
#[must_use]
pub fn computer(agent: Option<&AppInfo>) -> Vec<(&'static str, String)> {
    let Some(info) = agent else {
        return vec![("computer", "no support app has connected yet".into())];
    };
    let displays = display_labels(&info.displays)
        .into_iter()
        .zip(&info.displays)
        .map(|((id, label), d)| if d.primary { format!("{id}: {label}, primary") } else { format!("{id}: {label}") })
        .collect::<Vec<_>>();
    vec![
        ("computer", format!("{} — {}", or_nothing(&info.host_name), or_nothing(&info.os))),
        ("support app", or_nothing(&info.app_version)),
        ("displays", if displays.is_empty() { "none reported".into() } else { displays.join("; ") }),
    ]
}

/// More about the end user's machine, when the support app reported it: who is signed in,
/// the processor, memory and when it started.
#[must_use]
pub fn machine(machine: Option<&deskline_api::MachineView>) -> Vec<(&'static str, String)> {
    let Some(m) = machine else { return Vec::new() };
    let threads = if m.cpu_threads > 0 { format!(" ({} threads)", m.cpu_threads) } else { String::new() };
    vec![
        ("user", or_nothing(&m.user_name)),
        ("processor", format!("{}{threads}", or_nothing(&m.cpu))),
        ("memory", memory(m.memory_bytes)),
        ("started", m.booted_at.clone()),
    ]
}

/// Installed memory as people say it: `16 GiB`, `7.7 GiB`, `512 MiB`.
#[must_use]
pub fn memory(bytes: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let gib = bytes as f64 / GIB;
    match bytes {
        0 => NOTHING.into(),
        _ if gib >= 10.0 || (gib - gib.round()).abs() < 0.05 => format!("{gib:.0} GiB"),
        _ if gib >= 1.0 => format!("{gib:.1} GiB"),
        _ => format!("{:.0} MiB", bytes as f64 / 1024.0 / 1024.0),
    }
}

/// Who acted: a technician by name, `support app` or `system`.
#[must_use]
pub fn actor(actor: &Actor, names: &Names<'_>) -> String {
    match actor {
        Actor::Technician(id) => names.technician(id.0),
        Actor::App | Actor::System => actor.to_string(),
    }
}

/// The action's name as the API spells it (`consent_decided`).
#[must_use]
pub fn action_name(action: &AuditAction) -> String {
    // The name is serde's tag: read it from there rather than spelling the list again.
    serde_json::to_value(action).ok().and_then(|v| v["action"].as_str().map(str::to_owned)).unwrap_or_else(|| "?".into())
}

/// The action's particulars in words (empty when it has none).
#[must_use]
pub fn action_detail(action: &AuditAction, names: &Names<'_>) -> String {
    let who = |id: deskline_protocol::TechnicianId| names.technician(id.0);
    match action {
        AuditAction::Created { channel, kind } => format!("{} session in {}", kind_word(*kind), names.channel(channel.0)),
        AuditAction::AppConnected { resumed: true } => "resumed".into(),
        AuditAction::AppConnected { resumed: false }
        | AuditAction::AppDisconnected
        | AuditAction::Closed
        | AuditAction::Deleted
        | AuditAction::Expired => String::new(),
        AuditAction::Assigned { technician, previous: None } => format!("to {}", who(*technician)),
        AuditAction::Assigned { technician, previous: Some(previous) } => {
            format!("to {}, from {}", who(*technician), who(*previous))
        }
        AuditAction::TransferredToTechnician { technician, previous } => format!("to {}, from {}", who(*technician), who(*previous)),
        AuditAction::TransferredToChannel { from, to } => format!("from {} to {}", names.channel(from.0), names.channel(to.0)),
        AuditAction::Invited { technician } | AuditAction::Uninvited { technician } | AuditAction::Released { technician } => {
            who(*technician)
        }
        // Request ids are random numbers that mean nothing to people (`--json` has them).
        AuditAction::RemoteRequested { capabilities, .. } => capabilities.to_string(),
        AuditAction::ConsentDecided { technician, outcome, .. } => {
            let to = technician.map(|t| format!(" to {}", who(t))).unwrap_or_default();
            let outcome = match outcome {
                ConsentOutcome::Granted(capabilities) => format!("granted {capabilities}"),
                ConsentOutcome::Denied => "denied".into(),
                ConsentOutcome::TimedOut => "timed out".into(),
            };
            format!("{outcome}{to}")
        }
        AuditAction::ConsentChanged { capabilities } => format!("now {capabilities}"),
        // Shown as the text it is: a terminal table has no markup to inject into, but control
        // characters would move the cursor, so they are shown escaped.
        AuditAction::Chat { text } => format!("\"{}\"", text.escape_debug()),
        AuditAction::Clipboard { bytes } => format!("{bytes} bytes of copied text"),
        AuditAction::File { name, bytes, sha256, outcome } => {
            let outcome = match outcome {
                FileOutcome::Saved => "saved",
                FileOutcome::Declined => "declined",
                FileOutcome::Failed => "not saved",
            };
            format!("\"{}\" ({bytes} bytes, SHA-256 {sha256}): {outcome}", name.escape_debug())
        }
        AuditAction::RecordingStarted { recording, width, height } => format!("recording {recording}, {width}x{height}"),
        AuditAction::RecordingViewed { recording } | AuditAction::RecordingDeleted { recording } => format!("recording {recording}"),
    }
}

fn kind_word(kind: deskline_protocol::session::SessionKind) -> &'static str {
    match kind {
        deskline_protocol::session::SessionKind::Link => "link",
        deskline_protocol::session::SessionKind::Pin => "PIN",
    }
}

/// A session's chat as a table: time, who, what (control characters shown escaped, so a line
/// cannot move the terminal's cursor).
#[must_use]
pub fn chat_table(lines: &[deskline_api::ChatMessageView]) -> String {
    if lines.is_empty() {
        return "no messages".into();
    }
    let rows: Vec<Vec<String>> =
        lines.iter().map(|m| vec![m.at.clone(), m.name.clone(), m.text.escape_debug().to_string()]).collect();
    crate::table::render(&["at", "from", "message"], &rows)
}

/// The audit trail as a table, actors by name.
#[must_use]
pub fn event_table(events: &[AuditEventView], names: &Names<'_>) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                actor(&e.actor, names),
                action_name(&e.action),
                format!("{} -> {}", e.from.as_deref().unwrap_or(NOTHING), e.to),
                action_detail(&e.action, names),
            ]
        })
        .collect();
    render(&["AT", "ACTOR", "ACTION", "STATE", "DETAIL"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskline_api::{GrantView, PendingView, Role};
    use deskline_protocol::{Capabilities, DisplayInfo, TechnicianId};

    fn technician(id: i64, username: &str) -> TechnicianView {
        TechnicianView {
            id,
            username: username.into(),
            display_name: String::new(),
            role: Role::Technician,
            must_change_password: false,
            disabled: false,
            second_factor: false,
            second_factor_required: false,
            created_at: "2025-01-01T00:00:00Z".into(),
        }
    }

    fn channel(id: i64, name: &str, member_ids: Vec<i64>) -> ChannelView {
        ChannelView {
            id,
            name: name.into(),
            session_expiry_secs: 86_400,
            consent_timeout_secs: 30,
            max_file_bytes: 2 * 1024 * 1024 * 1024,
            record_sessions: false,
            recording_retention_days: 30,
            member_ids,
            created_at: "2025-01-01T00:00:00Z".into(),
        }
    }

    fn no_consent() -> ConsentView {
        ConsentView { status: "none".into(), capabilities: Capabilities::NONE, grants: vec![], pending: None }
    }

    fn session() -> SessionView {
        SessionView {
            id: 7,
            channel_id: 1,
            kind: "pin".into(),
            name: "VPN".into(),
            state: "active".into(),
            deleted: false,
            link: None,
            pin: Some("123456".into()),
            assigned_technician_id: Some(2),
            invited_technician_ids: vec![3, 9],
            agent: None,
            machine: None,
            consent: no_consent(),
            created_at: "2025-01-01T10:00:00Z".into(),
            updated_at: "2025-01-01T10:00:00Z".into(),
            expires_at: "2025-01-02T10:00:00Z".into(),
        }
    }

    #[test]
    fn ids_are_shown_with_names_when_known_and_alone_otherwise() {
        let technicians = [technician(2, "alice"), technician(3, "bob")];
        let channels = [channel(1, "Default", vec![2, 3])];
        let names = Names::new(&technicians, &channels);
        assert_eq!(names.technician(2), "alice (2)");
        assert_eq!(names.technician(9), "9");
        assert_eq!(names.person(9), "technician 9");
        assert_eq!(names.channel(1), "Default (1)");
        assert_eq!(names.channel(4), "4", "a channel the caller cannot see");
        let table = session_table(&[session()], &names);
        let row = table.lines().nth(1).unwrap();
        assert!(row.contains("Default (1)") && row.contains("alice (2)") && row.contains("bob (3), 9"), "{table}");
        let table = channel_table(&channels, &names);
        assert!(table.lines().nth(1).unwrap().ends_with("alice (2), bob (3)"), "{table}");
    }

    #[test]
    fn technicians_show_where_their_account_stands() {
        let mut disabled = technician(3, "bob");
        disabled.disabled = true;
        let mut new = technician(4, "carol");
        new.must_change_password = true;
        let table = technician_table(&[technician(2, "alice"), disabled, new]);
        let statuses: Vec<&str> = table.lines().skip(1).map(|l| l.split("technician").nth(1).unwrap().trim()).collect();
        assert_eq!(statuses, ["active", "disabled", "must change password"]);
    }

    #[test]
    fn consent_reads_as_a_sentence() {
        let technicians = [technician(2, "alice"), technician(3, "bob")];
        let names = Names::new(&technicians, &[]);
        assert_eq!(consent(&no_consent(), &names), ["none"]);
        let grant = |id, capabilities| GrantView { technician_id: id, capabilities };
        let granted = ConsentView {
            status: "granted".into(),
            capabilities: Capabilities::VIEW_AND_CONTROL,
            grants: vec![grant(2, Capabilities::VIEW_AND_CONTROL), grant(3, Capabilities::VIEW)],
            pending: None,
        };
        assert_eq!(consent(&granted, &names), ["granted: view and control to alice; view to bob"]);
        let pending = ConsentView {
            status: "pending".into(),
            capabilities: Capabilities::VIEW_AND_CONTROL,
            grants: vec![grant(3, Capabilities::VIEW)],
            pending: Some(PendingView { requested_by: 2, capabilities: Capabilities::VIEW_AND_CONTROL, deadline: "T".into() }),
        };
        assert_eq!(consent(&pending, &names), ["pending: view and control asked by alice, until T", "granted: view to bob"]);
        let suspended = ConsentView { status: "suspended".into(), ..granted };
        assert!(consent(&suspended, &names)[0].starts_with("suspended until the support app reconnects: view and control"));
    }

    #[test]
    fn a_session_shows_its_computer_and_consent_in_rows() {
        let technicians = [technician(2, "alice")];
        let channels = [channel(1, "Default", vec![2])];
        let names = Names::new(&technicians, &channels);
        let mut s = session();
        let text = session_detail(&s, &names);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"channel:      Default (1)"), "{text}");
        assert!(lines.contains(&"code:         PIN 123456"), "{text}");
        assert!(lines.contains(&"consent:      none"), "{text}");
        assert!(lines.contains(&"computer:     no support app has connected yet"), "{text}");
        s.agent = Some(AppInfo {
            os: "Debian GNU/Linux 12".into(),
            host_name: "reception-pc".into(),
            app_version: "0.1.0".into(),
            displays: vec![
                DisplayInfo { id: 0, name: "eDP-1".into(), width: 1920, height: 1080, primary: true },
                DisplayInfo { id: 1, name: "HDMI-1".into(), width: 1280, height: 720, primary: false },
            ],
        });
        let rows = session_rows(&s, &names);
        let row = |label: &str| rows.iter().find(|(l, _)| *l == label).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(row("computer"), "reception-pc — Debian GNU/Linux 12");
        assert!(!text.contains("processor"), "no machine facts reported: no rows");
        s.machine = Some(deskline_api::MachineView {
            user_name: "OFFICE\\ada".into(),
            cpu: "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz".into(),
            cpu_threads: 8,
            memory_bytes: 8_264_876_032,
            booted_at: "2026-11-30T07:58:00Z".into(),
        });
        let text = session_detail(&s, &names);
        let row = |label: &str| text.lines().find(|l| l.starts_with(&format!("{label}:"))).map(|l| l[LABEL_WIDTH..].to_owned()).unwrap_or_default();
        assert_eq!(row("user"), "OFFICE\\ada");
        assert_eq!(row("processor"), "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz (8 threads)");
        assert_eq!(row("memory"), "7.7 GiB");
        assert_eq!(row("started"), "2026-11-30T07:58:00Z");
        assert_eq!((memory(16 * 1024 * 1024 * 1024), memory(512 * 1024 * 1024), memory(0)), ("16 GiB".into(), "512 MiB".into(), NOTHING.into()));
        assert_eq!(row("support app"), "0.1.0");
        assert_eq!(row("displays"), "0: eDP-1 (1920×1080), primary; 1: HDMI-1 (1280×720)");
    }

    #[test]
    fn audit_events_name_their_actors_and_particulars() {
        let technicians = [technician(2, "alice")];
        let names = Names::new(&technicians, &[]);
        let decided = AuditEventView {
            session_id: 7,
            at: "T".into(),
            actor: Actor::App,
            action: AuditAction::ConsentDecided {
                request_id: 1,
                technician: Some(TechnicianId(2)),
                outcome: ConsentOutcome::Granted(Capabilities::VIEW),
            },
            from: Some("active".into()),
            to: "active".into(),
        };
        let invited = AuditEventView {
            actor: Actor::Technician(TechnicianId(2)),
            action: AuditAction::Invited { technician: TechnicianId(5) },
            ..decided.clone()
        };
        let table = event_table(&[decided, invited], &names);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].contains("support app") && lines[1].contains("consent_decided"), "{table}");
        assert!(lines[1].ends_with("granted view to alice (2)"), "{table}");
        assert!(lines[2].contains("alice (2)") && lines[2].contains("invited") && lines[2].ends_with("5"), "{table}");
    }
}
