//! `--tls`: the load connections reach the server over TLS, through a relay in this process.
//!
//! The load connections stay clear-text connections to a relay on loopback, measured by the
//! same code as without `--tls`; the relay opens the server's connection from the load
//! connection's own source address and speaks TLS on it (or, with `--proto ws`, WebSocket over
//! TLS, see [`super::ws`]). The bench accepts whatever certificate the server shows: it only
//! ever talks to this machine (the target is checked to be loopback), and a benchmark has
//! nothing to protect. The figures include the relay's hop and its side of the encryption,
//! which share the machine's cores with the server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::ClientConfig;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS connector that trusts any certificate (bench only: the target is loopback).
pub fn connector() -> io::Result<TlsConnector> {
    let provider = crate::net::tls::provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Connects to `target` from `source`'s address over TLS.
pub async fn dial(
    connector: &TlsConnector,
    source: SocketAddr,
    target: SocketAddr,
) -> io::Result<TlsStream<TcpStream>> {
    let stream = connect_from(source, target).await?;
    let name = ServerName::IpAddress(target.ip().into());
    connector.connect(name, stream).await
}

/// A TCP connection to `target` from `source`'s address (any port), Nagle off.
pub async fn connect_from(source: SocketAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(source.ip(), 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A relay from clear-text load connections to TLS connections to the server.
pub struct Relay {
    /// Where the load connections connect instead of the server.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on loopback for load connections, each relayed byte for byte over TLS to
    /// `target`.
    pub async fn start(target: SocketAddr) -> io::Result<Relay> {
        let connector = connector()?;
        let listener = TcpListener::bind(SocketAddr::new(target.ip(), 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut client, peer)) = listener.accept().await {
                let connector = connector.clone();
                tokio::spawn(async move {
                    let relayed = async {
                        client.set_nodelay(true)?;
                        let mut server = dial(&connector, peer, target).await?;
                        tokio::io::copy_bidirectional(&mut client, &mut server).await
                    };
                    if let Err(e) = relayed.await {
                        tracing::debug!("TLS relay for {peer}: {e}");
                    }
                });
            }
        });
        Ok(Relay { addr, task })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts any server certificate, still checking that the handshake is signed by its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    crate::net::tls::handshake_signatures!(0);
}
