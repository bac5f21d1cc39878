//! The consent chokepoint under random interleavings (issue 14's property test): technicians
//! ask, the end user's app grants, denies, takes back and drops and comes back, technicians
//! join, leave and hand control around, and frames, input and copied text flow meanwhile — all
//! through the relay's own paths (the desk and its store, the hub's refresh, the app's and the
//! viewers' message handlers, `forward_frame`). An oracle that knows only what the end user
//! answered checks that no frame reaches a technician, no input reaches the app, and no copied
//! text passes either way, without a grant in force.
//!
//! Real SQLite, a real QUIC connection for the app's link (its messages are read from its
//! queue); no network traffic is needed for the decisions themselves.

use super::hub::{AppLink, ViewerCarrier, app_gone, forward_frame};
use super::viewer::{Admitted, admit, handle_message as viewer_message};
use super::{Transport, WebRtcAddresses};
use crate::clock::ManualClock;
use crate::desk::{Desk, NewTechnician};
use crate::store::{Db, Role};
use bytes::Bytes;
use deskline_protocol::session::{Action, Actor, SessionKind};
use deskline_protocol::{
    Capabilities, ChannelId, ClipboardText, ConsentDecision, ConsentChanged, ConsentOutcome, ControlHandover, InputEvent, Message, SessionId,
    TechnicianId, Timestamp,
};
use proptest::prelude::*;
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Technicians 1 (an administrator), 2 and 3, all in the default channel.
const TECHNICIANS: u8 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// A technician starts a remote session (asks the end user): view, with control, with the
    /// clipboard too.
    Ask { by: u8, control: bool, clipboard: bool },
    /// The app answers the pending request: granted (view, or view and control) or denied.
    Answer { grant: Option<bool> },
    /// The end user takes back control (`true`) or stops sharing.
    Reduce { keep_view: bool },
    /// The app's connection drops.
    Drop,
    /// The app connects again: the same instance resuming, or a new one.
    Reconnect { resumed: bool },
    /// A technician action on the session, by `by`.
    Invite { by: u8, who: u8 },
    Uninvite { by: u8, who: u8 },
    Assign { by: u8, who: u8 },
    Release { by: u8 },
    /// A viewer of `by` asks to hand control to `to` (or to nobody).
    Control { by: u8, to: Option<u8> },
    /// The app sends a frame.
    Frame,
    /// A viewer of `by` sends input.
    Input { by: u8 },
    /// A viewer of `by` sends copied text for the end user's clipboard.
    ClipboardToApp { by: u8 },
    /// The end user copies text.
    ClipboardFromApp,
    /// The session is closed.
    Close,
}

fn technician() -> impl Strategy<Value = u8> {
    1..=TECHNICIANS
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (technician(), any::<bool>(), any::<bool>()).prop_map(|(by, control, clipboard)| Op::Ask { by, control, clipboard }),
        3 => proptest::option::of(any::<bool>()).prop_map(|grant| Op::Answer { grant }),
        1 => any::<bool>().prop_map(|keep_view| Op::Reduce { keep_view }),
        1 => Just(Op::Drop),
        1 => any::<bool>().prop_map(|resumed| Op::Reconnect { resumed }),
        1 => (technician(), technician()).prop_map(|(by, who)| Op::Invite { by, who }),
        1 => (technician(), technician()).prop_map(|(by, who)| Op::Uninvite { by, who }),
        1 => (technician(), technician()).prop_map(|(by, who)| Op::Assign { by, who }),
        1 => technician().prop_map(|by| Op::Release { by }),
        2 => (technician(), proptest::option::of(technician())).prop_map(|(by, to)| Op::Control { by, to }),
        5 => Just(Op::Frame),
        4 => technician().prop_map(|by| Op::Input { by }),
        2 => technician().prop_map(|by| Op::ClipboardToApp { by }),
        2 => Just(Op::ClipboardFromApp),
        1 => Just(Op::Close),
    ]
}

/// What the end user allowed, from their answers alone.
#[derive(Default, Debug)]
struct Oracle {
    /// Per technician: what the end user's answers to them granted (a denial takes nothing
    /// back), less what they took back since.
    allowed: HashMap<TechnicianId, Capabilities>,
    /// Technicians who asked for control (since their control grant, if they lost it).
    took_control: HashMap<TechnicianId, bool>,
    /// The app is gone (its consent suspended) or the session ended.
    suspended: bool,
    ended: bool,
}

