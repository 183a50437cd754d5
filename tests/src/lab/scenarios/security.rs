//! Scenarios about identity and the sidecars themselves: an AuthorizationPolicy DENY enforced
//! by the server sidecar (9), mTLS mismatches against a STRICT server (2: a DestinationRule
//! that disables TLS, and a client without a sidecar), and a destination without a sidecar that
//! only sampled successes reveal (12).

use super::{Outcome, request_id};
use crate::{
    access_log,
    client::Reply,
    lab::{
        mesh::MeshLab,
        model::{AuthorizationPolicy, ClientTls, DestinationRule, Mesh, Service, Workload},
        observe,
    },
    wait,
};
use anyhow::{Result, bail};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Namespace of scenario 9.
pub const RBAC_NS: &str = "admin";
/// Namespace of scenario 2.
pub const MTLS_NS: &str = "payments";
/// Namespace of scenario 12.
pub const SIDECAR_MISSING_NS: &str = "legacy";
/// The AuthorizationPolicy of scenario 9.
pub const DENY_POLICY: &str = "deny-admin";
/// Code details Envoy's listener log gives a connection no filter chain accepted.
pub const FILTER_CHAIN_NOT_FOUND: &str = "filter_chain_not_found";

fn workload(ns: &str, app: &str) -> Workload {
    Workload::new(ns, &format!("{app}-v1"), app).label("version", "v1")
}

/// Scenario 9: `portal` calls `users-api`; AuthorizationPolicy `deny-admin` denies `/admin*`.
pub fn rbac_mesh() -> Mesh {
    let ns = RBAC_NS;
    Mesh::new()
        .service(Service::new(ns, "users-api"))
        .workload(workload(ns, "users-api"))
        .workload(workload(ns, "portal"))
        .authorization_policy(
            AuthorizationPolicy::deny(ns, DENY_POLICY, "users-api").deny_paths(&["/admin*"]),
        )
}

/// Scenario 9: probe `admin` is denied by the server sidecar's RBAC filter (403, no flag);
/// the client sidecar records the 403 it passed on.
pub async fn rbac(collector: SocketAddr) -> Result<Outcome> {
    let ns = RBAC_NS;
    let lab = MeshLab::start(rbac_mesh(), collector).await?;
    let url = lab.collector_url();
    let id = request_id(ns, "admin");
    let reply = lab
        .pod("portal-v1", 0)?
        .call(lab.service("users-api")?, "/admin/users", &id)
        .await;
    let hop = observe::wait_hop(&url, &id, 1, 1).await?;
    Ok(Outcome::new(ns).with("admin", reply, hop))
}

/// Scenario 2: STRICT mTLS mesh-wide; `checkout` calls `payments` whose DestinationRule sets
/// `tls.mode: DISABLE`; `batch` has no sidecar.
pub fn mtls_mesh() -> Mesh {
    let ns = MTLS_NS;
    Mesh::new()
        .strict_mtls()
        .service(Service::new(ns, "payments"))
        .workload(workload(ns, "payments"))
        .workload(workload(ns, "checkout"))
        .workload(workload(ns, "batch").not_injected())
        .destination_rule(DestinationRule::new(ns, "payments", "payments").tls(ClientTls::Disable))
}

/// Scenario 2: probe `dr-disable` (the checkout sidecar sends plaintext to the STRICT listener:
/// 503 UC on the client side) and probe `no-sidecar` (the batch app itself sends plaintext:
/// reset, no record anywhere). The payments sidecar's listener log shows both connections
/// finding no filter chain.
pub async fn mtls(collector: SocketAddr) -> Result<Outcome> {
    let ns = MTLS_NS;
    let lab = MeshLab::start(mtls_mesh(), collector).await?;
    let url = lab.collector_url();
    let payments = lab.service("payments")?;
    let server = lab.pod("payments-v1", 0)?;

    let id = request_id(ns, "dr-disable");
    let reply = lab.pod("checkout-v1", 0)?.call(payments, "/ok", &id).await;
    let hop = observe::wait_hop(&url, &id, 1, 0).await?;

    let plain = request_id(ns, "no-sidecar");
    let plain_reply = plaintext_get(server.inbound()?, &payments.authority(), &plain).await;

    let log_path = server.sidecar()?.access_log.clone();
    let listener_log = wait::until(
        "two filter_chain_not_found lines in the payments listener log",
        || {
            let log_path = log_path.clone();
            async move {
                let lines: Vec<_> = access_log::read(&log_path)
                    .ok()?
                    .into_iter()
                    .filter(|line| line.details.contains(FILTER_CHAIN_NOT_FOUND))
                    .collect();
                (lines.len() >= 2).then_some(lines)
            }
        },
    )
    .await?;
    let mut outcome = Outcome::new(ns).with("dr-disable", reply, hop).with(
        "no-sidecar",
        plain_reply,
        observe::hop(&url, &plain).await?,
    );
    outcome.server_listener_log = listener_log;
    Ok(outcome)
}

/// An app without a sidecar: plaintext HTTP/1.1 straight to `addr`.
async fn plaintext_get(addr: SocketAddr, authority: &str, request_id: &str) -> Result<Reply> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET /ok HTTP/1.1\r\nhost: {authority}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // A reset is an error here; a close without a byte is an empty response.
    let read = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    match (status, read) {
        (Some(status), _) => Ok(Reply {
            request_id: request_id.to_owned(),
            status,
        }),
        (None, Ok(_)) => bail!("the connection was closed without a response"),
        (None, Err(error)) => bail!("the connection was reset: {error}"),
    }
}

/// Scenario 12: `batch` (sampling every success) calls `legacy-db`, which has no sidecar, and
/// `accounts`, which has one.
pub fn sidecar_missing_mesh() -> Mesh {
    let ns = SIDECAR_MISSING_NS;
    Mesh::new()
        .service(Service::new(ns, "legacy-db"))
        .workload(Workload::new(ns, "legacy-db", "legacy-db").not_injected())
        .service(Service::new(ns, "accounts"))
        .workload(workload(ns, "accounts"))
        .workload(workload(ns, "batch").sample_successes(1.0))
}

/// Scenario 12: both calls succeed; the sampled success to `legacy-db` carries no `tlsMode`
/// and went out in plaintext, the one to `accounts` carries `tlsMode: istio` and TLS.
pub async fn sidecar_missing(collector: SocketAddr) -> Result<Outcome> {
    let ns = SIDECAR_MISSING_NS;
    let lab = MeshLab::start(sidecar_missing_mesh(), collector).await?;
    let url = lab.collector_url();
    let batch = lab.pod("batch-v1", 0)?;
    let legacy = request_id(ns, "to-legacy-db");
    let legacy_reply = batch.call(lab.service("legacy-db")?, "/ok", &legacy).await;
    let accounts = request_id(ns, "to-accounts");
    let accounts_reply = batch.call(lab.service("accounts")?, "/ok", &accounts).await;
    Ok(Outcome::new(ns)
        .with(
            "to-legacy-db",
            legacy_reply,
            observe::wait_hop(&url, &legacy, 1, 0).await?,
        )
        .with(
            "to-accounts",
            accounts_reply,
            observe::wait_hop(&url, &accounts, 1, 0).await?,
        ))
}
