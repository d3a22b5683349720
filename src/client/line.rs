//! Line mode: each line of standard input goes to the server as it is; every byte the server
//! sends goes to standard output. It speaks the plain-text protocol, like `nc`. Works in a pipe:
//! at the end of input it stops sending and prints what the server still says until the server
//! closes the connection.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::ClientError;

/// Connects to `host:port` and relays stdin → server and server → stdout until either side ends.
pub async fn run(host: &str, port: u16) -> Result<(), ClientError> {
    let addr = super::address(host, port);
    let stream = TcpStream::connect(&addr).await.map_err(|source| ClientError::Connect { addr, source })?;
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut from_server = tokio::spawn(async move {
        let mut reader = reader;
        tokio::io::copy(&mut reader, &mut tokio::io::stdout()).await
    });
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = stdin.next_line() => match line? {
                Some(line) => {
                    writer.write_all(line.as_bytes()).await?;
                    writer.write_all(b"\n").await?;
                }
                None => {
                    // End of input: say nothing more, but show what the server still sends.
                    writer.shutdown().await?;
                    from_server.await.map_err(std::io::Error::other)??;
                    return Ok(());
                }
            },
            done = &mut from_server => {
                done.map_err(std::io::Error::other)??;
                return Ok(());
            }
        }
    }
}
