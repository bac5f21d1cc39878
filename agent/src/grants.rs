//! What the end user allowed, technician by technician: the app's own record.
//!
//! The end user's yes is to the technician named in the popup, nobody else. The relay tells
//! the app who may see and control after every change ([`Access`]); the app follows it only to
//! take away (a technician left, a grant ended), never to add what the end user did not allow.
//! A grant the end user just gave waits for the relay's answer to that decision before a
//! message from the relay can remove it (an older message may still be on its way).

use deskline_protocol::{Access, AccessGrant, Capabilities, TechnicianId};

/// The grants in force on this app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    grants: Vec<AccessGrant>,
    /// The decision sent and not yet answered by the relay: its request and technician.
    unconfirmed: Option<(u64, TechnicianId)>,
}

/// What the relay's answer to a decision did to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Not an answer to the decision waiting.
    No,
    /// The relay applied it.
    Applied,
    /// The relay refused it: it came after the relay's own timeout.
    TooLate,
}

impl Grants {
    /// Grants restored after a resumption.
    #[must_use]
    pub fn from_list(grants: Vec<AccessGrant>) -> Grants {
        Grants { grants, unconfirmed: None }
    }

    /// Every grant, for the session bar.
    #[must_use]
    pub fn list(&self) -> &[AccessGrant] {
        &self.grants
    }

    /// What this technician may do.
    #[must_use]
    pub fn of(&self, technician: TechnicianId) -> Capabilities {
        self.grants.iter().find(|g| g.technician == technician).map_or(Capabilities::NONE, |g| g.capabilities)
    }

    /// What anyone may do (the capture runs while someone may view).
    #[must_use]
    pub fn any(&self) -> Capabilities {
        self.grants.iter().fold(Capabilities::NONE, |all, g| all.union(g.capabilities))
    }

    /// The end user allowed `capabilities` to this technician (in answer to `request_id`).
    pub fn allow(&mut self, request_id: u64, technician: TechnicianId, name: &str, capabilities: Capabilities) {
        let total = self.of(technician).union(capabilities);
        self.grants.retain(|g| g.technician != technician);
        if !total.is_empty() {
            self.grants.push(AccessGrant { technician, name: name.to_owned(), capabilities: total });
        }
        self.unconfirmed = Some((request_id, technician));
    }

    /// The end user reduced what everyone may do (took back control, stopped sharing).
    pub fn restrict(&mut self, to: Capabilities) {
        for grant in &mut self.grants {
            grant.capabilities = grant.capabilities.intersect(to);
        }
        self.grants.retain(|g| !g.capabilities.is_empty());
    }

    /// Follows the relay's view: each grant shrinks to what the relay says (a technician it
    /// does not list loses theirs). A grant waiting for the relay's answer is kept until that
    /// answer.
    pub fn follow(&mut self, access: &Access) -> Answered {
        let before = self.clone();
        // The grant whose decision the relay has not answered yet is left alone.
        let protected = match (self.unconfirmed, access.answered) {
            (Some((waiting, _)), Some(answer)) if waiting == answer => {
                self.unconfirmed = None;
                None
            }
            (waiting, _) => waiting.map(|(_, technician)| technician),
        };
        for grant in &mut self.grants {
            if protected == Some(grant.technician) {
                continue;
            }
            let relay = access.grants.iter().find(|g| g.technician == grant.technician).map_or(Capabilities::NONE, |g| g.capabilities);
            grant.capabilities = grant.capabilities.intersect(relay);
        }
        self.grants.retain(|g| !g.capabilities.is_empty());
        match (before.unconfirmed, access.answered) {
            (Some((waiting, technician)), Some(answer)) if waiting == answer => {
                if self.of(technician).is_empty() && !before.of(technician).is_empty() {
                    Answered::TooLate
                } else {
                    Answered::Applied
                }
            }
            _ => Answered::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: TechnicianId = TechnicianId(1);
    const BOB: TechnicianId = TechnicianId(2);

    fn access(grants: &[(TechnicianId, Capabilities)], answered: Option<u64>) -> Access {
        Access {
            grants: grants.iter().map(|&(technician, capabilities)| AccessGrant { technician, name: String::new(), capabilities }).collect(),
            answered,
        }
    }

    #[test]
    fn the_relay_can_only_take_away() {
        let mut grants = Grants::default();
        grants.allow(1, ADA, "Ada", Capabilities::VIEW);
        assert_eq!(grants.follow(&access(&[(ADA, Capabilities::VIEW)], Some(1))), Answered::Applied);
        // The relay claims more for Ada, and a grant for Bob: neither was allowed here.
        grants.follow(&access(&[(ADA, Capabilities::VIEW_AND_CONTROL), (BOB, Capabilities::VIEW)], None));
        assert_eq!(grants.of(ADA), Capabilities::VIEW);
        assert_eq!(grants.of(BOB), Capabilities::NONE);
        // Ada left the session: her grant ends.
        grants.follow(&access(&[], None));
        assert_eq!(grants.any(), Capabilities::NONE);
    }

    #[test]
    fn a_fresh_grant_survives_an_older_message_and_a_late_one_is_reported() {
        let mut grants = Grants::default();
        grants.allow(4, ADA, "Ada", Capabilities::VIEW_AND_CONTROL);
        // Sent by the relay before it read the decision: must not undo it.
        assert_eq!(grants.follow(&access(&[], None)), Answered::No);
        assert_eq!(grants.of(ADA), Capabilities::VIEW_AND_CONTROL);
        // The relay's answer: it had already timed the request out.
        assert_eq!(grants.follow(&access(&[], Some(4))), Answered::TooLate);
        assert_eq!(grants.of(ADA), Capabilities::NONE);
    }

    #[test]
    fn taking_back_control_and_stopping_apply_to_everyone() {
        let mut grants = Grants::default();
        grants.allow(1, ADA, "Ada", Capabilities::VIEW_AND_CONTROL);
        grants.allow(2, BOB, "Bob", Capabilities::VIEW);
        grants.restrict(Capabilities::VIEW);
        assert_eq!(grants.of(ADA), Capabilities::VIEW);
        assert_eq!(grants.of(BOB), Capabilities::VIEW);
        grants.restrict(Capabilities::NONE);
        assert!(grants.list().is_empty());
    }
}
