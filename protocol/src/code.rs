//! Session codes: link tokens, 6-digit PINs and app resumption secrets.
//!
//! Randomness comes from the caller's CSPRNG (`rand_core::CryptoRng`): this crate never reaches
//! for a global generator, so tests can be deterministic and the relay decides where entropy
//! comes from.

use crate::limits::{LINK_TOKEN_BYTES, PIN_DIGITS, RESUME_SECRET_BYTES};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::CryptoRng;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Why a typed or transmitted code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Nothing (or only separators) was given.
    #[error("the code is empty")]
    Empty,
    /// The code has the wrong number of digits or characters.
    #[error("expected {expected} characters, found {found}")]
    WrongLength {
        /// How many characters a valid code has.
        expected: usize,
        /// How many were given (after removing separators).
        found: usize,
    },
    /// A character that cannot be part of this kind of code.
    #[error("the character {0:?} is not allowed here")]
    InvalidCharacter(char),
}

macro_rules! secret_token {
    ($(#[$doc:meta])* $name:ident, $bytes:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name([u8; $bytes]);

        impl $name {
            /// Characters in the text form (URL-safe base64 without padding).
            pub const TEXT_LEN: usize = ($bytes * 8).div_ceil(6);

            /// A new random value from the caller's CSPRNG.
            pub fn generate(rng: &mut impl CryptoRng) -> Self {
                let mut bytes = [0u8; $bytes];
                rng.fill_bytes(&mut bytes);
                Self(bytes)
            }

            /// The value from its raw bytes.
            #[must_use]
            pub const fn from_bytes(bytes: [u8; $bytes]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; $bytes] {
                &self.0
            }

            /// The URL-safe text form.
            #[must_use]
            pub fn to_text(&self) -> String {
                URL_SAFE_NO_PAD.encode(self.0)
            }
        }

        impl FromStr for $name {
            type Err = CodeError;

            fn from_str(s: &str) -> Result<Self, CodeError> {
                let s = s.trim();
                if s.is_empty() {
                    return Err(CodeError::Empty);
                }
                if let Some(bad) = s
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
                {
                    return Err(CodeError::InvalidCharacter(bad));
                }
                if s.len() != Self::TEXT_LEN {
                    return Err(CodeError::WrongLength { expected: Self::TEXT_LEN, found: s.len() });
                }
                let mut bytes = [0u8; $bytes];
                // Length and alphabet are checked above, so the only failure left is a
                // non-canonical last character (stray low bits); report it as that character.
                match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
                    Ok(n) if n == $bytes => Ok(Self(bytes)),
                    _ => Err(CodeError::InvalidCharacter(s.chars().last().unwrap_or('?'))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_text())
            }
        }

        /// Redacted: a secret must not end up whole in a log line.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let text = self.to_text();
                write!(f, concat!(stringify!($name), "({}…)"), &text[..4])
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_text())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = String::deserialize(d)?;
                    text.parse().map_err(D::Error::custom)
                } else {
                    <[u8; $bytes]>::deserialize(d).map(Self)
                }
            }
        }

        #[cfg(test)]
        impl proptest::arbitrary::Arbitrary for $name {
            type Parameters = ();
            type Strategy = proptest::strategy::BoxedStrategy<Self>;

            fn arbitrary_with((): ()) -> Self::Strategy {
                use proptest::strategy::Strategy as _;
                proptest::arbitrary::any::<[u8; $bytes]>().prop_map(Self).boxed()
            }
        }
    };
}

secret_token!(
    /// The secret in a session link (`https://RELAY/s/TOKEN`): 128 random bits.
    LinkToken,
    LINK_TOKEN_BYTES
);

secret_token!(
    /// Given by the relay to a registered app so that the same app instance can resume its
    /// session after a network drop without asking the end user for consent again.
    ResumeSecret,
    RESUME_SECRET_BYTES
);

/// What a session link (`https://RELAY/s/TOKEN#quic=HOST:PORT&sha256=HEX`) tells the support
/// app: the code, and — in the fragment, which browsers never send to a server — where to
/// connect and which certificate to pin. Several relay nodes: `quic=` lists them, separated by
/// commas, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLink {
    /// The session's code.
    pub token: LinkToken,
    /// The relay's QUIC endpoint, `host:port` (several, comma-separated: see [`relays`]), if
    /// the link names it.
    ///
    /// [`relays`]: SessionLink::relays
    pub quic: Option<String>,
    /// The relay certificate's SHA-256 (hex), if the link carries it.
    pub sha256: Option<String>,
}

impl FromStr for SessionLink {
    type Err = CodeError;