impl Oracle {
    fn may_view(&self, t: TechnicianId) -> bool {
        !self.suspended && !self.ended && self.allowed.get(&t).is_some_and(|c| c.view())
    }

    fn may_control(&self, t: TechnicianId) -> bool {
        !self.suspended && !self.ended && self.allowed.get(&t).is_some_and(|c| c.control()) && self.took_control.get(&t) == Some(&true)
    }

    fn may_paste(&self, t: TechnicianId) -> bool {
        self.may_control(t) && self.allowed.get(&t).is_some_and(|c| c.clipboard())
    }

    fn may_receive_copies(&self, t: TechnicianId) -> bool {
        !self.suspended && !self.ended && self.allowed.get(&t).is_some_and(|c| c.clipboard())
    }

    /// What the end user granted shrinks to `keep` for everyone.
    fn reduce(&mut self, keep: Capabilities) {
        for caps in self.allowed.values_mut() {
            *caps = caps.intersect(keep);
        }
    }

    /// Whoever lost their control grant must take control again after a new one.
    fn forget_lost_control(&mut self) {
        let allowed = &self.allowed;
        self.took_control.retain(|t, _| allowed.get(t).is_some_and(|c| c.control()));
    }
}

/// The session's test bench: the relay's transport on a desk, the app's link and each
/// technician's viewer.
struct Bench {
    transport: Arc<Transport>,
    desk: Desk,
    id: SessionId,
    connection: quinn::Connection,
    app: Option<(u64, mpsc::Receiver<Message>)>,
    viewers: HashMap<TechnicianId, (u64, Admitted)>,
    next_conn: u64,
    next_request: u64,
}

impl Bench {
    /// The app connects (as `app::run` registers it once the desk accepted it).
    async fn connect_app(&mut self, resumed: bool) -> bool {
        if self.transport.hubs.desk.act_as(Actor::App, self.id, Action::AppConnected { resumed }).await.is_err() {
            return false;
        }
        self.next_conn += 1;
        let (out, queue) = mpsc::channel(1024);
        let (conn_id, connection) = (self.next_conn, self.connection.clone());
        self.transport.hubs.register(self.id, |state| state.app = Some(AppLink { conn_id, out, connection }));
        self.transport.hubs.refresh(self.id).await;
        self.app = Some((conn_id, queue));
        true
    }

    /// The app's connection ends (as at the end of `app::run`).
    async fn drop_app(&mut self) {
        let Some((conn_id, _)) = self.app.take() else { return };
        // (A closed session's hub let the app go already.)
        let hub = self.transport.hubs.existing(self.id);
        if hub.is_some_and(|hub| app_gone(&mut hub.lock(), conn_id)) {
            let _ = self.desk.app_dropped(self.id, Actor::App).await;
        }
        self.transport.hubs.refresh(self.id).await;
    }

    /// Every technician keeps a viewer open when the relay admits one (a viewer dropped by a
    /// refresh reconnects, as the native viewer does).
    async fn open_viewers(&mut self) {
        for t in 1..=TECHNICIANS {
            let t = TechnicianId(i64::from(t));
            let open = self.viewers.get(&t).is_some_and(|(conn, _)| {
                self.transport.hubs.existing(self.id).is_some_and(|hub| hub.lock().viewers.contains_key(conn))
            });
            if !open {
                self.next_conn += 1;
                match admit(&self.transport, self.next_conn, t, self.id, ViewerCarrier::Browser(Default::default())).await {
                    Ok(admitted) => {
                        self.viewers.insert(t, (self.next_conn, admitted));
                    }
                    Err(_) => {
                        self.viewers.remove(&t);
                    }
                }
            }
        }
    }

    async fn technician_acts(&self, by: u8, action: Action) -> bool {
        let done = self.desk.act_as(Actor::Technician(TechnicianId(i64::from(by))), self.id, action).await.is_ok();
        self.transport.hubs.refresh(self.id).await;
        done
    }

    /// Sends a message from technician `by`'s viewer through the viewers' handler.
    fn viewer_says(&self, by: u8, message: Message) {
        if let Some((conn_id, _)) = self.viewers.get(&TechnicianId(i64::from(by))) {
            viewer_message(&self.transport, self.id, *conn_id, TechnicianId(i64::from(by)), message);
        }
    }
}

