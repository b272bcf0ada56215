//! TLS for clients: rustls (through tokio-rustls) with the ring provider. The certificate,
//! key and CA come from PEM files (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`);
//! a file that is missing or unreadable stops the node at start with a message naming it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, server::WebPkiClientVerifier, RootCertStore, ServerConfig};

use crate::config::Config;

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect())
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The server's certificate and key, which `CONFIG SET tls-cert-file`/`tls-key-file`
/// replace: new handshakes use the new pair, connections already open keep theirs.
#[derive(Debug)]
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    current: RwLock<(Arc<CertifiedKey>, PathBuf, PathBuf)>,
}

impl CertStore {
    fn load(
        provider: &CryptoProvider,
        cert: &Path,
        key: &Path,
    ) -> Result<Arc<CertifiedKey>, String> {
        let chain = certs(cert, "--tls-cert-file")?;
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("cannot read --tls-key-file {}: {e}", key.display()))?;
        let signing = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| format!("--tls-key-file {}: {e}", key.display()))?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|e| {
            format!(
                "--tls-key-file {} does not match the certificate: {e}",
                key.display()
            )
        })?;
        Ok(Arc::new(certified))
    }

    /// The certificate and key files in use.
    pub fn files(&self) -> (PathBuf, PathBuf) {
        let c = self.current.read().unwrap_or_else(|e| e.into_inner());
        (c.1.clone(), c.2.clone())
    }

    /// Loads `cert` and `key` and uses them from the next handshake on; on error nothing
    /// changes.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), String> {
        let certified = Self::load(&self.provider, cert, key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            (certified, cert.to_path_buf(), key.to_path_buf());
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .clone(),
        )
    }
}

/// The client port's TLS configuration and the certificate store it serves from.
pub type TlsSetup = (Arc<ServerConfig>, Arc<CertStore>);

/// The TLS configuration of the client port, if there is one, and its certificate store.
pub fn server_config(cfg: &Config) -> Result<Option<TlsSetup>, String> {
    if cfg.tls_port.is_none() {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) else {
        return Err("--tls-port needs --tls-cert-file and --tls-key-file".into());
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let store = Arc::new(CertStore {
        current: RwLock::new((
            CertStore::load(&provider, cert, key)?,
            cert.clone(),
            key.clone(),
        )),
        provider: provider.clone(),
    });
    let mut versions = Vec::new();
    for p in cfg.tls_protocols.split_whitespace() {
        match p.to_ascii_lowercase().as_str() {
            "tlsv1.2" => versions.push(&rustls::version::TLS12),
            "tlsv1.3" => versions.push(&rustls::version::TLS13),
            other => return Err(format!("--tls-protocols: unknown protocol '{other}'")),
        }
    }
    if versions.is_empty() {
        return Err("--tls-protocols names no protocol".into());
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS: {e}"))?;
    let auth = cfg.tls_auth_clients.to_ascii_lowercase();
    let builder = match auth.as_str() {
        "no" => builder.with_no_client_auth(),
        "yes" | "optional" => {
            let Some(ca) = &cfg.tls_ca_cert_file else {
                return Err(format!(
                    "--tls-auth-clients {auth} needs --tls-ca-cert-file"
                ));
            };
            let mut roots = RootCertStore::empty();
            for c in certs(ca, "--tls-ca-cert-file")? {
                roots
                    .add(c)
                    .map_err(|e| format!("--tls-ca-cert-file {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == "optional" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("TLS client verifier: {e}"))?,
            )
        }
        other => {
            return Err(format!(
                "--tls-auth-clients: expected yes, no or optional, not '{other}'"
            ))
        }
    };
    let config = builder.with_cert_resolver(store.clone());
    Ok(Some((Arc::new(config), store)))
}
