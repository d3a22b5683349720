//! TLS termination (rustls with the `ring` provider; no OpenSSL): the server's certificate,
//! where it comes from, its reload, and the handshake that turns a byte stream into an
//! encrypted one. What is spoken inside is told afterwards, as on clear text.
//!
//! The certificate is behind a resolver whose [`CertifiedKey`] is swapped whole on
//! [`Tls::reload`]: handshakes started after a reload get the new certificate, connections
//! already open keep theirs (a TLS session never looks at the certificate again). A reload
//! that cannot read or use the new files keeps the old certificate and says why.
//!
//! Client certificates are asked for but never required, and any is accepted: nothing is
//! trusted because a certificate is shown, only its fingerprint is kept ([`Peer`]), for an
//! account that lists it (SASL EXTERNAL) to recognise.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DistinguishedName, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::{BoxStream, Rewind, Stream};

/// A certificate's SHA-256 digest (of its DER encoding), as `openssl x509 -fingerprint
/// -sha256` computes it. Shown as 64 lowercase hex digits; read with or without colons, in
/// either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of the DER-encoded certificate `der`.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// Reads `ab12…` (64 hex digits) or `AB:12:…`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let hex: Vec<u8> = text.trim().bytes().filter(|&b| b != b':').collect();
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// What an encrypted connection knows of its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The client certificate's fingerprint, when the client showed one.
    pub client_cert: Option<Fingerprint>,
}

/// Who is at the other end of a connection: its address, and whether it came over TLS. What
/// sessions are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The address as its IP and port: a `SocketAddr` would take 8 more bytes in every
    /// session's future, and idle connections are counted in bytes.
    ip: std::net::IpAddr,
    port: u16,
    /// Boxed: most connections are clear text, and every session's future carries this.
    pub tls: Option<Box<TlsInfo>>,
}

impl Peer {
    /// A clear-text connection from `addr`.
    pub fn clear(addr: std::net::SocketAddr) -> Peer {
        Peer { ip: addr.ip(), port: addr.port(), tls: None }
    }

    pub fn ip(&self) -> std::net::IpAddr {
        self.ip
    }

    /// Whether the connection is encrypted.
    pub fn secure(&self) -> bool {
        self.tls.is_some()
    }

    /// The client certificate's fingerprint, if it showed one.
    pub fn client_cert(&self) -> Option<Fingerprint> {
        self.tls.as_ref().and_then(|tls| tls.client_cert)
    }
}

/// The address, and ` (TLS)` for an encrypted connection: what the log calls a client.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = std::net::SocketAddr::new(self.ip, self.port);
        match self.tls {
            Some(_) => write!(f, "{addr} (TLS)"),
            None => addr.fmt(f),
        }
    }
}

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files: the certificate chain (the server's first, as certbot's `fullchain.pem`) and
    /// its private key (`privkey.pem`).
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate made for `names` on first start and kept in `dir` (see [`SELF_SIGNED_CERT`]).
    SelfSigned { dir: PathBuf, names: Vec<String> },
}

/// The self-signed certificate's file in the data directory.
pub const SELF_SIGNED_CERT: &str = "tls-self-signed.crt";
/// Its private key's file (mode 0600).
pub const SELF_SIGNED_KEY: &str = "tls-self-signed.key";

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {file}: {source}")]
    Read { file: PathBuf, source: io::Error },
    #[error(
        "{file} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`; give the full chain, e.g. certbot's fullchain.pem, with --tls-cert)"
    )]
    NoCertificate { file: PathBuf },
    #[error(
        "{file} holds no PEM private key (expected `-----BEGIN PRIVATE KEY-----` or an RSA/EC key; e.g. certbot's privkey.pem, with --tls-key): {detail}"
    )]
    NoKey { file: PathBuf, detail: String },
    #[error("the key in {key} cannot be used with the certificate in {cert}: {detail}")]
    Mismatch { cert: PathBuf, key: PathBuf, detail: String },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {file}: {source} (is the data directory writable?)")]
    Write { file: PathBuf, source: io::Error },
}

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS: its certificate (swappable) and the configuration handshakes use.
pub struct Tls {
    source: CertSource,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

/// The certificate new handshakes get; replaced whole on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl Current {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// rustls with `ring`, as the project chose (pure Rust to build, no C toolchain beyond what
/// ring bundles). rustls deprecates ring's provider only because it has no post-quantum key
/// exchange; the classical ones it has are what browsers and IRC clients use today.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads (or, self-signed, makes once and then loads) the certificate.
    pub fn new(source: CertSource) -> Result<Tls, TlsError> {
        let provider = provider();
        let key = load(&source, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        // No ALPN: inside, the protocol is told from the first bytes, as on clear text. A
        // browser then speaks HTTP/1.1, and a client that offers protocols of its own is not
        // turned away for naming none the server lists.
        let config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
            .with_cert_resolver(current.clone());
        Ok(Tls { source, current, acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// Reads the certificate again (after certbot renewed it, say): new handshakes get the new
    /// one, open connections stay as they are. Says what changed; on an error the certificate
    /// in use stays.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = load(&self.source, &provider())?;
        let (old, new) = (fingerprint(&self.current.get()), fingerprint(&key));
        self.current.set(Arc::new(key));
        Ok(if old == new {
            format!("certificate unchanged (SHA-256 {new})")
        } else {
            format!("certificate replaced: SHA-256 {old} -> {new}")
        })
    }

    /// The fingerprint of the certificate new handshakes get.
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.current.get())
    }

    /// Whether the certificate is one charla made itself (which no client trusts on its own).
    pub fn self_signed(&self) -> bool {
        matches!(self.source, CertSource::SelfSigned { .. })
    }

    /// Completes the TLS handshake of a client whose first bytes, `first`, were already read
    /// (its ClientHello's start), and returns the encrypted stream and what it showed.
    pub async fn accept(&self, first: Vec<u8>, stream: BoxStream) -> io::Result<(BoxStream, TlsInfo)> {
        let stream = Box::new(Rewind::new(first, stream)) as BoxStream;
        let accepting = self.acceptor.accept(stream);
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, accepting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let client_cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| Fingerprint::of(c));
        Ok((Box::new(tls), TlsInfo { client_cert }))
    }
}

