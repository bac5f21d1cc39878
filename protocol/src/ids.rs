//! Identifiers and time values shared by the wire and the domain.
//!
//! Time is never read here: callers pass a [`Timestamp`] in (DESIGN §1, sans-IO).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A support session.
    SessionId
);
id_type!(
    /// A channel: a group of sessions and the technicians who work them.
    ChannelId
);
id_type!(
    /// A technician account.
    TechnicianId
);

/// A point in time: milliseconds since the Unix epoch (UTC). Passed in by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The time `d` after this one, saturating instead of overflowing.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// How long after `earlier` this is; zero if it is not later.
    #[must_use]
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        let millis = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp(1_000);
        assert_eq!(t.saturating_add(Duration::from_secs(2)), Timestamp(3_000));
        assert_eq!(Timestamp(i64::MAX - 1).saturating_add(Duration::from_secs(1)), Timestamp(i64::MAX));
        assert_eq!(Timestamp(5_000).duration_since(t), Duration::from_secs(4));
        assert_eq!(t.duration_since(Timestamp(5_000)), Duration::ZERO);
    }
}
