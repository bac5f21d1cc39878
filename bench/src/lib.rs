//! # deskline-bench
//!
//! Measurements of what technicians feel: encode time and quality, and end-to-end latency,
//! each reported as medians and p99, side by side with a reference (ffmpeg's libx264) measured
//! in the same run. Results and the commands that reproduce them are kept in
//! `bench/RESULTS.md`.
//!
//! Timings are never asserted in tests: this crate reports, it does not judge.

pub mod api;
pub mod browser;
pub mod capture;
pub mod content;
pub mod desktop;
pub mod e2e;
pub mod glass;
pub mod encode;
pub mod guessing;
pub mod lossy;
pub mod nodes;
pub mod plot;
pub mod procs;
pub mod relay_load;
pub mod stats;
pub mod tls_forwarder;

/// Whether openh264 was built with its assembly (nasm on PATH at build time).
pub const BUILT_WITH_NASM: &str = env!("DESKLINE_BUILT_WITH_NASM");
