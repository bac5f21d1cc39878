//! What an end user lets technicians do: see the screen, control it, pass files and share the
//! clipboard.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A set of consent capabilities. Everything includes view: nothing is granted to a technician
/// the end user has not let see the screen, so "nothing granted" is simply "no view". Clipboard
/// includes control, because the technician's copied text lands where their paste goes (and
/// the end user's copied text is what they would read off the screen they steer). A set that
/// breaks either rule cannot be built or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "CapabilitiesRepr", into = "CapabilitiesRepr")]
pub struct Capabilities {
    view: bool,
    control: bool,
    files: bool,
    clipboard: bool,
}

// JSON kept before files and clipboard existed (stored consent) has neither: they default to
// false. postcard is positional, so on the wire the set is always four booleans.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapabilitiesRepr {
    view: bool,
    control: bool,
    #[serde(default)]
    files: bool,
    #[serde(default)]
    clipboard: bool,
}

/// A capability set that breaks a rule of [`Capabilities`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCapabilities {
    /// Control, files or clipboard without view.
    #[error("control, files and clipboard all need view")]
    WithoutView,
    /// Clipboard without control.
    #[error("clipboard needs control")]
    ClipboardWithoutControl,
}

impl TryFrom<CapabilitiesRepr> for Capabilities {
    type Error = InvalidCapabilities;

    fn try_from(r: CapabilitiesRepr) -> Result<Self, InvalidCapabilities> {
        if (r.control || r.files || r.clipboard) && !r.view {
            return Err(InvalidCapabilities::WithoutView);
        }
        if r.clipboard && !r.control {
            return Err(InvalidCapabilities::ClipboardWithoutControl);
        }
        Ok(Capabilities { view: r.view, control: r.control, files: r.files, clipboard: r.clipboard })
    }
}

impl From<Capabilities> for CapabilitiesRepr {
    fn from(c: Capabilities) -> Self {
        CapabilitiesRepr { view: c.view, control: c.control, files: c.files, clipboard: c.clipboard }
    }
}

impl Capabilities {
    /// Nothing granted.
    pub const NONE: Capabilities = Capabilities { view: false, control: false, files: false, clipboard: false };
    /// See the screen only.
    pub const VIEW: Capabilities = Capabilities { view: true, control: false, files: false, clipboard: false };
    /// See the screen and send mouse and keyboard input.
    pub const VIEW_AND_CONTROL: Capabilities = Capabilities { view: true, control: true, files: false, clipboard: false };
    /// Everything a support session can ask for.
    pub const ALL: Capabilities = Capabilities { view: true, control: true, files: true, clipboard: true };

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

    /// May files pass between the technician and the end user (each one the end user sends or
    /// accepts)?
    #[must_use]
    pub const fn files(self) -> bool {
        self.files
    }

    /// May copied text pass both ways?
    #[must_use]
    pub const fn clipboard(self) -> bool {
        self.clipboard
    }

    /// Nothing granted?
    #[must_use]
    pub const fn is_empty(self) -> bool {
        !self.view
    }

    /// Does this set include everything in `other`?
    #[must_use]
    pub const fn covers(self, other: Capabilities) -> bool {
        self.intersect(other).eq_const(other)
    }

    const fn eq_const(self, other: Capabilities) -> bool {
        self.view == other.view && self.control == other.control && self.files == other.files && self.clipboard == other.clipboard
    }

    /// What both sets include (still valid: each rule holds in both, so in the result).
    #[must_use]
    pub const fn intersect(self, other: Capabilities) -> Capabilities {
        Capabilities {
            view: self.view && other.view,
            control: self.control && other.control,
            files: self.files && other.files,
            clipboard: self.clipboard && other.clipboard,
        }
    }

    /// Everything in either set (valid: each rule holds in each, so in the result).
    #[must_use]
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities {
            view: self.view || other.view,
            control: self.control || other.control,
            files: self.files || other.files,
            clipboard: self.clipboard || other.clipboard,
        }
    }

    /// This set with control taken away (and the clipboard, which needs it).
    #[must_use]
    pub const fn without_control(self) -> Capabilities {
        Capabilities { view: self.view, control: false, files: self.files, clipboard: false }
    }

    /// This set with files (`true`) or without them; nothing without view.
    #[must_use]
    pub const fn with_files(self, files: bool) -> Capabilities {
        Capabilities { files: files && self.view, ..self }
    }

    /// This set with the clipboard (`true`) or without it; nothing without control.
    #[must_use]
    pub const fn with_clipboard(self, clipboard: bool) -> Capabilities {
        Capabilities { clipboard: clipboard && self.control, ..self }
    }

    /// The names of what the set includes, in a fixed order (`view`, `control`, `files`,
    /// `clipboard`): the form [`FromStr`] reads back, comma-separated.
    #[must_use]
    pub fn names(self) -> Vec<&'static str> {
        [(self.view, "view"), (self.control, "control"), (self.files, "files"), (self.clipboard, "clipboard")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

/// A capability list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilitiesParseError {
    /// A name that is not a capability.
    #[error("{0:?} is not a capability (view, control, files, clipboard, or view_and_control)")]
    Unknown(String),
    /// The names break a rule.
    #[error(transparent)]
    Invalid(#[from] InvalidCapabilities),
}

/// Reads `view,control,files,clipboard` (any subset, any order, spaces allowed around the
/// commas; `view_and_control` is kept for `view,control`). An empty list is [`Capabilities::NONE`].
impl FromStr for Capabilities {
    type Err = CapabilitiesParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut r = CapabilitiesRepr { view: false, control: false, files: false, clipboard: false };
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "view" => r.view = true,
                "control" => r.control = true,
                "files" => r.files = true,
                "clipboard" => r.clipboard = true,
                "view_and_control" => (r.view, r.control) = (true, true),
                other => return Err(CapabilitiesParseError::Unknown(other.to_owned())),
            }
        }
        Ok(Capabilities::try_from(r)?)
    }
}

