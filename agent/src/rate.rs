//! Rate adaptation: the frame rate and bitrate the app streams at, following what the relay
//! reports about its viewers (frames it had to drop, round-trip time) and what the app itself
//! could not send.
//!
//! A small AIMD controller, as congestion controllers do it: on any sign of congestion the
//! bitrate drops at once to 70 % (and, once at the floor, the frame rate by a third); after
//! [`CLEAN_WINDOWS_BEFORE_INCREASE`] clean reports the frame rate recovers first, then the
//! bitrate grows by 10 % per report up to the relay's hint. Screen content has little motion,
//! so a lower bitrate costs sharpness for a moment while a lower frame rate costs smoothness:
//! sharpness goes first, smoothness only when even the floor bitrate does not get through.

use deskline_protocol::Stats;

/// The lowest bitrate: a 1080p desktop stays readable, if soft.
pub const MIN_BITRATE_BPS: u32 = 300_000;

/// The lowest frame rate: typing still shows up within a fifth of a second.
pub const MIN_FPS: u16 = 5;

/// Clean reports (one a second) in a row before the rate grows again: a single good second
/// after a loss is not yet a trend.
pub const CLEAN_WINDOWS_BEFORE_INCREASE: u32 = 2;

/// Round-trip time above the lowest seen by this much means queues are building up somewhere.
const QUEUEING_RTT_US: u32 = 80_000;

/// What to stream at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Frames per second at most.
    pub fps: u16,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
}

/// Follows the relay's reports; see the module documentation.
#[derive(Debug, Clone)]
pub struct RateController {
    rate: Rate,
    ceiling: Rate,
    clean_windows: u32,
    base_rtt_us: Option<u32>,
}

impl RateController {
    /// Starts at the ceiling: the relay's frame rate and bitrate hint (already capped by the
    /// app's own limits).
    #[must_use]
    pub fn new(ceiling: Rate) -> RateController {
        // The relay's rate is a ceiling even below the floors: an operator's `--max-fps 2` is
        // two frames a second (found in issue 18's work: the app streamed at MIN_FPS, and the
        // debug-build load test carried 2.5 times the frames it meant to). Zero says nothing:
        // the floors.
        let fps = if ceiling.fps == 0 { MIN_FPS } else { ceiling.fps };
        let bitrate_bps = if ceiling.bitrate_bps == 0 { MIN_BITRATE_BPS } else { ceiling.bitrate_bps };
        let ceiling = Rate { fps, bitrate_bps };
        RateController { rate: ceiling, ceiling, clean_windows: 0, base_rtt_us: None }
    }

    /// The floors, never above the ceiling.
    fn floor(&self) -> Rate {
        Rate { fps: MIN_FPS.min(self.ceiling.fps), bitrate_bps: MIN_BITRATE_BPS.min(self.ceiling.bitrate_bps) }
    }

