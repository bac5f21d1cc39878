//! Remote sessions end to end on loopback: a real relay (HTTPS API, QUIC, SQLite), the support
//! app's connection logic with the synthetic H.264 source, and the technician's viewer.
#![allow(clippy::unwrap_used)]

use deskline_agent::grants::Grants;
use deskline_agent::rate::Rate;
use deskline_agent::{
    AgentCommand, AgentConfig, AgentError, AgentEvent, EncodeError, EncodedFrame, Ended, FrameSource, RecordingSink,
    ScriptedAnswer, ScriptedPrompt, SyntheticSource, register,
};
use deskline_api::{
    AuditEventView, ChangePassword, ChannelView, ChatMessageView, CreateChannel, CreateSession, CreateTechnician, LoginRequest, LoginResponse,
    NewChatMessage, RemoteRequest, Role, SessionView, TechnicianRef, TechnicianView, TransferRequest, UpdateChannel,
};
use deskline_console::client::Client;
use deskline_console::viewer::{self, DecodedFrame, FileNews, RelayTarget, Viewer, ViewerCommand, ViewerError, ViewerUpdate};
use deskline_protocol::{
    AccessGrant, AppCode, AppInfo, Capabilities, ChatFrom, ChatLine, Hello, MachineFacts, HelloRole, InputEvent, Message, PROTOCOL_VERSION, MouseButton, Press, RejectReason, ResumeSecret, SessionId, TechnicianId,
};
use deskline_protocol::ConsentOutcome;
use deskline_protocol::session::{Actor, AuditAction, FileOutcome, SessionKind};
use deskline_relay::server::LocalRelay;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What an administrator gives a new technician: good for one sign-in, to set their own.
const ONE_TIME_PASSWORD: &str = "a long enough password";
/// What each technician then sets.
const PASSWORD: &str = "lantern orbit seven meadow";
const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

struct Env {
    _dir: tempfile::TempDir,
    server: String,
    fingerprint: String,
    quic: std::net::SocketAddr,
    admin: Client,
    admin_token: String,
    _relay: LocalRelay,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let relay = LocalRelay::start(dir.path().join("relay"), "Example IT").unwrap();
    let (server, fingerprint, quic) = (relay.base_url.clone(), relay.fingerprint.clone(), relay.quic);
    let admin_token = sign_in(&server, &fingerprint, "admin", &relay.admin_password).await.token;
    let admin = Client::new(&server, Some(&fingerprint), Some(admin_token.clone())).unwrap();
    Env { _dir: dir, server, fingerprint, quic, admin, admin_token, _relay: relay }
}

/// Signs in with a password.
async fn sign_in(server: &str, fingerprint: &str, username: &str, password: &str) -> LoginResponse {
    let anonymous = Client::new(server, Some(fingerprint), None).unwrap();
    anonymous.post("/login", &LoginRequest { username: username.into(), password: password.into(), code: None }).await.unwrap()
}

/// A technician's identity and API client.
struct Tech {
    id: TechnicianId,
    token: String,
}

impl Env {
    /// A technician of the default channel, created by the admin with a one-time password
    /// and signed in once to set their own (as every new technician must).
    async fn technician(&self, name: &str) -> Tech {
        let new = CreateTechnician { username: name.into(), display_name: String::new(), password: ONE_TIME_PASSWORD.into(), role: Role::Technician };
        let t: TechnicianView = self.admin.post("/technicians", &new).await.unwrap();
        let _: ChannelView = self.admin.post("/channels/1/members", &TechnicianRef { technician_id: t.id }).await.unwrap();
        let first = sign_in(&self.server, &self.fingerprint, name, ONE_TIME_PASSWORD).await;
        assert!(first.technician.must_change_password, "an admin-given password is one-time");
        let one_time = Tech { id: TechnicianId(t.id), token: first.token };
        Tech { id: one_time.id, token: self.technician_password_set(&one_time).await }
    }

    /// Sets `tech`'s own password after the one-time one; their new token.
    async fn technician_password_set(&self, tech: &Tech) -> String {
        let one_time = Client::new(&self.server, Some(&self.fingerprint), Some(tech.token.clone())).unwrap();
        let change = ChangePassword { current_password: ONE_TIME_PASSWORD.into(), new_password: PASSWORD.into() };
        let own: LoginResponse = one_time.post("/me/password", &change).await.unwrap();
        own.token
    }

    fn admin_tech(&self) -> Tech {
        Tech { id: TechnicianId(1), token: self.admin_token.clone() }
    }

    async fn session(&self, kind: SessionKind) -> SessionView {
        self.admin.post("/channels/1/sessions", &CreateSession { kind, name: None }).await.unwrap()
    }

    async fn get(&self, id: i64) -> SessionView {
        self.admin.get(&format!("/sessions/{id}")).await.unwrap()
    }

    /// The session's audit trail.
    async fn trail(&self, id: i64) -> Vec<AuditEventView> {
        self.admin.get(&format!("/sessions/{id}/events")).await.unwrap()
    }

    /// The admin invites `tech` onto the session.
    async fn invite(&self, id: i64, tech: &Tech) {
        let _: SessionView = self.admin.post(&format!("/sessions/{id}/invite"), &TechnicianRef { technician_id: tech.id.0 }).await.unwrap();
    }

