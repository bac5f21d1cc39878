//! State machine tests: the full state × action table, then the rules one by one.

use super::machine::*;
use super::*;
use crate::limits::MAX_OPEN_SESSIONS_PER_TECHNICIAN;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const CHANNEL: ChannelId = ChannelId(10);
const OTHER_CHANNEL: ChannelId = ChannelId(11);
/// Assigned in the fixtures, and the acting technician.
const ALICE: TechnicianId = TechnicianId(1);
/// A member of the channel, not on the session.
const BOB: TechnicianId = TechnicianId(2);
/// A member, invited in some fixtures.
const CAROL: TechnicianId = TechnicianId(3);
const DAN: TechnicianId = TechnicianId(4);
/// Not a member of any channel.
const MALLORY: TechnicianId = TechnicianId(9);
/// An admin who is not a member of the channel.
const ADMIN: TechnicianId = TechnicianId(100);

const CREATED: Timestamp = Timestamp(1_000_000);
const NOW: Timestamp = Timestamp(2_000_000);
const EXPIRES: Timestamp = Timestamp(5_000_000);
const AFTER_EXPIRY: Timestamp = Timestamp(6_000_000);

#[derive(Default)]
struct TestDirectory {
    members: HashSet<(ChannelId, TechnicianId)>,
    admins: HashSet<TechnicianId>,
    open: HashMap<TechnicianId, usize>,
}

impl Directory for TestDirectory {
    fn is_admin(&self, t: TechnicianId) -> bool {
        self.admins.contains(&t)
    }
    fn is_member(&self, c: ChannelId, t: TechnicianId) -> bool {
        self.members.contains(&(c, t))
    }
    fn open_sessions_assigned(&self, t: TechnicianId) -> usize {
        self.open.get(&t).copied().unwrap_or(0)
    }
}

fn directory() -> TestDirectory {
    let mut d = TestDirectory::default();
    for t in [ALICE, BOB, CAROL, DAN] {
        d.members.insert((CHANNEL, t));
    }
    d.members.insert((OTHER_CHANNEL, BOB));
    d.admins.insert(ADMIN);
    d
}

fn base(state: SessionState) -> Session {
    Session {
        id: SessionId(77),
        channel: CHANNEL,
        kind: SessionKind::Pin,
        state,
        assigned: Some(ALICE),
        invited: vec![],
        consent: Consent::NONE,
        deleted: false,
        created_at: CREATED,
        updated_at: CREATED,
        expires_at: EXPIRES,
    }
}

fn pending() -> Consent {
    Consent {
        pending: Some(PendingConsent {
            request_id: 1,
            requested_by: ALICE,
            capabilities: Capabilities::VIEW_AND_CONTROL,
            deadline: Timestamp(NOW.0 + 30_000),
        }),
        ..Consent::NONE
    }
}

fn granted_by(technician: TechnicianId, capabilities: Capabilities) -> Consent {
    Consent { grants: vec![Grant { technician, capabilities }], ..Consent::NONE }
}

fn granted(capabilities: Capabilities) -> Consent {
    granted_by(ALICE, capabilities)
}

/// The fixtures: every state, with the variations of owner and consent that change outcomes.
fn fixtures() -> Vec<(&'static str, Session)> {
    let waiting_unassigned = Session { assigned: None, ..base(SessionState::Waiting) };
    let active_pending = Session { consent: pending(), ..base(SessionState::Active) };
    let active_granted = Session { consent: granted(Capabilities::VIEW_AND_CONTROL), ..base(SessionState::Active) };
    let in_queue = Session { assigned: None, ..base(SessionState::InQueue) };
    let deleted = Session { deleted: true, ..base(SessionState::Closed) };
    vec![
        ("waiting, unassigned", waiting_unassigned),
        ("waiting, assigned", base(SessionState::Waiting)),
        ("active", base(SessionState::Active)),
        ("active, consent pending", active_pending),
        ("active, consent granted", active_granted),
        ("in_queue", in_queue),
        ("expired", base(SessionState::Expired)),
        ("closed", base(SessionState::Closed)),
        ("deleted", deleted),
    ]
}

