//! What operators watch: Prometheus metrics, exposed on their own listener (`serve --metrics
//! ADDR`, plain HTTP `GET /metrics`) so that the public HTTPS port never serves them and no
//! token is needed by the scraper.
//!
//! `prometheus-client` (the Prometheus project's Rust client) keeps the counters and writes the
//! exposition format. Counters are bumped where things happen; what can be counted at scrape
//! time (sessions by state, connected apps and viewers) is counted then.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A `state` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// waiting, active, in_queue, expired, closed.
    pub state: String,
}

/// A `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// What kind.
    pub kind: &'static str,
}

/// An `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// granted_view, granted_control, denied, timed_out.
    pub outcome: &'static str,
}

/// The labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// GET, POST...
    pub method: String,
    /// The route as declared (`/api/v1/sessions/{id}`), never the concrete path.
    pub route: String,
    /// The status code's class: 2xx, 4xx, 5xx.
    pub status: &'static str,
}

/// The API latency histogram's bucket bounds, seconds: Prometheus' usual ones plus 75 and 150
/// ms, so that an objective such as "99 % of API calls within 100 ms" is read off one bucket
/// (`le="0.1"`) instead of being interpolated between 64 and 128 ms.
pub const API_BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric of one relay (not a global: tests run several relays in one process).
pub struct Metrics {
    registry: Registry,
    /// Video frames put into viewers' queues.
    pub frames_forwarded: Counter,
    /// Their bytes.
    pub frame_bytes_forwarded: Counter,
    /// Frames a slow viewer could not take (it skips to the next keyframe).
    pub frames_dropped: Counter,
    /// Remote access requests sent to end users.
    pub consent_requests: Counter,
    /// End users' answers, by outcome.
    pub consent_answers: Family<OutcomeLabel, Counter>,
    /// Sign-ins refused for a wrong username or password.
    pub failed_logins: Counter,
    /// Support apps refused for a wrong, expired or closed code.
    pub code_guesses: Counter,
    /// Limits that refused someone, by limit (login back-off, code guessing, connections).
    pub limits_tripped: Family<KindLabel, Counter>,
    /// API latency, by route.
    pub requests: Family<RequestLabels, Histogram>,
    /// Session recordings begun (one per file).
    pub recordings_started: Counter,
    /// Bytes of video written into recordings (what their retention has to hold).
    pub recording_bytes: Counter,
    sessions: Family<StateLabel, Gauge>,
    apps: Gauge,
    viewers: Family<KindLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered under the `deskline_` prefix.
    #[must_use]
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("deskline");
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| Histogram::new(API_BUCKETS.iter().copied()));
        let m = Metrics {
            registry: Registry::default(),
            frames_forwarded: Counter::default(),
            frame_bytes_forwarded: Counter::default(),
            frames_dropped: Counter::default(),
            consent_requests: Counter::default(),
            consent_answers: Family::default(),
            failed_logins: Counter::default(),
            code_guesses: Counter::default(),
            limits_tripped: Family::default(),
            requests,
            recordings_started: Counter::default(),
            recording_bytes: Counter::default(),
            sessions: Family::default(),
            apps: Gauge::default(),
            viewers: Family::default(),
        };
        registry.register("sessions", "Sessions by state (deleted ones not counted)", m.sessions.clone());
        registry.register("apps_connected", "Support apps connected", m.apps.clone());
        registry.register("viewers_connected", "Viewers connected, by kind (quic, browser)", m.viewers.clone());
        registry.register("frames_forwarded", "Video frames forwarded to viewers", m.frames_forwarded.clone());
        registry.register("frame_bytes_forwarded", "Bytes of video frames forwarded to viewers", m.frame_bytes_forwarded.clone());
        registry.register("frames_dropped", "Frames dropped for viewers too slow to take them", m.frames_dropped.clone());
        registry.register("consent_requests", "Remote access requests sent to end users", m.consent_requests.clone());
        registry.register("consent_answers", "End users' answers to remote access requests", m.consent_answers.clone());
        registry.register("failed_logins", "Sign-ins refused for a wrong username or password", m.failed_logins.clone());
        registry.register("code_guesses", "Support apps refused for a wrong, expired or closed code", m.code_guesses.clone());
        registry.register("limits_tripped", "Attempts refused by a limit, by limit", m.limits_tripped.clone());
        registry.register("api_request_duration_seconds", "HTTP API requests, by route", m.requests.clone());
        registry.register("recordings_started", "Session recording files begun", m.recordings_started.clone());
        registry.register("recording_bytes_written", "Bytes of video written into session recordings", m.recording_bytes.clone());
        Metrics { registry, ..m }
    }

    /// Counts a limit that refused someone.
    pub fn limit_tripped(&self, kind: &'static str) {
        self.limits_tripped.get_or_create(&KindLabel { kind }).inc();
    }

    /// The exposition text, with the gauges set to what is true now: `sessions` by state,
    /// `apps` connected, `viewers` by kind.
    #[must_use]
    pub fn render(&self, sessions: &[(String, i64)], apps: i64, viewers: &[(&'static str, i64)]) -> String {
        self.sessions.clear();
        for (state, n) in sessions {
            self.sessions.get_or_create(&StateLabel { state: state.clone() }).set(*n);
        }
        self.apps.set(apps);
        for (kind, n) in viewers {
            self.viewers.get_or_create(&KindLabel { kind }).set(*n);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.frames_forwarded.inc_by(3);
        m.consent_answers.get_or_create(&OutcomeLabel { outcome: "denied" }).inc();
        m.limit_tripped("login");
        let text = m.render(&[("active".into(), 2)], 1, &[("browser", 1)]);
        for line in [
            "deskline_frames_forwarded_total 3",
            "deskline_consent_answers_total{outcome=\"denied\"} 1",
            "deskline_limits_tripped_total{kind=\"login\"} 1",
            "deskline_sessions{state=\"active\"} 2",
            "deskline_apps_connected 1",
            "deskline_viewers_connected{kind=\"browser\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        // A state with no sessions any more is not reported with a stale count.
        let text = m.render(&[], 0, &[]);
        assert!(!text.contains("state=\"active\""), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