    /// Accepts a whole link or just its token.
    fn from_str(s: &str) -> Result<SessionLink, CodeError> {
        let s = s.trim();
        let (before, fragment) = s.split_once('#').unwrap_or((s, ""));
        let token = before.trim_end_matches('/').rsplit('/').next().unwrap_or(before).parse()?;
        let mut link = SessionLink { token, quic: None, sha256: None };
        for pair in fragment.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("quic", v)) if !v.is_empty() => {
                    for one in v.split(',') {
                        quic_address(one)?;
                    }
                    link.quic = Some(v.to_owned());
                }
                Some(("sha256", v)) if v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()) => {
                    link.sha256 = Some(v.to_owned());
                }
                Some(("sha256", _)) => return Err(CodeError::InvalidCharacter('#')),
                // Unknown parameters are for newer apps: ignore them.
                _ => {}
            }
        }
        Ok(link)
    }
}

impl SessionLink {
    /// The relay endpoints the link names, in the order to try.
    #[must_use]
    pub fn relays(&self) -> Vec<&str> {
        self.quic.as_deref().map(|q| q.split(',').collect()).unwrap_or_default()
    }
}

/// A link's QUIC endpoint: `host:port` with a DNS name or IPv4 address, or `[IPv6]:port`. The
/// app shows the host to the end user, so nothing else gets through: no spaces, controls or
/// look-alike Unicode (found by the `codes` fuzz target: whitespace in the value did not survive
/// a round trip through the link's text).
fn quic_address(v: &str) -> Result<&str, CodeError> {
    let bad = |c| Err(CodeError::InvalidCharacter(c));
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))) {
        return bad(c);
    }
    let Some((host, port)) = v.rsplit_once(':') else { return bad('#') };
    let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let host_ok = match bracketed {
        Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && !host.contains(['[', ']', ':']),
    };
    if !host_ok || !port.parse::<u16>().is_ok_and(|p| p != 0) {
        return bad(':');
    }
    Ok(v)
}

/// A 6-digit session PIN, `000000` to `999999`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pin(u32);

impl Pin {
    /// One more than the largest PIN.
    const SPACE: u32 = 10u32.pow(PIN_DIGITS as u32);

    /// A uniformly random PIN from the caller's CSPRNG (rejection sampling: no modulo bias).
    pub fn generate(rng: &mut impl CryptoRng) -> Pin {
        let zone = u32::MAX - (u32::MAX % Self::SPACE);
        loop {
            let n = rng.next_u32();
            if n < zone {
                return Pin(n % Self::SPACE);
            }
        }
    }

    /// The PIN with this numeric value, if it has at most six digits.
    #[must_use]
    pub fn from_number(n: u32) -> Option<Pin> {
        (n < Self::SPACE).then_some(Pin(n))
    }

    /// The numeric value.
    #[must_use]
    pub const fn number(self) -> u32 {
        self.0
    }

    /// The PIN grouped for reading out: `123 456`.
    #[must_use]
    pub fn grouped(self) -> String {
        let text = self.to_string();
        format!("{} {}", &text[..3], &text[3..])
    }
}

impl FromStr for Pin {
    type Err = CodeError;

    /// Accepts what people type and paste: digits with spaces, tabs or dashes in between.
    fn from_str(s: &str) -> Result<Pin, CodeError> {
        let mut value: u32 = 0;
        let mut digits = 0usize;
        for c in s.chars() {
            if c.is_whitespace() || c == '-' {
                continue;
            }
            let Some(d) = c.to_digit(10) else {
                return Err(CodeError::InvalidCharacter(c));
            };
            digits += 1;
            if digits <= PIN_DIGITS {
                value = value * 10 + d;
            }
        }
        match digits {
            0 => Err(CodeError::Empty),
            PIN_DIGITS => Ok(Pin(value)),
            found => Err(CodeError::WrongLength { expected: PIN_DIGITS, found }),
        }
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.0, width = PIN_DIGITS)
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

impl Serialize for Pin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            s.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pin, D::Error> {
        if d.is_human_readable() {
            String::deserialize(d)?.parse().map_err(D::Error::custom)
        } else {
            let n = u32::deserialize(d)?;
            Pin::from_number(n).ok_or_else(|| D::Error::custom("PIN out of range"))
        }
    }
}

#[cfg(test)]
impl proptest::arbitrary::Arbitrary for Pin {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        use proptest::strategy::Strategy as _;
        (0..Pin::SPACE).prop_map(Pin).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn pin_parsing_tolerates_separators() {
        for typed in ["123456", " 123 456 ", "123-456", "12-34-56", "1 2 3 4 5 6", "\t123456\n"] {
            assert_eq!(typed.parse::<Pin>(), Ok(Pin(123_456)), "{typed:?}");
        }
        assert_eq!("000042".parse::<Pin>(), Ok(Pin(42)));
        assert_eq!(Pin(42).to_string(), "000042");
        assert_eq!(Pin(123_456).grouped(), "123 456");
    }