/// The actions, each with the actor that normally performs it.
fn actions() -> Vec<(&'static str, Action, Actor)> {
    let tech = Actor::Technician(ALICE);
    vec![
        ("app connected", Action::AppConnected { resumed: false }, Actor::App),
        ("app disconnected", Action::AppDisconnected, Actor::App),
        ("assign", Action::Assign { technician: BOB }, tech),
        ("transfer to technician", Action::TransferToTechnician { technician: BOB }, tech),
        ("transfer to channel", Action::TransferToChannel { channel: OTHER_CHANNEL }, tech),
        ("invite", Action::Invite { technician: BOB }, tech),
        ("release", Action::Release, tech),
        (
            "start remote",
            Action::StartRemote { request_id: 2, capabilities: Capabilities::VIEW_AND_CONTROL, timeout: Duration::from_secs(30) },
            tech,
        ),
        (
            "consent decided",
            Action::ConsentDecided { request_id: 1, outcome: ConsentOutcome::Granted(Capabilities::VIEW_AND_CONTROL) },
            Actor::App,
        ),
        ("consent changed", Action::ConsentChanged { capabilities: Capabilities::VIEW }, Actor::App),
        ("close", Action::Close, tech),
        ("delete", Action::Delete, tech),
        ("expiry tick", Action::ExpiryTick, Actor::System),
    ]
}

use SessionState::{Active as A, Closed as C, Expired as E, InQueue as Q, Waiting as W};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    To(SessionState),
    No(Refusal),
}
use Outcome::{No, To};

/// Expected outcome of every action (columns, in the order of `actions()`) in every fixture
/// (rows, in the order of `fixtures()`). Written from DESIGN §2, not from the code.
#[rustfmt::skip]
fn table() -> Vec<[Outcome; 13]> {
    use Refusal::*;
    vec![
        // connect     disconnect             assign  xfer tech         xfer chan  invite  release          remote         decided                    changed            close  delete  tick
        /* waiting, unassigned */
        [To(Q), No(AppNotConnected), To(W), No(NotAssigned), To(W), No(NotOwner), No(NotAssigned), No(NotActive), No(UnknownConsentRequest), No(NothingGranted), To(C), To(C), To(E)],
        /* waiting, assigned */
        [To(A), No(AppNotConnected), To(W), To(W), To(W), To(W), To(W), No(NotActive), No(UnknownConsentRequest), No(NothingGranted), To(C), To(C), To(E)],
        /* active */
        [No(AppAlreadyConnected), To(W), To(A), To(A), To(Q), To(A), To(Q), To(A), No(UnknownConsentRequest), No(NothingGranted), To(C), To(C), To(E)],
        /* active, consent pending */
        [No(AppAlreadyConnected), To(W), To(A), To(A), To(Q), To(A), To(Q), No(ConsentAlreadyPending), To(A), No(NothingGranted), To(C), To(C), To(E)],
        /* active, consent granted */
        [No(AppAlreadyConnected), To(W), To(A), To(A), To(Q), To(A), To(Q), No(AlreadyGranted), No(UnknownConsentRequest), To(A), To(C), To(C), To(E)],
        /* in_queue */
        [No(AppAlreadyConnected), To(W), To(A), No(NotAssigned), To(Q), No(NotOwner), No(NotAssigned), No(NotActive), No(UnknownConsentRequest), No(NothingGranted), To(C), To(C), To(E)],
        /* expired */
        [No(Expired), No(Expired), No(Expired), No(Expired), No(Expired), No(Expired), No(Expired), No(Expired), No(Expired), No(Expired), To(C), To(E), No(Expired)],
        /* closed */
        [No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), No(AlreadyClosed), To(C), No(AlreadyClosed)],
        /* deleted */
        [No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted), No(Deleted)],
    ]
}

