//! TLS for the query server: a rustls server configuration (ring, TLS 1.2 and 1.3, no
//! client certificates) from a certificate chain and a private key in PEM files.
//!
//! Invariants: a file that cannot be read, holds no certificate or no key, or a key that
//! does not match the certificate is an error naming the file, found at start-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {}: {message}", path.display())]
    Certificate { path: PathBuf, message: String },
    #[error("cannot read the TLS private key {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("the TLS certificate {} and key {} do not go together: {message}", cert.display(), key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// A server configuration from PEM files: `cert` (the chain, leaf first) and `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_error = |message: String| TlsError::Certificate {
        path: cert.to_path_buf(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    // ring, as ureq's rustls (the client side) uses it: one crypto backend in the build and
    // no C toolchain build of aws-lc. rustls 0.23.48 deprecates it for lacking post-quantum
    // key exchange; its classical suites (TLS 1.3 and 1.2, X25519, P-256/384) remain sound.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(config))
}
