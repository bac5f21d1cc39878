//! # deskline-console
//!
//! The technician's tools: the `deskline` command-line client of the relay's HTTP API
//! (technicians, channels, sessions, audit trail) and, with the transport, the native viewer,
//! which receives the H.264 stream over QUIC, decodes it with `openh264`, shows it in an eframe
//! window and sends mouse and keyboard input while its technician holds control.
//!
//! Not here: any decision about who may see or control what — the relay decides, this crate
//! only asks.
//!
//! - [`client`]: the HTTP API client, reading and sending the `deskline-api` types.
//! - [`config`]: the saved login (mode 0600).
//! - [`describe`]: the API's answers in words: tables with names next to ids, a session's
//!   consent and computer spelt out.
//! - [`secrets`]: passwords from a terminal prompt or from standard input's lines.
//! - [`table`]: plain-text tables.
//! - [`viewer`]: the remote session over QUIC: frames, decoding, control and input.
//! - [`window`]: the native viewer window (eframe).

pub mod client;
pub mod config;
pub mod describe;
pub mod secrets;
pub mod table;
pub mod viewer;
pub mod window;