#[test]
fn every_state_and_action_has_the_designed_outcome() {
    let dir = directory();
    let fixtures = fixtures();
    let actions = actions();
    let table = table();
    assert_eq!(table.len(), fixtures.len());
    let mut checked = 0;
    for ((fixture_name, session), row) in fixtures.iter().zip(&table) {
        for ((action_name, action, actor), expected) in actions.iter().zip(row) {
            let now = if matches!(action, Action::ExpiryTick) { AFTER_EXPIRY } else { NOW };
            let ctx = Context { now, actor: *actor, directory: &dir };
            let got = match apply(session, action, &ctx) {
                Ok(t) => {
                    // Every allowed action records exactly what happened.
                    assert_eq!(t.event.session, session.id);
                    assert_eq!(t.event.at, now);
                    assert_eq!(t.event.actor, *actor);
                    assert_eq!(t.event.from, Some(session.state));
                    assert_eq!(t.event.to, t.session.state);
                    assert_eq!(t.session.updated_at, now);
                    assert!(t.session.technicians().count() <= crate::limits::MAX_TECHNICIANS_PER_SESSION);
                    To(t.session.state)
                }
                Err(r) => No(r),
            };
            assert_eq!(got, *expected, "{fixture_name} × {action_name}");
            checked += 1;
        }
    }
    assert_eq!(checked, SessionState::ALL.len().max(9) * 13);
}

#[test]
fn every_state_is_covered_by_the_table() {
    let states: HashSet<SessionState> = fixtures().iter().map(|(_, s)| s.state).collect();
    assert_eq!(states.len(), SessionState::ALL.len());
}

fn ctx<'a>(dir: &'a TestDirectory, actor: Actor) -> Context<'a> {
    Context { now: NOW, actor, directory: dir }
}

#[test]
fn create_assigns_the_creator_and_sets_expiry() {
    let dir = directory();
    let new = NewSession { id: SessionId(1), channel: CHANNEL, kind: SessionKind::Link, expiry: Duration::from_secs(3600) };
    let t = create(new, &ctx(&dir, Actor::Technician(BOB))).unwrap();
    assert_eq!(t.session.state, SessionState::Waiting);
    assert_eq!(t.session.assigned, Some(BOB));
    assert_eq!(t.session.expires_at, Timestamp(NOW.0 + 3_600_000));
    assert_eq!(t.event.from, None);
    assert_eq!(t.event.action, AuditAction::Created { channel: CHANNEL, kind: SessionKind::Link });
}

#[test]
fn create_is_refused_outside_ones_channels_and_past_the_open_session_limit() {
    let mut dir = directory();
    let new = NewSession { id: SessionId(1), channel: CHANNEL, kind: SessionKind::Pin, expiry: Duration::from_secs(60) };
    assert_eq!(create(new, &ctx(&dir, Actor::Technician(MALLORY))).unwrap_err(), Refusal::NotAMember);
    assert_eq!(create(new, &ctx(&dir, Actor::App)).unwrap_err(), Refusal::WrongActor(Actor::App));
    assert!(create(new, &ctx(&dir, Actor::Technician(ADMIN))).is_ok(), "admins work in every channel");
    dir.open.insert(BOB, MAX_OPEN_SESSIONS_PER_TECHNICIAN);
    assert_eq!(create(new, &ctx(&dir, Actor::Technician(BOB))).unwrap_err(), Refusal::TooManyOpenSessions);
}

#[test]
fn a_fourth_technician_is_refused() {
    let dir = directory();
    let tech = ctx(&dir, Actor::Technician(ALICE));
    let s = base(SessionState::Active);
    let s = invite(&s, &tech, BOB).unwrap().session;
    let s = invite(&s, &tech, CAROL).unwrap().session;
    assert_eq!(s.technicians().collect::<Vec<_>>(), vec![ALICE, BOB, CAROL]);
    assert_eq!(invite(&s, &tech, DAN).unwrap_err(), Refusal::TooManyTechnicians);
    assert_eq!(Refusal::TooManyTechnicians.code(), "too_many_technicians");
    assert_eq!(invite(&s, &tech, BOB).unwrap_err(), Refusal::AlreadyOnSession);
    assert_eq!(invite(&s, &tech, ALICE).unwrap_err(), Refusal::AlreadyOnSession);
    // Without an owner there is still room for only two invited technicians (and only an
    // admin may invite then).
    let released = release(&s, &tech).unwrap().session;
    assert_eq!(released.state, SessionState::InQueue);
    assert_eq!(invite(&released, &ctx(&dir, Actor::Technician(ADMIN)), DAN).unwrap_err(), Refusal::TooManyTechnicians);
}

