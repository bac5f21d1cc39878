//! `deskline-relay serve`: opens the data directory, prepares the certificate and the first
//! admin, starts the expiry sweep and serves the API until SIGINT or SIGTERM.

use crate::clock::SystemClock;
use crate::desk::{Desk, NewTechnician, QuicEndpoint};
use crate::downloads::SupportApps;
use crate::transport::{Transport, WebRtcAddresses};
use crate::limits::{
    EXPIRY_SWEEP_INTERVAL, HTTP_FIRST_REQUEST_TIMEOUT, HTTP_HANDSHAKE_TIMEOUT, HTTP_IDLE_TIMEOUT, MAX_HTTP_CONNECTIONS,
};
use crate::network::{ConnectionLimiter, ConnectionSlot};
use axum_server::tls_rustls::RustlsAcceptor;
use crate::store::{Db, Role};
use crate::{api, auth, tls};
use anyhow::{Context as _, bail};
use axum::response::IntoResponse as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What `serve` needs (also the `serve` subcommand's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// Where the database and the certificate live.
    #[arg(long, default_value = "/var/lib/deskline")]
    pub data_dir: PathBuf,
    /// Keep the service desk in this PostgreSQL database, shared with other relay nodes,
    /// instead of SQLite in the data directory: `postgres://USER:PASSWORD@HOST/DB` (add
    /// `?sslmode=require` for a server on another machine). Put it in the config file, not on
    /// the command line, where other users could read the password.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Several relay nodes: the URL the other nodes reach this one's API at (to pass it a
    /// browser's viewer of a session whose app is connected here). Default: the public URL;
    /// give each node's own address when the nodes share one name.
    #[arg(long, value_name = "URL")]
    pub node_url: Option<String>,
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub http: SocketAddr,
    /// QUIC listen address (support apps and native viewers; browsers' WebRTC binds the same
    /// address).
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub quic: SocketAddr,
    /// Base URL of the links given to end users (default: the HTTPS address).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Serve plain HTTP instead of HTTPS (loopback addresses only).
    #[arg(long)]
    pub plain_http: bool,
    /// On first start, create this admin with a random password printed once.
    #[arg(long, value_name = "USERNAME")]
    pub demo_admin: Option<String>,
    /// The organisation named to end users (consent popup, session bar, invite page) until an
    /// administrator sets it in the web console's administration, whose setting then wins.
    #[arg(long, default_value = "Deskline support")]
    pub organisation: String,
    /// Frames per second asked of support apps (1 to 60; they adapt below it).
    #[arg(long, default_value_t = crate::limits::DEFAULT_MAX_FPS,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(crate::limits::MAX_ASKED_FPS)))]
    pub max_fps: u16,
    /// A support app build offered on invite pages, with the session's link appended; give
    /// one per system (Linux, Windows, macOS: recognised from the file). Default:
    /// deskline-agent and deskline-agent.exe beside this executable, where present.
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Vec<PathBuf>,
    /// Simultaneous connections accepted from one source network (IPv4 /24, IPv6 /56), over
    /// QUIC and over HTTPS each: raise it where more end users and technicians than this share
    /// one NAT address (a large office); the total stays bounded (4096 each).
    #[arg(long, default_value_t = crate::limits::DEFAULT_CONNECTIONS_PER_NETWORK,
        value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub connections_per_network: u16,
    /// The public address browsers reach this relay at when it sits behind one-to-one NAT (a
    /// cloud VM's public IP); announced for WebRTC next to the bound address.
    #[arg(long, value_name = "IP")]
    pub webrtc_public_ip: Option<std::net::IpAddr>,
    /// HTTPS with your own certificate (PEM chain, e.g. a CA's `fullchain.pem`) instead of the
    /// relay's self-signed one; reloaded with `--tls-key` on SIGHUP (e.g. after a renewal)
    /// without dropping anything. Support apps keep pinning the relay's own certificate on QUIC.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at `http://ADDR/metrics`: plain HTTP without a token, on its
    /// own port, so bind it to loopback or an internal interface only (off by default).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// How long open connections get to finish after a shutdown signal: enough for in-flight API
/// requests (consoles' live streams end at once: `Desk::stop_streams`).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A relay with its data directory open, its certificate ready and its port bound, not yet
/// serving. Tests start one in-process and read its address and the demo admin's password.
pub struct Prepared {
    desk: Desk,
    listener: std::net::TcpListener,
    cert: tls::RelayCert,
    plain_http: bool,
    quic: quinn::Endpoint,
    max_fps: u16,
    connections_per_network: usize,
    support_apps: SupportApps,
    webrtc_public_ip: Option<std::net::IpAddr>,
    metrics: Option<std::net::TcpListener>,
    operator_cert: Option<tls::OperatorCert>,
    /// The demo admin's one-time password, when this start created the admin.
    pub admin_password: Option<String>,
    /// Whether this start created the self-signed certificate.
    pub cert_created: bool,
}

impl Prepared {
    /// Opens everything `options` names and binds the HTTP port.
    pub fn new(options: &ServeOptions) -> anyhow::Result<Prepared> {
        if !(1..=crate::limits::MAX_ASKED_FPS).contains(&options.max_fps) {
            bail!("--max-fps must be between 1 and {} (got {})", crate::limits::MAX_ASKED_FPS, options.max_fps);
        }
        if options.plain_http && !options.http.ip().is_loopback() {
            bail!("plain HTTP is only allowed on a loopback address (got {}); drop --plain-http to serve HTTPS", options.http);
        }
        create_private_dir(&options.data_dir)?;
        let db = Db::open_configured(options.database_url.as_deref(), &options.data_dir).context("opening the database")?;
        let listener =
            std::net::TcpListener::bind(options.http).with_context(|| format!("binding {}", options.http))?;
        listener.set_nonblocking(true)?;
        let scheme = if options.plain_http { "http" } else { "https" };
        let local = listener.local_addr()?;
        let public_url = options.public_url.clone().unwrap_or_else(|| format!("{scheme}://{local}"));
        let desk = Desk::new(db, Arc::new(SystemClock), public_url.clone());
        desk.ensure_default_channel_blocking()?;
        let recordings = options.data_dir.join(crate::recording::DIR);
        create_private_dir(&recordings)?;
        desk.set_recordings_dir(recordings);
        desk.close_unfinished_recordings_blocking()?;
        let admin_password = match &options.demo_admin {
            Some(username) => bootstrap_demo_admin(&desk, username)?,
            None => None,
        };
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        if let Some(host) = host_of(&public_url).filter(|h| !names.contains(h)) {
            names.push(host);
        }
        let (cert, cert_created) = tls::load_or_create(&options.data_dir, &names)?;
        let quic_config = deskline_net::quic::server_config(cert.cert_der.clone(), cert.key_der.clone())?;
        let quic = deskline_net::quic::server_endpoint(options.quic, quic_config)
            .with_context(|| format!("binding QUIC on {}", options.quic))?;
        let quic_local = quic.local_addr()?;
        let quic_public = match host_of(&public_url) {
            Some(host) if host.contains(':') => format!("[{host}]:{}", quic_local.port()),
            Some(host) => format!("{host}:{}", quic_local.port()),
            None => quic_local.to_string(),
        };
        desk.load_settings_blocking(&options.organisation)?;
        desk.set_quic_endpoint(QuicEndpoint {
            quic: quic_public,
            fingerprint: cert.fingerprint(),
        });
        // The other nodes pin the relay's own certificate when HTTPS serves it; an operator's
        // is checked by the web PKI.
        let pin = options.tls_cert.is_none().then(|| cert.fingerprint());
        desk.set_node_url(options.node_url.clone().unwrap_or_else(|| public_url.clone()), pin);
        Ok(Prepared {
            desk,
            listener,
            cert,
            plain_http: options.plain_http,
            quic,
            max_fps: options.max_fps,
            connections_per_network: usize::from(options.connections_per_network),
            support_apps: support_apps(&options.agent_binary)?,
            webrtc_public_ip: options.webrtc_public_ip,
            metrics: options.metrics.map(bind_metrics).transpose()?,
            operator_cert: operator_cert(options)?,
            admin_password,
            cert_created,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The base URL of the console and the API (`https://ADDR`).
    pub fn base_url(&self) -> anyhow::Result<String> {
        let scheme = if self.plain_http { "http" } else { "https" };
        Ok(format!("{scheme}://{}", self.local_addr()?))
    }

    /// The bound QUIC address.
    pub fn quic_addr(&self) -> std::io::Result<SocketAddr> {
        self.quic.local_addr()
    }

    /// Where metrics are served, if they are.
    pub fn metrics_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.metrics.as_ref().map(std::net::TcpListener::local_addr).transpose()
    }

    /// The certificate's SHA-256 fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint()
    }

    /// The support app builds invite pages offer.
    #[must_use]
    pub fn support_apps(&self) -> &SupportApps {
        &self.support_apps
    }

    /// The service desk.
    #[must_use]
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// Serves until `shutdown` completes, then drains connections.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // Before anything connects: whatever the store says, no app is connected to a relay that
        // just started (it may have been killed mid-session).
        match self.desk.recover_lost_apps().await? {
            0 => {}
            n => tracing::warn!(sessions = n, "sessions had an app connected when the relay (or its node) stopped: waiting for their apps to resume"),
        }
        // This node among the relay nodes sharing the database (alone on SQLite): where its
        // apps' sessions are viewed, and its heartbeat.
        self.desk.join_nodes().await?;
        log_audit_head(&self.desk, "starting");
        let sweeper = tokio::spawn(sweep_forever(self.desk.clone()));
        let webrtc = WebRtcAddresses { bind: self.quic.local_addr()?.ip(), public: self.webrtc_public_ip };
        // Relay nodes sharing PostgreSQL: the changes made through the others reach this one's
        // consoles and connections.
        self.desk.follow_other_nodes();
        let transport = Transport::new(self.desk.clone(), self.max_fps, webrtc);
        let quic = self.quic.clone();
        tokio::spawn(transport.clone().serve(self.quic, self.connections_per_network));
        let goodbye = (transport.clone(), quic.clone(), self.desk.clone());
        if let Some(listener) = self.metrics {
            tokio::spawn(serve_metrics(listener, self.desk.clone(), transport.clone()));
        }
        let app = api::router_with(self.desk.clone(), Some(transport), self.support_apps.clone());
        let handle = axum_server::Handle::new();
        let on_shutdown = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            // Apps and viewers first (apps come back by themselves to the restarted relay and
            // resume), then the HTTPS requests in flight, within SHUTDOWN_GRACE.
            tracing::info!("shutting down: saying goodbye to apps and viewers, then draining HTTPS");
            let (transport, quic, desk) = goodbye;
            transport.shut_down(&quic).await;
            desk.stop_streams();
            on_shutdown.graceful_shutdown(Some(SHUTDOWN_GRACE));
        });
        // Handlers see the client's address (login throttling, logs).
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let limited = LimitedAcceptor {
            limiter: ConnectionLimiter::new(MAX_HTTP_CONNECTIONS, self.connections_per_network),
            desk: self.desk.clone(),
        };
        if self.plain_http {
            let server = axum_server::from_tcp(self.listener)?.acceptor(limited).handle(handle);
            bound_idle_connections(server).serve(service).await?;
        } else {
            let config = match &self.operator_cert {
                Some(own) => own.https_config()?,
                None => self.cert.https_config()?,
            };
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            reload_on_hangup(config.clone(), self.operator_cert.clone());
            let tls = RustlsAcceptor::new(config).handshake_timeout(HTTP_HANDSHAKE_TIMEOUT).acceptor(limited);
            let server = axum_server::from_tcp(self.listener)?.acceptor(tls).handle(handle);
            bound_idle_connections(server).serve(service).await?;
        }
        sweeper.abort();
        quic.close(0u32.into(), b"relay shutting down");
        if let Err(e) = self.desk.leave_nodes().await {
            tracing::error!(error = %e, "leaving the relay nodes");
        }
        if let Err(e) = self.desk.db().checkpoint() {
            tracing::error!(error = %e, "merging the write-ahead log at stop");
        }
        log_audit_head(&self.desk, "stopped");
        tracing::info!("relay stopped");
        Ok(())
    }
}

