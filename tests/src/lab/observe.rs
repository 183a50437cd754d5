//! Reads back what the lab's sidecars recorded, over the collector's real gRPC Query API: the
//! two hops of a request (client sidecar outbound, server sidecar inbound, joined by request
//! id), waiting until the expected records have arrived, and barriers that make "this sidecar
//! recorded nothing" a checked fact rather than a guess.

use crate::{lab::mesh::Pod, lab::model::Service, scenario::query, wait};
use anyhow::{Context, Result};
use meshwhy_proto::v1::{
    DecisionRecord, Direction, ExplainRequest, ExplainResponse, ProxyCounter, StoredRecord,
    query_client::QueryClient,
};

/// What each sidecar of a hop recorded for one request id.
#[derive(Debug, Clone)]
pub struct Hop {
    pub request_id: String,
    /// The client sidecar's outbound records.
    pub client: Vec<StoredRecord>,
    /// The server sidecar's inbound records (one per attempt that reached it).
    pub server: Vec<StoredRecord>,
}

impl Hop {
    /// The client sidecar's record (the first, when several).
    pub fn client_record(&self) -> Result<&DecisionRecord> {
        self.client
            .first()
            .and_then(|r| r.record.as_ref())
            .with_context(|| format!("{}: no client-side record: {self:#?}", self.request_id))
    }

    /// The server sidecar's first record.
    pub fn server_record(&self) -> Result<&DecisionRecord> {
        self.server
            .first()
            .and_then(|r| r.record.as_ref())
            .with_context(|| format!("{}: no server-side record: {self:#?}", self.request_id))
    }

    /// Flag names of the client-side record.
    pub fn client_flags(&self) -> Vec<String> {
        self.client
            .first()
            .map(|r| r.flag_names.clone())
            .unwrap_or_default()
    }

    /// Flag names of the server-side record.
    pub fn server_flags(&self) -> Vec<String> {
        self.server
            .first()
            .map(|r| r.flag_names.clone())
            .unwrap_or_default()
    }

    /// Pod of the client-side record.
    pub fn client_pod(&self) -> String {
        self.client
            .first()
            .and_then(|r| r.proxy.as_ref())
            .map(|p| p.pod.clone())
            .unwrap_or_default()
    }

    /// Pod of the server-side record.
    pub fn server_pod(&self) -> String {
        self.server
            .first()
            .and_then(|r| r.proxy.as_ref())
            .map(|p| p.pod.clone())
            .unwrap_or_default()
    }
}

fn direction(record: &StoredRecord) -> Option<Direction> {
    record
        .record
        .as_ref()
        .and_then(|r| Direction::try_from(r.direction).ok())
}

/// What the collector holds for `request_id` now.
pub async fn hop(url: &str, request_id: &str) -> Result<Hop> {
    let records = query::records(url, request_id).await?;
    let (mut client, mut server) = (Vec::new(), Vec::new());
    for record in records {
        match direction(&record) {
            Some(Direction::Outbound) => client.push(record),
            Some(Direction::Inbound) => server.push(record),
            _ => {}
        }
    }
    // Oldest first (the store answers newest first).
    let start = |r: &StoredRecord| r.record.as_ref().map_or(0, |r| r.start_time_unix_nanos);
    client.sort_by_key(start);
    server.sort_by_key(start);
    Ok(Hop {
        request_id: request_id.to_owned(),
        client,
        server,
    })
}

/// Waits until the collector holds at least `client` outbound and `server` inbound records for
/// `request_id`.
pub async fn wait_hop(url: &str, request_id: &str, client: usize, server: usize) -> Result<Hop> {
    wait::until(
        &format!("{client} client-side and {server} server-side record(s) for {request_id}"),
        || async move {
            let hop = hop(url, request_id).await.ok()?;
            (hop.client.len() >= client && hop.server.len() >= server).then_some(hop)
        },
    )
    .await
}

/// Makes negative checks sound: sends a request that both sidecars record (`/status/500`) from
/// `client` to `service` and waits for both records. Each sidecar's filter ships its records in
/// order, so once the barrier's records are stored, everything the two sidecars recorded before
/// it is stored too.
pub async fn barrier(url: &str, client: &Pod, service: &Service, request_id: &str) -> Result<()> {
    client.call(service, "/status/500", request_id).await?;
    wait_hop(url, request_id, 1, 1).await?;
    Ok(())
}

/// Success counters of the workload's pods.
pub async fn counters(url: &str, namespace: &str, workload: &str) -> Result<Vec<ProxyCounter>> {
    Ok(query::counters(url)
        .await?
        .into_iter()
        .filter(|c| c.namespace == namespace && c.workload == workload)
        .collect())
}

/// meshwhy's explanation of the failures recorded in `namespace` (all stored records).
pub async fn explain(url: &str, namespace: &str) -> Result<ExplainResponse> {
    let mut client = QueryClient::connect(url.to_owned()).await?;
    let request = ExplainRequest {
        namespace: namespace.to_owned(),
        ..Default::default()
    };
    Ok(client.explain(request).await?.into_inner())
}

/// meshwhy's explanation of one request, end to end.
pub async fn explain_request(url: &str, request_id: &str) -> Result<ExplainResponse> {
    let mut client = QueryClient::connect(url.to_owned()).await?;
    let request = ExplainRequest {
        request_id: request_id.to_owned(),
        ..Default::default()
    };
    Ok(client.explain(request).await?.into_inner())
}