#[test]
fn membership_is_enforced_for_actor_and_target() {
    let dir = directory();
    let s = base(SessionState::Active);
    let outsider = ctx(&dir, Actor::Technician(MALLORY));
    for action in [Action::Assign { technician: MALLORY }, Action::Release, Action::Close, Action::Delete] {
        assert_eq!(apply(&s, &action, &outsider).unwrap_err(), Refusal::NotAMember, "{action:?}");
    }
    let tech = ctx(&dir, Actor::Technician(ALICE));
    assert_eq!(assign(&s, &tech, MALLORY).unwrap_err(), Refusal::TargetNotAMember);
    assert_eq!(invite(&s, &tech, MALLORY).unwrap_err(), Refusal::TargetNotAMember);
    assert_eq!(transfer_to_technician(&s, &tech, MALLORY).unwrap_err(), Refusal::TargetNotAMember);
    assert_eq!(assign(&s, &tech, ALICE).unwrap_err(), Refusal::AlreadyAssigned);
    assert_eq!(Refusal::NotAMember.kind(), RefusalKind::Forbidden);
}

#[test]
fn apps_and_technicians_cannot_do_each_others_actions() {
    let dir = directory();
    let s = Session { consent: pending(), ..base(SessionState::Active) };
    let tech = ctx(&dir, Actor::Technician(ALICE));
    let decided = Action::ConsentDecided { request_id: 1, outcome: ConsentOutcome::Granted(Capabilities::VIEW) };
    assert_eq!(apply(&s, &decided, &tech).unwrap_err(), Refusal::WrongActor(Actor::Technician(ALICE)));
    assert_eq!(apply(&s, &Action::AppDisconnected, &tech).unwrap_err(), Refusal::WrongActor(Actor::Technician(ALICE)));
    assert_eq!(apply(&s, &Action::Close, &ctx(&dir, Actor::App)).unwrap_err(), Refusal::WrongActor(Actor::App));
    assert_eq!(apply(&s, &Action::ExpiryTick, &tech).unwrap_err(), Refusal::WrongActor(Actor::Technician(ALICE)));
}

/// Found by the state machine's fuzz target (fuzz/fuzz_targets/session_machine.rs): the system
/// could answer a consent request with a grant. Only the app answers; the system only says the
/// time ran out.
#[test]
fn only_the_app_grants_and_the_system_only_times_out() {
    let dir = directory();
    let s = Session { consent: pending(), ..base(SessionState::Active) };
    let system = ctx(&dir, Actor::System);
    for outcome in [ConsentOutcome::Granted(Capabilities::VIEW), ConsentOutcome::Denied] {
        let decided = Action::ConsentDecided { request_id: 1, outcome };
        assert_eq!(apply(&s, &decided, &system).unwrap_err(), Refusal::WrongActor(Actor::System), "{outcome:?}");
    }
    let timed_out = Action::ConsentDecided { request_id: 1, outcome: ConsentOutcome::TimedOut };
    assert!(apply(&s, &timed_out, &system).unwrap().session.consent.grants.is_empty());
    let granted = Action::ConsentDecided { request_id: 1, outcome: ConsentOutcome::Granted(Capabilities::VIEW) };
    assert!(apply(&s, &granted, &ctx(&dir, Actor::App)).unwrap().session.consent.any_granted());
}

