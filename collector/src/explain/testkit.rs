//! Test helpers: a client and a server sidecar, records shaped like the ones they send, and
//! one-call ways to group and judge them.
#![cfg(test)]

use meshwhy_proto::v1::{DecisionRecord, Direction, ProxyIdentity};

use super::group::{self, Context};
use super::input::{Input, RecordRef, Scope};
use super::rules::{Diagnosis, Rule};
use super::{Report, explain};

/// 2023-11-14T22:13:20Z.
pub(crate) const START: u64 = 1_700_000_000_000_000_000;
pub(crate) const OUTBOUND_CLUSTER: &str = "outbound|9080||reviews.shop.svc.cluster.local";
pub(crate) const VS: &str = "/apis/networking.istio.io/v1/namespaces/shop/virtual-service/reviews";
pub(crate) const DR: &str = "/apis/networking.istio.io/v1/namespaces/shop/destination-rule/reviews";

/// productpage's sidecar (the client), pod IP 10.0.0.5.
pub(crate) fn client() -> ProxyIdentity {
    ProxyIdentity {
        instance_id: "c1".into(),
        node_id: "sidecar~10.0.0.5~productpage-v1-7d9c.shop~shop.svc.cluster.local".into(),
        pod: "productpage-v1-7d9c".into(),
        namespace: "shop".into(),
        workload: "productpage-v1".into(),
        envoy_version: "1.40.0".into(),
        ..Default::default()
    }
}

/// reviews' sidecar (the server), pod IP 10.0.0.9.
pub(crate) fn server() -> ProxyIdentity {
    ProxyIdentity {
        instance_id: "s1".into(),
        node_id: "sidecar~10.0.0.9~reviews-v1-5d8c.shop~shop.svc.cluster.local".into(),
        pod: "reviews-v1-5d8c".into(),
        namespace: "shop".into(),
        workload: "reviews-v1".into(),
        envoy_version: "1.40.0".into(),
        ..Default::default()
    }
}

/// A flags bitmask from comma-separated names (`""` = none).
pub(crate) fn flags(names: &str) -> u64 {
    names
        .split(',')
        .filter(|name| !name.is_empty())
        .map(|name| crate::flags::parse(name).unwrap_or_else(|| panic!("flag {name}")))
        .fold(0, |all, bit| all | bit)
}

/// What productpage's sidecar records for a call to reviews:9080.
pub(crate) fn outbound(code: u32, flag_names: &str, details: &str) -> DecisionRecord {
    DecisionRecord {
        start_time_unix_nanos: START,
        request_id: "req-1".into(),
        direction: Direction::Outbound as i32,
        method: "GET".into(),
        authority: "reviews:9080".into(),
        path: "/reviews/0".into(),
        response_code: code,
        response_flags: flags(flag_names),
        response_code_details: details.into(),
        route_name: "default".into(),
        virtual_host: "reviews.shop.svc.cluster.local:9080".into(),
        cluster: OUTBOUND_CLUSTER.into(),
        upstream_host: "10.0.0.9:9080".into(),
        attempt_count: 1,
        duration_nanos: 2_000_000,
        endpoint_tls_mode: "istio".into(),
        source_address: "10.0.0.5:40000".into(),
        ..Default::default()
    }
}

/// What reviews' sidecar records for a request from productpage.
pub(crate) fn inbound(code: u32, flag_names: &str, details: &str) -> DecisionRecord {
    DecisionRecord {
        start_time_unix_nanos: START + 1_000_000,
        request_id: "req-1".into(),
        direction: Direction::Inbound as i32,
        method: "GET".into(),
        authority: "reviews:9080".into(),
        path: "/reviews/0".into(),
        response_code: code,
        response_flags: flags(flag_names),
        response_code_details: details.into(),
        route_name: "default".into(),
        virtual_host: "inbound|http|9080".into(),
        cluster: "inbound|9080||".into(),
        upstream_host: "10.0.0.9:9080".into(),
        attempt_count: 1,
        downstream_mtls: true,
        downstream_peer_principal: "spiffe://cluster.local/ns/shop/sa/productpage".into(),
        source_address: "10.0.0.5:40000".into(),
        ..Default::default()
    }
}

fn input<'a>(
    records: &'a [(ProxyIdentity, DecisionRecord)],
    proxies: &'a [ProxyIdentity],
) -> Input<'a> {
    Input {
        records: records
            .iter()
            .map(|(proxy, record)| RecordRef::new(proxy, record))
            .collect(),
        successes: Vec::new(),
        proxies: proxies.iter().collect(),
        window_complete: true,
    }
}

/// Runs one rule on the group of a single record sent by `proxy`, with both test sidecars known.
pub(crate) fn check(
    rule: &dyn Rule,
    proxy: ProxyIdentity,
    record: DecisionRecord,
) -> Option<Diagnosis> {
    let records = [(proxy, record)];
    let proxies = [client(), server()];
    let input = input(&records, &proxies);
    let grouped = group::group(&input, &Scope::default());
    assert_eq!(grouped.groups.len(), 1, "one record, one group");
    rule.check(&grouped.groups[0], &grouped.context)
}

/// Runs one rule on a client record, with an empty context (no proxies known).
pub(crate) fn check_alone(rule: &dyn Rule, record: DecisionRecord) -> Option<Diagnosis> {
    let records = [(client(), record)];
    let input = input(&records, &[]);
    let grouped = group::group(&input, &Scope::default());
    let context = Context::default();
    rule.check(&grouped.groups[0], &context)
}

/// The whole engine over `records`, both test sidecars known.
pub(crate) fn explain_records(records: &[(ProxyIdentity, DecisionRecord)]) -> Report {
    let proxies = [client(), server()];
    explain(&input(records, &proxies), &Scope::default(), 100)
}