    /// The rate to stream at now.
    #[must_use]
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes one report from the relay and the frames the app dropped itself since the last
    /// one; returns the new rate if it changed.
    pub fn on_report(&mut self, stats: &Stats, dropped_locally: u32) -> Option<Rate> {
        let before = self.rate;
        if stats.rtt_us > 0 {
            self.base_rtt_us = Some(self.base_rtt_us.map_or(stats.rtt_us, |b| b.min(stats.rtt_us)));
        }
        let queueing = self.base_rtt_us.is_some_and(|base| stats.rtt_us > base.saturating_add(QUEUEING_RTT_US));
        let congested = stats.frames_dropped > 0 || dropped_locally > 0 || queueing;
        if congested {
            self.clean_windows = 0;
            let floor = self.floor();
            if self.rate.bitrate_bps > floor.bitrate_bps {
                self.rate.bitrate_bps = (self.rate.bitrate_bps / 10 * 7).max(floor.bitrate_bps);
            } else {
                self.rate.fps = (self.rate.fps - self.rate.fps / 3).max(floor.fps);
            }
        } else {
            self.clean_windows += 1;
            if self.clean_windows >= CLEAN_WINDOWS_BEFORE_INCREASE {
                if self.rate.fps < self.ceiling.fps {
                    self.rate.fps = (self.rate.fps + self.rate.fps / 2).min(self.ceiling.fps);
                } else {
                    let step = (self.rate.bitrate_bps / 10).max(50_000);
                    self.rate.bitrate_bps = self.rate.bitrate_bps.saturating_add(step).min(self.ceiling.bitrate_bps);
                }
            }
        }
        (self.rate != before).then_some(self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(frames_dropped: u32, rtt_us: u32) -> Stats {
        Stats { window_ms: 1000, frames: 30, frames_dropped, bytes: 500_000, latency_p50_us: 0, rtt_us }
    }

    const CEILING: Rate = Rate { fps: 30, bitrate_bps: 4_000_000 };

    #[test]
    fn starts_at_the_ceiling_and_stays_there_while_clean() {
        let mut c = RateController::new(CEILING);
        assert_eq!(c.rate(), CEILING);
        for _ in 0..10 {
            assert_eq!(c.on_report(&report(0, 1_000), 0), None);
        }
        assert_eq!(c.rate(), CEILING);
    }

    #[test]
    fn a_relay_ceiling_below_the_floors_is_kept() {
        let low = Rate { fps: 2, bitrate_bps: 200_000 };
        let mut c = RateController::new(low);
        assert_eq!(c.rate(), low, "the relay asked for 2 fps");
        for _ in 0..10 {
            c.on_report(&report(1, 1_000), 0);
        }
        assert_eq!(c.rate(), low, "congestion cannot lower it below itself, nor raise it to the floors");
        for _ in 0..10 {
            c.on_report(&report(0, 1_000), 0);
        }
        assert_eq!(c.rate(), low);
    }

    #[test]
    fn drops_cut_the_bitrate_first_then_the_frame_rate() {
        let mut c = RateController::new(CEILING);
        assert_eq!(c.on_report(&report(3, 1_000), 0), Some(Rate { fps: 30, bitrate_bps: 2_800_000 }));
        assert_eq!(c.on_report(&report(0, 1_000), 2).map(|r| r.bitrate_bps), Some(1_960_000), "the app's own drops count too");
        let mut reports = 0;
        while c.rate().bitrate_bps > MIN_BITRATE_BPS {
            c.on_report(&report(1, 1_000), 0);
            reports += 1;
            assert!(reports < 20, "the bitrate must reach the floor");
        }
        assert_eq!(c.rate().fps, 30, "the frame rate holds while the bitrate can still give");
        c.on_report(&report(1, 1_000), 0);
        assert_eq!(c.rate(), Rate { fps: 20, bitrate_bps: MIN_BITRATE_BPS });
        for _ in 0..20 {
            c.on_report(&report(1, 1_000), 0);
        }
        assert_eq!(c.rate().fps, MIN_FPS, "never below the floor");
    }

    #[test]
    fn recovers_frame_rate_first_then_bitrate_after_clean_reports() {
        let mut c = RateController::new(CEILING);
        for _ in 0..30 {
            c.on_report(&report(1, 1_000), 0);
        }
        assert_eq!(c.rate(), Rate { fps: MIN_FPS, bitrate_bps: MIN_BITRATE_BPS });
        assert_eq!(c.on_report(&report(0, 1_000), 0), None, "one clean report is not a trend");
        let mut fps = vec![];
        while c.rate().fps < CEILING.fps {
            c.on_report(&report(0, 1_000), 0);
            fps.push(c.rate().fps);
            assert_eq!(c.rate().bitrate_bps, MIN_BITRATE_BPS, "frame rate first");
        }
        assert!(fps.windows(2).all(|w| w[0] < w[1]), "{fps:?}");
        for _ in 0..100 {
            c.on_report(&report(0, 1_000), 0);
        }
        assert_eq!(c.rate(), CEILING, "back to the ceiling, never above");
    }

    #[test]
    fn a_growing_round_trip_time_counts_as_congestion() {
        let mut c = RateController::new(CEILING);
        c.on_report(&report(0, 2_000), 0);
        assert_eq!(c.on_report(&report(0, 40_000), 0), None, "some jitter is fine");
        assert_eq!(c.on_report(&report(0, 200_000), 0).map(|r| r.bitrate_bps), Some(2_800_000));
    }

    #[test]
    fn a_ceiling_below_the_floors_is_raised_to_them() {
        let c = RateController::new(Rate { fps: 0, bitrate_bps: 0 });
        assert_eq!(c.rate(), Rate { fps: MIN_FPS, bitrate_bps: MIN_BITRATE_BPS });
    }
}
