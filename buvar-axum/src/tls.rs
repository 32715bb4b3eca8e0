//! TLS on the server's sockets (cargo feature `tls`): rustls, ALPN `h2` and `http/1.1`,
//! optional mutual TLS, and certificates reloaded when their files change.
//!
//! ```toml
//! [http.tls]
//! cert = "/etc/svc/tls.crt"         # PEM: the certificate, then its chain
//! key = "/etc/svc/tls.key"          # PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key
//! client_ca = "/etc/svc/ca.crt"     # optional: clients must present a certificate it signed
//! reload_interval = "10s"           # how often each worker looks for changed files
//! ```
//!
//! With a `[http.tls]` table every socket speaks TLS only. The files are read in the
//! supervisor before any worker forks: a missing, unreadable or mismatched certificate or key
//! stops the start (exit 2) with the file and what is wrong. Each worker then loads them again
//! and checks their modification time, size and inode every `reload_interval` (10 s by
//! default, between 100 ms and a day), `client_ca` included; changed files are loaded for new
//! connections while open connections keep the certificate (and the client they verified) they
//! started with. A bad file at reload keeps the certificate or the client CAs in use and logs
//! why; a SIGHUP rollout loads the files in its new workers anyway. Private key contents never
//! reach a log line or an error.
//!
//! The crypto provider is *ring*: it builds with a C compiler alone, where aws-lc-rs needs
//! cmake (and NASM on some targets) and takes several times longer to compile, which matters
//! for a starter kit built on small CI machines; both are maintained by the rustls project and
//! offer the same TLS 1.2/1.3 cipher suites.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// The `[http.tls]` table (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The PEM file of the certificate and its chain.
    pub cert: PathBuf,
    /// The PEM file of the certificate's private key.
    pub key: PathBuf,
    /// A PEM file of the certificate authorities whose client certificates are accepted; with
    /// it, a client without such a certificate is refused during the handshake. Checked for
    /// changes as `cert` and `key` are.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// How often each worker checks `cert`, `key` and `client_ca` for changes; between 100 ms
    /// and a day.
    #[serde(
        default = "default_reload_interval",
        with = "buvar_kit::config::duration"
    )]
    pub reload_interval: Duration,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(10)
}

pub(crate) const RELOAD_INTERVALS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(24 * 60 * 60);

/// What is wrong with the TLS files or settings. Never holds private key contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read the TLS {what} file {path} ([http.tls]): {source}")]
    Read {
        /// `certificate`, `private key` or `client CA`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file holds nothing usable.
    #[error("the TLS {what} file {path} ([http.tls]) {problem}")]
    Content {
        /// `certificate`, `private key` or `client CA`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong, without the file's contents.
        problem: String,
    },
    /// The key does not belong to the certificate.
    #[error(
        "the private key in {key} does not belong to the certificate in {cert} ([http.tls]): \
         check that both files come from the same issuance"
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// `reload_interval` is out of range.
    #[error(
        "http.tls.reload_interval = {found:?} is out of range: it must lie between 100ms and 1 day"
    )]
    ReloadInterval {
        /// The value found.
        found: Duration,
    },
}

