//! `charla connect --tls`: how the client dials a server ([`Dial`]), in clear text or over TLS,
//! and how it decides to trust the server's certificate.
//!
//! A certificate that chains to one of the system's root certificates (the ones in
//! `/etc/ssl/certs`, through rustls-native-certs) is trusted as a browser would. A server whose
//! certificate no root vouches for (charla's `--tls-self-signed`) is trusted on first use,
//! like ssh does: its certificate's SHA-256 fingerprint is written to the known-servers file
//! ([`known_servers_file`]) and from then on only that certificate is accepted for that
//! `host:port`; a different one is refused with what to do about it. `--tls-fingerprint`
//! pins a certificate explicitly instead, whoever signed it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::ClientError;
use crate::net::{BoxStream, Fingerprint};

/// What `--tls` and its companions asked for.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Accept exactly the certificate with this fingerprint (`--tls-fingerprint`).
    pub fingerprint: Option<Fingerprint>,
    /// A client certificate and its key (PEM), shown to the server (SASL EXTERNAL).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Where certificates trusted on first use are kept; [`known_servers_file`] by default.
    pub known_servers: PathBuf,
}

/// The known-servers file: `$XDG_CONFIG_HOME/charla/known_servers`, else
/// `~/.config/charla/known_servers`.
pub fn known_servers_file() -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("charla").join("known_servers")
}

/// Where the client connects, and how: clear text, or TLS with its trust decisions. Cheap to
/// clone: the full-screen client dials again after every drop.
#[derive(Clone)]
pub struct Dial {
    /// `host:port`.
    pub addr: String,
    tls: Option<Arc<Secure>>,
}

struct Secure {
    connector: TlsConnector,
    name: ServerName<'static>,
    trust: Arc<Trust>,
}

impl Dial {
    /// A clear-text connection to `host:port`.
    pub fn clear(host: &str, port: u16) -> Dial {
        Dial { addr: super::address(host, port), tls: None }
    }

    /// A TLS connection to `host:port`, trusting what `options` says.
    pub fn tls(host: &str, port: u16, options: TlsOptions) -> Result<Dial, ClientError> {
        let addr = super::address(host, port);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| ClientError::Tls { addr: addr.clone(), detail: format!("'{host}' is not a host name") })?;
        let provider = crate::net::tls::provider();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().ok();
        let trust = Arc::new(Trust {
            addr: addr.clone(),
            pinned: options.fingerprint,
            known_servers: options.known_servers,
            webpki,
            provider: provider.clone(),
            refused: Mutex::new(None),
            first_use: Mutex::new(None),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls { addr: addr.clone(), detail: e.to_string() })?
            .dangerous()
            .with_custom_certificate_verifier(trust.clone());
        let config = match options.client_cert {
            Some((cert, key)) => {
                let (chain, private) = client_cert(&cert, &key)?;
                builder.with_client_auth_cert(chain, private).map_err(|e| ClientError::ClientCert {
                    detail: format!("{} and {} do not go together: {e}", cert.display(), key.display()),
                })?
            }
            None => builder.with_no_client_auth(),
        };
        let connector = TlsConnector::from(Arc::new(config));
        Ok(Dial { addr, tls: Some(Arc::new(Secure { connector, name, trust })) })
    }

    /// What the user should know of the last handshake: that its certificate, unknown before,
    /// is trusted from now on (with its fingerprint to compare). Taken once.
    pub fn first_use(&self) -> Option<String> {
        let secure = self.tls.as_ref()?;
        secure.trust.first_use.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Connects (and, for TLS, completes the handshake), giving up after
    /// [`CONNECT_TIMEOUT`](super::irc::CONNECT_TIMEOUT).
    pub async fn connect(&self) -> Result<BoxStream, ClientError> {
        let stream = super::irc::connect(&self.addr).await?;
        let Some(secure) = &self.tls else { return Ok(Box::new(stream)) };
        let handshake = secure.connector.connect(secure.name.clone(), stream);
        match tokio::time::timeout(super::irc::CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(e)) => Err(secure.trust.refused().unwrap_or_else(|| ClientError::Tls {
                addr: self.addr.clone(),
                detail: format!(
                    "{e} (does the server have TLS on this port? `charla serve` needs --tls-cert or --tls-self-signed)"
                ),
            })),
            Err(_) => Err(ClientError::Tls { addr: self.addr.clone(), detail: "the handshake timed out".into() }),
        }
    }
}

