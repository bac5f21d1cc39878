//! Issue 14's load, as a test: 200 synthetic support apps (8 KiB P-frames, a 120 KiB keyframe
//! every 2 s and when asked) and 200 viewers on one relay process for 60 s on loopback, while a
//! technician's console asks the API every 50 ms. What must hold is behaviour, not speed
//! (`deskline-bench relay` measures latency and CPU against a direct baseline): viewers miss
//! only stale frames — a viewer that falls behind is skipped to the next keyframe, nothing
//! else is lost —, every API call is answered, and the relay's memory stays bounded.
//!
//! This is the debug build of the relay on one core, the load generator (debug too) on the
//! other: several times slower per frame than the release build `deskline-bench relay` runs
//! at 30 fps. At 2 frames a second per app (400 a second in all, plus the keyframes asked for)
//! both are busy without the run measuring only a drowned machine (at 5, a viewer's handshake
//! timed out in CI); the bench covers the full rate.

/// The relay's resident memory may not pass this (measured: ~300 MiB in release at this load).
const MEMORY_BOUND_MIB: f64 = 1024.0;

const LEVEL: deskline_bench::relay_load::Level = deskline_bench::relay_load::Level { sessions: 200, viewers: 1, seconds: 60.0, fps: 2 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_lose_only_stale_frames_and_the_api_answers() {
    // `cargo test` builds the relay's binary beside this test's directory.
    let exe = std::env::current_exe().unwrap();
    let relay = exe.parent().and_then(std::path::Path::parent).unwrap().join("deskline-relay");
    assert!(relay.exists(), "{} is not built", relay.display());
    let r = deskline_bench::relay_load::run(LEVEL, &relay, deskline_bench::relay_load::Baseline::None, deskline_bench::relay_load::Deployment::SINGLE).await.unwrap();
    eprintln!(
        "frames {} of {} at most; stale skipped {}, lost {}; viewers lost {}; API calls {} (p50 {:?} ms; the relay's p99 ≤ {:?} ms); relay RSS {:.0} MiB, peak {:.0} MiB",
        r.frames,
        r.frames_expected,
        r.stale_skips,
        r.fresh_frames_lost,
        r.viewers_lost,
        r.api_calls,
        r.api_ms.map(|s| s.p50),
        r.api_relay_p99_at_most_ms,
        r.relay_rss_mib,
        r.relay_peak_rss_mib
    );
    assert_eq!(r.fresh_frames_lost, 0, "frames lost that were not stale");
    assert_eq!(r.viewers_lost, 0, "viewers lost their connection");
    assert!(r.frames > 0, "no frame went through");
    // The probe fails the run on any failed call; it must also have been able to ask.
    assert!(r.api_calls > 0, "the API was never answered");
    assert!(r.api_relay_p99_at_most_ms.is_some(), "the relay's /metrics histogram did not count the calls");
    assert!(r.relay_peak_rss_mib < MEMORY_BOUND_MIB, "relay memory {:.0} MiB", r.relay_peak_rss_mib);
}
