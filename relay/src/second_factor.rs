//! The technicians' second factor: TOTP (RFC 6238 with what every authenticator app reads from
//! a QR code — SHA-1, 6 digits, 30 s steps) and single-use recovery codes.
//!
//! The TOTP secret is stored as it is (the relay must compute the codes; the database file is
//! 0600 in a 0700 directory); recovery codes are stored as SHA-256 — they carry 80 random
//! bits, so a fast hash is right, as for tokens. A code is accepted for the step before, the
//! current one and the next (clocks a little off) and only for a step later than the last one
//! accepted, so a code seen over a shoulder cannot be used again.

use crate::error::Error;
use deskline_api::SecondFactorEnrolment;
use deskline_protocol::Timestamp;
use rand::Rng as _;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};

/// Seconds per TOTP step.
const STEP_SECS: u64 = 30;
/// Digits per TOTP code.
const DIGITS: usize = 6;
/// Bytes of a TOTP secret: 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;
/// Recovery codes issued at a time.
pub const RECOVERY_CODES: usize = 10;
/// Crockford's base32 letters: no I, L, O or U to misread; typed in any case.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Letters of a recovery code (5 bits each: 80 bits), shown in groups of four.
const RECOVERY_CHARS: usize = 16;

/// A new random TOTP secret, base32 as stored and shown.
#[must_use]
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    totp_rs::Secret::Raw(bytes.to_vec()).to_encoded().to_string()
}

/// The TOTP of a stored secret, labelled for authenticator apps with the organisation and the
/// username (':' separates the two in the URI, so it is replaced inside them).
fn totp(secret: &str, issuer: &str, account: &str) -> Result<TOTP, Error> {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().map_err(|e| Error::Internal(format!("stored second-factor secret: {e:?}")))?;
    let issuer = issuer.replace(':', " ");
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP_SECS, bytes, Some(issuer), account.replace(':', " "))
        .map_err(|e| Error::Internal(format!("second-factor secret: {e}")))
}

/// What an authenticator app needs to add the secret: the URI, its QR code and the secret as
/// text.
pub fn enrolment(secret: &str, issuer: &str, account: &str) -> Result<SecondFactorEnrolment, Error> {
    let uri = totp(secret, issuer, account)?.get_url();
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Error::Internal(format!("QR code: {e}")))?;
    let qr_svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build();
    Ok(SecondFactorEnrolment { secret: secret.to_owned(), uri, qr_svg })
}

/// The step `code` is the TOTP code of — the current step, the one before or the one after —
/// if that step is later than `after` (the last step accepted).
pub fn matching_step(secret: &str, code: &str, now: Timestamp, after: Option<i64>) -> Result<Option<i64>, Error> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = totp(secret, "", "")?;
    let current = now.0.div_euclid(1000) / STEP_SECS as i64;
    for step in [current - 1, current, current + 1] {
        if after.is_some_and(|last| step <= last) || step < 0 {
            continue;
        }
        let expected = totp.generate(step as u64 * STEP_SECS);
        // Both are 6 ASCII digits; compare without an early exit.
        if expected.bytes().zip(code.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 {
            return Ok(Some(step));
        }
    }
    Ok(None)
}

/// The code an authenticator app holding `secret` shows at `unix_secs` (for scripts and tests
/// that play the technician's phone).
pub fn code_at(secret: &str, unix_secs: u64) -> Result<String, Error> {
    Ok(totp(secret, "", "")?.generate(unix_secs))
}

/// New recovery codes, as shown: `xxxx-xxxx-xxxx-xxxx`.
#[must_use]
pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let letters: Vec<u8> = (0..RECOVERY_CHARS).map(|_| RECOVERY_ALPHABET[(rng.next_u32() % 32) as usize]).collect();
            letters.chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// What is stored for each of `codes` (as [`new_recovery_codes`] made them).
#[must_use]
pub fn recovery_hashes(codes: &[String]) -> Vec<String> {
    codes.iter().filter_map(|c| recovery_hash(c)).collect()
}

/// What is stored for a recovery code, from the code as typed: any case, with or without
/// dashes and spaces, O for 0 and I or L for 1 (Crockford's reading). `None` if it cannot be
/// a recovery code.
#[must_use]
pub fn recovery_hash(typed: &str) -> Option<String> {
    let normal: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect();
    (normal.len() == RECOVERY_CHARS && normal.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then(|| hex::encode(Sha256::digest(normal.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_but_never_twice() {
        let secret = new_secret();
        let t = totp(&secret, "Org", "ana").unwrap();
        let now = Timestamp(1_800_000_000_000);
        let step = 1_800_000_000 / 30;
        let code = t.generate(1_800_000_000);
        assert_eq!(matching_step(&secret, &code, now, None).unwrap(), Some(step));
        assert_eq!(matching_step(&secret, &code, now, Some(step)).unwrap(), None, "used once");
        let next = t.generate(1_800_000_030);
        assert_eq!(matching_step(&secret, &next, now, Some(step)).unwrap(), Some(step + 1));
        let too_late = t.generate(1_800_000_060);
        assert_eq!(matching_step(&secret, &too_late, now, None).unwrap(), None, "two steps ahead");
        assert_eq!(matching_step(&secret, "12345", now, None).unwrap(), None);
        assert_eq!(matching_step(&secret, "abcdef", now, None).unwrap(), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(matching_step(&secret, &spaced, now, None).unwrap(), Some(step));
    }

    #[test]
    fn recovery_codes_are_random_and_read_back_as_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        let hash = recovery_hash(code).unwrap();
        assert_eq!(recovery_hash(&code.to_uppercase().replace('-', " ")), Some(hash.clone()));
        assert_eq!(recovery_hash(&code.replace('0', "O").replace('1', "l")), Some(hash));
        assert_eq!(recovery_hash("123456"), None);
        assert_eq!(recovery_hash("uuuu-uuuu-uuuu-uuuu"), None, "not in the alphabet");
    }

    #[test]
    fn the_enrolment_names_the_organisation_and_the_account() {
        let e = enrolment(&new_secret(), "Acme: IT", "ana").unwrap();
        assert!(e.uri.starts_with("otpauth://totp/Acme%20%20IT:ana?secret="), "{}", e.uri);
        assert!(e.uri.contains(&format!("secret={}", e.secret)));
        assert!(e.qr_svg.starts_with("<?xml") && e.qr_svg.contains("<svg"), "{}", &e.qr_svg[..80]);
    }
}
