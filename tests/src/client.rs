//! The test client: HTTP/1.1 requests through Envoy, each tagged with its own `x-request-id` so
//! a record and Envoy's access log line can be matched exactly.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::{client::legacy::Client as HyperClient, rt::TokioExecutor};
use std::{net::SocketAddr, time::Duration};
use tokio::io::AsyncWriteExt;

/// Sends requests to one Envoy listener.
#[derive(Clone, Debug)]
pub struct Client {
    listener: SocketAddr,
    http: HyperClient<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The request id the client sent.
    pub request_id: String,
    /// HTTP status.
    pub status: u16,
}

impl Client {
    /// A client for the listener at `listener`.
    pub fn new(listener: SocketAddr) -> Self {
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build_http();
        Self { listener, http }
    }

    /// The listener this client sends to.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// GET `path` with `x-request-id: request_id` and Host `authority`.
    pub async fn get(&self, authority: &str, path: &str, request_id: &str) -> Result<Reply> {
        self.get_with(authority, path, request_id, &[]).await
    }

    /// GET with extra request headers (e.g. `content-type: application/grpc`).
    pub async fn get_with(
        &self,
        authority: &str,
        path: &str,
        request_id: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply> {
        let mut request = Request::get(format!("http://{}{path}", self.listener))
            .header("host", authority)
            .header("x-request-id", request_id);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new())?;
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("GET {path} through Envoy"))?;
        let status = response.status().as_u16();
        // Drain the body so the connection is reused.
        let _ = response.into_body().collect().await;
        Ok(Reply {
            request_id: request_id.to_owned(),
            status,
        })
    }

    /// Sends a GET and hangs up after `after` without reading the reply: Envoy records DC.
    pub async fn get_and_disconnect(
        &self,
        authority: &str,
        path: &str,
        request_id: &str,
        after: Duration,
    ) -> Result<()> {
        let mut stream = tokio::net::TcpStream::connect(self.listener).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {authority}\r\nx-request-id: {request_id}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        tokio::time::sleep(after).await;
        drop(stream);
        Ok(())
    }
}
