//! Envoy node ids as Istio sets them: `<type>~<ip>~<pod>.<ns>~<ns>.svc.<domain>`.

/// A decoded node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId {
    /// `sidecar`, `router` (gateways), …
    pub kind: String,
    /// The pod IP.
    pub ip: String,
    /// Pod name.
    pub pod: String,
    /// Pod namespace.
    pub namespace: String,
}

impl NodeId {
    /// Decodes an Istio node id; `None` for any other shape.
    pub fn parse(id: &str) -> Option<Self> {
        let mut parts = id.split('~');
        let kind = parts.next()?;
        let ip = parts.next()?;
        let pod_ns = parts.next()?;
        let (pod, namespace) = pod_ns.rsplit_once('.')?;
        (!ip.is_empty() && !pod.is_empty()).then(|| Self {
            kind: kind.to_owned(),
            ip: ip.to_owned(),
            pod: pod.to_owned(),
            namespace: namespace.to_owned(),
        })
    }
}

/// The IP of an `ip:port` or `[ipv6]:port` address (the address itself when it has no port).
pub(crate) fn address_ip(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((ip, _)) if !ip.contains(':') => ip,
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        let node =
            NodeId::parse("sidecar~10.0.0.7~reviews-v1-5d8c.bookinfo~bookinfo.svc.cluster.local")
                .unwrap();
        assert_eq!(node.kind, "sidecar");
        assert_eq!(node.ip, "10.0.0.7");
        assert_eq!(node.pod, "reviews-v1-5d8c");
        assert_eq!(node.namespace, "bookinfo");
        assert_eq!(NodeId::parse("envoy-1"), None);
        assert_eq!(NodeId::parse("sidecar~~x.y~z"), None);
    }

    #[test]
    fn ips() {
        assert_eq!(address_ip("10.0.0.9:9080"), "10.0.0.9");
        assert_eq!(address_ip("[fd00::1]:9080"), "fd00::1");
        assert_eq!(address_ip("fd00::1"), "fd00::1");
        assert_eq!(address_ip("10.0.0.9"), "10.0.0.9");
    }
}
