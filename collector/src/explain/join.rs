//! Hop correlation: the client sidecar's outbound record and the server sidecar's inbound record
//! of the same request id are one hop. Of the two, one record explains the hop (the primary): the
//! server's when the client only forwarded what the upstream said (`via_upstream`), else the
//! client's (a timeout, a refused connect: the server side then shows only the consequence,
//! e.g. DC). A client record with URX (retries exhausted) always explains its hop, and every
//! attempt the server sidecars recorded under the same request id is secondary to it.

use meshwhy_proto::v1::{Direction, ProxyIdentity};

use super::hash::FxHashMap;
use super::input::{Hints, RecordRef};
use super::rules::bits::URX;
use crate::decode::node::address_ip;

/// No partner.
pub(crate) const NONE: u32 = u32::MAX;

/// Pairing of the failure records: `partner[i]` is the index (into the same list) of the other
/// side of record `i`'s hop, or [`NONE`]; `secondary[i]` is true when the partner explains it.
#[derive(Debug, Default)]
pub(crate) struct Pairs {
    pub(crate) partner: Vec<u32>,
    pub(crate) secondary: Vec<bool>,
    pub(crate) joined: u64,
}

/// The pod IP in an Istio node id (`sidecar~<ip>~<pod>.<ns>~…`), without allocating.
pub(crate) fn node_ip(proxy: &ProxyIdentity) -> Option<&str> {
    proxy.node_id.split('~').nth(1).filter(|ip| !ip.is_empty())
}

fn same_pod(a: &ProxyIdentity, b: &ProxyIdentity) -> bool {
    !a.pod.is_empty() && a.pod == b.pod && a.namespace == b.namespace
}

/// Whether `a` and `b` are the same pod: by name, else (no pod name) by node id.
pub(crate) fn same_proxy_pod(a: &ProxyIdentity, b: &ProxyIdentity) -> bool {
    same_pod(a, b) || (a.pod.is_empty() && !a.node_id.is_empty() && a.node_id == b.node_id)
}

/// Whether `server`'s record is the far side of `client`'s upstream call, by address: the
/// client's upstream host is the server pod's IP, or the server saw the client pod's IP.
fn addresses_match(client: RecordRef<'_>, server: RecordRef<'_>) -> Option<bool> {
    let upstream = address_ip(&client.record.upstream_host);
    let source = address_ip(&server.record.source_address);
    let by_upstream = node_ip(server.proxy)
        .filter(|_| !upstream.is_empty())
        .map(|ip| ip == upstream);
    let by_source = node_ip(client.proxy)
        .filter(|_| !source.is_empty())
        .map(|ip| ip == source);
    match (by_upstream, by_source) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), _) | (_, Some(false)) => Some(false),
        (None, None) => None,
    }
}

/// Bits in the filter that lets most outbound records skip the index probe (128 KiB: stays in
/// cache, unlike an index of a million ids).
const FILTER_BITS: u64 = 1 << 20;

fn filter_slot(hash: u64) -> (usize, u64) {
    // The high bits: FxHash mixes upwards, so they are the best distributed.
    let bit = hash >> (64 - FILTER_BITS.trailing_zeros());
    ((bit / 64) as usize, 1u64 << (bit % 64))
}