async fn bench() -> (Bench, quinn::Endpoint, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Db::for_tests(dir.path()).expect("the database");
    let desk = Desk::new(db, Arc::new(ManualClock::new(Timestamp(1_800_000_000_000))), "https://desk.example".into());
    desk.ensure_default_channel_blocking().expect("the default channel");
    let mut rows = Vec::new();
    for t in 1..=TECHNICIANS {
        let role = if t == 1 { Role::Admin } else { Role::Technician };
        let new = NewTechnician { username: format!("t{t}"), display_name: format!("T{t}"), password: "correct horse battery".into(), role, one_time: false };
        let view = desk.create_technician(None, new).await.expect("a technician");
        desk.join_default_channel_blocking(TechnicianId(view.id)).expect("joined");
        rows.push(view);
    }
    let owner = desk.authenticate(&desk.login("t1".into(), "correct horse battery".into(), None, None).await.expect("login").0).await.expect("owner");
    let session = desk.create_session(&owner, ChannelId(1), SessionKind::Pin, None).await.expect("a session");
    let transport = Transport::new(desk.clone(), 30, WebRtcAddresses { bind: "127.0.0.1".parse().expect("ip"), public: None });
    // A real QUIC connection for the app's link (the hub closes it on the way out).
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
    let (cert_der, key_der) = (cert.cert.der().to_vec(), cert.signing_key.serialize_der());
    let fingerprint: [u8; 32] = sha2::Sha256::digest(&cert_der).into();
    let config = deskline_net::quic::server_config(cert_der, key_der).expect("server config");
    let server = deskline_net::quic::server_endpoint("127.0.0.1:0".parse().expect("addr"), config).expect("endpoint");
    let addr = server.local_addr().expect("bound");
    let accepting = server.clone();
    tokio::spawn(async move { while let Some(incoming) = accepting.accept().await { let _ = incoming.await; } });
    let connection = deskline_net::quic::connect(addr, "localhost", Some(fingerprint)).await.expect("connected");
    let bench = Bench { transport, desk, id: SessionId(session.id), connection, app: None, viewers: HashMap::new(), next_conn: 0, next_request: 0 };
    (bench, server, dir)
}


/// What reached viewers and the app over a run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Delivered {
    frames: usize,
    inputs: usize,
    /// Copied text that reached the app, and viewers.
    pasted: usize,
    copied: usize,
}

