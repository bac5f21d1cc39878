//! # deskline-relay
//!
//! The Deskline server. It runs the service desk (technicians, channels, sessions and their
//! state machine from `deskline-protocol`), persists it in SQLite, serves the HTTP API and the
//! web console, matches support apps to technicians over QUIC and bridges video to browsers.
//!
//! The binary (`main.rs`) only parses the command line; everything lives here so tests drive
//! the same code.
//!
//! - [`desk`]: the domain service, the one place session state changes.
//! - [`store`]: SQLite storage and migrations.
//! - [`api`]: the axum router of `/api/v1`.
//! - [`transport`]: the QUIC endpoint: apps, viewers, and the consent gate between them.
//! - [`server`]: `serve`: certificate, first admin, expiry sweep, graceful shutdown.
//! - [`config`]: the config file, read as the flags it stands for.
//! - [`metrics`]: what operators watch (Prometheus).
//! - [`auth`], [`second_factor`]: passwords, tokens, login throttling; TOTP and recovery codes.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod desk;
pub mod downloads;
pub mod error;
pub mod failures;
pub mod limits;
pub mod metrics;
pub mod network;
mod nodes;
pub mod recording;
pub mod second_factor;
pub mod server;
pub mod store;
pub mod tls;
pub mod transport;
pub mod views;

pub use error::Error;

/// Installs the process-wide rustls crypto provider (ring). Call once at start; harmless if
/// already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
