//! TLS for clients and for the cluster bus: rustls (through tokio-rustls) with the ring
//! provider. The certificate, key and CA come from PEM files (`--tls-cert-file`,
//! `--tls-key-file`, `--tls-ca-cert-file`); a file that is missing or unreadable stops the node
//! at start with a message naming it. The bus (`--tls-cluster yes`) uses the same certificate
//! both ways and the same CA.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::{ServerName, UnixTime};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{
    self, server::WebPkiClientVerifier, CertificateError, ClientConfig, DigitallySignedStruct,
    RootCertStore, ServerConfig, SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use rockraft_raftstore::transport::BusTls;

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
        Some(self.current())
    }
}

impl ResolvesClientCert for CertStore {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl CertStore {
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }
}

/// Checks a peer's certificate against the cluster CA and nothing else: a member is whoever
/// holds a certificate the CA signed (as Redis's tls-cluster, and etcd's peer TLS without
/// `--peer-cert-allowed-cn`), so the names in it need not match the address dialed.
#[derive(Debug)]
struct ClusterCa(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ClusterCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is checked before the name: a name error means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The node's TLS: the client port's configuration, the bus's (`--tls-cluster`), and the
/// certificate store both serve from.
pub struct Tls {
    pub clients: Option<Arc<ServerConfig>>,
    pub bus: Option<BusTls>,
    pub certs: Arc<CertStore>,
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca, "--tls-ca-cert-file")? {
        roots
            .add(c)
            .map_err(|e| format!("--tls-ca-cert-file {}: {e}", ca.display()))?;
    }
    Ok(Arc::new(roots))
}

/// The node's TLS, if it has any (a TLS port or `--tls-cluster yes`); an error names the
/// flag or file at fault.
pub fn setup(cfg: &Config) -> Result<Option<Tls>, String> {
    if cfg.tls_port.is_none() && !cfg.tls_cluster {
        return Ok(None);
    }
    let what = if cfg.tls_port.is_some() {
        "--tls-port"
    } else {
        "--tls-cluster yes"
    };
    let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) else {
        return Err(format!("{what} needs --tls-cert-file and --tls-key-file"));
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
    let clients = match cfg.tls_port {
        Some(_) => Some(client_port_config(cfg, &provider, &versions, &store)?),
        None => None,
    };
    let bus = match cfg.tls_cluster {
        true => Some(bus_config(cfg, &provider, &versions, &store)?),
        false => None,
    };
    Ok(Some(Tls {
        clients,
        bus,
        certs: store,
    }))
}

type Versions = [&'static rustls::SupportedProtocolVersion];

fn client_port_config(
    cfg: &Config,
    provider: &Arc<CryptoProvider>,
    versions: &Versions,
    store: &Arc<CertStore>,
) -> Result<Arc<ServerConfig>, String> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
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
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone());
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
    Ok(Arc::new(builder.with_cert_resolver(store.clone())))
}

/// Mutual TLS for the bus: each side presents the node's certificate (which must allow both
/// server and client authentication) and requires the other's to chain to the CA.
fn bus_config(
    cfg: &Config,
    provider: &Arc<CryptoProvider>,
    versions: &Versions,
    store: &Arc<CertStore>,
) -> Result<BusTls, String> {
    let Some(ca) = &cfg.tls_ca_cert_file else {
        return Err("--tls-cluster yes needs --tls-ca-cert-file".into());
    };
    let roots = roots(ca)?;
    let peers = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| format!("TLS peer verifier: {e}"))?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(peers)
        .with_cert_resolver(store.clone());
    let listeners = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| format!("TLS peer verifier: {e}"))?;
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ClusterCa(listeners)))
        .with_client_cert_resolver(store.clone());
    Ok(BusTls {
        connector: TlsConnector::from(Arc::new(client)),
        acceptor: TlsAcceptor::from(Arc::new(server)),
    })
}
