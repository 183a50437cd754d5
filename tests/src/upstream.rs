//! A small scripted upstream for the e2e tests, on 127.0.0.1 port 0:
//! `/ok` → 200, `/status/<code>` → that code (an app's own error), `/delay/<ms>` → 200 after
//! the delay, `/grpc/<status>` → a trailers-only gRPC reply: HTTP 200 with that `grpc-status`. Plus a "closer" that accepts TCP connections and closes them at once (Envoy: UC),
//! and a closed port (Envoy: UF).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use std::{convert::Infallible, net::SocketAddr, time::Duration};
use tokio::{net::TcpListener, task::JoinHandle};

/// A running HTTP upstream; stops when dropped.
#[derive(Debug)]
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Starts the scripted HTTP/1.1 upstream.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(respond))
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }
}

async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    if let Some(grpc_status) = path.strip_prefix("/grpc/") {
        // gRPC failures are HTTP 200: the outcome is in grpc-status.
        let mut response = Response::new(Full::new(Bytes::new()));
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/grpc"),
        );
        if let Ok(value) = hyper::header::HeaderValue::from_str(grpc_status) {
            headers.insert("grpc-status", value);
        }
        return Ok(response);
    }
    let (status, body) = if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok());
        (
            status.unwrap_or(StatusCode::BAD_REQUEST),
            format!("status {code}\n"),
        )
    } else if let Some(ms) = path.strip_prefix("/delay/") {
        let ms = ms.parse::<u64>().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        (StatusCode::OK, format!("slept {ms} ms\n"))
    } else if path == "/ok" {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (StatusCode::NOT_FOUND, format!("upstream has no {path}\n"))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

/// Accepts connections and closes them before answering: Envoy reports UC
/// (`upstream_reset_before_response_started{connection_termination}`).
#[derive(Debug)]
pub struct Closer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Closer {
    /// Starts the closer.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    // Wait for the request to arrive so the reset is "before response started",
                    // not a connect failure.
                    let _ = stream.readable().await;
                    drop(stream);
                }
            }
        });
        Ok(Self { addr, task })
    }
}

/// A loopback port held by a bound socket that does not listen: connections are refused
/// (Envoy reports UF), and no other process or test can take the port while this lives — a
/// bind-then-release port could be handed to the next port-0 listener.
#[derive(Debug)]
pub struct ClosedPort {
    /// The refused address.
    pub addr: SocketAddr,
    socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    /// Reserves a port.
    pub fn reserve() -> anyhow::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind("127.0.0.1:0".parse()?)?;
        let addr = socket.local_addr()?;
        Ok(Self { addr, socket })
    }

    /// Starts listening on the reserved port (e.g. the collector coming back after an outage).
    pub fn listen(self) -> anyhow::Result<TcpListener> {
        Ok(self.socket.listen(1024)?)
    }
}