    /// Polls the session until `check` holds (bounded: a broken relay fails, never hangs).
    async fn wait_for(&self, id: i64, what: &str, check: impl Fn(&SessionView) -> bool) -> SessionView {
        for _ in 0..200 {
            let v = self.get(id).await;
            if check(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("session {id} never reached: {what}; last: {:?}", self.get(id).await);
    }

    fn config(&self, code: AppCode) -> AgentConfig {
        let fp = deskline_net::tls::parse_fingerprint(&self.fingerprint).unwrap();
        AgentConfig { relay: self.quic, server_name: "localhost".into(), fingerprint: Some(fp), code, relays: Vec::new() }
    }

    fn target(&self) -> RelayTarget {
        RelayTarget {
            quic: self.quic,
            server_name: "localhost".into(),
            fingerprint: deskline_net::tls::parse_fingerprint(&self.fingerprint).unwrap(),
        }
    }

    async fn viewer(&self, tech: &Tech, session: i64) -> Result<Viewer, ViewerError> {
        viewer::join(&self.target(), &tech.token, SessionId(session), tech.id).await
    }

    async fn remote(&self, id: i64) {
        let _: SessionView = self.admin.post(&format!("/sessions/{id}/remote"), &RemoteRequest::default()).await.unwrap();
    }

    /// Waits for the app to connect, asks for remote access, and waits for the grant (the
    /// set-up of every test that starts from a sharing app).
    async fn share(&self, id: i64) {
        self.wait_for(id, "active", |v| v.state == "active").await;
        self.remote(id).await;
        self.wait_for(id, "granted", |v| v.consent.status == "granted").await;
    }

    /// The API as this technician.
    fn client(&self, tech: &Tech) -> Client {
        Client::new(&self.server, Some(&self.fingerprint), Some(tech.token.clone())).unwrap()
    }

    /// `tech` (on the session) asks the end user for remote access and the app answers; waits
    /// until the grant to `tech` is stored.
    async fn share_with(&self, id: i64, tech: &Tech) {
        let _: SessionView = self.client(tech).post(&format!("/sessions/{id}/remote"), &RemoteRequest::default()).await.unwrap();
        self.wait_for(id, "granted to the technician", |v| grant_of(v, tech.id).is_some()).await;
    }
}

fn info() -> AppInfo {
    AppInfo {
        os: "Debian GNU/Linux 12".into(),
        host_name: "reception-pc".into(),
        app_version: "test".into(),
        displays: vec![deskline_protocol::DisplayInfo { id: 0, name: "synthetic".into(), width: WIDTH, height: HEIGHT, primary: true }],
    }
}

struct RunningAgent {
    task: tokio::task::JoinHandle<Result<Ended, AgentError>>,
    sink: RecordingSink,
    events: mpsc::UnboundedReceiver<AgentEvent>,
    commands: mpsc::UnboundedSender<AgentCommand>,
    resume: Option<ResumeSecret>,
    resumed: bool,
}

async fn start_agent(env: &Env, code: AppCode, answer: ScriptedAnswer, resume: Option<ResumeSecret>, previous: Grants) -> Result<RunningAgent, AgentError> {
    start_agent_with(env, code, answer, resume, previous, || SyntheticSource::new(WIDTH, HEIGHT)).await
}

async fn start_agent_with<S: FrameSource>(
    env: &Env,
    code: AppCode,
    answer: ScriptedAnswer,
    resume: Option<ResumeSecret>,
    previous: Grants,
    source: impl FnOnce() -> Result<S, EncodeError> + Send + 'static,
) -> Result<RunningAgent, AgentError> {
    let registered = register(&env.config(code), info(), resume).await?;
    let secret = registered.welcome().resume.clone();
    let resumed = registered.welcome().resumed;
    let sink = RecordingSink::default();
    let (events_tx, events) = mpsc::unbounded_channel();
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let prompt = Arc::new(ScriptedPrompt { answer, delay: Duration::from_millis(20) });
    let task = tokio::spawn(registered.serve(source, sink.clone(), prompt, previous, events_tx, commands_rx));
    Ok(RunningAgent { task, sink, events, commands, resume: secret, resumed })
}

/// What the session's consent grants `technician`, if anything.
fn grant_of(session: &SessionView, technician: TechnicianId) -> Option<Capabilities> {
    session.consent.grants.iter().find(|g| g.technician_id == technician.0).map(|g| g.capabilities)
}

/// The technicians the app was last told may see or control its screen.
fn last_access(events: &mut mpsc::UnboundedReceiver<AgentEvent>, seen: &mut Vec<AgentEvent>) -> Vec<TechnicianId> {
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    seen.iter()
        .rev()
        .find_map(|e| match e {
            AgentEvent::Access(grants) => Some(grants.list().iter().map(|g| g.technician).collect()),
            _ => None,
        })
        .unwrap_or_default()
}

/// What an app that allowed the admin everything remembers across a drop.
fn admin_may_control() -> Grants {
    Grants::from_list(vec![AccessGrant {
        technician: TechnicianId(1),
        name: "Administrator".into(),
        capabilities: Capabilities::VIEW_AND_CONTROL,
    }])
}

fn pin_of(session: &SessionView) -> AppCode {
    AppCode::Pin(session.pin.as_deref().unwrap().parse().unwrap())
}

fn link_of(session: &SessionView) -> AppCode {
    let link: deskline_protocol::SessionLink = session.link.as_deref().unwrap().parse().unwrap();
    assert!(link.quic.is_some() && link.sha256.is_some(), "the link tells the app where to connect and what to pin");
    AppCode::Link(link.token)
}

/// Decodes `n` frames through a fresh viewer.
async fn watch(env: &Env, tech: &Tech, session: i64, n: usize, timeout: Duration) -> (Vec<DecodedFrame>, Result<(), ViewerError>) {
    let viewer = env.viewer(tech, session).await.unwrap();
    let mut frames = Vec::new();
    let result = viewer
        .watch(timeout, |f| {
            frames.push(f);
            frames.len() < n
        })
        .await;
    (frames, result)
}

fn pixel(frame: &DecodedFrame, x: usize, y: usize) -> [u8; 3] {
    let i = (y * frame.width + x) * 3;
    [frame.rgb[i], frame.rgb[i + 1], frame.rgb[i + 2]]
}

fn close_to(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 24)
}

/// The synthetic source's left half in RGB.
fn left_rgb() -> [u8; 3] {
    let [b, g, r, _] = deskline_agent::source::SYNTHETIC_LEFT_BGRA;
    [r, g, b]
}

async fn send_input(env: &Env, tech: &Tech, session: i64, events: &[InputEvent]) -> Result<(), ViewerError> {
    env.viewer(tech, session).await?.send_input(events).await
}

fn click() -> Vec<InputEvent> {
    vec![
        InputEvent::PointerMove { x: 10, y: 20 },
        InputEvent::Button { button: MouseButton::Left, press: Press::Down },
        InputEvent::Button { button: MouseButton::Left, press: Press::Up },
    ]
}

async fn wait_for_events(sink: &RecordingSink, n: usize) -> Vec<InputEvent> {
    for _ in 0..200 {
        if sink.events().len() >= n {
            return sink.events();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("only {} of {n} input events arrived", sink.events().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_app_with_consent_streams_the_pattern_and_takes_input() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    let v = env.wait_for(id, "active", |v| v.state == "active").await;
    assert_eq!(v.agent.unwrap().host_name, "reception-pc");

    env.remote(id).await;
    env.wait_for(id, "consent granted", |v| v.consent.status == "granted").await;
    let trail = env.trail(id).await;
    let actions: Vec<&AuditAction> = trail.iter().map(|e| &e.action).collect();
    assert!(
        matches!(
            actions[..],
            [AuditAction::Created { .. }, AuditAction::AppConnected { .. }, AuditAction::RemoteRequested { .. }, AuditAction::ConsentDecided { .. }]
        ),
        "{actions:?}"
    );
    assert!(
        matches!(trail[3].action, AuditAction::ConsentDecided { outcome: ConsentOutcome::Granted(c), .. } if c == Capabilities::VIEW_AND_CONTROL),
        "{:?}",
        trail[3]
    );
    assert_eq!(trail[3].actor, Actor::App);

    let (frames, result) = watch(&env, &env.admin_tech(), id, 15, Duration::from_secs(20)).await;
    result.unwrap();
    let last = frames.last().unwrap();
    assert_eq!((last.width, last.height), (WIDTH as usize, HEIGHT as usize));
    assert!(close_to(pixel(last, 40, 120), left_rgb()), "left half: {:?}", pixel(last, 40, 120));
    // The right half is dark grey apart from the white bar.
    let dark = (WIDTH as usize / 2..WIDTH as usize).filter(|&x| pixel(last, x, 120)[0] < 80).count();
    assert!(dark > WIDTH as usize / 4, "right half mostly dark: {dark}");
    assert!(frames.windows(2).all(|w| w[0].seq < w[1].seq), "frames arrive in order");

    send_input(&env, &env.admin_tech(), id, &click()).await.unwrap();
    assert_eq!(wait_for_events(&agent.sink, 3).await, click());
    drop(agent);

    // A link session works the same way.
    let link = env.session(SessionKind::Link).await;
    let lid = link.id;
    let _agent = start_agent(&env, link_of(&link), ScriptedAnswer::Deny, None, Grants::default()).await.unwrap();
    env.wait_for(lid, "active", |v| v.state == "active").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pins_are_refused_and_guessing_is_limited() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let right = session.pin.clone().unwrap();
    let wrong = if right == "000000" { "000001" } else { "000000" };
    for _ in 0..deskline_relay::limits::MAX_CODE_FAILURES_PER_NETWORK {
        let err = start_agent(&env, AppCode::Pin(wrong.parse().unwrap()), ScriptedAnswer::Deny, None, Grants::default()).await.err().unwrap();
        assert!(matches!(err, AgentError::Rejected { reason: RejectReason::UnknownCode, .. }), "{err:?}");
    }
    // Now even the right PIN is refused from this address until the window passes.
    let err = start_agent(&env, AppCode::Pin(right.parse().unwrap()), ScriptedAnswer::Deny, None, Grants::default()).await.err().unwrap();
    assert!(matches!(err, AgentError::Rejected { reason: RejectReason::RateLimited { .. }, .. }), "{err:?}");
    assert_eq!(env.get(session.id).await.state, "waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_consent_lets_no_frame_and_no_input_through() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let mut agent = start_agent(&env, pin_of(&session), ScriptedAnswer::Deny, None, Grants::default()).await.unwrap();
    env.wait_for(id, "active", |v| v.state == "active").await;
    env.remote(id).await;
    env.wait_for(id, "consent answered", |v| v.consent.status == "none").await;
    let last = env.trail(id).await.pop().unwrap();
    assert!(matches!(last.action, AuditAction::ConsentDecided { outcome: ConsentOutcome::Denied, .. }), "{last:?}");

    let (frames, result) = watch(&env, &env.admin_tech(), id, 1, Duration::from_secs(2)).await;
    assert!(frames.is_empty(), "no frame may reach a viewer without consent");
    assert!(result.is_err());
    let err = send_input(&env, &env.admin_tech(), id, &click()).await.unwrap_err();
    assert!(err.to_string().contains("not granted control"), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(agent.sink.events().is_empty(), "no input may reach the app without consent");
    // The app saw the request and answered it.
    let mut seen = Vec::new();
    while let Ok(e) = agent.events.try_recv() {
        seen.push(e);
    }
    assert!(seen.iter().any(|e| matches!(e, AgentEvent::ConsentRequested(r) if r.organisation == "Example IT" && r.technician == "Administrator")));
    assert!(seen.contains(&AgentEvent::ConsentAnswered(deskline_protocol::ConsentOutcome::Denied)));
    assert!(!seen.contains(&AgentEvent::Streaming(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_only_consent_never_lets_input_through() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowViewOnly, None, Grants::default()).await.unwrap();
    env.wait_for(id, "active", |v| v.state == "active").await;
    env.remote(id).await;
    env.wait_for(id, "view granted", |v| v.consent.capabilities == Capabilities::VIEW).await;
    let (frames, result) = watch(&env, &env.admin_tech(), id, 5, Duration::from_secs(20)).await;
    result.unwrap();
    assert_eq!(frames.len(), 5);
    assert!(send_input(&env, &env.admin_tech(), id, &click()).await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(agent.sink.events().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_back_control_and_stopping_sharing_take_effect_at_once() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    send_input(&env, &env.admin_tech(), id, &click()).await.unwrap();
    wait_for_events(&agent.sink, 3).await;

    agent.commands.send(AgentCommand::TakeBackControl).unwrap();
    env.wait_for(id, "view only", |v| v.consent.capabilities == Capabilities::VIEW).await;
    assert!(send_input(&env, &env.admin_tech(), id, &click()).await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(agent.sink.events().len(), 3, "no input after control was taken back");
    assert!(agent.sink.releases() >= 1, "held keys and buttons were released");
    let (_, still_viewing) = watch(&env, &env.admin_tech(), id, 3, Duration::from_secs(20)).await;
    still_viewing.unwrap();

    agent.commands.send(AgentCommand::StopSharing).unwrap();
    env.wait_for(id, "nothing granted", |v| v.consent.status == "none").await;
    let (frames, result) = watch(&env, &env.admin_tech(), id, 1, Duration::from_secs(2)).await;
    assert!(frames.is_empty() && result.is_err(), "no frame after the end user stopped sharing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_technicians_view_at_once_and_a_fourth_is_refused() {
    let env = env().await;
    let bob = env.technician("bob").await;
    let carol = env.technician("carol").await;
    let dan = env.technician("dan").await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    for t in [&bob, &carol] {
        env.invite(id, t).await;
    }
    let _agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    // Consent is per technician: each invited technician asks, and the end user says yes.
    env.share_with(id, &bob).await;
    env.share_with(id, &carol).await;
    let admin = env.admin_tech();
    let (a, b, c) = tokio::join!(
        watch(&env, &admin, id, 10, Duration::from_secs(20)),
        watch(&env, &bob, id, 10, Duration::from_secs(20)),
        watch(&env, &carol, id, 10, Duration::from_secs(20)),
    );
    for (frames, result) in [a, b, c] {
        result.unwrap();
        assert_eq!(frames.len(), 10);
    }
    let refused = env.viewer(&dan, id).await.err().unwrap();
    assert!(matches!(refused, ViewerError::Rejected { reason: RejectReason::Forbidden, .. }), "{refused}");
}

/// A viewer that joins and then reads nothing: one frame stream at a time and a tiny receive
/// window, so the relay's sends to it block at once.
async fn stalled_viewer(env: &Env, tech: &Tech, session: i64) -> quinn::Connection {
    let mut crypto = deskline_net::tls::client_config_tls13(Some(deskline_net::tls::parse_fingerprint(&env.fingerprint).unwrap()));
    crypto.alpn_protocols = vec![deskline_protocol::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(1u32.into());
    transport.stream_receive_window(1024u32.into());
    transport.receive_window(4096u32.into());
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let connection = endpoint.connect(env.quic, "localhost").unwrap().await.unwrap();
    let hello = deskline_protocol::Message::Hello(deskline_protocol::Hello {
        protocol_version: deskline_protocol::PROTOCOL_VERSION,
        role: deskline_protocol::HelloRole::Technician { token: tech.token.clone(), session: SessionId(session) },
    });
    let (writer, mut reader) = deskline_net::framed::open_control(&connection, &hello).await.unwrap();
    assert!(matches!(reader.next().await.unwrap(), Some(deskline_protocol::Message::Welcome(_))));
    // Keep the control stream open for the test's lifetime.
    std::mem::forget((writer, reader));
    connection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_viewer_does_not_delay_the_others() {
    let env = env().await;
    let bob = env.technician("bob").await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    env.invite(id, &bob).await;
    let _agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    let staller = stalled_viewer(&env, &bob, id).await;
    // Three seconds of video at 30 fps reach the healthy viewer, in order, while the stalled
    // one has taken (at most) a frame or two.
    let (frames, result) = watch(&env, &env.admin_tech(), id, 90, Duration::from_secs(20)).await;
    result.unwrap();
    assert_eq!(frames.len(), 90);
    assert!(staller.close_reason().is_none(), "the stalled viewer is still connected, just skipped");
}

/// The synthetic source, remembering every rate the app asks of it.
struct RateRecorder {
    inner: SyntheticSource,
    rates: Arc<std::sync::Mutex<Vec<Rate>>>,
}

impl FrameSource for RateRecorder {
    fn displays(&self) -> Vec<deskline_protocol::DisplayInfo> {
        self.inner.displays()
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        self.inner.next_frame(force_keyframe)
    }

    fn set_rate(&mut self, rate: Rate) {
        self.rates.lock().unwrap().push(rate);
        self.inner.set_rate(rate);
    }
}

/// The synthetic source, reporting a second display after its tenth frame.
struct GainsADisplay {
    inner: SyntheticSource,
    frames: usize,
}

impl FrameSource for GainsADisplay {
    fn displays(&self) -> Vec<deskline_protocol::DisplayInfo> {
        self.inner.displays()
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        self.frames += 1;
        self.inner.next_frame(force_keyframe)
    }

    fn displays_changed(&mut self) -> Option<Vec<deskline_protocol::DisplayInfo>> {
        (self.frames == 10).then(|| {
            let mut displays = info().displays;
            displays.push(deskline_protocol::DisplayInfo { id: 1, name: "HDMI-1".into(), width: 1280, height: 720, primary: false });
            displays
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_learn_the_displays_on_joining_and_when_they_change() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let source = || Ok(GainsADisplay { inner: SyntheticSource::new(WIDTH, HEIGHT)?, frames: 0 });
    let _agent = start_agent_with(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default(), source).await.unwrap();
    env.share(id).await;
    let (_commands, mut updates) = env.viewer(&env.admin_tech(), id).await.unwrap().spawn();
    let mut lists = Vec::new();
    while lists.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await.unwrap().unwrap() {
            ViewerUpdate::Displays(displays) => lists.push(displays.into_iter().map(|d| d.name).collect::<Vec<_>>()),
            ViewerUpdate::Ended(e) => panic!("ended: {e:?}"),
            _ => {}
        }
    }
    assert_eq!(lists, [vec!["synthetic"], vec!["synthetic", "HDMI-1"]], "on joining, then after the change");
    let v = env.wait_for(id, "the stored list", |v| v.agent.as_ref().is_some_and(|a| a.displays.len() == 2)).await;
    assert_eq!(v.agent.unwrap().displays[1].name, "HDMI-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_lowers_its_rate_for_a_stalled_viewer_and_recovers_after_it_leaves() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let rates = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = rates.clone();
    let source = move || Ok(RateRecorder { inner: SyntheticSource::new(WIDTH, HEIGHT)?, rates: recorded });
    let _agent = start_agent_with(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default(), source).await.unwrap();
    env.share(id).await;
    // A healthy viewer watches throughout (its frames drained as they come).
    let (_commands, mut updates) = env.viewer(&env.admin_tech(), id).await.unwrap().spawn();
    tokio::spawn(async move { while updates.recv().await.is_some() {} });
    let staller = stalled_viewer(&env, &env.admin_tech(), id).await;

    // The relay reports the stalled viewer's drops once a second; the app gives up bitrate.
    let ceiling = Rate { fps: 30, bitrate_bps: 4_000_000 };
    let rates_now = || rates.lock().unwrap().clone();
    let eventually = async |what: &str, check: &dyn Fn(&[Rate]) -> bool| {
        for _ in 0..300 {
            if check(&rates_now()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what} did not happen within 30 s: {:?}", rates_now());
    };
    eventually("a lower rate", &|r| r.last().is_some_and(|r| r.bitrate_bps < ceiling.bitrate_bps)).await;
    assert_eq!(rates_now()[0], ceiling, "streaming starts at the relay's frame rate and bitrate");

    // Once the stalled viewer is gone, the rate grows back, step by step, to the ceiling.
    staller.close(0u32.into(), b"bye");
    eventually("recovery", &|r| r.last() == Some(&ceiling)).await;
    let rates = rates_now();
    let low = rates.iter().position(|r| r.bitrate_bps < ceiling.bitrate_bps).unwrap();
    assert!(rates.iter().all(|r| r.bitrate_bps <= ceiling.bitrate_bps && r.fps <= ceiling.fps), "never above the ceiling: {rates:?}");
    let steps = rates[low..].windows(2).filter(|w| w[1].bitrate_bps > w[0].bitrate_bps).count();
    assert!(steps >= 2, "recovery is gradual: {rates:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_app_resumes_its_consent_within_the_grace_window_only() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let code = pin_of(&session);
    let agent = start_agent(&env, code.clone(), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    let secret = agent.resume.clone().unwrap();

    // The network drops: the app's connection vanishes without a goodbye.
    agent.task.abort();
    env.wait_for(id, "waiting", |v| v.state == "waiting").await;
    assert_eq!(env.get(id).await.consent.status, "suspended");

    // The same app comes back: consent holds, no prompt (this prompt would deny).
    let back = start_agent(&env, code.clone(), ScriptedAnswer::Deny, Some(secret), admin_may_control()).await.unwrap();
    assert!(back.resumed);
    env.wait_for(id, "active again", |v| v.state == "active" && v.consent.status == "granted").await;
    let (frames, result) = watch(&env, &env.admin_tech(), id, 5, Duration::from_secs(20)).await;
    result.unwrap();
    assert_eq!(frames.len(), 5);

    // Another instance (no secret, or a wrong one) starts from nothing and is asked again.
    // (The end user leaving on purpose ends what they allowed: nothing is kept to resume.)
    back.commands.send(AgentCommand::Disconnect).unwrap();
    env.wait_for(id, "waiting, nothing granted", |v| v.state == "waiting" && v.consent.status == "none").await;
    let stranger = start_agent(&env, code, ScriptedAnswer::Deny, Some(ResumeSecret::from_bytes([9; 32])), admin_may_control()).await.unwrap();
    assert!(!stranger.resumed);
    env.wait_for(id, "active without consent", |v| v.state == "active" && v.consent.status == "none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_ends_every_connection_and_invalidates_the_code() {
    let env = env().await;
    let session = env.session(SessionKind::Link).await;
    let id = session.id;
    let agent = start_agent(&env, link_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    let viewer = env.viewer(&env.admin_tech(), id).await.unwrap();
    let watching = tokio::spawn(async move { viewer.watch(Duration::from_secs(20), |_| true).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _: SessionView = env.admin.post_empty(&format!("/sessions/{id}/close")).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), agent.task).await.unwrap().unwrap().unwrap();
    assert!(matches!(ended, Ended::ByRelay(ref bye) if bye.reason == deskline_protocol::ByeReason::SessionClosed), "{ended:?}");
    let watched = tokio::time::timeout(Duration::from_secs(10), watching).await.unwrap().unwrap();
    assert!(matches!(watched, Err(ViewerError::Ended(_))), "{watched:?}");

    let again = start_agent(&env, link_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.err().unwrap();
    assert!(matches!(again, AgentError::Rejected { reason: RejectReason::Closed, .. }), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_input_and_unknown_versions_close_only_that_connection() {
    let env = env().await;
    let fp = deskline_net::tls::parse_fingerprint(&env.fingerprint).unwrap();

    // Garbage on the control stream.
    let c = deskline_net::quic::connect(env.quic, "localhost", Some(fp)).await.unwrap();
    let (mut send, _recv) = c.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 9, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), c.closed()).await.unwrap();
    assert!(matches!(reason, quinn::ConnectionError::ApplicationClosed(_)), "{reason:?}");

    // An oversized length announcement.
    let c = deskline_net::quic::connect(env.quic, "localhost", Some(fp)).await.unwrap();
    let (mut send, _recv) = c.open_bi().await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), c.closed()).await.unwrap();
    assert!(matches!(reason, quinn::ConnectionError::ApplicationClosed(_)), "{reason:?}");

    // An app of an unknown protocol version: told which one the relay speaks, then closed,
    // before its code is even looked at.
    let c = deskline_net::quic::connect(env.quic, "localhost", Some(fp)).await.unwrap();
    let future = deskline_protocol::Message::Hello(deskline_protocol::Hello {
        protocol_version: deskline_protocol::PROTOCOL_VERSION + 1,
        role: deskline_protocol::HelloRole::App { code: pin_of(&env.session(SessionKind::Pin).await), info: info(), resume: None },
    });
    let (_w, mut r) = deskline_net::framed::open_control(&c, &future).await.unwrap();
    let answer = r.next().await.unwrap();
    assert!(
        matches!(&answer, Some(deskline_protocol::Message::Reject(deskline_protocol::Reject { reason: deskline_protocol::RejectReason::UnsupportedVersion { supported }, .. }))
            if *supported == deskline_protocol::PROTOCOL_VERSION),
        "{answer:?}"
    );
    let reason = tokio::time::timeout(Duration::from_secs(10), c.closed()).await.unwrap();
    assert!(matches!(reason, quinn::ConnectionError::ApplicationClosed(_)), "{reason:?}");

    // A registered app sending a frame stream longer than any frame may be.
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let registered = register(&env.config(pin_of(&session)), info(), None).await.unwrap();
    let _keep = registered;
    let raw = deskline_net::quic::connect(env.quic, "localhost", Some(fp)).await.unwrap();
    let hello = deskline_protocol::Message::Hello(deskline_protocol::Hello {
        protocol_version: deskline_protocol::PROTOCOL_VERSION,
        role: deskline_protocol::HelloRole::App { code: pin_of(&env.session(SessionKind::Pin).await), info: info(), resume: None },
    });
    let (_w, mut r) = deskline_net::framed::open_control(&raw, &hello).await.unwrap();
    assert!(matches!(r.next().await.unwrap(), Some(deskline_protocol::Message::Welcome(_))));
    let mut frame = raw.open_uni().await.unwrap();
    let big = ((deskline_protocol::limits::MAX_VIDEO_FRAME_BYTES + 1) as u32).to_be_bytes();
    let _ = frame.write_all(&big).await;
    let _ = frame.write_all(&vec![0u8; 64 * 1024]).await;
    let _ = frame.finish();
    let reason = tokio::time::timeout(Duration::from_secs(10), raw.closed()).await.unwrap();
    assert!(matches!(reason, quinn::ConnectionError::ApplicationClosed(_)), "{reason:?}");

    // Nothing else was affected: the first app's session is still active.
    assert_eq!(env.get(id).await.state, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_consent_prompt_times_out_as_a_denial() {
    let env = env().await;
    let quick = UpdateChannel { consent_timeout_secs: Some(1), ..UpdateChannel::default() };
    let _: ChannelView = env.admin.patch("/channels/1", &quick).await.unwrap();
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let agent = start_agent(&env, pin_of(&session), ScriptedAnswer::Ignore, None, Grants::default()).await.unwrap();
    env.wait_for(id, "active", |v| v.state == "active").await;
    env.remote(id).await;
    assert_eq!(env.get(id).await.consent.status, "pending");
    env.wait_for(id, "timed out", |v| v.consent.status == "none").await;
    let last = env.trail(id).await.pop().unwrap();
    assert!(matches!(last.action, AuditAction::ConsentDecided { outcome: ConsentOutcome::TimedOut, .. }), "{last:?}");
    let (frames, _) = watch(&env, &env.admin_tech(), id, 1, Duration::from_secs(2)).await;
    assert!(frames.is_empty());
    assert!(agent.sink.events().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_keeps_its_picture_across_the_apps_resumption() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let code = pin_of(&session);
    let agent = start_agent(&env, code.clone(), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    let viewer = env.viewer(&env.admin_tech(), id).await.unwrap();
    let (_commands, mut updates) = viewer.spawn();
    let mut frames = 0;
    while frames < 5 {
        if let Some(viewer::ViewerUpdate::Frame(_)) = tokio::time::timeout(Duration::from_secs(20), updates.recv()).await.unwrap() {
            frames += 1;
        }
    }
    let secret = agent.resume.clone().unwrap();
    agent.task.abort();
    env.wait_for(id, "waiting", |v| v.state == "waiting").await;
    let _back = start_agent(&env, code, ScriptedAnswer::Deny, Some(secret), admin_may_control()).await.unwrap();
    // The same viewer, still connected, decodes the resumed stream (its sequence numbers go on
    // increasing, so nothing is mistaken for a late frame).
    let mut after = 0;
    while after < 5 {
        match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await.unwrap() {
            Some(viewer::ViewerUpdate::Frame(_)) => after += 1,
            Some(viewer::ViewerUpdate::Ended(e)) => panic!("the viewer ended: {e:?}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_who_leaves_the_session_loses_the_picture() {
    let env = env().await;
    let bob = env.technician("bob").await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    env.invite(id, &bob).await;
    let _agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    env.share_with(id, &bob).await;
    let viewer = env.viewer(&bob, id).await.unwrap();
    let watching = tokio::spawn(async move { viewer.watch(Duration::from_secs(20), |_| true).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The session moves to another team's queue: Bob is no longer on it.
    let tier2 = CreateChannel { name: "Tier 2".into(), session_expiry_secs: None, consent_timeout_secs: None, max_file_bytes: None, record_sessions: None, recording_retention_days: None };
    let other: ChannelView = env.admin.post("/channels", &tier2).await.unwrap();
    let to_tier2 = TransferRequest { channel_id: Some(other.id), ..TransferRequest::default() };
    let _: SessionView = env.admin.post(&format!("/sessions/{id}/transfer"), &to_tier2).await.unwrap();
    let watched = tokio::time::timeout(Duration::from_secs(10), watching).await.unwrap().unwrap();
    assert!(matches!(watched, Err(ViewerError::Ended(_))), "{watched:?}");
    let again = env.viewer(&bob, id).await.err().unwrap();
    assert!(matches!(again, ViewerError::Rejected { reason: RejectReason::Forbidden, .. }), "{again}");
}

/// Found from outside: a channel member invited themself and viewed and typed under the
/// consent the end user gave another technician. Consent is per technician now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_given_to_one_technician_is_not_used_by_another() {
    let env = env().await;
    let bob = env.technician("bob").await;
    let carol = env.technician("carol").await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let mut agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    let admin = env.admin_tech();

    // Bob works in the channel but is not on the session: he cannot invite himself.
    let refused = env.client(&bob).post::<_, SessionView>(&format!("/sessions/{id}/invite"), &TechnicianRef { technician_id: bob.id.0 }).await.unwrap_err();
    assert!(matches!(&refused, deskline_console::client::ApiError::Api { status: 403, code, .. } if code == "not_owner"), "{refused}");

    // Carol, invited by the owner, sees nothing and controls nothing until the end user says so.
    env.invite(id, &carol).await;
    let (frames, result) = watch(&env, &carol, id, 1, Duration::from_secs(2)).await;
    assert!(frames.is_empty(), "a frame reached a technician the end user never allowed");
    assert!(result.is_err());
    let err = send_input(&env, &carol, id, &click()).await.unwrap_err();
    assert!(err.to_string().contains("not granted control"), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(agent.sink.events().is_empty(), "input from a technician without consent reached the app");
    let mut seen = Vec::new();
    assert_eq!(last_access(&mut agent.events, &mut seen), [admin.id], "the app lists who may see its screen");

    // Carol asks: the end user is asked again, naming her.
    env.share_with(id, &carol).await;
    let (frames, result) = watch(&env, &carol, id, 3, Duration::from_secs(20)).await;
    result.unwrap();
    assert_eq!(frames.len(), 3);
    let mut listed = last_access(&mut agent.events, &mut seen);
    listed.sort();
    assert_eq!(listed, [admin.id, carol.id]);
    assert!(seen.iter().any(|e| matches!(e, AgentEvent::ConsentRequested(r) if r.technician_id == carol.id && r.technician == "carol")));
    let decided: Vec<Option<TechnicianId>> = env
        .trail(id)
        .await
        .iter()
        .filter_map(|e| match e.action {
            AuditAction::ConsentDecided { technician, .. } => Some(technician),
            _ => None,
        })
        .collect();
    assert_eq!(decided.last(), Some(&Some(carol.id)), "the audit names whom consent was given to");
}

/// Opens a connection from `local` (a loopback address: each 127.0.N.0/24 is a network of its
/// own), presents `code` (and a resumption secret) as a support app would, and returns the
/// relay's answer.
async fn hello_from(env: &Env, local: std::net::IpAddr, code: AppCode, resume: Option<ResumeSecret>) -> Message {
    let fp = deskline_net::tls::parse_fingerprint(&env.fingerprint).unwrap();
    let mut endpoint = quinn::Endpoint::client(std::net::SocketAddr::new(local, 0)).unwrap();
    endpoint.set_default_client_config(deskline_net::quic::client_config(Some(fp)).unwrap());
    let connection = endpoint.connect(env.quic, "localhost").unwrap().await.unwrap();
    let hello = Message::Hello(Hello { protocol_version: PROTOCOL_VERSION, role: HelloRole::App { code, info: info(), resume } });
    let (_writer, mut reader) = deskline_net::framed::open_control(&connection, &hello).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), reader.next()).await.unwrap().unwrap().unwrap()
}

/// Found from outside: 20 addresses × 5 wrong PINs refused the correct PIN, valid links and
/// even resumptions for a minute. Now strangers' failures slow the strangers only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_from_many_networks_never_lock_out_an_honest_end_user() {
    use deskline_relay::limits::{CODE_ATTACK_THRESHOLD, MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK};
    let env = env().await;
    let pin_session = env.session(SessionKind::Pin).await;
    let right = pin_session.pin.clone().unwrap();
    let wrong = if right == "000000" { "000001" } else { "000000" };
    let link_session = env.session(SessionKind::Link).await;
    let resuming = env.session(SessionKind::Pin).await;
    let resuming_id = resuming.id;
    let app = start_agent(&env, pin_of(&resuming), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(resuming_id).await;
    let secret = app.resume.clone().unwrap();

    // An attack from many networks (127.0.N.1, one /24 each), all at once: past the threshold.
    let wrong_code = || AppCode::Pin(wrong.parse().unwrap());
    let attackers: Vec<std::net::IpAddr> = (1..=CODE_ATTACK_THRESHOLD as u8 + 10).map(|n| std::net::IpAddr::from([127, 0, n, 1])).collect();
    let answers = futures_util::future::join_all(attackers.iter().map(|&a| hello_from(&env, a, wrong_code(), None))).await;
    assert!(answers.iter().all(|m| matches!(m, Message::Reject(r) if r.reason == RejectReason::UnknownCode)));
    // The attack's own networks are slowed and then refused...
    let more = (0..MAX_CODE_FAILURES_PER_NETWORK_UNDER_ATTACK).map(|_| hello_from(&env, attackers[0], wrong_code(), None));
    futures_util::future::join_all(more).await;
    let answer = hello_from(&env, attackers[0], wrong_code(), None).await;
    assert!(matches!(&answer, Message::Reject(r) if matches!(r.reason, RejectReason::RateLimited { .. })), "{answer:?}");

    // ...while the correct PIN and a valid link work from a network of their own (127.0.0.1)...
    let by_pin = start_agent(&env, AppCode::Pin(right.parse().unwrap()), ScriptedAnswer::Deny, None, Grants::default()).await;
    assert!(by_pin.is_ok(), "the correct PIN was refused during the attack: {:?}", by_pin.err());
    let by_link = start_agent(&env, link_of(&link_session), ScriptedAnswer::Deny, None, Grants::default()).await;
    assert!(by_link.is_ok(), "a valid link was refused during the attack: {:?}", by_link.err());

    // ...and a resumption passes even from a network that is itself over its allowance.
    app.task.abort();
    env.wait_for(resuming_id, "dropped", |v| v.state == "waiting").await;
    let answer = hello_from(&env, attackers[0], pin_of(&resuming), Some(secret)).await;
    assert!(matches!(&answer, Message::Welcome(w) if w.resumed), "{answer:?}");
    let connected = env.trail(resuming_id).await.iter().rev().find_map(|e| match e.action {
        AuditAction::AppConnected { resumed } => Some(resumed),
        _ => None,
    });
    assert_eq!(connected, Some(true), "the resumption kept its consent");
}

/// Found from outside: a client that completed the QUIC handshake and never opened a stream
/// was held forever (the relay's keep-alives kept it up), and one host could take every slot.
/// The flood from that host is refused while an honest app and viewer keep streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_one_network_cannot_take_every_slot() {
    use deskline_relay::limits::{DEFAULT_CONNECTIONS_PER_NETWORK, HELLO_TIMEOUT};
    let env = env().await;
    let fp = deskline_net::tls::parse_fingerprint(&env.fingerprint).unwrap();
    let endpoint_at = |local: [u8; 4]| {
        let mut endpoint = quinn::Endpoint::client(std::net::SocketAddr::from((local, 0))).unwrap();
        endpoint.set_default_client_config(deskline_net::quic::client_config(Some(fp)).unwrap());
        endpoint
    };
    // An honest end user shares with a technician, who watches; frames are counted as they come.
    let streaming = env.session(SessionKind::Pin).await;
    let _honest = start_agent(&env, pin_of(&streaming), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(streaming.id).await;
    let (_commands, mut updates) = env.viewer(&env.admin_tech(), streaming.id).await.unwrap().spawn();
    let frames = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = frames.clone();
    tokio::spawn(async move {
        while let Some(update) = updates.recv().await {
            if let ViewerUpdate::Frame(_) = update {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let frames_now = || frames.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(20), async {
        while frames_now() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the honest viewer's first frame");
    let before_flood = frames_now();

    // One host opens as many connections as its network may hold, and says nothing...
    let host = endpoint_at([127, 0, 77, 1]);
    let mut silent = Vec::new();
    for _ in 0..DEFAULT_CONNECTIONS_PER_NETWORK {
        silent.push(host.connect(env.quic, "localhost").unwrap().await.unwrap());
    }
    // ...then floods: every further connection is refused, at once.
    let flood = (0..200).map(|_| async { host.connect(env.quic, "localhost").unwrap().await.is_err() });
    let refused = futures_util::future::join_all(flood).await;
    assert!(refused.iter().all(|&r| r), "a connection beyond the network's limit was accepted");
    // The honest viewer kept getting the picture meanwhile (the silent connections still hold
    // every slot of their network).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_flood = frames_now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(frames_now() > after_flood, "the honest stream stopped after the flood");
    assert!(after_flood > before_flood, "no frame reached the honest viewer during the flood");
    // Another network is not affected: a real app registers.
    let session = env.session(SessionKind::Pin).await;
    let _agent = start_agent(&env, pin_of(&session), ScriptedAnswer::Deny, None, Grants::default()).await.unwrap();
    // The silent ones are closed by the relay once the hello deadline passes.
    let closed = tokio::time::timeout(HELLO_TIMEOUT + Duration::from_secs(5), silent[0].closed()).await;
    assert!(closed.is_ok(), "a silent connection was still open after the hello deadline");
    assert!(matches!(closed.unwrap(), quinn::ConnectionError::ApplicationClosed(_)), "closed by the relay");
    for connection in &silent[1..] {
        tokio::time::timeout(Duration::from_secs(5), connection.closed()).await.unwrap();
    }
    // Their slots are free again.
    assert!(host.connect(env.quic, "localhost").unwrap().await.is_ok());
}

/// Found in review: a token good only for setting a password (someone else's one-time password,
/// or a second factor an admin requires) could still watch a session over QUIC. The same rule
/// as the API's now refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_token_cannot_watch() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let _agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    let new = CreateTechnician { username: "tom".into(), display_name: String::new(), password: ONE_TIME_PASSWORD.into(), role: Role::Technician };
    let t: TechnicianView = env.admin.post("/technicians", &new).await.unwrap();
    let _: ChannelView = env.admin.post("/channels/1/members", &TechnicianRef { technician_id: t.id }).await.unwrap();
    let _: SessionView = env.admin.post(&format!("/sessions/{}/invite", session.id), &TechnicianRef { technician_id: t.id }).await.unwrap();
    let one_time = sign_in(&env.server, &env.fingerprint, "tom", ONE_TIME_PASSWORD).await;
    assert!(one_time.technician.must_change_password);
    let tom = Tech { id: TechnicianId(t.id), token: one_time.token };
    match env.viewer(&tom, session.id).await {
        Err(ViewerError::Rejected { reason: RejectReason::Forbidden, message }) => assert!(message.contains("set your own password"), "{message}"),
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("a one-time password's token watched a session"),
    }
    // With his own password set, the same technician may watch (once the end user allows).
    let own = Tech { id: tom.id, token: env.technician_password_set(&tom).await };
    assert!(env.viewer(&own, session.id).await.is_ok());
}

/// A screen that never changes: a frame only when a keyframe is asked for (as the real
/// capture on a still display).
struct StillScreen {
    inner: SyntheticSource,
    sent: bool,
}

impl FrameSource for StillScreen {
    fn displays(&self) -> Vec<deskline_protocol::DisplayInfo> {
        self.inner.displays()
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        if self.sent && !force_keyframe {
            return Ok(None);
        }
        self.sent = true;
        self.inner.next_frame(true)
    }
}

/// Found by a new user (issue 13): a viewer that joined a still screen just after another one
/// stayed black until the app's periodic keyframe, because its keyframe request fell within
/// the relay's spacing of requests and was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_a_still_screen_gets_a_picture_at_once() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let source = || Ok(StillScreen { inner: SyntheticSource::new(WIDTH, HEIGHT)?, sent: false });
    let _agent = start_agent_with(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default(), source).await.unwrap();
    env.share(id).await;
    // The first viewer gets its picture (and stays).
    let (_first, mut updates) = env.viewer(&env.admin_tech(), id).await.unwrap().spawn();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), updates.recv()).await.unwrap().unwrap() {
            ViewerUpdate::Frame(_) => break,
            ViewerUpdate::Ended(e) => panic!("ended: {e:?}"),
            _ => {}
        }
    }
    // The second joins right after: its keyframe request falls within the relay's spacing.
    let (frames, result) = watch(&env, &env.admin_tech(), id, 1, Duration::from_secs(5)).await;
    assert!(result.is_ok() && frames.len() == 1, "the second viewer got no picture of a still screen: {result:?}");
}

/// Found by a new user (issue 13): after the session was assigned to another technician, the
/// relay had ended the consent but the app still said "… sees your screen". The app follows
/// the relay's grant, and stops capturing with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_shows_nobody_sees_the_screen_once_the_relay_ends_the_grant() {
    let env = env().await;
    let bob = env.technician("bob").await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let mut agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.share(id).await;
    let viewer = env.viewer(&env.admin_tech(), id).await.unwrap();
    let watching = tokio::spawn(async move { viewer.watch(Duration::from_secs(20), |_| true).await });
    let mut seen = Vec::new();
    for _ in 0..100 {
        if seen.contains(&AgentEvent::Streaming(true)) {
            break;
        }
        last_access(&mut agent.events, &mut seen);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.contains(&AgentEvent::Streaming(true)), "{seen:?}");
    assert_eq!(last_access(&mut agent.events, &mut seen), [env.admin_tech().id]);

    let _: SessionView = env.admin.post(&format!("/sessions/{id}/assign"), &TechnicianRef { technician_id: bob.id.0 }).await.unwrap();
    env.wait_for(id, "consent ended", |v| v.consent.status == "none").await;
    let mut stopped = false;
    for _ in 0..100 {
        let listed = last_access(&mut agent.events, &mut seen);
        stopped = listed.is_empty() && seen.iter().rev().find(|e| matches!(e, AgentEvent::Streaming(_))) == Some(&AgentEvent::Streaming(false));
        if stopped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stopped, "the app still shows a grant or still captures: {seen:?}");
    let _ = watching.await;
}

/// Viewers are told what the end user allows their technician: nothing before consent,
/// view and control after it, nothing once the end user stops sharing (issue 13: the browser
/// viewer said "viewing" over a frozen picture after Stop sharing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_told_when_the_end_user_allows_and_stops_sharing() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.wait_for(id, "active", |v| v.state == "active").await;
    let (_commands, mut updates) = env.viewer(&env.admin_tech(), id).await.unwrap().spawn();
    let mut next_allowed = async || loop {
        match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await.unwrap().unwrap() {
            ViewerUpdate::Allowed(allowed) => return allowed,
            ViewerUpdate::Ended(e) => panic!("ended: {e:?}"),
            _ => {}
        }
    };
    assert_eq!(next_allowed().await, Capabilities::NONE, "on joining, before consent");
    env.remote(id).await;
    assert_eq!(next_allowed().await, Capabilities::VIEW_AND_CONTROL);
    agent.commands.send(AgentCommand::StopSharing).unwrap();
    assert_eq!(next_allowed().await, Capabilities::NONE, "after Stop sharing");
}

/// The synthetic pattern, hidden by the system while `hidden` is set (as Windows hides the
/// screen behind a UAC prompt or the lock screen).
struct SometimesHidden {
    inner: SyntheticSource,
    hidden: Arc<std::sync::atomic::AtomicBool>,
}

impl FrameSource for SometimesHidden {
    fn displays(&self) -> Vec<deskline_protocol::DisplayInfo> {
        self.inner.displays()
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        if self.hidden.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(EncodeError::paused(deskline_protocol::PauseReason::SecureDesktop));
        }
        self.inner.next_frame(force_keyframe)
    }
}

/// Waits for the viewer's next pause report, skipping frames and the rest.
async fn next_pause(updates: &mut mpsc::Receiver<ViewerUpdate>) -> Option<deskline_protocol::PauseReason> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await.unwrap().unwrap() {
            ViewerUpdate::Paused(reason) => return reason,
            ViewerUpdate::Ended(e) => panic!("ended: {e:?}"),
            _ => {}
        }
    }
}

/// Issue 12: when the system hides the screen (a UAC prompt on the secure desktop, the lock
/// screen), technicians are told why the picture stopped instead of watching it freeze, a
/// viewer joining meanwhile is told at once, and the picture comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_told_why_the_picture_stopped_and_when_it_is_back() {
    use deskline_protocol::PauseReason;
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let hidden = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = hidden.clone();
    let source = move || Ok(SometimesHidden { inner: SyntheticSource::new(WIDTH, HEIGHT)?, hidden: flag });
    let _agent = start_agent_with(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default(), source).await.unwrap();
    env.share(id).await;
    let (frames, result) = watch(&env, &env.admin_tech(), id, 2, Duration::from_secs(10)).await;
    assert!(result.is_ok() && frames.len() == 2, "a picture first: {result:?}");

    let (first, mut updates) = env.viewer(&env.admin_tech(), id).await.unwrap().spawn();
    hidden.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(next_pause(&mut updates).await, Some(PauseReason::SecureDesktop));
    first.send(viewer::ViewerCommand::Leave).unwrap();
    while updates.recv().await.is_some() {}
    // A viewer joining now learns it on joining; a headless one says why nothing comes.
    let (_second, mut late) = env.viewer(&env.admin_tech(), id).await.unwrap().spawn();
    assert_eq!(next_pause(&mut late).await, Some(PauseReason::SecureDesktop));
    let (frames, result) = watch(&env, &env.admin_tech(), id, 1, Duration::from_secs(2)).await;
    let error = result.unwrap_err().to_string();
    assert!(frames.is_empty() && error.contains("UAC prompt or the lock screen"), "{error}");

    hidden.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(next_pause(&mut late).await, None, "the picture is back");
    loop {
        match tokio::time::timeout(Duration::from_secs(20), late.recv()).await.unwrap().unwrap() {
            ViewerUpdate::Frame(_) => break,
            ViewerUpdate::Ended(e) => panic!("ended: {e:?}"),
            _ => {}
        }
    }
}

/// The next chat line the app was given (bounded).
async fn next_chat(events: &mut mpsc::UnboundedReceiver<AgentEvent>) -> ChatLine {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(AgentEvent::Chat(line))) => return line,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no chat line reached the app"),
        }
    }
}

/// The next chat line a native viewer was given (bounded).
async fn next_viewer_chat(updates: &mut mpsc::Receiver<ViewerUpdate>) -> ChatLine {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some(ViewerUpdate::Chat(line))) => return line,
            Ok(Some(ViewerUpdate::Ended(e))) => panic!("the viewer ended: {e:?}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no chat line reached the viewer"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn technicians_and_the_end_user_chat_both_ways_before_and_after_consent() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let mut agent = start_agent(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    env.wait_for(id, "active", |v| v.state == "active").await;
    let bob = env.technician("bob").await;
    env.invite(id, &bob).await;
    // Bob watches in the native viewer; nothing is shared yet.
    let (bob_commands, mut bob_updates) = env.viewer(&bob, id).await.unwrap().spawn();

    // Before any consent: the admin writes through the API, markup and all.
    let hello = "<b>Hello</b>, this is the help desk <img src=x onerror=alert(1)>";
    let sent: ChatMessageView = env.admin.post(&format!("/sessions/{id}/chat"), &NewChatMessage { text: hello.into() }).await.unwrap();
    assert_eq!((sent.from.as_str(), sent.technician_id, sent.text.as_str()), ("technician", Some(1), hello));
    let at_app = next_chat(&mut agent.events).await;
    assert_eq!(at_app.text, hello, "the text arrives as it was written");
    assert!(matches!(&at_app.from, ChatFrom::Technician { id, .. } if *id == TechnicianId(1)), "{at_app:?}");
    assert_eq!(next_viewer_chat(&mut bob_updates).await, at_app);

    // The end user answers from the app; the native viewer sends too.
    agent.commands.send(AgentCommand::Chat("My printer says error 0x80070005".into())).unwrap();
    let answer = next_viewer_chat(&mut bob_updates).await;
    assert_eq!((answer.from.clone(), answer.text.as_str()), (ChatFrom::EndUser, "My printer says error 0x80070005"));
    assert_eq!(next_chat(&mut agent.events).await, answer, "the app shows its own line as recorded");
    bob_commands.send(ViewerCommand::Chat("Bob here, looking at it".into())).unwrap();
    let from_bob = next_chat(&mut agent.events).await;
    assert!(matches!(&from_bob.from, ChatFrom::Technician { id, name } if *id == bob.id && name == "bob"), "{from_bob:?}");

    // After consent, the same.
    env.remote(id).await;
    env.wait_for(id, "granted", |v| v.consent.status == "granted").await;
    let _: ChatMessageView = env.admin.post(&format!("/sessions/{id}/chat"), &NewChatMessage { text: "Thanks, I see it".into() }).await.unwrap();
    assert_eq!(next_chat(&mut agent.events).await.text, "Thanks, I see it");

    // Kept with the session, oldest first, in its hash-chained trail too.
    let history: Vec<ChatMessageView> = env.admin.get(&format!("/sessions/{id}/chat")).await.unwrap();
    let texts: Vec<(&str, &str)> = history.iter().map(|m| (m.name.as_str(), m.text.as_str())).collect();
    assert_eq!(
        texts,
        vec![("Administrator", hello), ("End user", "My printer says error 0x80070005"), ("bob", "Bob here, looking at it"), ("Administrator", "Thanks, I see it")]
    );
    let trail = env.trail(id).await;
    assert_eq!(trail.iter().filter(|e| matches!(e.action, AuditAction::Chat { .. })).count(), 4);
    assert!(trail.iter().any(|e| e.actor == Actor::App && matches!(&e.action, AuditAction::Chat { text } if text.starts_with("My printer"))));

    // Bad lines get a clear error and change nothing.
    let blank = env.admin.post::<_, ChatMessageView>(&format!("/sessions/{id}/chat"), &NewChatMessage { text: " \n ".into() }).await.unwrap_err();
    assert_eq!((blank.status(), blank.code()), (Some(400), Some("invalid_field")), "{blank}");
    let long = "x".repeat(deskline_protocol::limits::MAX_CHAT_TEXT_BYTES + 1);
    let too_long = env.admin.post::<_, ChatMessageView>(&format!("/sessions/{id}/chat"), &NewChatMessage { text: long }).await.unwrap_err();
    assert_eq!(too_long.status(), Some(400), "{too_long}");
    // A technician of the channel who is not on the session may not write on it.
    let carol = env.technician("carol").await;
    let outsider = env.client(&carol).post::<_, ChatMessageView>(&format!("/sessions/{id}/chat"), &NewChatMessage { text: "hi".into() }).await.unwrap_err();
    assert_eq!(outsider.status(), Some(403), "{outsider}");
    // A flood is cut off: at most a burst of lines at once.
    let mut accepted = 0;
    let refused = loop {
        match env.client(&bob).post::<_, ChatMessageView>(&format!("/sessions/{id}/chat"), &NewChatMessage { text: "spam".into() }).await {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= deskline_protocol::limits::CHAT_BURST, "no limit after {accepted} lines");
    };
    assert_eq!(refused.status(), Some(429), "{refused}");
    // The admin is limited separately from bob.
    let _: ChatMessageView = env.admin.post(&format!("/sessions/{id}/chat"), &NewChatMessage { text: "still here".into() }).await.unwrap();
    let history: Vec<ChatMessageView> = env.admin.get(&format!("/sessions/{id}/chat")).await.unwrap();
    assert_eq!(history.len(), 4 + accepted as usize + 1, "refused lines are not kept");

    // Once the app has left, nobody could read a line: refused as such.
    agent.commands.send(AgentCommand::Disconnect).unwrap();
    env.wait_for(id, "waiting", |v| v.state == "waiting").await;
    let gone = env.admin.post::<_, ChatMessageView>(&format!("/sessions/{id}/chat"), &NewChatMessage { text: "hello?".into() }).await.unwrap_err();
    assert_eq!((gone.status(), gone.code()), (Some(409), Some("app_not_connected")), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_machine_facts_reach_the_session_detail() {
    let env = env().await;
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let mut registered = register(&env.config(pin_of(&session)), info(), None).await.unwrap();
    // Facts over the protocol's limits are refused before they leave the app.
    let oversized = MachineFacts { user_name: "x".repeat(deskline_protocol::limits::MAX_TEXT_BYTES + 1), cpu: String::new(), cpu_threads: 0, memory_bytes: 0, uptime_secs: 0 };
    assert!(registered.tell_machine(oversized).await.is_err());
    let facts = MachineFacts {
        user_name: r"OFFICE\ada".into(),
        cpu: "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz".into(),
        cpu_threads: 8,
        memory_bytes: 8_264_876_032,
        uptime_secs: 3 * 3600,
    };
    registered.tell_machine(facts).await.unwrap();
    let v = env.wait_for(id, "the machine facts", |v| v.machine.is_some()).await;
    let m = v.machine.unwrap();
    assert_eq!((m.user_name.as_str(), m.cpu_threads, m.memory_bytes), (r"OFFICE\ada", 8, 8_264_876_032));
    assert_eq!(m.cpu, "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz");
    // Started three hours before the relay heard of it, on the relay's clock.
    let booted = time::OffsetDateTime::parse(&m.booted_at, &time::format_description::well_known::Rfc3339).unwrap();
    let ago = time::OffsetDateTime::now_utc() - booted;
    assert!((ago.whole_seconds() - 3 * 3600).abs() < 60, "started {ago} ago");
}

/// `size` bytes that differ all along (a damaged or misplaced chunk changes the SHA-256).
fn sample_file(dir: &std::path::Path, name: &str, size: usize) -> std::path::PathBuf {
    let mut data = Vec::with_capacity(size);
    let mut x: u32 = 0x1234_5678;
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    path
}

fn sha256_of(path: &std::path::Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Asks the end user for `ask` (a capability list) as the admin, and waits for the app's grant.
async fn share_asking(env: &Env, id: i64, ask: &str) {
    env.wait_for(id, "active", |v| v.state == "active").await;
    let body = RemoteRequest { capabilities: Some(ask.into()) };
    let _: SessionView = env.admin.post(&format!("/sessions/{id}/remote"), &body).await.unwrap();
    env.wait_for(id, "granted", |v| v.consent.status == "granted").await;
}

/// The next event the app reports that `pick` takes (bounded).
async fn next_event<T>(agent: &mut RunningAgent, what: &str, mut pick: impl FnMut(AgentEvent) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, agent.events.recv()).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            Ok(None) => panic!("the app stopped before {what}"),
            Err(_) => panic!("no {what} within 30 s"),
        }
    }
}

/// The files in `dir`, hidden ones (partial files) included.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Issue 17: a 50 MB file each way, through the relay (which keeps nothing), checked by
/// SHA-256 at the receiver; a name already taken gets a number; every transfer is in the
/// audit trail with its name, size and hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_file_passes_each_way_whole_with_its_sha256_checked() {
    let env = env().await;
    let files = tempfile::tempdir().unwrap();
    let (outbox, downloads, received) = (files.path().join("outbox"), files.path().join("Downloads"), files.path().join("received"));
    for dir in [&outbox, &downloads, &received] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let report = sample_file(&outbox, "report.bin", 50 * 1024 * 1024);
    std::fs::write(downloads.join("report.bin"), b"an older file the end user keeps").unwrap();
    let s = env.session(SessionKind::Pin).await;
    let mut agent = start_agent(&env, pin_of(&s), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    share_asking(&env, s.id, "view,control,files").await;

    // Technician → end user: the app is asked, and saves it in its Downloads.
    let viewer = env.viewer(&env.admin_tech(), s.id).await.unwrap();
    let sending = tokio::spawn({
        let report = report.clone();
        async move { viewer.send_file(&report, Duration::from_secs(30), |_| {}, |_| {}).await }
    });
    let offer = next_event(&mut agent, "the file offer", |e| match e {
        AgentEvent::FileOffered(offer) => Some(offer),
        _ => None,
    })
    .await;
    assert_eq!((offer.name.as_str(), offer.size, offer.from.as_str()), ("report.bin", 50 * 1024 * 1024, "Administrator"));
    agent.commands.send(AgentCommand::AnswerFile { transfer: offer.transfer, save_to: Some(downloads.join("report.bin")) }).unwrap();
    assert_eq!(sending.await.unwrap().unwrap(), "report (1).bin", "the end user's own report.bin is kept");
    let (saved, message) = next_event(&mut agent, "the file saved", |e| match e {
        AgentEvent::FileDone { incoming: true, saved, message, .. } => Some((saved, message)),
        _ => None,
    })
    .await;
    assert!(saved, "{message}");
    assert_eq!(sha256_of(&downloads.join("report (1).bin")), sha256_of(&report));
    assert_eq!(std::fs::read(downloads.join("report.bin")).unwrap(), b"an older file the end user keeps");
    assert_eq!(listing(&downloads), ["report (1).bin", "report.bin"], "no partial file left");

    // End user → technician: the technician waiting for it saves it.
    let viewer = env.viewer(&env.admin_tech(), s.id).await.unwrap();
    let receiving = tokio::spawn({
        let received = received.clone();
        async move { viewer.receive_file(&received, Duration::from_secs(30), |_| {}, |_| {}).await }
    });
    // (Sent again until the technician's viewer has joined: an offer nobody may take is refused.)
    let mut sent_as = None;
    for transfer in 1..=20u64 {
        agent.commands.send(AgentCommand::SendFile { transfer, path: report.clone() }).unwrap();
        let (saved, message) = next_event(&mut agent, "the end user's file", |e| match e {
            AgentEvent::FileDone { incoming: false, transfer: t, saved, message, .. } if t == transfer => Some((saved, message)),
            _ => None,
        })
        .await;
        if saved {
            sent_as = Some(message);
            break;
        }
        assert!(message.contains("no technician"), "{message}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sent_as.as_deref(), Some("report.bin"));
    let path = receiving.await.unwrap().unwrap();
    assert_eq!(path, received.join("report.bin"));
    assert_eq!(sha256_of(&path), sha256_of(&report));

    let hash = sha256_of(&report);
    let trail = env.trail(s.id).await;
    let files: Vec<&AuditEventView> = trail.iter().filter(|e| matches!(e.action, AuditAction::File { .. })).collect();
    assert_eq!(files.len(), 2, "{trail:?}");
    for (event, actor) in files.iter().zip([Actor::Technician(TechnicianId(1)), Actor::App]) {
        assert_eq!(event.actor, actor);
        let AuditAction::File { name, bytes, sha256, outcome } = &event.action else { unreachable!() };
        assert_eq!((name.as_str(), *bytes, sha256.as_str(), *outcome), ("report.bin", 50 * 1024 * 1024, hash.as_str(), FileOutcome::Saved));
    }
    agent.task.abort();
}

/// A declined file leaves nothing; a transfer cut off midway (the technician's side goes away)
/// leaves nothing under the final name, and no partial file either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_or_broken_off_file_leaves_nothing() {
    let env = env().await;
    let files = tempfile::tempdir().unwrap();
    let (outbox, downloads) = (files.path().join("outbox"), files.path().join("Downloads"));
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::create_dir_all(&downloads).unwrap();
    let big = sample_file(&outbox, "image.iso", 50 * 1024 * 1024);
    let s = env.session(SessionKind::Pin).await;
    let mut agent = start_agent(&env, pin_of(&s), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    share_asking(&env, s.id, "view,files").await;

    let viewer = env.viewer(&env.admin_tech(), s.id).await.unwrap();
    let sending = tokio::spawn({
        let big = big.clone();
        async move { viewer.send_file(&big, Duration::from_secs(30), |_| {}, |_| {}).await }
    });
    let offer = next_event(&mut agent, "the offer", |e| if let AgentEvent::FileOffered(o) = e { Some(o) } else { None }).await;
    agent.commands.send(AgentCommand::AnswerFile { transfer: offer.transfer, save_to: None }).unwrap();
    let error = sending.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("declined"), "{error}");
    assert!(listing(&downloads).is_empty());

    // Accepted, then the technician's side goes away midway.
    let viewer = env.viewer(&env.admin_tech(), s.id).await.unwrap();
    let sending = tokio::spawn({
        let big = big.clone();
        async move { viewer.send_file(&big, Duration::from_secs(30), |_| {}, |_| {}).await }
    });
    let offer = next_event(&mut agent, "the second offer", |e| if let AgentEvent::FileOffered(o) = e { Some(o) } else { None }).await;
    agent.commands.send(AgentCommand::AnswerFile { transfer: offer.transfer, save_to: Some(downloads.join("image.iso")) }).unwrap();
    next_event(&mut agent, "some bytes", |e| matches!(e, AgentEvent::FileProgress { bytes, .. } if bytes > 0).then_some(())).await;
    sending.abort();
    let (saved, message) = next_event(&mut agent, "the broken transfer", |e| match e {
        AgentEvent::FileDone { incoming: true, saved, message, .. } => Some((saved, message)),
        _ => None,
    })
    .await;
    assert!(!saved && message.contains("broke off"), "{message}");
    assert!(listing(&downloads).is_empty(), "nothing left: {:?}", listing(&downloads));

    let trail = env.trail(s.id).await;
    let outcomes: Vec<FileOutcome> = trail
        .iter()
        .filter_map(|e| if let AuditAction::File { outcome, .. } = e.action { Some(outcome) } else { None })
        .collect();
    assert_eq!(outcomes, [FileOutcome::Declined, FileOutcome::Failed]);
    agent.task.abort();
}

/// A viewer that speaks the protocol directly (to send what the CLI would refuse to).
async fn raw_viewer(env: &Env, tech: &Tech, session: i64) -> (quinn::Connection, deskline_net::framed::MessageWriter, deskline_net::framed::MessageReader) {
    let connection = deskline_net::quic::connect(env.quic, "localhost", Some(env.target().fingerprint)).await.unwrap();
    let hello = Message::Hello(Hello { protocol_version: PROTOCOL_VERSION, role: HelloRole::Technician { token: tech.token.clone(), session: SessionId(session) } });
    let (writer, mut reader) = deskline_net::framed::open_control(&connection, &hello).await.unwrap();
    assert!(matches!(reader.next().await.unwrap(), Some(Message::Welcome(_))));
    (connection, writer, reader)
}

/// The relay's word on a transfer (skipping everything else).
async fn file_word(reader: &mut deskline_net::framed::MessageReader, transfer: u64) -> Message {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), reader.next()).await.unwrap().unwrap().unwrap() {
            m @ (Message::FileResult(deskline_protocol::FileResult { transfer: t, .. }) | Message::FileAnswer(deskline_protocol::FileAnswer { transfer: t, .. }))
                if t == transfer =>
            {
                return m;
            }
            _ => {}
        }
    }
}

/// Without the `files` grant the relay forwards no offer (the app never hears of it), and
/// with it a file larger than the channel allows is refused before any byte moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_passes_without_the_grant_or_beyond_the_size_limit() {
    let env = env().await;
    let files = tempfile::tempdir().unwrap();
    let note = sample_file(files.path(), "note.txt", 1000);
    let s = env.session(SessionKind::Pin).await;
    let mut agent = start_agent(&env, pin_of(&s), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    share_asking(&env, s.id, "view,control").await;

    // The CLI's viewer says so itself...
    let viewer = env.viewer(&env.admin_tech(), s.id).await.unwrap();
    let error = viewer.send_file(&note, Duration::from_secs(5), |_| {}, |_| {}).await.unwrap_err().to_string();
    assert!(error.contains("not allowed you files"), "{error}");
    // ... and the relay refuses an offer sent anyway.
    let (_connection, mut writer, mut reader) = raw_viewer(&env, &env.admin_tech(), s.id).await;
    let offer = deskline_protocol::FileOffer { transfer: 7, name: "note.txt".into(), size: 1000, sha256: [0; 32], from: String::new() };
    writer.send(&Message::FileOffer(offer.clone())).await.unwrap();
    match file_word(&mut reader, 7).await {
        Message::FileResult(result) => assert!(!result.saved && result.message.contains("not allowed you files"), "{result:?}"),
        other => panic!("{other:?}"),
    }

    // With files granted: larger than the channel allows (by default 2 GiB; an admin set 1 MB
    // here), or any file where the channel allows none.
    share_asking(&env, s.id, "view,control,files").await;
    env.wait_for(s.id, "files granted", |v| grant_of(v, TechnicianId(1)).is_some_and(|c| c.files())).await;
    let channels: Vec<ChannelView> = env.admin.get("/channels").await.unwrap();
    assert_eq!(channels[0].max_file_bytes, 2 * 1024 * 1024 * 1024);
    let limit = |bytes: i64| UpdateChannel { max_file_bytes: Some(bytes), ..UpdateChannel::default() };
    let channel: ChannelView = env.admin.patch("/channels/1", &limit(1_000_000)).await.unwrap();
    assert_eq!(channel.max_file_bytes, 1_000_000);
    let huge = deskline_protocol::FileOffer { transfer: 8, size: 1_000_001, ..offer.clone() };
    writer.send(&Message::FileOffer(huge)).await.unwrap();
    match file_word(&mut reader, 8).await {
        Message::FileResult(result) => assert!(result.message.contains("more than this channel allows (1000000 bytes)"), "{result:?}"),
        other => panic!("{other:?}"),
    }
    let _: ChannelView = env.admin.patch("/channels/1", &limit(0)).await.unwrap();
    writer.send(&Message::FileOffer(deskline_protocol::FileOffer { transfer: 9, ..offer })).await.unwrap();
    match file_word(&mut reader, 9).await {
        Message::FileResult(result) => assert!(result.message.contains("allows no files"), "{result:?}"),
        other => panic!("{other:?}"),
    }
    let error = env.admin.patch::<_, ChannelView>("/channels/1", &limit(-1)).await.unwrap_err().to_string();
    // (A refused setting changes nothing.)
    assert!(error.contains("max_file_bytes"), "{error}");
    // The app heard of neither.
    let mut seen = Vec::new();
    while let Ok(event) = agent.events.try_recv() {
        seen.push(event);
    }
    assert!(!seen.iter().any(|e| matches!(e, AgentEvent::FileOffered(_))), "{seen:?}");
    agent.task.abort();
}

/// A 50 MB file on its way from the admin to the end user (asked for `ask`), accepted into a
/// Downloads folder; once some bytes arrived the end user does `midway`. What then became of
/// it.
struct Midway {
    /// The app's word on the file: saved, and its message.
    saved: bool,
    message: String,
    /// The sending technician's result.
    sent: Result<String, ViewerError>,
    downloads: std::path::PathBuf,
    file: std::path::PathBuf,
    session: i64,
    _files: tempfile::TempDir,
}

async fn a_file_midway(env: &Env, ask: &str, midway: AgentCommand) -> Midway {
    let files = tempfile::tempdir().unwrap();
    let downloads = files.path().join("Downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let file = sample_file(files.path(), "backup.tar", 50 * 1024 * 1024);
    let s = env.session(SessionKind::Pin).await;
    let mut agent = start_agent(env, pin_of(&s), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    share_asking(env, s.id, ask).await;
    let viewer = env.viewer(&env.admin_tech(), s.id).await.unwrap();
    let sending = tokio::spawn({
        let file = file.clone();
        async move { viewer.send_file(&file, Duration::from_secs(30), |_| {}, |_| {}).await }
    });
    let offer = next_event(&mut agent, "the offer", |e| if let AgentEvent::FileOffered(o) = e { Some(o) } else { None }).await;
    agent.commands.send(AgentCommand::AnswerFile { transfer: offer.transfer, save_to: Some(downloads.join("backup.tar")) }).unwrap();
    next_event(&mut agent, "some bytes", |e| matches!(e, AgentEvent::FileProgress { bytes, .. } if bytes > 0).then_some(())).await;
    agent.commands.send(midway).unwrap();
    let (saved, message) = next_event(&mut agent, "the file's end", |e| match e {
        AgentEvent::FileDone { incoming: true, saved, message, .. } => Some((saved, message)),
        _ => None,
    })
    .await;
    let sent = sending.await.unwrap();
    agent.task.abort();
    Midway { saved, message, sent, downloads, file, session: s.id, _files: files }
}

/// The end user stops sharing while a file is on its way: the relay's gate, asked again as
/// the bytes pass, stops it; the sender is told it failed and nothing is left at the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_sharing_stops_a_file_midway() {
    let env = env().await;
    let m = a_file_midway(&env, "view,files", AgentCommand::StopSharing).await;
    assert!(!m.saved, "{}", m.message);
    assert!(m.sent.is_err(), "the technician is told it failed");
    assert!(listing(&m.downloads).is_empty(), "nothing left: {:?}", listing(&m.downloads));
    let trail = env.trail(m.session).await;
    assert!(trail.iter().any(|e| matches!(e.action, AuditAction::File { outcome: FileOutcome::Failed, .. })), "{trail:?}");
}

/// Taking back control while a file is on its way leaves the file alone (files do not need
/// control): it arrives whole. (Found: each chunk's `tokio::fs` write, a blocking-pool task,
/// stalled the transfer for good after the change; the app now writes on a thread of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_back_control_leaves_a_file_on_its_way_alone() {
    let env = env().await;
    let m = a_file_midway(&env, "view,control,files", AgentCommand::TakeBackControl).await;
    assert!(m.saved, "{}", m.message);
    assert_eq!(m.sent.unwrap(), "backup.tar");
    assert_eq!(sha256_of(&m.downloads.join("backup.tar")), sha256_of(&m.file));
    assert_eq!(listing(&m.downloads), ["backup.tar"]);
}

/// A display that changes size when the test says (a resolution change): frames of the new
/// size start with a keyframe of a new encoder, as the real app's capture does.
struct ChangesSize {
    first: SyntheticSource,
    second: SyntheticSource,
    change: Arc<std::sync::atomic::AtomicBool>,
    changed: bool,
}

/// The size [`ChangesSize`] changes to.
const SECOND_SIZE: (u32, u32) = (480, 360);

impl FrameSource for ChangesSize {
    fn displays(&self) -> Vec<deskline_protocol::DisplayInfo> {
        info().displays
    }

    fn next_frame(&mut self, force_keyframe: bool) -> Result<Option<EncodedFrame>, EncodeError> {
        if self.changed {
            self.second.next_frame(force_keyframe)
        } else if self.change.load(std::sync::atomic::Ordering::Relaxed) {
            self.changed = true;
            self.second.next_frame(true)
        } else {
            self.first.next_frame(force_keyframe)
        }
    }
}

/// Runs ffmpeg's own decoder (not the viewer's) over a recording file: its picture size, and
/// the first picture in RGB.
fn decode_with_ffmpeg(file: &std::path::Path) -> ((u32, u32), Vec<u8>) {
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&probe.stdout);
    let (w, h) = text.trim().split_once(',').unwrap_or_else(|| panic!("ffprobe read no size: {text:?} {probe:?}"));
    let size = (w.parse().unwrap(), h.parse().unwrap());
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(decoded.status.success(), "ffmpeg decodes the recording: {}", String::from_utf8_lossy(&decoded.stderr));
    (size, decoded.stdout)
}

/// A technician of another channel (not of the default one, where the sessions are).
async fn outsider(env: &Env, name: &str) -> Tech {
    let new = CreateTechnician { username: name.into(), display_name: String::new(), password: ONE_TIME_PASSWORD.into(), role: Role::Technician };
    let t: TechnicianView = env.admin.post("/technicians", &new).await.unwrap();
    let first = sign_in(&env.server, &env.fingerprint, name, ONE_TIME_PASSWORD).await;
    let one_time = Tech { id: TechnicianId(t.id), token: first.token };
    Tech { id: one_time.id, token: env.technician_password_set(&one_time).await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_is_announced_kept_as_sent_and_shown_to_its_channel_only() {
    let env = env().await;
    let patch = UpdateChannel { record_sessions: Some(true), ..Default::default() };
    let channel: ChannelView = env.admin.patch("/channels/1", &patch).await.unwrap();
    assert!(channel.record_sessions);
    let session = env.session(SessionKind::Pin).await;
    let id = session.id;
    let change = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let change_size = change.clone();
    let source = move || {
        let (first, second) = (SyntheticSource::new(WIDTH, HEIGHT)?, SyntheticSource::new(SECOND_SIZE.0, SECOND_SIZE.1)?);
        Ok(ChangesSize { first, second, change: change_size, changed: false })
    };
    let mut agent = start_agent_with(&env, pin_of(&session), ScriptedAnswer::AllowAll, None, Grants::default(), source).await.unwrap();
    env.share(id).await;
    let request = next_event(&mut agent, "the consent request", |e| match e {
        AgentEvent::ConsentRequested(request) => Some(request),
        _ => None,
    })
    .await;
    assert!(request.recorded, "the popup is told the session is recorded before the end user chooses");

    // Watch until the picture has changed size, with a chat line and a click once it shows.
    let viewer = env.viewer(&env.admin_tech(), id).await.unwrap();
    let (_commands, mut updates) = viewer.spawn();
    let mut sizes = Vec::new();
    while sizes.last() != Some(&SECOND_SIZE) {
        match tokio::time::timeout(Duration::from_secs(20), updates.recv()).await.unwrap().unwrap() {
            ViewerUpdate::Frame(f) if sizes.last() != Some(&(f.width as u32, f.height as u32)) => {
                if sizes.is_empty() {
                    let hello = NewChatMessage { text: "<b>hello</b>".into() };
                    let _: ChatMessageView = env.admin.post(&format!("/sessions/{id}/chat"), &hello).await.unwrap();
                    send_input(&env, &env.admin_tech(), id, &click()).await.unwrap();
                    // Then the resolution changes.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    change.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                sizes.push((f.width as u32, f.height as u32));
            }
            ViewerUpdate::Ended(e) => panic!("ended: {e:?}"),
            _ => {}
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The end user stops sharing: the recording ends with the picture.
    agent.commands.send(AgentCommand::StopSharing).unwrap();
    let client = env.client(&env.admin_tech());
    let mut recordings: Vec<deskline_api::RecordingView> = Vec::new();
    for _ in 0..100 {
        recordings = client.get(&format!("/sessions/{id}/recordings")).await.unwrap();
        if recordings.len() == 2 && recordings.iter().all(|r| r.ended_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sizes: Vec<(u32, u32)> = recordings.iter().map(|r| (r.width, r.height)).collect();
    assert_eq!(sizes, [(WIDTH, HEIGHT), SECOND_SIZE], "one recording per picture size, both finished: {recordings:?}");
    assert!(recordings.iter().all(|r| r.duration_ms > 0 && r.bytes > 1000), "{recordings:?}");

    // Each file is a standard MP4 another decoder reads: the size it says, the picture sent.
    let dir = tempfile::tempdir().unwrap();
    for r in &recordings {
        let file = dir.path().join(format!("{}.mp4", r.id));
        let bytes = client.download(&format!("/recordings/{}/video", r.id), &file, &indicatif::ProgressBar::hidden()).await.unwrap();
        assert_eq!(bytes as i64, r.bytes);
        let (size, rgb) = decode_with_ffmpeg(&file);
        assert_eq!(size, (r.width, r.height));
        assert_eq!(rgb.len(), (r.width * r.height * 3) as usize);
        let at = |x: u32, y: u32| {
            let i = ((y * r.width + x) * 3) as usize;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        assert!(close_to(at(r.width / 8, r.height / 2), left_rgb()), "the synthetic pattern's left half: {:?}", at(r.width / 8, r.height / 2));
    }

    // The first file's log says who was allowed and who controlled, the chat line (as text)
    // and the click, at their time in the video.
    let log: Vec<deskline_api::RecordingLogLine> = client.get(&format!("/recordings/{}/log", recordings[0].id)).await.unwrap();
    let kinds: Vec<&str> = log.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(&kinds[..2], ["consent", "control"], "the state at the start: {log:?}");
    assert!(log[0].text.contains("Administrator (view and control)"), "{log:?}");
    assert!(log.iter().any(|l| l.kind == "chat" && l.text == "Administrator: <b>hello</b>"), "{log:?}");
    assert!(log.iter().any(|l| l.kind == "input" && l.text == "Left button pressed at 10, 20"), "{log:?}");
    assert!(log.windows(2).all(|w| w[0].t_ms <= w[1].t_ms), "in time order: {log:?}");
    let second: Vec<deskline_api::RecordingLogLine> = client.get(&format!("/recordings/{}/log", recordings[1].id)).await.unwrap();
    assert_eq!(second.first().map(|l| l.kind.as_str()), Some("consent"), "each file's log stands on its own: {second:?}");

    // A technician outside the channel cannot list, fetch or read them; each fetch is audited.
    let stranger = outsider(&env, "stranger").await;
    let theirs = env.client(&stranger);
    for path in [format!("/sessions/{id}/recordings"), format!("/recordings/{}/log", recordings[0].id)] {
        let refused = theirs.get::<serde_json::Value>(&path).await.unwrap_err();
        assert!(matches!(refused, deskline_console::client::ApiError::Api { status: 404, .. }), "{path}: {refused:?}");
    }
    let target = dir.path().join("stolen.mp4");
    let refused = theirs.download(&format!("/recordings/{}/video", recordings[0].id), &target, &indicatif::ProgressBar::hidden()).await;
    assert!(refused.is_err() && !target.exists(), "{refused:?}");
    let viewed: Vec<i64> = env
        .trail(id)
        .await
        .iter()
        .filter_map(|e| match e.action {
            AuditAction::RecordingViewed { recording } if e.actor == Actor::Technician(TechnicianId(1)) => Some(recording),
            _ => None,
        })
        .collect();
    assert_eq!(viewed, [recordings[0].id, recordings[1].id], "every fetch of a video is audited, the refused one is not there");
    drop(agent);
}

/// The next update of a running viewer that `pick` takes (bounded); frames are counted.
async fn next_update<T>(updates: &mut mpsc::Receiver<ViewerUpdate>, frames: &mut usize, what: &str, mut pick: impl FnMut(ViewerUpdate) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some(ViewerUpdate::Frame(_))) => *frames += 1,
            Ok(Some(ViewerUpdate::Ended(e))) => panic!("the viewer ended waiting for {what}: {e:?}"),
            Ok(Some(update)) => {
                if let Some(found) = pick(update) {
                    return found;
                }
            }
            Ok(None) | Err(_) => panic!("no {what}"),
        }
    }
}

/// The native viewer's window runs the viewer in the background: files go both ways through
/// it while the picture keeps coming (what the window's "Send a file…", dropped files and
/// "Save in Downloads" do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_viewer_sends_and_receives_files_while_the_picture_goes_on() {
    let env = env().await;
    let files = tempfile::tempdir().unwrap();
    let (outbox, downloads, received) = (files.path().join("outbox"), files.path().join("Downloads"), files.path().join("received"));
    for dir in [&outbox, &downloads, &received] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let notes = sample_file(&outbox, "notes.bin", 5 * 1024 * 1024);
    let s = env.session(SessionKind::Pin).await;
    let mut agent = start_agent(&env, pin_of(&s), ScriptedAnswer::AllowAll, None, Grants::default()).await.unwrap();
    share_asking(&env, s.id, "view,control,files").await;
    let (commands, mut updates) = env.viewer(&env.admin_tech(), s.id).await.unwrap().spawn();
    let mut frames = 0;
    next_update(&mut updates, &mut frames, "the files grant", |u| matches!(u, ViewerUpdate::Allowed(c) if c.files()).then_some(())).await;

    // To the end user.
    commands.send(ViewerCommand::SendFile(notes.clone())).unwrap();
    let offer = next_event(&mut agent, "the file offer", |e| match e {
        AgentEvent::FileOffered(offer) => Some(offer),
        _ => None,
    })
    .await;
    agent.commands.send(AgentCommand::AnswerFile { transfer: offer.transfer, save_to: Some(downloads.join("notes.bin")) }).unwrap();
    let before = frames;
    let mut progressed = false;
    let (saved, message) = next_update(&mut updates, &mut frames, "the file sent", |u| match u {
        ViewerUpdate::File(FileNews::Progress { incoming: false, .. }) => {
            progressed = true;
            None
        }
        ViewerUpdate::File(FileNews::Done { incoming: false, saved, message, .. }) => Some((saved, message)),
        _ => None,
    })
    .await;
    assert!(saved && progressed, "{message}");
    assert_eq!(sha256_of(&downloads.join("notes.bin")), sha256_of(&notes));
    assert!(frames > before, "the picture went on while the file passed");

    // From the end user: offered in the window, saved in the folder chosen.
    agent.commands.send(AgentCommand::SendFile { transfer: 7, path: notes.clone() }).unwrap();
    let offer = next_update(&mut updates, &mut frames, "the end user's offer", |u| match u {
        ViewerUpdate::File(FileNews::Offered(offer)) => Some(offer),
        _ => None,
    })
    .await;
    assert_eq!((offer.name.as_str(), offer.from.as_str()), ("notes.bin", "the end user"));
    commands.send(ViewerCommand::AnswerFile { transfer: offer.transfer, save_in: Some(received.clone()) }).unwrap();
    let (saved, message) = next_update(&mut updates, &mut frames, "the file received", |u| match u {
        ViewerUpdate::File(FileNews::Done { incoming: true, saved, message, .. }) => Some((saved, message)),
        _ => None,
    })
    .await;
    assert!(saved, "{message}");
    assert_eq!(std::path::PathBuf::from(&message), received.join("notes.bin"));
    assert_eq!(sha256_of(&received.join("notes.bin")), sha256_of(&notes));

    let _ = commands.send(ViewerCommand::Leave);
    agent.task.abort();
}