/// The audit chain's head in the journal, kept apart from the database: a chain rewritten
/// after an edit no longer matches the heads logged before (`store::audit_chain`).
fn log_audit_head(desk: &Desk, when: &str) {
    match desk.db().audit_head() {
        Ok(head) => tracing::info!(%head, "audit log head ({when})"),
        Err(e) => tracing::error!(error = %e, "reading the audit log's head"),
    }
}

fn bind_metrics(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics are served without TLS or token: keep this address internal");
    }
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding the metrics address {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `GET /metrics` (and nothing else) on its own listener.
async fn serve_metrics(listener: std::net::TcpListener, desk: Desk, transport: Arc<Transport>) {
    let metrics = move || {
        let (desk, transport) = (desk.clone(), transport.clone());
        async move {
            let (apps, viewers) = transport.connected();
            match desk.render_metrics(apps, &viewers).await {
                Ok(text) => {
                    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                    ([(axum::http::header::CONTENT_TYPE, kind)], text).into_response()
                }
                Err(e) => {
                    tracing::error!(error = %e, "rendering metrics");
                    axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                }
            }
        }
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(metrics));
    let served = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => axum::serve(listener, app).await,
        Err(e) => Err(e),
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}

/// Connections that send nothing are closed: the first request must arrive within
/// [`HTTP_FIRST_REQUEST_TIMEOUT`], every later one on a kept-alive connection within
/// [`HTTP_IDLE_TIMEOUT`]; HTTP/2 peers that stop answering pings are dropped.
fn bound_idle_connections<A: axum_server::Address, Acc>(mut server: axum_server::Server<A, Acc>) -> axum_server::Server<A, Acc> {
    let builder = server.http_builder();
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HTTP_IDLE_TIMEOUT);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(HTTP_FIRST_REQUEST_TIMEOUT))
        .keep_alive_timeout(HTTP_FIRST_REQUEST_TIMEOUT);
    server.first_request_timeout(HTTP_FIRST_REQUEST_TIMEOUT)
}