/// Checks the settings and loads every file as a worker would; run in the supervisor before
/// any worker forks.
pub(crate) fn check(tls: Option<&TlsConfig>) -> Result<(), TlsError> {
    if let Some(tls) = tls {
        Acceptor::load(tls)?;
    }
    Ok(())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let content = |problem: String| TlsError::Content {
        what,
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(&read(what, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| content(format!("is not valid PEM: {err}")))?;
    if certs.is_empty() {
        return Err(content(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// Loads a certificate and its key and checks that they belong together.
fn certified_key(tls: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    const KEY: &str = "private key";
    let certs = certificates("certificate", &tls.cert)?;
    let key_problem = |problem: &str| TlsError::Content {
        what: KEY,
        path: tls.key.clone(),
        problem: problem.to_owned(),
    };
    // The parser's own message may quote the file: only its absence is told.
    let key = PrivateKeyDer::from_pem_slice(&read(KEY, &tls.key)?).map_err(|_| {
        key_problem("holds no PEM private key (PKCS#8, PKCS#1 or SEC1) that can be parsed")
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| key_problem("holds a private key of a type or size rustls cannot use"))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
    })?;
    Ok(certified)
}

/// The identity of a file as far as a change is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode: metadata.ino(),
    })
}

/// The certificate handed to each new handshake; swapped when the files change.
#[derive(Debug)]
struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Builds the server's configuration: the client verifier from `client_ca` (read now), and
/// `resolver` for the certificate.
fn server_config(
    tls: &TlsConfig,
    provider: &Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Content {
            what: "certificate",
            path: tls.cert.clone(),
            problem: format!("cannot be served: {err}"),
        })?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            const CA: &str = "client CA";
            let mut roots = RootCertStore::empty();
            for cert in certificates(CA, path)? {
                roots.add(cert).map_err(|err| TlsError::Content {
                    what: CA,
                    path: path.clone(),
                    problem: format!("holds a certificate that is not a usable CA: {err}"),
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|err| TlsError::Content {
                        what: CA,
                        path: path.clone(),
                        problem: format!("cannot verify clients: {err}"),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_cert_resolver(resolver);
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server)
}

/// A loaded `[http.tls]`: the acceptor and what reloads its files.
#[derive(Debug, Clone)]
pub(crate) struct Acceptor {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    /// Replaced when `client_ca` changes: rustls fixes the client verifier in the
    /// configuration. Every configuration shares `resolver`.
    server: Arc<ArcSwap<ServerConfig>>,
}

impl Acceptor {
    pub(crate) fn load(tls: &TlsConfig) -> Result<Self, TlsError> {
        if !RELOAD_INTERVALS.contains(&tls.reload_interval) {
            return Err(TlsError::ReloadInterval {
                found: tls.reload_interval,
            });
        }
        let provider = provider();
        let resolver = Arc::new(Resolver {
            current: ArcSwap::from_pointee(certified_key(tls, &provider)?),
        });
        let server = server_config(tls, &provider, resolver.clone())?;
        Ok(Self {
            config: tls.clone(),
            provider,
            resolver,
            server: Arc::new(ArcSwap::from_pointee(server)),
        })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.load_full())
    }

    /// Checks the files every `reload_interval` until `stop`, and loads them when they
    /// changed; call it inside the worker's runtime.
    pub(crate) fn watch(&self, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let certificate = || (stamp(&this.config.cert), stamp(&this.config.key));
            let client_ca = || this.config.client_ca.as_deref().map(stamp);
            let (mut certificate_seen, mut client_ca_seen) = (certificate(), client_ca());
            let mut ticks = tokio::time::interval(this.config.reload_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let now = certificate();
                if now != certificate_seen {
                    certificate_seen = now;
                    this.reload_certificate();
                }
                let now = client_ca();
                if now != client_ca_seen {
                    client_ca_seen = now;
                    this.reload_client_ca();
                }
            }
        });
    }

    fn reload_certificate(&self) {
        match certified_key(&self.config, &self.provider) {
            Ok(certified) => {
                self.resolver.current.store(Arc::new(certified));
                tracing::info!(cert = %self.config.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "TLS certificate not reloaded; the one in use stays");
            }
        }
    }

    fn reload_client_ca(&self) {
        match server_config(&self.config, &self.provider, self.resolver.clone()) {
            Ok(server) => {
                self.server.store(Arc::new(server));
                tracing::info!(
                    client_ca = ?self.config.client_ca,
                    "TLS client CAs reloaded"
                );
            }
            Err(error) => {
                tracing::warn!(%error, "TLS client CAs not reloaded; the ones in use stay");
            }
        }
    }
}

/// The verified certificate a client presented (mutual TLS, `[http.tls] client_ca`); an
/// extractor that answers `403 Forbidden` when the connection has none.
///
/// ```
/// use buvar_axum::tls::ClientCertificate;
///
/// async fn whoami(client: ClientCertificate) -> String {
///     client.subject().to_owned()
/// }
/// # let _ = whoami;
/// ```
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    inner: Arc<ClientCertificateInner>,
}

#[derive(Debug)]
struct ClientCertificateInner {
    subject: String,
    der: CertificateDer<'static>,
}

impl ClientCertificate {
    /// Reads the end-entity certificate of a handshake rustls verified.
    pub(crate) fn of(connection: &rustls::ServerConnection) -> Option<Self> {
        let der = connection
            .peer_certificates()?
            .first()?
            .clone()
            .into_owned();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).ok()?;
        let subject = parsed.subject().to_string();
        Some(Self {
            inner: Arc::new(ClientCertificateInner { subject, der }),
        })
    }

    /// The subject's distinguished name, as in `CN=client, O=Example`.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The certificate as DER, for a closer look with an X.509 parser.
    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientCertificate {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or((
            StatusCode::FORBIDDEN,
            "this endpoint needs a client certificate (mutual TLS)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> TlsConfig {
        TlsConfig {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: None,
            reload_interval: default_reload_interval(),
        }
    }

    #[test]
    fn a_missing_file_is_named_with_what_it_should_hold() {
        let dir = tempfile::tempdir().unwrap();
        let message = check(Some(&config(dir.path()))).unwrap_err().to_string();
        assert!(message.contains("TLS certificate file"), "{message}");
        assert!(message.contains("tls.crt"), "{message}");
    }

    #[test]
    fn a_key_file_that_is_not_pem_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let tls = config(dir.path());
        std::fs::write(
            &tls.cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(&tls.key, "SECRET-KEY-MATERIAL").unwrap();
        let message = check(Some(&tls)).unwrap_err().to_string();
        assert!(message.contains("tls.key"), "{message}");
        assert!(!message.contains("SECRET"), "{message}");
    }

    #[test]
    fn the_reload_interval_has_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsConfig {
            reload_interval: Duration::ZERO,
            ..config(dir.path())
        };
        assert!(matches!(
            check(Some(&tls)),
            Err(TlsError::ReloadInterval { .. })
        ));
    }
}