    #[test]
    fn pin_parsing_refuses_bad_input_with_a_reason() {
        assert_eq!("".parse::<Pin>(), Err(CodeError::Empty));
        assert_eq!(" - ".parse::<Pin>(), Err(CodeError::Empty));
        assert_eq!("12345".parse::<Pin>(), Err(CodeError::WrongLength { expected: 6, found: 5 }));
        assert_eq!(
            "1234567890123".parse::<Pin>(),
            Err(CodeError::WrongLength { expected: 6, found: 13 })
        );
        assert_eq!("12a456".parse::<Pin>(), Err(CodeError::InvalidCharacter('a')));
        assert_eq!("١٢٣٤٥٦".parse::<Pin>(), Err(CodeError::InvalidCharacter('١')));
        assert_eq!(Pin::from_number(1_000_000), None);
    }

    #[test]
    fn generated_pins_cover_the_space_without_bias() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut first_digit = [0u32; 10];
        for _ in 0..20_000 {
            let pin = Pin::generate(&mut rng);
            assert!(pin.number() < 1_000_000);
            first_digit[(pin.number() / 100_000) as usize] += 1;
        }
        // Each leading digit should get about 2,000 of 20,000; a biased generator shows up here.
        for count in first_digit {
            assert!((1_700..2_300).contains(&count), "{first_digit:?}");
        }
    }

    #[test]
    fn link_tokens_are_128_bit_url_safe_and_round_trip() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = LinkToken::generate(&mut rng);
        let b = LinkToken::generate(&mut rng);
        assert_ne!(a, b);
        let text = a.to_text();
        assert_eq!(text.len(), 22);
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(text.parse::<LinkToken>(), Ok(a.clone()));
        assert_eq!(format!(" {text}\n").parse::<LinkToken>(), Ok(a));
    }

    #[test]
    fn link_token_parsing_refuses_bad_input() {
        assert_eq!("".parse::<LinkToken>(), Err(CodeError::Empty));
        assert_eq!("abc".parse::<LinkToken>(), Err(CodeError::WrongLength { expected: 22, found: 3 }));
        assert_eq!(
            "abcdefghijklmnopqrst+/".parse::<LinkToken>(),
            Err(CodeError::InvalidCharacter('+'))
        );
        // 22 characters carry 132 bits; a last character with stray low bits is not canonical.
        assert!("AAAAAAAAAAAAAAAAAAAAAB".parse::<LinkToken>().is_err());
    }

    #[test]
    fn links_carry_the_code_the_endpoint_and_the_pin() {
        let token = LinkToken::from_bytes([3; 16]);
        let fp = "ab".repeat(32);
        let full = format!("https://desk.example:8443/s/{token}#quic=desk.example:4433&sha256={fp}");
        let link: SessionLink = full.parse().unwrap();
        assert_eq!(link.token, token);
        assert_eq!(link.quic.as_deref(), Some("desk.example:4433"));
        assert_eq!(link.sha256.as_deref(), Some(fp.as_str()));
        let bare: SessionLink = token.to_text().parse().unwrap();
        assert_eq!((bare.token, bare.quic, bare.sha256), (token.clone(), None, None));
        let newer: SessionLink = format!("https://x/s/{token}#future=1").parse().unwrap();
        assert_eq!(newer.token, token);
        assert!(format!("https://x/s/{token}#sha256=nothex").parse::<SessionLink>().is_err());
        assert!("https://x/s/short#quic=a:1".parse::<SessionLink>().is_err());
        let v6: SessionLink = format!("https://x/s/{token}#quic=[::1]:4433").parse().unwrap();
        assert_eq!(v6.quic.as_deref(), Some("[::1]:4433"));
        // Several relay nodes, in the order to try.
        let nodes: SessionLink = format!("https://x/s/{token}#quic=a.example:4433,[::1]:4434,10.0.0.3:4433").parse().unwrap();
        assert_eq!(nodes.relays(), ["a.example:4433", "[::1]:4434", "10.0.0.3:4433"]);
        assert_eq!(link.relays(), ["desk.example:4433"]);
        for list in ["a:1,", ",a:1", "a:1,,b:2", "a:1,b"] {
            assert!(format!("https://x/s/{token}#quic={list}").parse::<SessionLink>().is_err(), "{list:?}");
        }
        for quic in ["3r\u{85}\u{c}x:1", "desk example:1", "d\u{202e}esk:1", "desk:0", "desk:99999", "desk", ":1", "[nothex]:1", "a:b:1"] {
            assert!(format!("https://x/s/{token}#quic={quic}").parse::<SessionLink>().is_err(), "{quic:?}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let token = LinkToken::from_bytes([0xAB; 16]);
        let debug = format!("{token:?}");
        assert!(!debug.contains(&token.to_text()));
        assert!(debug.starts_with("LinkToken("));
        let secret = ResumeSecret::from_bytes([1; 32]);
        assert_eq!(secret.to_text().len(), ResumeSecret::TEXT_LEN);
        assert!(!format!("{secret:?}").contains(&secret.to_text()));
    }
}
