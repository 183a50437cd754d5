//! What the two sidecars of a hop show, in words that claim no more than the data: successes are
//! only counted, so "the server sidecar recorded no failure for it" is never "it never arrived".

use meshwhy_proto::v1::{DecisionRecord, Direction, ProxyIdentity};

use super::finding::{HopEvidence, HopPeer};
use super::group::{Context, Group};
use super::input::RecordRef;
use super::rules::bits;

/// `503 UF,URX upstream_reset_before_response_started{…}`, `no response DC …`.
pub(crate) fn outcome(record: &DecisionRecord) -> String {
    let code = match record.response_code {
        0 => "no response".to_owned(),
        code => code.to_string(),
    };
    let flags = crate::flags::names(record.response_flags).join(",");
    [
        code.as_str(),
        flags.as_str(),
        record.response_code_details.as_str(),
    ]
    .iter()
    .filter(|part| !part.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join(" ")
}

fn who(proxy: &ProxyIdentity) -> String {
    match (proxy.namespace.is_empty(), proxy.workload.is_empty()) {
        (false, false) => format!("{}/{}", proxy.namespace, proxy.workload),
        (true, false) => proxy.workload.clone(),
        _ if !proxy.pod.is_empty() => proxy.pod.clone(),
        _ => "unknown".to_owned(),
    }
}

fn pod_name(proxy: &ProxyIdentity) -> String {
    if proxy.pod.is_empty() {
        who(proxy)
    } else {
        format!("{}.{}", proxy.pod, proxy.namespace)
    }
}

fn via_upstream(record: &DecisionRecord) -> bool {
    record.response_code_details == "via_upstream"
}

fn connect_failed(record: &DecisionRecord) -> bool {
    record.response_flags & bits::UF != 0
}

/// The server's side of a client record that has no partner.
fn server_silent(
    proxy: &ProxyIdentity,
    client: &DecisionRecord,
    context: &Context<'_>,
) -> Option<String> {
    if client.upstream_host.is_empty() {
        // No upstream host was picked: the request never left the client sidecar.
        return None;
    }
    Some(match context.server_for(proxy, &client.upstream_host) {
        Some(server) if connect_failed(client) => format!(
            "the server sidecar ({}) recorded nothing: a failed connect never reaches its HTTP filters",
            pod_name(server)
        ),
        Some(server) => format!(
            "the server sidecar ({}) recorded no failure for it (successes are only counted, so this does not prove it never arrived)",
            pod_name(server)
        ),
        None => format!(
            "no reporting sidecar is known at {}: the server side is not visible",
            client.upstream_host
        ),
    })
}

/// Hop evidence for a group, when the other side recorded something or its silence says
/// something.
pub(crate) fn evidence(group: &Group<'_>, context: &Context<'_>) -> Option<HopEvidence> {
    let peers: Vec<HopPeer> = group
        .peers
        .iter()
        .map(|peer| HopPeer {
            direction: Direction::try_from(peer.latest.record.direction).unwrap_or_default(),
            namespace: peer.latest.proxy.namespace.clone(),
            workload: peer.latest.proxy.workload.clone(),
            pod: peer.latest.proxy.pod.clone(),
            response_code: peer.latest.record.response_code,
            response_flags: peer.latest.record.response_flags,
            response_code_details: peer.latest.record.response_code_details.clone(),
            count: peer.count,
        })
        .collect();
    let unjoined = group.count - group.joined.min(group.count);
    let record = group.record();
    let summary = match (group.direction, group.peers.first()) {
        (Direction::Inbound, Some(peer)) => {
            let seen = if via_upstream(record) {
                format!("the server sidecar saw the app answer {}", record.response_code)
            } else {
                format!("the server sidecar answered {} itself", outcome(record))
            };
            format!(
                "{seen}; the client sidecar ({}) recorded {} for {} of {}",
                who(peer.latest.proxy),
                outcome(peer.latest.record),
                group.joined,
                group.count
            )
        }
        (Direction::Inbound, None) => {
            "no client-side record: the client has no meshwhy sidecar, or its sidecar recorded no failure"
                .to_owned()
        }
        (Direction::Outbound, Some(peer)) => {
            let peer_record = peer.latest.record;
            let server = who(peer.latest.proxy);
            if peer_record.response_flags & bits::DC != 0 {
                format!(
                    "the server sidecar ({server}) saw the client side go away (DC) for {} of {}: its app was still working when the client gave up",
                    group.joined, group.count
                )
            } else {
                format!(
                    "the server sidecar ({server}) recorded {} for {} of {}",
                    outcome(peer_record),
                    group.joined,
                    group.count
                )
            }
        }
        (Direction::Outbound, None) => server_silent(group.proxy(), record, context)?,
        (Direction::Unspecified, _) => return None,
    };
    Some(HopEvidence {
        joined: group.joined,
        unjoined,
        peers,
        summary,
    })
}

/// One sentence for one hop of one request.
pub(crate) fn describe(
    client: Option<RecordRef<'_>>,
    server: Option<RecordRef<'_>>,
    context: &Context<'_>,
) -> String {
    match (client, server) {
        (Some(client), Some(server)) => {
            let (c, s) = (client.record, server.record);
            match (via_upstream(c), via_upstream(s)) {
                (true, true) => format!(
                    "the server sidecar ({}) saw the app answer {}; the client sidecar ({}) passed it on",
                    pod_name(server.proxy),
                    s.response_code,
                    pod_name(client.proxy)
                ),
                (true, false) => format!(
                    "the server sidecar ({}) answered {} itself; the client sidecar ({}) passed it on",
                    pod_name(server.proxy),
                    outcome(s),
                    pod_name(client.proxy)
                ),
                _ if s.response_flags & bits::DC != 0 => format!(
                    "the client sidecar ({}) decided {}; the server sidecar ({}) saw the client side go away (DC) while its app was still working",
                    pod_name(client.proxy),
                    outcome(c),
                    pod_name(server.proxy)
                ),
                _ => format!(
                    "the client sidecar ({}) decided {}; the server sidecar ({}) recorded {}",
                    pod_name(client.proxy),
                    outcome(c),
                    pod_name(server.proxy),
                    outcome(s)
                ),
            }
        }
        (Some(client), None) => {
            let c = client.record;
            let seen = if c.sampled_success {
                format!(
                    "the client sidecar ({}) saw {}",
                    pod_name(client.proxy),
                    outcome(c)
                )
            } else if via_upstream(c) {
                format!(
                    "the client sidecar ({}) got {} from the upstream {}",
                    pod_name(client.proxy),
                    c.response_code,
                    if c.upstream_host.is_empty() {
                        "-"
                    } else {
                        &c.upstream_host
                    }
                )
            } else {
                format!(
                    "the client sidecar ({}) decided {}",
                    pod_name(client.proxy),
                    outcome(c)
                )
            };
            match server_silent(client.proxy, c, context).filter(|_| !c.sampled_success) {
                Some(silence) => format!("{seen}; {silence}"),
                None => seen,
            }
        }
        (None, Some(server)) => {
            let s = server.record;
            let seen = if via_upstream(s) {
                format!(
                    "the server sidecar ({}) saw the app answer {}",
                    pod_name(server.proxy),
                    s.response_code
                )
            } else {
                format!(
                    "the server sidecar ({}) recorded {}",
                    pod_name(server.proxy),
                    outcome(s)
                )
            };
            format!(
                "{seen}; no client-side record (the client has no meshwhy sidecar, or it recorded no failure)"
            )
        }
        (None, None) => String::new(),
    }
}