/// Admits HTTPS connections through a [`ConnectionLimiter`]: a connection over the limits is
/// closed before its TLS handshake.
#[derive(Clone)]
struct LimitedAcceptor {
    limiter: ConnectionLimiter,
    /// Counts refusals.
    desk: Desk,
}

impl<S> axum_server::accept::Accept<tokio::net::TcpStream, S> for LimitedAcceptor {
    type Stream = LimitedStream;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(LimitedStream, S)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let admitted = stream.peer_addr().and_then(|peer| match self.limiter.admit(peer.ip()) {
            Ok(slot) => Ok((LimitedStream { stream, _slot: slot }, service)),
            Err(refused) => {
                tracing::warn!(%peer, ?refused, "HTTPS connection refused: connection limit");
                self.desk.metrics().limit_tripped("https_connections");
                Err(std::io::Error::other("connection limit"))
            }
        });
        std::future::ready(admitted)
    }
}

/// A TCP stream holding its place in the connection limit until it closes.
struct LimitedStream {
    stream: tokio::net::TcpStream,
    _slot: ConnectionSlot,
}

impl tokio::io::AsyncRead for LimitedStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for LimitedStream {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Runs the relay until SIGINT or SIGTERM, printing what the operator needs.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let prepared = Prepared::new(&options)?;
    if let (Some(username), Some(password)) = (&options.demo_admin, &prepared.admin_password) {
        println!("created the first admin: username {username:?}, one-time password: {password}");
        println!("(it is shown only now; create technicians with `deskline technicians create`)");
    }
    println!(
        "relay certificate SHA-256 fingerprint{}: {}",
        if prepared.cert_created { " (new self-signed certificate)" } else { "" },
        prepared.fingerprint()
    );
    if let Some(own) = &prepared.operator_cert {
        println!("HTTPS certificate: {} (SHA-256 {}; reloaded on SIGHUP)", own.cert.display(), own.fingerprint()?);
    }
    let base = prepared.base_url()?;
    println!("web console: {base}/");
    println!("API: {base}/api/v1 (OpenAPI document at /api/v1/openapi.json)");
    println!("QUIC (support apps and viewers): {}", prepared.quic_addr()?);
    if let Some(addr) = prepared.metrics_addr()? {
        println!("metrics (Prometheus): http://{addr}/metrics");
    }
    if prepared.support_apps().is_empty() {
        println!("invite pages offer no download (build deskline-agent or give --agent-binary)");
    }
    for (platform, path) in prepared.support_apps().builds() {
        println!("invite pages offer the support app for {} {}", platform.name(), path.display());
    }
    println!("session links are built on {}", prepared.desk().public_url());
    tracing::info!(%base, "relay listening");
    prepared.run(shutdown_signal()).await
}