/// Pairs outbound and inbound records of `items` (indices into `records`) by request id.
/// Reads only the hints until two ids may match.
pub(crate) fn pair(records: &[RecordRef<'_>], items: &[u32]) -> Pairs {
    let count = items.len();
    let mut pairs = Pairs {
        partner: vec![NONE; count],
        secondary: vec![false; count],
        joined: 0,
    };
    let at = |item: usize| records[items[item] as usize];
    let hints = |item: usize| -> &Hints { &records[items[item] as usize].hints };
    let inbound = Direction::Inbound as i32;
    let outbound = Direction::Outbound as i32;
    // Inbound records by id hash, chained through `next` so nothing is allocated per id; ids
    // are compared on a hit, so hash collisions only cost a comparison.
    let mut head: FxHashMap<u64, u32> = FxHashMap::default();
    let mut next = vec![NONE; count];
    let mut filter = vec![0u64; (FILTER_BITS / 64) as usize];
    for (item, link) in next.iter_mut().enumerate() {
        let hash = hints(item).request;
        if hash != 0 && hints(item).direction == inbound {
            let (word, bit) = filter_slot(hash);
            filter[word] |= bit;
            *link = head.insert(hash, item as u32).unwrap_or(NONE);
        }
    }
    if head.is_empty() {
        return pairs;
    }
    for item in 0..count {
        let hash = hints(item).request;
        if hash == 0 || hints(item).direction != outbound {
            continue;
        }
        let (word, bit) = filter_slot(hash);
        if filter[word] & bit == 0 {
            continue;
        }
        let client = at(item);
        let id = client.record.request_id.as_str();
        let Some(&first) = head.get(&hash) else {
            continue;
        };
        // An id repeats along a call chain (A→B→C): prefer the inbound record whose pod the
        // client actually called; without addresses, the earliest one not on the client's pod.
        let mut best = NONE;
        let mut candidate = first;
        while candidate != NONE {
            let index = candidate as usize;
            let server = at(index);
            let usable = pairs.partner[index] == NONE
                && server.record.request_id == id
                && !same_pod(client.proxy, server.proxy);
            if usable {
                match addresses_match(client, server) {
                    Some(true) => {
                        best = candidate;
                        break;
                    }
                    Some(false) => {}
                    None => {
                        let earlier = best == NONE
                            || server.record.start_time_unix_nanos
                                < at(best as usize).record.start_time_unix_nanos;
                        if earlier {
                            best = candidate;
                        }
                    }
                }
            }
            candidate = next[index];
        }
        if best == NONE {
            continue;
        }
        pairs.partner[item] = best;
        pairs.partner[best as usize] = item as u32;
        pairs.joined += 1;
        let retries_exhausted = client.record.response_flags & URX != 0;
        if client.record.response_code_details == "via_upstream" && !retries_exhausted {
            pairs.secondary[item] = true;
        } else {
            pairs.secondary[best as usize] = true;
        }
        if retries_exhausted {
            // Every attempt reached a server sidecar with the same request id: the client's
            // URX explains them all (the last attempt's cause comes from the client record).
            let mut candidate = first;
            while candidate != NONE {
                let index = candidate as usize;
                let server = at(index);
                if pairs.partner[index] == NONE
                    && server.record.request_id == id
                    && !same_pod(client.proxy, server.proxy)
                    && addresses_match(client, server) != Some(false)
                {
                    pairs.secondary[index] = true;
                }
                candidate = next[index];
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::DecisionRecord;

    use super::*;

    fn proxy(pod: &str, ip: &str) -> ProxyIdentity {
        ProxyIdentity {
            pod: pod.into(),
            namespace: "shop".into(),
            node_id: format!("sidecar~{ip}~{pod}.shop~shop.svc.cluster.local"),
            ..Default::default()
        }
    }

    fn record(
        id: &str,
        direction: Direction,
        details: &str,
        upstream: &str,
        start: u64,
    ) -> DecisionRecord {
        DecisionRecord {
            request_id: id.into(),
            direction: direction as i32,
            response_code_details: details.into(),
            upstream_host: upstream.into(),
            start_time_unix_nanos: start,
            ..Default::default()
        }
    }

    #[test]
    fn via_upstream_defers_to_the_server_and_local_decisions_do_not() {
        let a = proxy("a", "10.0.0.1");
        let b = proxy("b", "10.0.0.2");
        let records = [
            record("r1", Direction::Outbound, "via_upstream", "10.0.0.2:80", 1),
            record("r1", Direction::Inbound, "via_upstream", "127.0.0.6:80", 2),
            record(
                "r2",
                Direction::Outbound,
                "response_timeout",
                "10.0.0.2:80",
                3,
            ),
            record(
                "r2",
                Direction::Inbound,
                "downstream_remote_disconnect",
                "",
                4,
            ),
            record("r3", Direction::Outbound, "via_upstream", "10.0.0.2:80", 5),
        ];
        let proxies = [&a, &b, &a, &b, &a];
        let refs: Vec<RecordRef<'_>> = records
            .iter()
            .zip(proxies)
            .map(|(record, proxy)| RecordRef::new(proxy, record))
            .collect();
        let items: Vec<u32> = (0..5).collect();
        let pairs = pair(&refs, &items);
        assert_eq!(pairs.partner, [1, 0, 3, 2, NONE]);
        assert_eq!(pairs.secondary, [true, false, false, true, false]);
        assert_eq!(pairs.joined, 2);
    }

    #[test]
    fn chains_pair_by_address() {
        // A→B→C all carry r1; A's hop is B (by IP), B's outbound hop is C.
        let a = proxy("a", "10.0.0.1");
        let b = proxy("b", "10.0.0.2");
        let c = proxy("c", "10.0.0.3");
        let records = [
            record("r1", Direction::Outbound, "via_upstream", "10.0.0.2:80", 1),
            record("r1", Direction::Inbound, "via_upstream", "", 2),
            record("r1", Direction::Outbound, "via_upstream", "10.0.0.3:80", 3),
            record("r1", Direction::Inbound, "via_upstream", "", 4),
        ];
        let proxies = [&a, &b, &b, &c];
        let refs: Vec<RecordRef<'_>> = records
            .iter()
            .zip(proxies)
            .map(|(record, proxy)| RecordRef::new(proxy, record))
            .collect();
        let pairs = pair(&refs, &[3, 2, 1, 0]);
        // items are in reverse: item 0 = C-in, 1 = B-out, 2 = B-in, 3 = A-out.
        assert_eq!(pairs.partner, [1, 0, 3, 2]);
    }

    #[test]
    fn without_addresses_the_earliest_other_pod_wins() {
        let a = ProxyIdentity {
            pod: "a".into(),
            ..Default::default()
        };
        let b = ProxyIdentity {
            pod: "b".into(),
            ..Default::default()
        };
        let c = ProxyIdentity {
            pod: "c".into(),
            ..Default::default()
        };
        let records = [
            record("r1", Direction::Outbound, "via_upstream", "", 1),
            record("r1", Direction::Inbound, "via_upstream", "", 4),
            record("r1", Direction::Inbound, "via_upstream", "", 2),
        ];
        let proxies = [&a, &c, &b];
        let refs: Vec<RecordRef<'_>> = records
            .iter()
            .zip(proxies)
            .map(|(record, proxy)| RecordRef::new(proxy, record))
            .collect();
        let pairs = pair(&refs, &[0, 1, 2]);
        assert_eq!(pairs.partner, [2, NONE, 0]);
    }
}
