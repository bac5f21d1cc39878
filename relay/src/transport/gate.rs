//! The consent chokepoint: the one place that decides whether a video frame may go to a
//! technician and whether an input event may go to the end user's machine.
//!
//! Forwarding code cannot skip it: [`FramePass`] and [`InputPass`] can only be made here, and
//! the functions that send frames to viewers and input to apps require one. The gate's grant is
//! set from the session's consent in the store (after every change, see `hub.rs`), so a
//! withdrawal takes effect on the very next frame or event.

use deskline_protocol::{Capabilities, TechnicianId};

/// Proof that the current consent lets frames reach technicians.
#[derive(Debug)]
pub struct FramePass(());

/// Proof that the current consent lets this technician's input reach the app.
#[derive(Debug)]
pub struct InputPass(());

/// What the end user currently allows, and who holds control.
#[derive(Debug, Default, Clone)]
pub struct ConsentGate {
    granted: Capabilities,
    controller: Option<TechnicianId>,
}

impl ConsentGate {
    /// Sets the grant from the stored consent. Losing control also ends whoever held it.
    pub fn set_grant(&mut self, granted: Capabilities) {
        self.granted = granted;
        if !granted.control() {
            self.controller = None;
        }
    }

    /// The current grant.
    #[must_use]
    pub fn granted(&self) -> Capabilities {
        self.granted
    }

    /// Who holds control, if anyone.
    #[must_use]
    pub fn controller(&self) -> Option<TechnicianId> {
        self.controller
    }

    /// Gives control to `technician` (or takes it from everyone with `None`). Refused (false)
    /// unless the end user granted control.
    pub fn hand_control_to(&mut self, technician: Option<TechnicianId>) -> bool {
        if technician.is_some() && !self.granted.control() {
            return false;
        }
        self.controller = technician;
        true
    }

    /// May frames go to technicians now?
    #[must_use]
    pub fn admit_frame(&self) -> Option<FramePass> {
        self.granted.view().then_some(FramePass(()))
    }

    /// May this technician's input go to the app now? Only with control granted, and only from
    /// the technician holding it.
    #[must_use]
    pub fn admit_input(&self, from: TechnicianId) -> Option<InputPass> {
        (self.granted.control() && self.controller == Some(from)).then_some(InputPass(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: TechnicianId = TechnicianId(1);
    const BOB: TechnicianId = TechnicianId(2);

    #[test]
    fn nothing_passes_without_consent() {
        let gate = ConsentGate::default();
        assert!(gate.admit_frame().is_none());
        assert!(gate.admit_input(ALICE).is_none());
    }

    #[test]
    fn view_only_never_lets_input_through() {
        let mut gate = ConsentGate::default();
        gate.set_grant(Capabilities::VIEW);
        assert!(gate.admit_frame().is_some());
        assert!(!gate.hand_control_to(Some(ALICE)), "control cannot be held without a control grant");
        assert!(gate.admit_input(ALICE).is_none());
    }

    #[test]
    fn only_the_controller_sends_input_and_withdrawal_is_immediate() {
        let mut gate = ConsentGate::default();
        gate.set_grant(Capabilities::VIEW_AND_CONTROL);
        assert!(gate.admit_input(ALICE).is_none(), "nobody holds control yet");
        assert!(gate.hand_control_to(Some(ALICE)));
        assert!(gate.admit_input(ALICE).is_some());
        assert!(gate.admit_input(BOB).is_none());
        assert!(gate.hand_control_to(Some(BOB)));
        assert!(gate.admit_input(ALICE).is_none());
        // The end user takes back control: nobody holds it, frames still flow.
        gate.set_grant(Capabilities::VIEW);
        assert_eq!(gate.controller(), None);
        assert!(gate.admit_input(BOB).is_none());
        assert!(gate.admit_frame().is_some());
        // Stop sharing: nothing flows.
        gate.set_grant(Capabilities::NONE);
        assert!(gate.admit_frame().is_none());
    }
}