/// The client certificate chain and key from PEM files.
fn client_cert(cert: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientError> {
    let read = |file: &Path| {
        std::fs::read(file)
            .map_err(|e| ClientError::ClientCert { detail: format!("cannot read {}: {e}", file.display()) })
    };
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&read(cert)?).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(ClientError::ClientCert { detail: format!("{} holds no PEM certificate", cert.display()) });
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| ClientError::ClientCert { detail: format!("{} holds no PEM private key: {e}", key.display()) })?;
    Ok((chain, key))
}

/// Decides whether the server's certificate is trusted: pinned, vouched for by a system root,
/// or known (or first seen) in the known-servers file. Why it refused, when it did, is kept for
/// the error the user sees (rustls only reports that the certificate was bad).
#[derive(Debug)]
struct Trust {
    addr: String,
    pinned: Option<Fingerprint>,
    known_servers: PathBuf,
    /// `None` when the system has no root certificates at all.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    refused: Mutex<Option<ClientError>>,
    /// What to tell the user when a certificate was trusted on first use (shown by whoever
    /// owns the screen: line mode on standard error, the full-screen client in its window).
    first_use: Mutex<Option<String>>,
}

impl Trust {
    fn refused(&self) -> Option<ClientError> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn refuse(&self, error: ClientError) -> rustls::Error {
        let message = error.to_string();
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(std::io::Error::other(
            message,
        )))))
    }

    /// Trust on first use: the certificate `now` is accepted if the known-servers file has it
    /// for this server, or has nothing for this server yet (then it is added).
    fn known(&self, now: Fingerprint) -> Result<(), rustls::Error> {
        let file = &self.known_servers;
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let known = text.lines().find_map(|line| {
            let (addr, fp) = line.trim().split_once(' ')?;
            (addr == self.addr).then(|| Fingerprint::parse(fp))
        });
        match known {
            Some(Some(known)) if known == now => Ok(()),
            Some(known) => Err(self.refuse(ClientError::CertificateChanged {
                addr: self.addr.clone(),
                known: known.map_or_else(|| "unreadable".into(), |k| k.to_string()),
                now: now.to_string(),
                file: file.clone(),
            })),
            None => {
                let line = format!("{} {now}\n", self.addr);
                let added = file.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
                    use std::io::Write;
                    std::fs::OpenOptions::new().create(true).append(true).open(file)?.write_all(line.as_bytes())
                });
                if let Err(source) = added {
                    return Err(self.refuse(ClientError::KnownServers { file: file.clone(), source }));
                }
                let notice = format!(
                    "{} is not vouched for by any certificate authority (self-signed); trusting it from now on, \
                     remembered in {}. Its SHA-256 fingerprint is {now}: compare it with the one `charla serve` \
                     printed at start.",
                    self.addr,
                    file.display()
                );
                *self.first_use.lock().unwrap_or_else(|p| p.into_inner()) = Some(notice);
                Ok(())
            }
        }
    }
}

impl ServerCertVerifier for Trust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = Fingerprint::of(end_entity);
        if let Some(pinned) = self.pinned {
            return if pinned == fingerprint {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(self.refuse(ClientError::CertificateMismatch {
                    addr: self.addr.clone(),
                    wanted: pinned.to_string(),
                    now: fingerprint.to_string(),
                }))
            };
        }
        let verified = match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        };
        match verified {
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                self.known(fingerprint).map(|()| ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    crate::net::tls::handshake_signatures!(provider);
}

impl crate::net::Stream for tokio_rustls::client::TlsStream<tokio::net::TcpStream> {}
