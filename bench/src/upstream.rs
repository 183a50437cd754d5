//! The benchmark's upstream: a minimal HTTP/1.1 keep-alive responder on 127.0.0.1 port 0 that
//! answers every request with a fixed, pre-rendered response (`/status/503` → 503, anything else
//! → 200). Hand-rolled rather than hyper so it spends as little as possible of the core it
//! shares with the load generator: the benchmark measures Envoy, and a slow upstream would only
//! add noise and cap the request rate. It expects what Envoy sends for a GET: headers, no body.

use std::net::SocketAddr;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n";
const UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\n503\n";

/// A running upstream; stops when dropped.
#[derive(Debug)]
pub struct FastUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FastUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FastUpstream {
    /// Binds and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream));
            }
        });
        Ok(Self { addr, task })
    }
}

async fn serve(mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        // Answer every complete request head in the buffer, in order.
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let response = if buf.starts_with(b"GET /status/503 ") {
                UNAVAILABLE
            } else {
                OK
            };
            if stream.write_all(response).await.is_err() {
                return;
            }
            buf.drain(..end + 4);
        }
    }
}

/// Position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_by_path_and_keeps_the_connection() {
        let upstream = FastUpstream::start().await.unwrap();
        let mut stream = TcpStream::connect(upstream.addr).await.unwrap();
        stream
            .write_all(
                b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\nGET /status/503 HTTP/1.1\r\nhost: x\r\n\r\n",
            )
            .await
            .unwrap();
        let mut got = vec![0u8; OK.len() + UNAVAILABLE.len()];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [OK, UNAVAILABLE].concat());
    }
}
