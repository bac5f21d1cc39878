//! The relay's certificate: self-signed and generated on first start (kept in the data
//! directory), or provided by the operator. Clients pin its SHA-256 fingerprint.

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File names in the data directory.
pub const CERT_FILE: &str = "relay-cert.pem";
/// The private key (mode 0600).
pub const KEY_FILE: &str = "relay-key.pem";

/// The relay's certificate and key.
pub struct RelayCert {
    /// End-entity certificate, DER.
    pub cert_der: Vec<u8>,
    /// Private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl RelayCert {
    /// Lowercase hex SHA-256 of the certificate: what links carry and clients pin.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// A rustls server configuration for HTTPS with this certificate.
    pub fn https_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let cert = rustls::pki_types::CertificateDer::from(self.cert_der.clone());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![cert], key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The operator's own HTTPS certificate: a PEM chain (the server's certificate first, as in
/// `fullchain.pem`) and its private key (PEM: PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone)]
pub struct OperatorCert {
    /// The chain.
    pub cert: PathBuf,
    /// The key.
    pub key: PathBuf,
}

impl OperatorCert {
    /// A rustls server configuration for HTTPS from the files as they are now.
    pub fn https_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        use rustls::pki_types::pem::PemObject as _;
        let chain = rustls::pki_types::CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .with_context(|| format!("reading the certificate chain {}", self.cert.display()))?;
        anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", self.cert.display());
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("reading the private key {}", self.key.display()))?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .with_context(|| format!("{} and {} do not make a certificate and its key", self.cert.display(), self.key.display()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The SHA-256 of the server's certificate (the chain's first).
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        use rustls::pki_types::pem::PemObject as _;
        let first = rustls::pki_types::CertificateDer::from_pem_file(&self.cert)
            .with_context(|| format!("reading the certificate {}", self.cert.display()))?;
        Ok(fingerprint(&first))
    }
}

/// Lowercase hex SHA-256 of a DER certificate.
#[must_use]
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Loads the certificate from the data directory, creating a self-signed one for `names`
/// (host names and IP addresses) if there is none. Returns it and whether it was created.
pub fn load_or_create(data_dir: &Path, names: &[String]) -> anyhow::Result<(RelayCert, bool)> {
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return Ok((load(&cert_path, &key_path)?, false));
    }
    let certified = rcgen::generate_simple_self_signed(names.to_vec()).context("generating the certificate")?;
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, certified.cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    Ok((RelayCert { cert_der: certified.cert.der().to_vec(), key_der: certified.signing_key.serialize_der() }, true))
}

/// Loads a PEM certificate and PKCS#8 key (operator-provided or generated earlier).
pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<RelayCert> {
    use rustls::pki_types::pem::PemObject as _;
    let cert = rustls::pki_types::CertificateDer::from_pem_file(cert_path)
        .with_context(|| format!("reading the certificate {}", cert_path.display()))?;
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading the PKCS#8 key {}", key_path.display()))?;
    Ok(RelayCert { cert_der: cert.to_vec(), key_der: key.secret_pkcs8_der().to_vec() })
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