#[test]
fn consent_grant_is_limited_to_the_request_and_an_empty_grant_is_a_denial() {
    let dir = directory();
    let app = ctx(&dir, Actor::App);
    let asked_view = Session {
        consent: Consent {
            pending: Some(PendingConsent { request_id: 5, requested_by: ALICE, capabilities: Capabilities::VIEW, deadline: NOW }),
            ..Consent::NONE
        },
        ..base(SessionState::Active)
    };
    let t = consent_decided(&asked_view, &app, 5, ConsentOutcome::Granted(Capabilities::VIEW_AND_CONTROL)).unwrap();
    assert_eq!(t.session.consent.granted_to(ALICE), Capabilities::VIEW, "the app cannot grant more than asked");
    let t = consent_decided(&asked_view, &app, 5, ConsentOutcome::Granted(Capabilities::NONE)).unwrap();
    assert_eq!(t.session.consent, Consent::NONE);
    assert_eq!(t.event.action, AuditAction::ConsentDecided { request_id: 5, technician: Some(ALICE), outcome: ConsentOutcome::Denied });
    assert_eq!(consent_decided(&asked_view, &app, 6, ConsentOutcome::Denied).unwrap_err(), Refusal::UnknownConsentRequest);
    // The relay times requests out itself.
    let t = consent_decided(&asked_view, &ctx(&dir, Actor::System), 5, ConsentOutcome::TimedOut).unwrap();
    assert_eq!(t.session.consent, Consent::NONE);
}

#[test]
fn start_remote_rules() {
    let dir = directory();
    let s = Session { invited: vec![CAROL], ..base(SessionState::Active) };
    let timeout = Duration::from_secs(30);
    let bob = ctx(&dir, Actor::Technician(BOB));
    assert_eq!(start_remote(&s, &bob, 1, Capabilities::VIEW, timeout).unwrap_err(), Refusal::NotOnSession);
    let carol = ctx(&dir, Actor::Technician(CAROL));
    let t = start_remote(&s, &carol, 1, Capabilities::VIEW, timeout).unwrap();
    assert_eq!(consent_deadline(&t.session), Some(Timestamp(NOW.0 + 30_000)));
    assert_eq!(t.session.consent.pending.map(|p| p.requested_by), Some(CAROL));
    assert_eq!(start_remote(&s, &carol, 1, Capabilities::NONE, timeout).unwrap_err(), Refusal::NothingRequested);
    // View granted: asking for control as well is a new request; asking for view again is not.
    let viewing = Session { consent: granted(Capabilities::VIEW), ..s.clone() };
    let alice = ctx(&dir, Actor::Technician(ALICE));
    assert_eq!(start_remote(&viewing, &alice, 2, Capabilities::VIEW, timeout).unwrap_err(), Refusal::AlreadyGranted);
    assert!(start_remote(&viewing, &alice, 2, Capabilities::VIEW_AND_CONTROL, timeout).is_ok());
}

#[test]
fn withdrawing_consent_only_shrinks_it() {
    let dir = directory();
    let app = ctx(&dir, Actor::App);
    let s = Session { consent: granted(Capabilities::VIEW), ..base(SessionState::Active) };
    let t = consent_changed(&s, &app, Capabilities::VIEW_AND_CONTROL).unwrap();
    assert_eq!(t.session.consent.granted_to(ALICE), Capabilities::VIEW, "a change cannot add control");
    let t = consent_changed(&s, &app, Capabilities::NONE).unwrap();
    assert_eq!(t.session.consent, Consent::NONE);
}

#[test]
fn consent_follows_the_technician_it_was_given_to() {
    let dir = directory();
    let tech = ctx(&dir, Actor::Technician(ALICE));
    let s = Session { consent: granted(Capabilities::VIEW_AND_CONTROL), invited: vec![CAROL], ..base(SessionState::Active) };
    // Alice hands over: her grant goes with her.
    assert_eq!(transfer_to_technician(&s, &tech, BOB).unwrap().session.consent, Consent::NONE);
    assert_eq!(release(&s, &tech).unwrap().session.consent, Consent::NONE);
    assert_eq!(transfer_to_channel(&s, &tech, OTHER_CHANNEL).unwrap().session.consent, Consent::NONE);
    // Carol's grant survives Alice leaving, since Carol stays.
    let carols = Session { consent: granted_by(CAROL, Capabilities::VIEW), ..s.clone() };
    let t = assign(&carols, &tech, BOB).unwrap();
    assert_eq!(t.session.consent.granted_to(CAROL), Capabilities::VIEW);
    assert_eq!(t.session.consent.granted_to(BOB), Capabilities::NONE, "the new owner asks for themself");
    assert_eq!(t.session.technicians().collect::<Vec<_>>(), vec![BOB, CAROL]);
    // Assigning an invited technician moves them to owner instead of counting them twice.
    let t = assign(&s, &tech, CAROL).unwrap();
    assert_eq!(t.session.assigned, Some(CAROL));
    assert!(t.session.invited.is_empty());
}

