//! Node-to-node TLS: the coordinator and the workers verify each other with a cluster CA.
//!
//! With [`ClusterTls`] configured, a worker's port speaks only TLS 1.3 (a plaintext connection
//! fails its handshake and is closed) and asks every peer for a certificate signed by the
//! cluster CA (mutual TLS): the coordinator and the other workers present theirs. ALPN tells
//! the two protocols of the port apart once the handshake is done: `h2` is Flight (tonic),
//! `shoal-raw1` the raw file channel of moves (see `raw.rs`). A peer's certificate must name
//! the host it is dialled by (a DNS name or an IP address in its subjectAltName): the address
//! given to `add_node`.
//!
//! Everything is read and checked when the process starts: an unreadable or malformed file, a
//! key that does not belong to the certificate, or a certificate the CA did not sign is a
//! start-up error ([`ShardStoreError::Config`]), never a failure at the first move.

use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::version::TLS13;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::{Result, ShardStoreError};

/// ALPN protocol of Flight (HTTP/2).
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol of the raw file channel.
pub(crate) const ALPN_RAW: &[u8] = b"shoal-raw1";

/// Where a process's node-to-node TLS material lives (the `--tls-ca`, `--tls-cert` and
/// `--tls-key` files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTlsFiles {
    /// PEM certificate(s) of the cluster CA: a peer must present a certificate it signed.
    pub ca: PathBuf,
    /// PEM certificate chain this process presents (as a server and as a client).
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
}

/// The loaded, checked TLS configuration of one process. Cheap to clone.
#[derive(Clone)]
pub struct ClusterTls {
    /// What a worker's port presents and requires (client certificates from the CA).
    server: Arc<ServerConfig>,
    /// What this process presents when it opens a raw file channel.
    raw_client: Arc<ClientConfig>,
    /// The same for Flight, in tonic's terms (tonic builds its own rustls config from it).
    flight_client: ClientTlsConfig,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTls").finish_non_exhaustive()
    }
}

impl ClusterTls {
    /// Reads and checks `files`: the CA must parse, the key must match the certificate, and
    /// the certificate must be signed by the CA (so a peer will accept it).
    pub fn load(files: &ClusterTlsFiles) -> Result<Self> {
        let ca_pem = read(&files.ca, "--tls-ca")?;
        let cert_pem = read(&files.cert, "--tls-cert")?;
        let key_pem = read(&files.key, "--tls-key")?;
        let ca = certificates(&ca_pem, &files.ca)?;
        let chain = certificates(&cert_pem, &files.cert)?;
        let key = private_key(&key_pem, &files.key)?;

        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|e| {
                config(format!(
                    "--tls-ca {}: not a usable CA certificate: {e}",
                    files.ca.display()
                ))
            })?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(ring::default_provider());

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| config(format!("--tls-ca {}: {e}", files.ca.display())))?;
        // Our own certificate must pass the check every peer makes of it.
        let (end_entity, intermediates) = chain.split_first().ok_or_else(|| {
            config(format!(
                "--tls-cert {}: no certificate",
                files.cert.display()
            ))
        })?;
        client_verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map_err(|e| {
                config(format!(
                    "--tls-cert {} is not accepted by the cluster CA {}: {e}",
                    files.cert.display(),
                    files.ca.display()
                ))
            })?;

        let key_error = |e: tokio_rustls::rustls::Error| {
            config(format!(
                "--tls-key {} does not fit --tls-cert {}: {e}",
                files.key.display(),
                files.cert.display()
            ))
        };
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&TLS13])
            .map_err(|e| config(format!("TLS: {e}")))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(key_error)?;
        server.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_RAW.to_vec()];

        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| config(format!("--tls-ca {}: {e}", files.ca.display())))?;
        let mut raw_client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&TLS13])
            .map_err(|e| config(format!("TLS: {e}")))?
            .with_webpki_verifier(server_verifier)
            .with_client_auth_cert(chain, key)
            .map_err(key_error)?;
        raw_client.alpn_protocols = vec![ALPN_RAW.to_vec()];

        let flight_client = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem))
            .identity(Identity::from_pem(&cert_pem, &key_pem));
        Ok(ClusterTls {
            server: Arc::new(server),
            raw_client: Arc::new(raw_client),
            flight_client,
        })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.server))
    }

    pub(crate) fn raw_connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.raw_client))
    }

    /// tonic's TLS settings for a Flight connection to `host`.
    pub(crate) fn flight_client(&self, host: &str) -> ClientTlsConfig {
        self.flight_client.clone().domain_name(host)
    }
}

/// The name a peer at `host_port` (`host:port`, `[v6]:port`) must have in its certificate.
pub(crate) fn server_name(host_port: &str) -> Result<ServerName<'static>> {
    let host = host_of(host_port);
    ServerName::try_from(host.to_string()).map_err(|e| {
        config(format!(
            "{host:?} cannot be checked against a certificate: {e}"
        ))
    })
}

/// The host part of `host:port` (without the brackets of an IPv6 address).
pub(crate) fn host_of(host_port: &str) -> &str {
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| config(format!("{flag} {}: {e}", path.display())))
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| config(format!("{}: not a PEM certificate: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(config(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut BufReader::new(pem))
        .map_err(|e| config(format!("{}: not a PEM private key: {e}", path.display())))?
        .ok_or_else(|| config(format!("{}: no PEM private key in it", path.display())))
}

fn config(message: String) -> ShardStoreError {
    ShardStoreError::Config { message }
}

#[cfg(test)]
pub(crate) mod tests;
