//! The session state machine under any sequence of actions, by any actor, at any time: never a
//! panic, and after every step the promises hold — a refused action changes nothing; an applied
//! one is audited from the old state to the new; nobody off the session holds a grant; a grant
//! only grows when the end user's app answers or resumes; at most the invited limit; a closed
//! session stays closed.
#![no_main]

use deskline_protocol::session::{self, Action, Actor, Context, Directory, Session, SessionKind, SessionState};
use deskline_protocol::session::machine::NewSession;
use deskline_protocol::limits::MAX_INVITED_TECHNICIANS;
use deskline_protocol::{Capabilities, ChannelId, ConsentOutcome, SessionId, TechnicianId, Timestamp};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

/// Technicians 1–5 work in channel 1, 4–6 in channel 2; 7 is an administrator; 8 is a stranger.
struct Desk;

impl Directory for Desk {
    fn is_admin(&self, t: TechnicianId) -> bool {
        t.0 == 7
    }
    fn is_member(&self, c: ChannelId, t: TechnicianId) -> bool {
        match c.0 {
            1 => (1..=5).contains(&t.0),
            2 => (4..=6).contains(&t.0),
            _ => false,
        }
    }
    fn open_sessions_assigned(&self, t: TechnicianId) -> usize {
        usize::from(t.0 == 5) * 10
    }
}

fn technician(u: &mut Unstructured<'_>) -> Result<TechnicianId> {
    Ok(TechnicianId(u.int_in_range(1..=8)?))
}

fn capabilities(u: &mut Unstructured<'_>) -> Result<Capabilities> {
    let every = [
        Capabilities::NONE,
        Capabilities::VIEW,
        Capabilities::VIEW.with_files(true),
        Capabilities::VIEW_AND_CONTROL,
        Capabilities::VIEW_AND_CONTROL.with_files(true),
        Capabilities::VIEW_AND_CONTROL.with_clipboard(true),
        Capabilities::ALL,
    ];
    Ok(*u.choose(&every)?)
}

fn actor(u: &mut Unstructured<'_>) -> Result<Actor> {
    Ok(match u.int_in_range(0..=4)? {
        0 => Actor::App,
        1 => Actor::System,
        _ => Actor::Technician(technician(u)?),
    })
}

fn action(u: &mut Unstructured<'_>, last_request: u64) -> Result<Action> {
    // Mostly the request last asked for, sometimes another.
    let request_id = if u.ratio(3, 4)? { last_request } else { u.int_in_range(0..=3)? };
    Ok(match u.int_in_range(0..=14)? {
        0 => Action::AppConnected { resumed: u.arbitrary()? },
        1 => Action::AppDisconnected,
        2 => Action::Assign { technician: technician(u)? },
        3 => Action::TransferToTechnician { technician: technician(u)? },
        4 => Action::TransferToChannel { channel: ChannelId(u.int_in_range(1..=3)?) },
        5 => Action::Invite { technician: technician(u)? },
        6 => Action::Uninvite { technician: technician(u)? },
        7 => Action::Release,
        8 | 9 => Action::StartRemote {
            request_id: u.int_in_range(0..=3)?,
            capabilities: capabilities(u)?,
            timeout: Duration::from_secs(u.int_in_range(0..=60)?),
        },
        10 | 11 => Action::ConsentDecided {
            request_id,
            outcome: match u.int_in_range(0..=2)? {
                0 => ConsentOutcome::Granted(capabilities(u)?),
                1 => ConsentOutcome::Denied,
                _ => ConsentOutcome::TimedOut,
            },
        },
        12 => Action::ConsentChanged { capabilities: capabilities(u)? },
        13 => if u.arbitrary()? { Action::Close } else { Action::Delete },
        _ => Action::ExpiryTick,
    })
}

fn on_session(s: &Session, t: TechnicianId) -> bool {
    s.assigned == Some(t) || s.invited.contains(&t)
}

fn check(before: &Session, action: &Action, actor: Actor, after: &Session) {
    assert!(after.invited.len() <= MAX_INVITED_TECHNICIANS, "{after:?}");
    for grant in &after.consent.grants {
        assert!(on_session(after, grant.technician), "a grant for someone off the session: {after:?}");
        assert!(!grant.capabilities.is_empty(), "an empty grant: {after:?}");
    }
    let answered = matches!(action, Action::ConsentDecided { .. }) && actor == Actor::App
        || matches!(action, Action::ConsentDecided { outcome: ConsentOutcome::TimedOut, .. })
        || matches!(action, Action::AppConnected { resumed: true });
    if !answered {
        for grant in after.consent.active_grants() {
            let had = before.consent.granted_to(grant.technician);
            assert!(had.covers(grant.capabilities), "{action:?} by {actor:?} widened a grant: {before:?} -> {after:?}");
        }
    }
    if before.state == SessionState::Closed {
        assert_eq!(after.state, SessionState::Closed, "{action:?} reopened a closed session");
    }
    if after.state == SessionState::Closed || after.state == SessionState::Expired {
        assert!(!after.consent.any_granted(), "an ended session still grants: {after:?}");
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let desk = Desk;
    let mut now = Timestamp(1_000_000);
    let creator = TechnicianId(u.int_in_range(1..=4)?);
    let ctx = Context { now, actor: Actor::Technician(creator), directory: &desk };
    let new = NewSession {
        id: SessionId(1),
        channel: ChannelId(1),
        kind: if u.arbitrary()? { SessionKind::Pin } else { SessionKind::Link },
        expiry: Duration::from_secs(u.int_in_range(1..=3600)?),
    };
    let mut session = session::create(new, &ctx).expect("a member creates a session").session;
    let mut last_request = 0;
    for _ in 0..u.int_in_range(1..=64)? {
        now = Timestamp(now.0 + i64::from(u.int_in_range(0u32..=120_000)?));
        let actor = actor(u)?;
        let action = action(u, last_request)?;
        if let Action::StartRemote { request_id, .. } = action {
            last_request = request_id;
        }
        let ctx = Context { now, actor, directory: &desk };
        if let Ok(t) = session::apply(&session, &action, &ctx) {
            assert_eq!(t.event.session, session.id);
            assert_eq!((t.event.from, t.event.to), (Some(session.state), t.session.state), "{action:?}");
            assert_eq!(t.event.actor, actor);
            check(&session, &action, actor, &t.session);
            session = t.session;
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