fn fingerprint(key: &CertifiedKey) -> Fingerprint {
    key.cert.first().map_or(Fingerprint([0; 32]), |c| Fingerprint::of(c))
}

/// The certificate and key from `source`, checked to belong together.
fn load(source: &CertSource, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let (cert, key) = match source {
        CertSource::Files { cert, key } => (cert.clone(), key.clone()),
        CertSource::SelfSigned { dir, names } => self_signed(dir, names)?,
    };
    let text = |file: &Path| std::fs::read(file).map_err(|source| TlsError::Read { file: file.into(), source });
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&text(&cert)?).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { file: cert });
    }
    let private = PrivateKeyDer::from_pem_slice(&text(&key)?)
        .map_err(|e| TlsError::NoKey { file: key.clone(), detail: e.to_string() })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::Mismatch {
        cert,
        key,
        detail: e.to_string(),
    })
}

/// The self-signed certificate's files in `dir`, made for `names` if they are not there yet.
fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let failed = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let signing_key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
    let name = names.first().map_or("charla", String::as_str);
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} (charla, self-signed)"));
    let made = params.self_signed(&signing_key).map_err(failed)?;
    write_file(&key, signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert, made.pem().as_bytes(), 0o644)?;
    Ok((cert, key))
}

/// Writes `file` with permissions `mode` (0600 for a private key: its owner's only), whole
/// or not at all (a temporary file renamed).
fn write_file(file: &Path, content: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| TlsError::Write { file: file.into(), source };
    let temporary = file.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .map_err(error)?;
    out.write_all(content).and_then(|()| out.sync_all()).map_err(error)?;
    std::fs::rename(&temporary, file).map_err(error)
}

/// The three methods by which a certificate verifier checks the handshake's signatures, made
/// by the crypto provider in the verifier's field `$provider` (a name or a tuple index) (an `Arc<CryptoProvider>`): every
/// verifier here checks them the same way, whatever it thinks of the certificate itself.
macro_rules! handshake_signatures {
    ($provider:tt) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.$provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.$provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$provider.signature_verification_algorithms.supported_schemes()
        }
    };
}
pub(crate) use handshake_signatures;

/// Accepts any client certificate, without requiring one: it proves only that the client
/// holds the key of the certificate whose fingerprint it shows (the handshake's signature is
/// checked), and the fingerprint is all charla uses.
#[derive(Debug)]
struct AnyClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    crate::net::tls::handshake_signatures!(0);
}

/// A client that hangs up on a TLS connection closes the TCP connection under it.
impl Stream for tokio_rustls::server::TlsStream<BoxStream> {
    fn socket(&self) -> Option<std::os::fd::RawFd> {
        self.get_ref().0.socket()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_openssl_prints_them() {
        let fp = Fingerprint::of(b"certificate");
        let shown = fp.to_string();
        assert_eq!(shown.len(), 64);
        assert_eq!(Fingerprint::parse(&shown), Some(fp));
        let openssl: Vec<String> = fp.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Fingerprint::parse(&openssl.join(":")), Some(fp));
        assert_eq!(Fingerprint::parse("abc"), None);
        assert_eq!(Fingerprint::parse(&"zz".repeat(32)), None);
    }

    #[test]
    fn self_signed_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("charla-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = CertSource::SelfSigned { dir: dir.clone(), names: vec!["localhost".into()] };
        let first = Tls::new(source.clone()).unwrap().fingerprint();
        assert_eq!(Tls::new(source).unwrap().fingerprint(), first);
        let mode = std::fs::metadata(dir.join(SELF_SIGNED_KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_reload_keeps_the_certificate() {
        let dir = std::env::temp_dir().join(format!("charla-tls-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = self_signed(&dir, &["localhost".into()]).unwrap();
        let tls = Tls::new(CertSource::Files { cert: made.0.clone(), key: made.1.clone() }).unwrap();
        let before = tls.fingerprint();
        std::fs::write(&made.0, "not a certificate").unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::NoCertificate { .. })));
        assert_eq!(tls.fingerprint(), before);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