/// Runs `ops`, checking after every frame and input what reached whom.
async fn run(ops: Vec<Op>) -> Result<Delivered, TestCaseError> {
    let mut delivered = Delivered::default();
    let (mut b, _server, _dir) = bench().await;
    let mut oracle = Oracle::default();
    prop_assert!(b.connect_app(false).await);
    let mut seq = 0;
    for op in ops {
        let is_input = matches!(op, Op::Input { .. });
        match op {
            Op::Ask { by, control, clipboard } => {
                b.next_request += 1;
                let capabilities = if control { Capabilities::VIEW_AND_CONTROL.with_clipboard(clipboard) } else { Capabilities::VIEW };
                let action = Action::StartRemote { request_id: b.next_request, capabilities, timeout: Duration::from_secs(30) };
                b.technician_acts(by, action).await;
            }
            Op::Answer { grant } => {
                // The app answers what it was asked, naming the technician it was shown.
                let Some(row) = b.desk.session_row(b.id).await.expect("the session") else { continue };
                let Some(pending) = row.core.consent.pending else { continue };
                if b.app.is_none() {
                    continue;
                }
                let outcome = match grant {
                    Some(control) => ConsentOutcome::Granted(if control { pending.capabilities } else { Capabilities::VIEW }),
                    None => ConsentOutcome::Denied,
                };
                let decision = Message::ConsentDecision(ConsentDecision { request_id: pending.request_id, outcome });
                super::app::handle_message(&b.transport, b.id, decision).await;
                let after = b.desk.session_row(b.id).await.expect("the session").expect("still there");
                if after.core.consent.pending.is_none()
                    && let ConsentOutcome::Granted(given) = outcome
                {
                    let before = oracle.allowed.get(&pending.requested_by).copied().unwrap_or(Capabilities::NONE);
                    oracle.allowed.insert(pending.requested_by, before.union(given.intersect(pending.capabilities)));
                }
            }
            Op::Reduce { keep_view } => {
                if b.app.is_some() {
                    // As the app sends it: control (and the clipboard with it) taken back, or all.
                    let capabilities = if keep_view { Capabilities::ALL.without_control() } else { Capabilities::NONE };
                    super::app::handle_message(&b.transport, b.id, Message::ConsentChanged(ConsentChanged { capabilities })).await;
                    oracle.reduce(capabilities);
                }
            }
            Op::Drop => {
                if b.app.is_some() {
                    b.drop_app().await;
                    oracle.suspended = true;
                }
            }
            Op::Reconnect { resumed } => {
                if b.app.is_none() && b.connect_app(resumed).await {
                    oracle.suspended = false;
                    if !resumed {
                        // Another instance of the app: nothing it was not asked again for.
                        oracle.allowed.clear();
                        oracle.took_control.clear();
                    }
                }
            }
            Op::Invite { by, who } => {
                b.technician_acts(by, Action::Invite { technician: TechnicianId(i64::from(who)) }).await;
            }
            Op::Uninvite { by, who } => {
                b.technician_acts(by, Action::Uninvite { technician: TechnicianId(i64::from(who)) }).await;
            }
            Op::Assign { by, who } => {
                b.technician_acts(by, Action::Assign { technician: TechnicianId(i64::from(who)) }).await;
            }
            Op::Release { by } => {
                b.technician_acts(by, Action::Release).await;
            }
            Op::Control { by, to } => {
                b.viewer_says(by, Message::ControlHandover(ControlHandover { holder: to.map(|t| TechnicianId(i64::from(t))) }));
                if let Some(to) = to {
                    oracle.took_control.insert(TechnicianId(i64::from(to)), true);
                }
            }
            Op::Frame => {
                seq += 1;
                if let Some(hub) = b.transport.hubs.existing(b.id)
                    && b.app.is_some()
                {
                    forward_frame(&mut hub.lock(), b.desk.metrics(), &Bytes::from_static(b"frame"), seq, true);
                }
                for (t, (_, viewer)) in &mut b.viewers {
                    while viewer.frames.try_recv().is_ok() {
                        delivered.frames += 1;
                        prop_assert!(oracle.may_view(*t), "frame {seq} reached {t} without a grant in force: {oracle:?}");
                    }
                }
            }
            Op::Input { by } | Op::ClipboardToApp { by } => {
                let t = TechnicianId(i64::from(by));
                if is_input {
                    b.viewer_says(by, Message::Input(InputEvent::PointerMove { x: 1, y: 2 }));
                } else if let Some((conn_id, _)) = b.viewers.get(&t) {
                    let text = Message::Clipboard(ClipboardText { text: "copied".into() });
                    super::viewer::on_message(&b.transport, b.id, *conn_id, t, text).await;
                }
                if let Some((_, queue)) = &mut b.app {
                    while let Ok(message) = queue.try_recv() {
                        match message {
                            Message::Input(_) => {
                                delivered.inputs += 1;
                                prop_assert!(oracle.may_control(t), "input from {t} reached the app without control granted: {oracle:?}");
                            }
                            Message::Clipboard(_) => {
                                delivered.pasted += 1;
                                prop_assert!(oracle.may_paste(t), "copied text from {t} reached the app without control and the clipboard granted: {oracle:?}");
                            }
                            _ => {}
                        }
                    }
                }
            }
            Op::ClipboardFromApp => {
                if b.app.is_some() {
                    super::app::handle_message(&b.transport, b.id, Message::Clipboard(ClipboardText { text: "mine".into() })).await;
                }
                for (t, (_, viewer)) in &mut b.viewers {
                    while let Ok(message) = viewer.queue.try_recv() {
                        if let Message::Clipboard(_) = message {
                            delivered.copied += 1;
                            prop_assert!(oracle.may_receive_copies(*t), "the end user's copied text reached {t} without the clipboard granted: {oracle:?}");
                        }
                    }
                }
            }
            Op::Close => {
                if b.technician_acts(1, Action::Close).await {
                    oracle.ended = true;
                }
            }
        }
        // Consent goes with a technician who leaves the session.
        let row = b.desk.session_row(b.id).await.expect("the session").expect("still there");
        for t in 1..=TECHNICIANS {
            let t = TechnicianId(i64::from(t));
            if !row.core.has_technician(t) {
                oracle.allowed.remove(&t);
            }
        }
        oracle.forget_lost_control();
        b.open_viewers().await;
    }
    Ok(delivered)
}

