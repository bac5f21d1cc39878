//! TLS clients: either the usual web PKI, or a relay certificate pinned by its SHA-256
//! fingerprint (the self-signed default of a new relay; links and downloads carry it).

use sha2::{Digest, Sha256};
use std::sync::Arc;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Accepts exactly one certificate: the one whose DER has this SHA-256. Signatures are still
/// checked, so only the holder of that certificate's key can complete the handshake.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

/// A fingerprint that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a certificate fingerprint is 64 hex digits (SHA-256), colons allowed; got {0:?}")]
pub struct BadFingerprint(pub String);

/// Parses `ab12...` or `AB:12:...` into 32 bytes.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], BadFingerprint> {
    let clean: String = text.trim().chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&clean).map_err(|_| BadFingerprint(text.to_owned()))?;
    bytes.try_into().map_err(|_| BadFingerprint(text.to_owned()))
}

impl PinnedCertVerifier {
    /// A verifier pinning this fingerprint.
    #[must_use]
    pub fn new(fingerprint: [u8; 32]) -> PinnedCertVerifier {
        PinnedCertVerifier { fingerprint, provider: Arc::new(rustls::crypto::ring::default_provider()) }
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration (TLS 1.2 and 1.3, for HTTPS): pinned to `fingerprint` if given,
/// else the web PKI roots.
#[must_use]
pub fn client_config(fingerprint: Option<[u8; 32]>) -> rustls::ClientConfig {
    build(fingerprint, rustls::DEFAULT_VERSIONS)
}

/// The same, TLS 1.3 only (QUIC).
#[must_use]
pub fn client_config_tls13(fingerprint: Option<[u8; 32]>) -> rustls::ClientConfig {
    build(fingerprint, &[&rustls::version::TLS13])
}

fn build(fingerprint: Option<[u8; 32]>, versions: &[&'static rustls::SupportedProtocolVersion]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("ring supports TLS 1.2 and 1.3");
    match fingerprint {
        Some(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier::new(fp)))
            .with_no_client_auth(),
        None => {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex64 = "9a3fa9347a500c2b61f19be74e74316a3b660038d5a193fe9ea2aef4a8f6cc5e";
        let a = parse_fingerprint(hex64).unwrap();
        let colons: Vec<String> = hex64.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect();
        assert_eq!(parse_fingerprint(&colons.join(":")).unwrap(), a);
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&hex64.replace('9', "g")).is_err());
    }
}
