//! `deskline-agent`: the support app's command line.
//!
//! This build connects with a synthetic test-pattern source and an unattended consent answer
//! (for demos and tests without a display); the real screen capture, input injection and
//! consent window arrive with the support-app issue.

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use deskline_agent::{AgentCommand, AgentConfig, Ended, InputSink, ScriptedAnswer, ScriptedPrompt, SyntheticSource, register};
use deskline_protocol::{AppCode, AppInfo, Capabilities, LinkToken, Pin};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "deskline-agent", version, about = "Deskline support app")]
struct Cli {
    /// The 6-digit PIN the technician gave you.
    #[arg(long, conflicts_with = "link", required_unless_present = "link")]
    pin: Option<String>,
    /// The invite link (https://RELAY/s/TOKEN) or its token.
    #[arg(long)]
    link: Option<String>,
    /// The relay's QUIC address, host:port.
    #[arg(long, default_value = "127.0.0.1:4433")]
    relay: String,
    /// The relay certificate's SHA-256 fingerprint (printed by the relay; carried by downloads).
    #[arg(long)]
    fingerprint: String,
    /// Size of the synthetic test pattern, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    synthetic: String,
    /// How to answer consent requests without a window.
    #[arg(long, value_enum, default_value_t = AutoConsent::Deny)]
    auto_consent: AutoConsent,
}

#[derive(Clone, Copy, ValueEnum)]
enum AutoConsent {
    Allow,
    ViewOnly,
    Deny,
}

/// Prints the input it would inject (this build has no injection yet).
struct PrintSink;

impl InputSink for PrintSink {
    fn apply(&mut self, event: &deskline_protocol::InputEvent) -> anyhow::Result<()> {
        println!("input: {event:?}");
        Ok(())
    }

    fn release_all(&mut self) {
        println!("input: release all");
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let code = match (&cli.pin, &cli.link) {
        (Some(pin), _) => AppCode::Pin(pin.parse::<Pin>().context("the PIN")?),
        (None, Some(link)) => {
            let token = link.rsplit('/').next().unwrap_or(link);
            AppCode::Link(token.parse::<LinkToken>().context("the link")?)
        }
        (None, None) => bail!("give --pin or --link"),
    };
    let (w, h) = cli.synthetic.split_once('x').context("--synthetic is WIDTHxHEIGHT")?;
    let source = SyntheticSource::new(w.parse()?, h.parse()?)?;
    let relay = tokio::net::lookup_host(&cli.relay).await?.next().context("cannot resolve the relay")?;
    let server_name = cli.relay.rsplit_once(':').map_or(cli.relay.as_str(), |(h, _)| h).trim_matches(['[', ']']).to_owned();
    let config = AgentConfig {
        relay,
        server_name,
        fingerprint: Some(deskline_net::tls::parse_fingerprint(&cli.fingerprint)?),
        code,
    };
    let info = AppInfo {
        os: std::env::consts::OS.into(),
        host_name: std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into()),
        app_version: env!("CARGO_PKG_VERSION").into(),
        displays: deskline_agent::FrameSource::displays(&source),
    };
    let registered = register(&config, info, None).await?;
    println!("connected to {} (session {})", registered.welcome().organisation, registered.session());
    let answer = match cli.auto_consent {
        AutoConsent::Allow => ScriptedAnswer::AllowAll,
        AutoConsent::ViewOnly => ScriptedAnswer::AllowViewOnly,
        AutoConsent::Deny => ScriptedAnswer::Deny,
    };
    let prompt = Arc::new(ScriptedPrompt { answer, delay: Duration::ZERO });
    let (events, mut event_rx) = tokio::sync::mpsc::unbounded_channel();
    let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel::<AgentCommand>();
    tokio::spawn(async move {
        while let Some(event) = event_rx.recv().await {
            println!("{event:?}");
        }
    });
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = commands.send(AgentCommand::Disconnect);
    });
    let ended = registered.serve(source, PrintSink, prompt, Capabilities::NONE, events, command_rx).await?;
    match ended {
        Ended::ByRelay(bye) => println!("the session ended: {}", bye.message),
        Ended::Disconnected => println!("disconnected"),
        Ended::ConnectionLost(why) => bail!("connection lost: {why}"),
    }
    Ok(())
}
