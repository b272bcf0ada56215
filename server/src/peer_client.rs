//! A minimal client for one request to another rockraft node's client port (CLUSTER MEET
//! uses it to invite a node), over TLS when the cluster's nodes talk TLS (`--tls-cluster`).

use std::time::Duration;

use bytes::BytesMut;
use redis_protocol::resp2::{decode::decode_bytes_mut, types::BytesFrame};
use rockraft_raftstore::transport::{server_name, BusStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `args` to `addr` (after `AUTH default <password>` when `password` is given: a
/// locked cluster's nodes share it) and returns the reply: `Ok(text)` for a status or bulk
/// string reply, `Err(text)` for an error reply or a failure to talk to the node. With `tls`,
/// `addr` is the node's TLS port and the connection presents this node's certificate.
pub async fn call(
    addr: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    password: Option<&[u8]>,
    args: &[&[u8]],
    timeout: Duration,
) -> Result<String, String> {
    let work = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let mut stream: BusStream = match tls {
            Some(connector) => {
                let name = server_name(addr).map_err(|e| format!("{addr}: {e}"))?;
                Box::new(
                    connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS with {addr}: {e}"))?,
                )
            }
            None => Box::new(tcp),
        };
        let mut request = Vec::new();
        if let Some(p) = password {
            request.extend(rockraft_resp::encode_request(&[
                &b"AUTH"[..],
                b"default",
                p,
            ]));
        }
        request.extend(rockraft_resp::encode_request(args));
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let mut buf = BytesMut::with_capacity(4096);
        // The AUTH's reply is not the answer (a node without a password takes any).
        let mut skip = password.is_some();
        loop {
            if let Some((frame, _, _)) =
                decode_bytes_mut(&mut buf).map_err(|e| format!("{addr}: bad reply: {e}"))?
            {
                if std::mem::take(&mut skip) {
                    continue;
                }
                return match frame {
                    BytesFrame::SimpleString(b) | BytesFrame::BulkString(b) => {
                        Ok(String::from_utf8_lossy(&b).into_owned())
                    }
                    BytesFrame::Error(e) => Err(e.to_string()),
                    BytesFrame::Integer(i) => Ok(i.to_string()),
                    other => Err(format!("{addr}: unexpected reply {other:?}")),
                };
            }
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
            if n == 0 {
                return Err(format!("{addr} closed the connection"));
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{addr} did not answer within {timeout:?}"))?
}

/// Where a [`pipeline`] failed to talk to its target (MIGRATE's IOERR texts).
#[derive(Debug, PartialEq, Eq)]
pub enum PipelineFailure {
    Connect,
    Write,
    Read,
}

/// Sends `requests` to `addr` in one write (plaintext) and returns each reply: `Ok(())` for a
/// non-error reply, `Err(text)` for an error reply. Each step is bounded by `timeout`.
pub async fn pipeline(
    addr: &str,
    requests: &[Vec<bytes::Bytes>],
    timeout: Duration,
) -> Result<Vec<Result<(), String>>, PipelineFailure> {
    // As Redis's non-blocking connect: no answer in time is a failure to connect, a refusal
    // shows as the first write failing.
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| PipelineFailure::Connect)?
        .map_err(|_| PipelineFailure::Write)?;
    let mut stream = tcp;
    let mut out = Vec::new();
    for r in requests {
        let args: Vec<&[u8]> = r.iter().map(|a| &a[..]).collect();
        out.extend(rockraft_resp::encode_request(&args));
    }
    tokio::time::timeout(timeout, stream.write_all(&out))
        .await
        .map_err(|_| PipelineFailure::Write)?
        .map_err(|_| PipelineFailure::Write)?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut replies = Vec::with_capacity(requests.len());
    while replies.len() < requests.len() {
        match decode_bytes_mut(&mut buf).map_err(|_| PipelineFailure::Read)? {
            Some((BytesFrame::Error(e), _, _)) => replies.push(Err(e.to_string())),
            Some(_) => replies.push(Ok(())),
            None => {
                let n = tokio::time::timeout(timeout, stream.read_buf(&mut buf))
                    .await
                    .map_err(|_| PipelineFailure::Read)?
                    .map_err(|_| PipelineFailure::Read)?;
                if n == 0 {
                    return Err(PipelineFailure::Read);
                }
            }
        }
    }
    Ok(replies)
}
