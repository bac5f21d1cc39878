//! What an end user lets technicians do: see the screen, and control it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A set of consent capabilities. Control always includes view: you cannot safely steer a
/// screen you cannot see, so a set with control but no view cannot be built or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "CapabilitiesRepr", into = "CapabilitiesRepr")]
pub struct Capabilities {
    view: bool,
    control: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapabilitiesRepr {
    view: bool,
    control: bool,
}

/// A capability set with control but without view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("control without view is not a valid capability set")]
pub struct ControlWithoutView;

impl TryFrom<CapabilitiesRepr> for Capabilities {
    type Error = ControlWithoutView;

    fn try_from(r: CapabilitiesRepr) -> Result<Self, ControlWithoutView> {
        if r.control && !r.view {
            return Err(ControlWithoutView);
        }
        Ok(Capabilities { view: r.view, control: r.control })
    }
}

impl From<Capabilities> for CapabilitiesRepr {
    fn from(c: Capabilities) -> Self {
        CapabilitiesRepr { view: c.view, control: c.control }
    }
}

impl Capabilities {
    /// Nothing granted.
    pub const NONE: Capabilities = Capabilities { view: false, control: false };
    /// See the screen only.
    pub const VIEW: Capabilities = Capabilities { view: true, control: false };
    /// See the screen and send mouse and keyboard input.
    pub const VIEW_AND_CONTROL: Capabilities = Capabilities { view: true, control: true };

    /// May technicians see the screen?
    #[must_use]
    pub const fn view(self) -> bool {
        self.view
    }

    /// May the controlling technician send input?
    #[must_use]
    pub const fn control(self) -> bool {
        self.control
    }

    /// Nothing granted?
    #[must_use]
    pub const fn is_empty(self) -> bool {
        !self.view
    }

    /// Does this set include everything in `other`?
    #[must_use]
    pub const fn covers(self, other: Capabilities) -> bool {
        (self.view || !other.view) && (self.control || !other.control)
    }

    /// What both sets include (still valid: control implies view in both, so in the result).
    #[must_use]
    pub const fn intersect(self, other: Capabilities) -> Capabilities {
        Capabilities { view: self.view && other.view, control: self.control && other.control }
    }

    /// Everything in either set (valid: control implies view in each, so in the result).
    #[must_use]
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities { view: self.view || other.view, control: self.control || other.control }
    }

    /// This set with control taken away.
    #[must_use]
    pub const fn without_control(self) -> Capabilities {
        Capabilities { view: self.view, control: false }
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.view, self.control) {
            (false, _) => "nothing",
            (true, false) => "view",
            (true, true) => "view and control",
        })
    }
}

#[cfg(test)]
impl proptest::arbitrary::Arbitrary for Capabilities {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        use proptest::strategy::Strategy as _;
        proptest::sample::select(vec![
            Capabilities::NONE,
            Capabilities::VIEW,
            Capabilities::VIEW_AND_CONTROL,
        ])
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let all = [Capabilities::NONE, Capabilities::VIEW, Capabilities::VIEW_AND_CONTROL];
        for a in all {
            for b in all {
                let both = a.intersect(b);
                assert!(a.covers(both) && b.covers(both));
                assert!(!both.control() || both.view());
            }
        }
        assert!(Capabilities::VIEW_AND_CONTROL.covers(Capabilities::VIEW));
        assert!(!Capabilities::VIEW.covers(Capabilities::VIEW_AND_CONTROL));
        assert_eq!(Capabilities::VIEW_AND_CONTROL.without_control(), Capabilities::VIEW);
        assert!(Capabilities::NONE.is_empty());
    }

    #[test]
    fn control_without_view_does_not_decode() {
        let bad = postcard::to_allocvec(&CapabilitiesRepr { view: false, control: true }).unwrap();
        assert!(postcard::from_bytes::<Capabilities>(&bad).is_err());
        let good = postcard::to_allocvec(&Capabilities::VIEW).unwrap();
        assert_eq!(postcard::from_bytes::<Capabilities>(&good).unwrap(), Capabilities::VIEW);
    }
}
