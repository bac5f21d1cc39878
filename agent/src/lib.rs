//! # deskline-agent
//!
//! The end user's support app: it registers with the relay over QUIC using a link token or a
//! PIN, asks the end user for consent in an always-on-top egui window, then streams the screen
//! as H.264 (captured with `scrap`, encoded with `openh264`) and injects the controlling
//! technician's mouse and keyboard input (with `enigo`) while consent allows it.
//!
//! It enforces consent a second time, locally: nothing is captured or injected beyond what the
//! end user granted, whatever the relay says.
//!
//! Not here: the session rules (in `deskline-protocol`) and anything the technician sees.
//!
//! Status: the connection logic arrives with the transport issue, the capture, injection and
//! windows with the support-app issue.