/// The bench is not vacuous: what the end user allows does reach the technician, and stops
/// when taken back.
#[test]
fn what_the_end_user_allows_gets_through_and_stops_when_taken_back() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
    let allowed = vec![
        Op::Ask { by: 1, control: true, clipboard: true },
        Op::Answer { grant: Some(true) },
        Op::Control { by: 1, to: Some(1) },
        Op::Frame,
        Op::Input { by: 1 },
        Op::ClipboardToApp { by: 1 },
        Op::ClipboardFromApp,
    ];
    let all = Delivered { frames: 1, inputs: 1, pasted: 1, copied: 1 };
    assert_eq!(runtime.block_on(run(allowed.clone())).expect("no violation"), all);
    let mut taken_back = allowed.clone();
    taken_back.extend([Op::Reduce { keep_view: false }, Op::Frame, Op::Input { by: 1 }, Op::ClipboardToApp { by: 1 }, Op::ClipboardFromApp]);
    assert_eq!(runtime.block_on(run(taken_back)).expect("no violation"), all);
    // Control taken back: the picture stays, input and the clipboard stop.
    let mut control_back = allowed;
    control_back.extend([Op::Reduce { keep_view: true }, Op::Frame, Op::Input { by: 1 }, Op::ClipboardToApp { by: 1 }, Op::ClipboardFromApp]);
    assert_eq!(runtime.block_on(run(control_back)).expect("no violation"), Delivered { frames: 2, ..all });
    // Control granted without the clipboard: input passes, copied text neither way.
    let no_clipboard = vec![
        Op::Ask { by: 1, control: true, clipboard: false },
        Op::Answer { grant: Some(true) },
        Op::Control { by: 1, to: Some(1) },
        Op::Input { by: 1 },
        Op::ClipboardToApp { by: 1 },
        Op::ClipboardFromApp,
    ];
    assert_eq!(runtime.block_on(run(no_clipboard)).expect("no violation"), Delivered { inputs: 1, ..Delivered::default() });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_frame_or_input_passes_without_a_grant_in_force(ops in proptest::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
        runtime.block_on(run(ops))?;
    }
}

/// Frames travel on streams of their own and can arrive out of order: a viewer is never sent
/// a frame older than the keyframe it was sent, nor one older than a frame it had to skip — a
/// late keyframe from before a skip would end its wait, and the P-frames after it would refer
/// to the frame it never got (a corrupted picture; found by the load test).
#[test]
fn a_viewer_is_never_sent_a_stale_frame() {
    use crate::limits::VIEWER_FRAME_QUEUE;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let (mut b, _server, _dir) = bench().await;
        assert!(b.connect_app(false).await);
        let ask = Action::StartRemote { request_id: 1, capabilities: Capabilities::VIEW, timeout: Duration::from_secs(30) };
        assert!(b.technician_acts(1, ask).await);
        let granted = ConsentDecision { request_id: 1, outcome: ConsentOutcome::Granted(Capabilities::VIEW) };
        super::app::handle_message(&b.transport, b.id, Message::ConsentDecision(granted)).await;
        b.open_viewers().await;
        let hub = b.transport.hubs.existing(b.id).expect("the hub");
        let metrics = b.desk.metrics();
        let frame = |seq: u64, keyframe: bool| forward_frame(&mut hub.lock(), metrics, &Bytes::from_static(b"frame"), seq, keyframe);
        let viewer = &mut b.viewers.get_mut(&TechnicianId(1)).expect("t1 views").1;
        let mut sent = || std::iter::from_fn(|| viewer.frames.try_recv().ok().map(|(_, seq)| seq)).collect::<Vec<u64>>();

        // A new viewer waits for a keyframe; a keyframe from before the frame it skipped waiting
        // does not end the wait.
        frame(5, false);
        frame(4, true);
        assert_eq!(sent(), Vec::<u64>::new());
        frame(10, true);
        frame(11, false);
        // Late: older than the keyframe the viewer got.
        frame(9, false);
        frame(12, false);
        assert_eq!(sent(), vec![10, 11, 12]);

        // The viewer falls behind: its queue fills and frame `skipped` is dropped.
        let first = 20;
        let skipped = first + VIEWER_FRAME_QUEUE as u64;
        for seq in first..=skipped {
            frame(seq, false);
        }
        assert_eq!(sent(), (first..skipped).collect::<Vec<_>>());
        // A keyframe from before the skip arrives late: not sent, nor P-frames, until a newer keyframe.
        frame(first - 1, true);
        frame(skipped + 1, false);
        assert_eq!(sent(), Vec::<u64>::new());
        frame(skipped + 2, true);
        frame(skipped + 3, false);
        assert_eq!(sent(), vec![skipped + 2, skipped + 3]);
    });
}