#[test]
fn transfer_to_channel_empties_the_session_and_queues_it() {
    let dir = directory();
    let tech = ctx(&dir, Actor::Technician(ALICE));
    let s = Session { invited: vec![CAROL], ..base(SessionState::Active) };
    let t = transfer_to_channel(&s, &tech, OTHER_CHANNEL).unwrap();
    assert_eq!(t.session.channel, OTHER_CHANNEL);
    assert_eq!(t.session.state, SessionState::InQueue);
    assert_eq!(t.session.technicians().count(), 0);
    assert_eq!(t.event.action, AuditAction::TransferredToChannel { from: CHANNEL, to: OTHER_CHANNEL });
    assert_eq!(transfer_to_channel(&s, &tech, CHANNEL).unwrap_err(), Refusal::SameChannel);
    // Alice is not a member of the new channel: she can no longer act on it; Bob can.
    assert_eq!(release(&t.session, &tech).unwrap_err(), Refusal::NotAMember);
    let bob = ctx(&dir, Actor::Technician(BOB));
    assert_eq!(assign(&t.session, &bob, BOB).unwrap().session.state, SessionState::Active);
}

#[test]
fn reconnect_keeps_consent_only_when_resumed() {
    let dir = directory();
    let app = ctx(&dir, Actor::App);
    let s = Session { consent: granted(Capabilities::VIEW_AND_CONTROL), ..base(SessionState::Active) };
    let dropped = app_disconnected(&s, &app).unwrap().session;
    assert_eq!(dropped.state, SessionState::Waiting);
    assert!(dropped.consent.suspended);
    assert_eq!(dropped.consent.granted_to(ALICE), Capabilities::NONE, "nothing flows while suspended");
    let resumed = app_connected(&dropped, &app, true).unwrap().session;
    assert_eq!(resumed.consent.granted_to(ALICE), Capabilities::VIEW_AND_CONTROL);
    let fresh = app_connected(&dropped, &app, false).unwrap().session;
    assert_eq!(fresh.consent, Consent::NONE);
    // A suspended grant whose technician left meanwhile is not restored.
    let released = release(&dropped, &ctx(&dir, Actor::Technician(ALICE))).unwrap().session;
    assert_eq!(app_connected(&released, &app, true).unwrap().session.consent, Consent::NONE);
    // A pending request does not survive a drop.
    let asking = Session { consent: pending(), ..base(SessionState::Active) };
    assert_eq!(app_disconnected(&asking, &app).unwrap().session.consent, Consent::NONE);
}

#[test]
fn expiry_is_decided_by_the_clock_passed_in() {
    let dir = directory();
    let s = base(SessionState::Waiting);
    let system_at = |now| Context { now, actor: Actor::System, directory: &dir };
    assert_eq!(expiry_tick(&s, &system_at(NOW)).unwrap_err(), Refusal::NotYetExpired);
    assert_eq!(expiry_tick(&s, &system_at(EXPIRES)).unwrap().session.state, SessionState::Expired);
    // An app presenting the code after the expiry time is refused even before the tick ran.
    let app_late = Context { now: EXPIRES, actor: Actor::App, directory: &dir };
    assert_eq!(app_connected(&s, &app_late, false).unwrap_err(), Refusal::Expired);
}

#[test]
fn delete_closes_a_live_session_and_keeps_its_end_state_otherwise() {
    let dir = directory();
    let tech = ctx(&dir, Actor::Technician(ALICE));
    let t = delete(&base(SessionState::Active), &tech).unwrap();
    assert!(t.session.deleted);
    assert_eq!(t.session.state, SessionState::Closed);
    assert_eq!(t.event.action, AuditAction::Deleted);
    assert_eq!(delete(&t.session, &tech).unwrap_err(), Refusal::Deleted);
    assert_eq!(Refusal::Deleted.kind(), RefusalKind::Gone);
}

