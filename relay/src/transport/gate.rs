//! The consent chokepoint: the one place that decides whether a video frame may go to a
//! technician, whether an input event may go to the end user's machine, and whether copied
//! text may pass either way.
//!
//! Forwarding code cannot skip it: [`FramePass`], [`InputPass`] and [`ClipboardPass`] can only
//! be made here, and the functions that send frames to viewers, input to apps and clipboard
//! text either way require one. The gate's grant is
//! set from the session's consent in the store (after every change, see `hub.rs`), so a
//! withdrawal takes effect on the very next frame or event.

use deskline_protocol::session::Grant;
use deskline_protocol::{Capabilities, TechnicianId};

/// Proof that the current consent lets frames reach this technician.
#[derive(Debug)]
pub struct FramePass(());

/// Proof that the current consent lets this technician's input reach the app.
#[derive(Debug)]
pub struct InputPass(());

/// Proof that the current consent lets copied text pass between this technician and the end
/// user's clipboard, in the direction it was asked for.
#[derive(Debug)]
pub struct ClipboardPass(());

/// Proof that the current consent lets files pass between this technician and the end user.
#[derive(Debug)]
pub struct FilePass(());

/// What the end user currently allows each technician, and who holds control.
#[derive(Debug, Default, Clone)]
pub struct ConsentGate {
    grants: Vec<Grant>,
    controller: Option<TechnicianId>,
}

impl ConsentGate {
    /// Sets the grants from the stored consent (those in force: none while suspended). A
    /// controller whose grant no longer includes control loses it.
    pub fn set_grants(&mut self, grants: &[Grant]) {
        self.grants = grants.to_vec();
        if self.controller.is_some_and(|c| !self.granted_to(c).control()) {
            self.controller = None;
        }
    }

    /// What this technician may do now.
    #[must_use]
    pub fn granted_to(&self, technician: TechnicianId) -> Capabilities {
        self.grants.iter().find(|g| g.technician == technician).map_or(Capabilities::NONE, |g| g.capabilities)
    }

    /// The grants in force.
    #[must_use]
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Who holds control, if anyone.
    #[must_use]
    pub fn controller(&self) -> Option<TechnicianId> {
        self.controller
    }

    /// Gives control to `technician` (or takes it from everyone with `None`). Refused (false)
    /// unless the end user granted control to that technician.
    pub fn hand_control_to(&mut self, technician: Option<TechnicianId>) -> bool {
        if technician.is_some_and(|t| !self.granted_to(t).control()) {
            return false;
        }
        self.controller = technician;
        true
    }

    /// May frames go to this technician now?
    #[must_use]
    pub fn admit_frame(&self, to: TechnicianId) -> Option<FramePass> {
        self.granted_to(to).view().then_some(FramePass(()))
    }

    /// May this technician's input go to the app now? Only with control granted to them, and
    /// only while they hold it.
    #[must_use]
    pub fn admit_input(&self, from: TechnicianId) -> Option<InputPass> {
        (self.granted_to(from).control() && self.controller == Some(from)).then_some(InputPass(()))
    }

    /// May this technician's copied text go to the end user's clipboard now? Only with the
    /// clipboard granted to them, and only while they hold control (their paste goes where their
    /// keyboard goes; a technician watching does not change what the end user pastes).
    #[must_use]
    pub fn admit_clipboard_from(&self, from: TechnicianId) -> Option<ClipboardPass> {
        (self.granted_to(from).clipboard() && self.controller == Some(from)).then_some(ClipboardPass(()))
    }

    /// May files pass between this technician and the end user now (each one the end user
    /// accepts or sends)? Only with files granted to them.
    #[must_use]
    pub fn admit_files(&self, technician: TechnicianId) -> Option<FilePass> {
        self.granted_to(technician).files().then_some(FilePass(()))
    }