/// A relay running in this process on loopback ports with its embedded defaults (SQLite in
/// `data_dir`, a self-signed certificate, an admin whose password is chosen as `deskline-relay
/// admin create` would, so it is not one-time): for tests and benchmarks that need a real relay
/// without a separate process. It stops when dropped.
pub struct LocalRelay {
    /// `https://127.0.0.1:PORT`.
    pub base_url: String,
    /// The certificate's SHA-256 (hex).
    pub fingerprint: String,
    /// The QUIC endpoint.
    pub quic: SocketAddr,
    /// The admin's password (username `admin`).
    pub admin_password: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LocalRelay {
    /// Starts one (inside a tokio runtime).
    pub fn start(data_dir: PathBuf, organisation: &str) -> anyhow::Result<LocalRelay> {
        LocalRelay::start_with(&LocalRelay::options(data_dir, organisation))
    }

    /// The options [`LocalRelay::start`] uses: loopback, ports chosen by the system, the
    /// default frame rate.
    #[must_use]
    pub fn options(data_dir: PathBuf, organisation: &str) -> ServeOptions {
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        ServeOptions {
            data_dir,
            database_url: None,
            node_url: None,
            http: loopback,
            quic: loopback,
            public_url: None,
            plain_http: false,
            demo_admin: None,
            organisation: organisation.to_owned(),
            max_fps: crate::limits::DEFAULT_MAX_FPS,
            connections_per_network: crate::limits::DEFAULT_CONNECTIONS_PER_NETWORK,
            agent_binary: Vec::new(),
            webrtc_public_ip: None,
            tls_cert: None,
            tls_key: None,
            metrics: None,
        }
    }

    /// Starts one with these options (inside a tokio runtime) and creates the admin `admin`;
    /// the data directory must be new.
    pub fn start_with(options: &ServeOptions) -> anyhow::Result<LocalRelay> {
        crate::install_crypto_provider();
        let prepared = Prepared::new(options)?;
        let base_url = prepared.base_url()?;
        let fingerprint = prepared.fingerprint();
        let quic = prepared.quic_addr()?;
        let admin_password = auth::random_password();
        let admin = prepared.desk.create_technician_blocking(NewTechnician {
            username: "admin".into(),
            display_name: "Administrator".into(),
            password: admin_password.clone(),
            role: Role::Admin,
            one_time: false,
        })?;
        prepared.desk.join_default_channel_blocking(deskline_protocol::TechnicianId(admin.id))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(prepared.run(async move {
            let _ = stopped.await;
        }));
        Ok(LocalRelay { base_url, fingerprint, quic, admin_password, _stop: stop })
    }
}

/// Creates the first admin of a new installation with a random password (returned, to be
/// printed once). Nothing happens if any technician exists — also when another relay node on
/// the same database made the admin a moment before.
fn bootstrap_demo_admin(desk: &Desk, username: &str) -> anyhow::Result<Option<String>> {
    // Every later start: no password is hashed for nothing.
    if desk.count_technicians_blocking()? > 0 {
        return Ok(None);
    }
    let password = auth::random_password();
    let admin = desk.create_first_technician_blocking(NewTechnician {
        username: username.to_owned(),
        display_name: "Administrator".into(),
        password: password.clone(),
        role: Role::Admin,
        // Printed on the console: it only lets the admin set their own password.
        one_time: true,
    })?;
    let Some(admin) = admin else { return Ok(None) };
    desk.join_default_channel_blocking(deskline_protocol::TechnicianId(admin.id))?;
    Ok(Some(password))
}

/// Expires sessions and times out consent requests, every [`EXPIRY_SWEEP_INTERVAL`] (and at
/// once at start, so sessions that expired while the relay was down are expired first).
async fn sweep_forever(desk: Desk) {
    let mut interval = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match desk.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expiry sweep changed sessions"),
            Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
        }
    }
}