#[test]
fn open_session_limit_applies_to_new_owners() {
    let mut dir = directory();
    dir.open.insert(BOB, MAX_OPEN_SESSIONS_PER_TECHNICIAN);
    let tech = ctx(&dir, Actor::Technician(ALICE));
    let s = base(SessionState::Active);
    assert_eq!(assign(&s, &tech, BOB).unwrap_err(), Refusal::TooManyOpenSessions);
    assert_eq!(transfer_to_technician(&s, &tech, BOB).unwrap_err(), Refusal::TooManyOpenSessions);
    assert!(invite(&s, &tech, BOB).is_ok(), "collaborating does not count as owning");
}

#[test]
fn audit_events_serialize_for_the_store() {
    let dir = directory();
    let t = invite(&base(SessionState::Active), &ctx(&dir, Actor::Technician(ALICE)), BOB).unwrap();
    let json = serde_json::to_value(&t.event).unwrap();
    assert_eq!(json["action"]["action"], "invited");
    assert_eq!(json["action"]["technician"], 2);
    assert_eq!(json["actor"]["kind"], "technician");
    assert_eq!(json["from"], "active");
    let back: AuditEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, t.event);
}

#[test]
fn consent_is_per_technician() {
    let dir = directory();
    let app = ctx(&dir, Actor::App);
    let timeout = Duration::from_secs(30);
    // Alice has view and control; Carol, invited later, has nothing until the end user says so.
    let s = Session { consent: granted(Capabilities::VIEW_AND_CONTROL), invited: vec![CAROL], ..base(SessionState::Active) };
    assert_eq!(s.consent.granted_to(CAROL), Capabilities::NONE);
    let carol = ctx(&dir, Actor::Technician(CAROL));
    let asked = start_remote(&s, &carol, 7, Capabilities::VIEW, timeout).unwrap().session;
    assert_eq!(asked.consent.pending.map(|p| p.requested_by), Some(CAROL));
    assert_eq!(asked.consent.granted_to(ALICE), Capabilities::VIEW_AND_CONTROL, "asking changes nobody's grant");
    // A denial for Carol leaves Alice's grant; a yes adds Carol's.
    let denied = consent_decided(&asked, &app, 7, ConsentOutcome::Denied).unwrap().session;
    assert_eq!(denied.consent.granted_to(CAROL), Capabilities::NONE);
    assert_eq!(denied.consent.granted_to(ALICE), Capabilities::VIEW_AND_CONTROL);
    let t = consent_decided(&asked, &app, 7, ConsentOutcome::Granted(Capabilities::VIEW)).unwrap();
    assert_eq!(t.event.action, AuditAction::ConsentDecided { request_id: 7, technician: Some(CAROL), outcome: ConsentOutcome::Granted(Capabilities::VIEW) });
    let both = t.session;
    assert_eq!(both.consent.granted_to(CAROL), Capabilities::VIEW);
    assert_eq!(both.consent.granted_to(ALICE), Capabilities::VIEW_AND_CONTROL);
    // Taking back control takes it from everyone; stopping sharing ends every grant.
    let viewing = consent_changed(&both, &app, Capabilities::VIEW).unwrap().session;
    assert_eq!(viewing.consent.granted_to(ALICE), Capabilities::VIEW);
    assert_eq!(viewing.consent.granted_to(CAROL), Capabilities::VIEW);
    let stopped = consent_changed(&both, &app, Capabilities::NONE).unwrap().session;
    assert!(!stopped.consent.any_granted());
    // A view grant asked again for control, and allowed as view only, stays view.
    let more = start_remote(&viewing, &carol, 8, Capabilities::VIEW_AND_CONTROL, timeout).unwrap().session;
    let t = consent_decided(&more, &app, 8, ConsentOutcome::Granted(Capabilities::VIEW)).unwrap();
    assert_eq!(t.session.consent.granted_to(CAROL), Capabilities::VIEW);
}

