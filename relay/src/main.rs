//! `deskline-relay`: the command line of the relay. The logic lives in the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use deskline_relay::desk::{Desk, NewTechnician};
use deskline_relay::server::{ServeOptions, create_private_dir, serve};
use deskline_relay::store::{DB_FILE, Db, Role};
use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "deskline-relay", version, about = "Deskline relay: the service desk server", args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay.
    Serve {
        /// Read options from this TOML file (every option below, named like its flag with `_`
        /// for `-`: `public_url = "https://desk.example.org"`); flags given here win.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: Box<ServeOptions>,
    },
    /// Manage technician accounts from the server's shell (no web setup page exists).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Copy the database of a relay, running or not, into a new file (consistent: SQLite's
    /// online backup). Keep the data directory's relay-cert.pem and relay-key.pem with it: the
    /// support apps' links pin that certificate. (Relays on PostgreSQL: back up with pg_dump.)
    Backup {
        /// Where the database lives.
        #[arg(long, default_value = "/var/lib/deskline")]
        data_dir: PathBuf,
        /// The new file (never overwritten).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Put a backup into a new or empty data directory (never over an existing database);
    /// then start the relay on it.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The data directory to restore into.
        #[arg(long, default_value = "/var/lib/deskline")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain (a running relay's too): names the first event that was
    /// changed or removed, and prints the chain's head to compare with the heads the relay
    /// logged at its starts and stops. Exits with 1 when the chain is broken.
    Verify {
        /// Where the database lives.
        #[arg(long, default_value = "/var/lib/deskline")]
        data_dir: PathBuf,
        /// The relays' PostgreSQL database instead (as `serve --database-url`).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator; the password is read from standard input.
    Create {
        /// Where the database lives.
        #[arg(long, default_value = "/var/lib/deskline")]
        data_dir: PathBuf,
        /// Login name.
        #[arg(long)]
        username: String,
        /// Name shown to end users.
        #[arg(long, default_value = "")]
        display_name: String,
        /// The relays' PostgreSQL database instead (as `serve --database-url`).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    deskline_relay::install_crypto_provider();
    match parse_with_config()?.command {
        Command::Serve { options, .. } => tokio::runtime::Runtime::new()?.block_on(serve(*options)),
        Command::Admin { command: AdminCommand::Create { data_dir, username, display_name, database_url } } => {
            create_admin(data_dir, database_url.as_deref(), username, display_name)
        }
        Command::Backup { data_dir, to } => {
            let version = deskline_relay::store::backup(&data_dir.join(DB_FILE), &to)?;
            let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
            println!("backed up {} to {} ({size} bytes, schema version {version})", data_dir.join(DB_FILE).display(), to.display());
            Ok(())
        }
        Command::Audit { command: AuditCommand::Verify { data_dir, database_url } } => {
            let verified = match database_url {
                Some(url) => Db::connect(&url)?.verify_audit()?,
                None => deskline_relay::store::verify_audit(&data_dir.join(DB_FILE))?,
            };
            match verified {
                Ok(v) => {
                    let head = v.head.map_or("no chained event yet".to_owned(), |(id, h)| format!("head: event {id}, sha256 {}", hex::encode(h)));
                    let before = if v.unchained > 0 { format!(" ({} from before the chain, not covered)", v.unchained) } else { String::new() };
                    println!("the audit log holds: {} events chained{before}; {head}", v.chained);
                    Ok(())
                }
                Err(broken) => {
                    eprintln!("{broken}");
                    std::process::exit(1);
                }
            }
        }
        Command::Restore { from, data_dir } => {
            create_private_dir(&data_dir)?;
            let version = deskline_relay::store::restore(&from, &data_dir)?;
            println!("restored {} into {} (schema version {version}); start the relay on it", from.display(), data_dir.display());
            Ok(())
        }
    }
}

/// The command line, with `serve --config FILE`'s options read in before the flags given (which
/// win: clap keeps the last occurrence).
fn parse_with_config() -> anyhow::Result<Cli> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&args);
    let Command::Serve { config: Some(path), .. } = &cli.command else { return Ok(cli) };
    let from_file = deskline_relay::config::file_args::<ServeOptions>(path)?;
    let serve_at = args.iter().position(|a| a == "serve").context("no serve subcommand")?;
    Ok(Cli::try_parse_from(deskline_relay::config::merge(args, serve_at, from_file))?)
}

fn create_admin(data_dir: PathBuf, database_url: Option<&str>, username: String, display_name: String) -> anyhow::Result<()> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("password for {username}: "))?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    create_private_dir(&data_dir)?;
    let db = Db::open_configured(database_url, &data_dir).context("opening the database")?;
    let desk = Desk::new(db, Arc::new(deskline_relay::clock::SystemClock), String::new());
    desk.ensure_default_channel_blocking()?;
    let admin = desk
        .create_technician_blocking(NewTechnician { username, display_name, password, role: Role::Admin, one_time: false })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    desk.join_default_channel_blocking(deskline_protocol::TechnicianId(admin.id))?;
    println!("created admin {:?} (id {})", admin.username, admin.id);
    Ok(())
}
