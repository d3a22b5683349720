//! Line mode: `charla connect` in a pipe or with `--plain`. It speaks charla's plain-text
//! protocol, like `nc`: every byte the server sends goes to standard output, and each line of
//! standard input goes to the server as it is.
//!
//! It sends nothing before the server's greeting: the server tells a plain-text client from an
//! IRC client by its first words, and a first line such as `NICK here` or `USER accounts
//! migrated ok` must not decide that. Once greeted it sends `/pass` and `/login` for
//! `--password-file` and `--login`, `/nick` and `/join` for `--nick` and `--join`, then
//! standard input. At the end of input it stops sending and prints what the
//! server still says until the server closes the connection. When standard output is closed
//! (`charla connect … | head -1`) no one reads any more, and it ends quietly.

use std::io::ErrorKind;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf};
use tokio::sync::oneshot;

use super::ClientError;
use super::app::Credentials;
use super::tls::Dial;
use crate::net::BoxStream;

/// How long the server may take to greet. charla greets a silent client after a quarter of a
/// second; a server that says nothing for this long waits for its client to speak first.
const GREETING_WAIT: Duration = Duration::from_secs(5);

/// Connects as `dial` says, waits for the greeting, gives the server's password and logs in as
/// `credentials` say, asks for `nick` and `room`, and relays stdin → server and server → stdout
/// until either side ends.
pub async fn run(
    dial: &Dial,
    credentials: &Credentials,
    nick: Option<&str>,
    room: Option<&str>,
) -> Result<(), ClientError> {
    let addr = dial.addr.clone();
    let stream = dial.connect().await?;
    if let Some(notice) = dial.first_use() {
        eprintln!("charla: {notice}");
    }
    let (reader, mut writer) = tokio::io::split(stream);
    let (greeted, greeting) = oneshot::channel();
    let mut printing = tokio::spawn(print(reader, greeted));
    match tokio::time::timeout(GREETING_WAIT, greeting).await {
        Ok(Ok(())) => {}
        // Printing ended first: the server closed the connection, or no one reads the output.
        Ok(Err(_)) => return ended(printing.await),
        Err(_) => {
            printing.abort();
            return Err(ClientError::NoGreeting { addr, waited: GREETING_WAIT });
        }
    }
    let pass = credentials.server_password.as_ref().map(|password| format!("/pass {password}\n"));
    let login = credentials.login.as_ref().map(|(account, password)| format!("/login {account} {password}\n"));
    let nick = nick.map(|nick| format!("/nick {nick}\n"));
    let join = room.map(|room| format!("/join {room}\n"));
    for command in pass.iter().chain(&login).chain(&nick).chain(&join) {
        writer.write_all(command.as_bytes()).await?;
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).split(b'\n');
    loop {
        tokio::select! {
            line = stdin.next_segment() => match line.map_err(ClientError::Stdin)? {
                Some(mut line) => {
                    line.push(b'\n');
                    writer.write_all(&line).await?;
                }
                None => {
                    // End of input: say nothing more, but show what the server still sends.
                    writer.shutdown().await?;
                    return ended(printing.await);
                }
            },
            done = &mut printing => return ended(done),
        }
    }
}

/// Copies what the server sends to standard output until the server closes the connection or
/// standard output is closed; `greeted` fires once the first line is out.
async fn print(mut server: ReadHalf<BoxStream>, greeted: oneshot::Sender<()>) -> Result<(), ClientError> {
    let mut stdout = tokio::io::stdout();
    let mut greeted = Some(greeted);
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = server.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let printed = async {
            stdout.write_all(&buf[..n]).await?;
            stdout.flush().await
        };
        match printed.await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(ClientError::Stdout(e)),
        }
        if buf[..n].contains(&b'\n')
            && let Some(greeted) = greeted.take()
        {
            let _ = greeted.send(());
        }
    }
}

/// The outcome of the printing task.
fn ended(done: Result<Result<(), ClientError>, tokio::task::JoinError>) -> Result<(), ClientError> {
    done.map_err(std::io::Error::other)?
}