impl fmt::Display for Capabilities {
    /// English for people: "nothing", "view", "view and control", "view, control and files".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.names().as_slice() {
            [] => f.write_str("nothing"),
            [one] => f.write_str(one),
            [init @ .., last] => write!(f, "{} and {last}", init.join(", ")),
        }
    }
}

#[cfg(test)]
impl proptest::arbitrary::Arbitrary for Capabilities {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        use proptest::strategy::Strategy as _;
        proptest::sample::select(all_valid()).boxed()
    }
}

/// Every valid set (there are seven).
#[cfg(test)]
pub(crate) fn all_valid() -> Vec<Capabilities> {
    (0u8..16)
        .filter_map(|bits| {
            Capabilities::try_from(CapabilitiesRepr { view: bits & 1 != 0, control: bits & 2 != 0, files: bits & 4 != 0, clipboard: bits & 8 != 0 }).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations_keep_the_rules() {
        let all = all_valid();
        assert_eq!(all.len(), 7);
        for a in &all {
            for b in &all {
                let both = a.intersect(*b);
                let either = a.union(*b);
                assert!(a.covers(both) && b.covers(both));
                assert!(either.covers(*a) && either.covers(*b));
                for set in [both, either, a.without_control(), a.with_files(true), a.with_clipboard(true)] {
                    assert!(all.contains(&set), "{set:?} breaks a rule");
                }
            }
        }
        assert!(Capabilities::VIEW_AND_CONTROL.covers(Capabilities::VIEW));
        assert!(!Capabilities::VIEW.covers(Capabilities::VIEW_AND_CONTROL));
        assert!(!Capabilities::VIEW_AND_CONTROL.covers(Capabilities::ALL));
        assert_eq!(Capabilities::ALL.without_control(), Capabilities::VIEW.with_files(true));
        assert_eq!(Capabilities::VIEW.with_clipboard(true), Capabilities::VIEW);
        assert!(Capabilities::NONE.is_empty());
    }

    #[test]
    fn invalid_sets_do_not_decode() {
        for (bad, error) in [
            (CapabilitiesRepr { view: false, control: true, files: false, clipboard: false }, "need view"),
            (CapabilitiesRepr { view: false, control: false, files: true, clipboard: false }, "need view"),
            (CapabilitiesRepr { view: true, control: false, files: false, clipboard: true }, "needs control"),
        ] {
            let bytes = postcard::to_allocvec(&bad).unwrap();
            assert!(postcard::from_bytes::<Capabilities>(&bytes).is_err());
            let json = serde_json::to_string(&bad).unwrap();
            assert!(serde_json::from_str::<Capabilities>(&json).unwrap_err().to_string().contains(error));
        }
        let good = postcard::to_allocvec(&Capabilities::ALL).unwrap();
        assert_eq!(postcard::from_bytes::<Capabilities>(&good).unwrap(), Capabilities::ALL);
    }

    #[test]
    fn json_stored_before_files_and_clipboard_still_reads() {
        let old: Capabilities = serde_json::from_str(r#"{"view":true,"control":true}"#).unwrap();
        assert_eq!(old, Capabilities::VIEW_AND_CONTROL);
    }

    #[test]
    fn names_parse_back_and_read_as_english() {
        for set in all_valid() {
            assert_eq!(set.names().join(",").parse::<Capabilities>(), Ok(set));
        }
        assert_eq!("view_and_control".parse(), Ok(Capabilities::VIEW_AND_CONTROL));
        assert_eq!(" view , files ".parse(), Ok(Capabilities::VIEW.with_files(true)));
        assert_eq!("".parse(), Ok(Capabilities::NONE));
        assert_eq!("view,paste".parse::<Capabilities>(), Err(CapabilitiesParseError::Unknown("paste".into())));
        assert_eq!("view,clipboard".parse::<Capabilities>(), Err(InvalidCapabilities::ClipboardWithoutControl.into()));
        assert_eq!(Capabilities::NONE.to_string(), "nothing");
        assert_eq!(Capabilities::VIEW_AND_CONTROL.to_string(), "view and control");
        assert_eq!(Capabilities::ALL.to_string(), "view, control, files and clipboard");
    }
}