#[test]
fn only_the_owner_or_an_admin_invites() {
    let dir = directory();
    let s = Session { invited: vec![CAROL], ..base(SessionState::Active) };
    // A channel member who is not on the session cannot invite themself onto it.
    assert_eq!(invite(&s, &ctx(&dir, Actor::Technician(BOB)), BOB).unwrap_err(), Refusal::NotOwner);
    // An invited technician cannot bring a fourth person.
    assert_eq!(invite(&s, &ctx(&dir, Actor::Technician(CAROL)), DAN).unwrap_err(), Refusal::NotOwner);
    assert_eq!(Refusal::NotOwner.kind(), RefusalKind::Forbidden);
    assert!(invite(&s, &ctx(&dir, Actor::Technician(ALICE)), DAN).is_ok());
    assert!(invite(&s, &ctx(&dir, Actor::Technician(ADMIN)), BOB).is_ok());
}

#[test]
fn a_restarted_relay_reports_its_lost_apps_and_consent_stays_resumable() {
    let dir = directory();
    let s = Session { consent: granted(Capabilities::VIEW), ..base(SessionState::Active) };
    let t = app_disconnected(&s, &ctx(&dir, Actor::System)).unwrap();
    assert_eq!(t.session.state, SessionState::Waiting);
    assert!(t.session.consent.suspended);
    assert_eq!(t.event.actor, Actor::System);
    let resumed = app_connected(&t.session, &ctx(&dir, Actor::App), true).unwrap().session;
    assert_eq!(resumed.consent.granted_to(ALICE), Capabilities::VIEW);
}

#[test]
fn an_invited_technician_is_removed_by_the_owner_or_an_admin_or_leaves_with_their_consent() {
    let dir = directory();
    let s = Session { invited: vec![CAROL, DAN], ..base(SessionState::Active) };
    let carol = ctx(&dir, Actor::Technician(CAROL));
    let timeout = Duration::from_secs(30);
    // Carol asks and the end user allows her to view.
    let asked = start_remote(&s, &carol, 5, Capabilities::VIEW, timeout).unwrap().session;
    let allowed = consent_decided(&asked, &ctx(&dir, Actor::App), 5, ConsentOutcome::Granted(Capabilities::VIEW)).unwrap().session;
    assert_eq!(allowed.consent.granted_to(CAROL), Capabilities::VIEW);
    // Another invited technician cannot remove her; a member not on the session neither.
    assert_eq!(uninvite(&allowed, &ctx(&dir, Actor::Technician(DAN)), CAROL).unwrap_err(), Refusal::NotOwner);
    assert_eq!(uninvite(&allowed, &ctx(&dir, Actor::Technician(BOB)), CAROL).unwrap_err(), Refusal::NotOwner);
    // The owner removes her: she is off the session and her grant is gone with her.
    let t = uninvite(&allowed, &ctx(&dir, Actor::Technician(ALICE)), CAROL).unwrap();
    assert_eq!(t.session.invited, vec![DAN]);
    assert_eq!(t.session.consent.granted_to(CAROL), Capabilities::NONE);
    assert_eq!(t.session.state, SessionState::Active);
    assert_eq!(t.event.action, AuditAction::Uninvited { technician: CAROL });
    // Removing someone not invited (the owner included) is refused, and says why.
    assert_eq!(uninvite(&t.session, &ctx(&dir, Actor::Technician(ALICE)), CAROL).unwrap_err(), Refusal::NotInvited);
    assert_eq!(uninvite(&t.session, &ctx(&dir, Actor::Technician(ALICE)), ALICE).unwrap_err(), Refusal::NotInvited);
    // Dan leaves by himself; an admin may remove too.
    assert!(uninvite(&t.session, &ctx(&dir, Actor::Technician(DAN)), DAN).unwrap().session.invited.is_empty());
    assert!(uninvite(&t.session, &ctx(&dir, Actor::Technician(ADMIN)), DAN).is_ok());
    // Nothing changes on an ended session.
    let closed = Session { invited: vec![CAROL], ..base(SessionState::Closed) };
    assert!(uninvite(&closed, &ctx(&dir, Actor::Technician(ALICE)), CAROL).is_err());
}
