//! # deskline-bench
//!
//! Measurements of what technicians feel: capture time, encode time and quality, end-to-end
//! latency and relay load, each reported as medians and p99 side by side with a reference
//! (ffmpeg's x11grab and libx264) measured in the same run. Results and the commands that
//! reproduce them are kept in `bench/RESULTS.md`.
//!
//! Timings are never asserted in tests: this crate reports, it does not judge.
//!
//! Status: filled by the benchmarks issue.