    /// May the end user's copied text go to this technician now? Only with the clipboard
    /// granted to them.
    #[must_use]
    pub fn admit_clipboard_to(&self, to: TechnicianId) -> Option<ClipboardPass> {
        self.granted_to(to).clipboard().then_some(ClipboardPass(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: TechnicianId = TechnicianId(1);
    const BOB: TechnicianId = TechnicianId(2);

    fn grant(technician: TechnicianId, capabilities: Capabilities) -> Grant {
        Grant { technician, capabilities }
    }

    #[test]
    fn nothing_passes_without_consent() {
        let gate = ConsentGate::default();
        assert!(gate.admit_frame(ALICE).is_none());
        assert!(gate.admit_input(ALICE).is_none());
    }

    #[test]
    fn view_only_never_lets_input_through() {
        let mut gate = ConsentGate::default();
        gate.set_grants(&[grant(ALICE, Capabilities::VIEW)]);
        assert!(gate.admit_frame(ALICE).is_some());
        assert!(!gate.hand_control_to(Some(ALICE)), "control cannot be held without a control grant");
        assert!(gate.admit_input(ALICE).is_none());
    }

    #[test]
    fn consent_given_to_one_technician_lets_nothing_through_to_another() {
        let mut gate = ConsentGate::default();
        gate.set_grants(&[grant(ALICE, Capabilities::VIEW_AND_CONTROL)]);
        assert!(gate.admit_frame(ALICE).is_some());
        assert!(gate.admit_frame(BOB).is_none(), "Bob was never allowed to see");
        assert!(!gate.hand_control_to(Some(BOB)), "Bob was never allowed to control");
        assert!(gate.admit_input(BOB).is_none());
    }

    #[test]
    fn only_the_controller_sends_input_and_withdrawal_is_immediate() {
        let mut gate = ConsentGate::default();
        gate.set_grants(&[grant(ALICE, Capabilities::VIEW_AND_CONTROL), grant(BOB, Capabilities::VIEW_AND_CONTROL)]);
        assert!(gate.admit_input(ALICE).is_none(), "nobody holds control yet");
        assert!(gate.hand_control_to(Some(ALICE)));
        assert!(gate.admit_input(ALICE).is_some());
        assert!(gate.admit_input(BOB).is_none());
        assert!(gate.hand_control_to(Some(BOB)));
        assert!(gate.admit_input(ALICE).is_none());
        // The end user takes back control: nobody holds it, frames still flow.
        gate.set_grants(&[grant(ALICE, Capabilities::VIEW), grant(BOB, Capabilities::VIEW)]);
        assert_eq!(gate.controller(), None);
        assert!(gate.admit_input(BOB).is_none());
        assert!(gate.admit_frame(BOB).is_some());
        // Stop sharing: nothing flows.
        gate.set_grants(&[]);
        assert!(gate.admit_frame(ALICE).is_none());
        assert!(gate.admit_frame(BOB).is_none());
    }

    #[test]
    fn clipboard_passes_only_with_its_grant_and_to_the_end_user_only_from_the_controller() {
        let mut gate = ConsentGate::default();
        assert!(gate.admit_clipboard_to(ALICE).is_none() && gate.admit_clipboard_from(ALICE).is_none());
        gate.set_grants(&[grant(ALICE, Capabilities::ALL), grant(BOB, Capabilities::VIEW_AND_CONTROL)]);
        assert!(gate.admit_clipboard_to(ALICE).is_some());
        assert!(gate.admit_clipboard_from(ALICE).is_none(), "Alice does not hold control yet");
        assert!(gate.hand_control_to(Some(ALICE)));
        assert!(gate.admit_clipboard_from(ALICE).is_some());
        assert!(gate.admit_clipboard_to(BOB).is_none(), "Bob has control but not the clipboard");
        assert!(gate.hand_control_to(Some(BOB)));
        assert!(gate.admit_clipboard_from(BOB).is_none() && gate.admit_clipboard_from(ALICE).is_none());
        // The end user takes back control: the clipboard goes with it.
        gate.set_grants(&[grant(ALICE, Capabilities::ALL.without_control())]);
        assert!(gate.admit_clipboard_to(ALICE).is_none());
    }
}