/// The operator's certificate, checked now so that a bad one stops the start with its reason.
fn operator_cert(options: &ServeOptions) -> anyhow::Result<Option<tls::OperatorCert>> {
    let (Some(cert), Some(key)) = (&options.tls_cert, &options.tls_key) else { return Ok(None) };
    if options.plain_http {
        bail!("--tls-cert has no use with --plain-http");
    }
    let own = tls::OperatorCert { cert: cert.clone(), key: key.clone() };
    own.https_config()?;
    Ok(Some(own))
}

/// On SIGHUP (`systemctl reload`), reads the operator's certificate and key again and serves
/// new HTTPS connections with them; connections already open, the QUIC side and every session
/// go on. A file that does not load is logged and the certificate in use kept. Without an
/// operator certificate there is nothing to reload (the signal is still caught: it must not
/// stop the relay).
fn reload_on_hangup(config: axum_server::tls_rustls::RustlsConfig, own: Option<tls::OperatorCert>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP: certificate reloads need a restart");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            let Some(own) = &own else {
                tracing::info!("SIGHUP: no --tls-cert to reload");
                continue;
            };
            match own.https_config() {
                Ok(new) => {
                    config.reload_from_config(new);
                    let fingerprint = own.fingerprint().unwrap_or_default();
                    tracing::info!(cert = %own.cert.display(), %fingerprint, "SIGHUP: reloaded the HTTPS certificate");
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: the new certificate does not load; keeping the one in use"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (config, own);
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the relay");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Creates the data directory, readable by its owner only (it holds the key and the database).
pub fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// The support apps to offer: those given (each must be an executable for a known system, one
/// per system), else the builds beside this executable.
fn support_apps(given: &[PathBuf]) -> anyhow::Result<SupportApps> {
    if !given.is_empty() {
        return SupportApps::from_paths(given);
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf));
    Ok(beside.map(|dir| SupportApps::beside(&dir)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use crate::clock::SystemClock;
    use crate::desk::Desk;
    use crate::store::Db;
    use std::sync::Arc;

    /// Relay nodes started together with `--demo-admin` on one empty database (the same
    /// database on SQLite too): one makes the admin, the others start without one of their
    /// own — none fails with "username taken".
    #[test]
    fn nodes_starting_together_make_one_demo_admin() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = Db::for_tests(dir.path()).expect("the database");
        let nodes: Vec<Desk> = (0..4).map(|_| Desk::new(db.clone(), Arc::new(SystemClock), "https://desk.example".into())).collect();
        nodes[0].ensure_default_channel_blocking().expect("the default channel");
        let made: Vec<Option<String>> = std::thread::scope(|s| {
            let starting: Vec<_> = nodes.iter().map(|node| s.spawn(|| super::bootstrap_demo_admin(node, "admin"))).collect();
            starting.into_iter().map(|start| start.join().expect("no panic").expect("started")).collect()
        });
        assert_eq!(made.iter().flatten().count(), 1, "{made:?}");
        assert_eq!(nodes[0].count_technicians_blocking().expect("counted"), 1);
    }

    #[test]
    fn host_of_urls() {
        assert_eq!(super::host_of("https://desk.example.org:8443/x").as_deref(), Some("desk.example.org"));
        assert_eq!(super::host_of("https://[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(super::host_of("http://10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(super::host_of("nonsense"), None);
    }
}
