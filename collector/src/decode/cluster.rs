//! Istio cluster names: `outbound|<port>|<subset>|<fqdn>`, `inbound|<port>||` (older
//! `inbound|<port>|<port-name>|<fqdn>`), the SNI-style `outbound_.<port>_.<subset>_.<fqdn>`, and
//! the special `PassthroughCluster`, `BlackHoleCluster`, `InboundPassthroughCluster`.

/// A decoded cluster name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterName {
    /// A mesh or ServiceEntry destination seen by the client sidecar.
    Outbound {
        /// Service port.
        port: u16,
        /// DestinationRule subset; empty when none.
        subset: String,
        /// Destination host, e.g. `reviews.shop.svc.cluster.local`.
        fqdn: String,
    },
    /// The local application, seen by the server sidecar.
    Inbound {
        /// The application's port.
        port: u16,
    },
    /// `PassthroughCluster`: an unknown destination let through (ALLOW_ANY).
    Passthrough,
    /// `BlackHoleCluster`: an unknown destination dropped (REGISTRY_ONLY).
    BlackHole,
    /// `InboundPassthroughCluster`: inbound traffic to a port no Service declares.
    InboundPassthrough,
    /// No cluster (NR, NC, direct responses).
    None,
    /// Not an Istio name (a plain Envoy config); kept raw.
    Other(String),
}

impl ClusterName {
    /// Decodes a cluster name; anything unrecognised is [`ClusterName::Other`].
    pub fn parse(name: &str) -> Self {
        let name = name.trim();
        match name {
            "" => return Self::None,
            "PassthroughCluster" => return Self::Passthrough,
            "BlackHoleCluster" => return Self::BlackHole,
            "InboundPassthroughCluster"
            | "InboundPassthroughClusterIpv4"
            | "InboundPassthroughClusterIpv6" => return Self::InboundPassthrough,
            _ => {}
        }
        let parts: Vec<&str> = if name.contains('|') {
            name.split('|').collect()
        } else {
            name.split("_.").collect()
        };
        let parsed = match parts.as_slice() {
            ["outbound", port, subset, fqdn] if !fqdn.is_empty() => {
                port.parse().ok().map(|port| Self::Outbound {
                    port,
                    subset: (*subset).to_owned(),
                    fqdn: (*fqdn).to_owned(),
                })
            }
            ["inbound", port, ..] => port.parse().ok().map(|port| Self::Inbound { port }),
            _ => None,
        };
        parsed.unwrap_or_else(|| Self::Other(name.to_owned()))
    }

    /// `fqdn:port` for outbound clusters.
    pub fn destination(&self) -> Option<String> {
        match self {
            Self::Outbound { port, fqdn, .. } => Some(format!("{fqdn}:{port}")),
            _ => None,
        }
    }

    /// The service host of an outbound cluster.
    pub fn service(&self) -> Option<ServiceHost> {
        match self {
            Self::Outbound { fqdn, .. } => Some(ServiceHost::parse(fqdn)),
            _ => None,
        }
    }
}

/// A destination host, split when it is a Kubernetes Service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHost {
    /// The host as given.
    pub fqdn: String,
    /// The Service name, for `<svc>.<ns>.svc.<domain>` hosts.
    pub name: Option<String>,
    /// The Service namespace, for `<svc>.<ns>.svc.<domain>` hosts.
    pub namespace: Option<String>,
}

impl ServiceHost {
    /// Splits `<svc>.<ns>.svc.<domain>`; other hosts (ServiceEntry, external) keep only `fqdn`.
    pub fn parse(fqdn: &str) -> Self {
        let mut labels = fqdn.split('.');
        let (name, namespace) = match (labels.next(), labels.next(), labels.next()) {
            (Some(name), Some(namespace), Some("svc"))
                if !name.is_empty() && !namespace.is_empty() =>
            {
                (Some(name.to_owned()), Some(namespace.to_owned()))
            }
            _ => (None, None),
        };
        Self {
            fqdn: fqdn.to_owned(),
            name,
            namespace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(port: u16, subset: &str, fqdn: &str) -> ClusterName {
        ClusterName::Outbound {
            port,
            subset: subset.into(),
            fqdn: fqdn.into(),
        }
    }

    #[test]
    fn names() {
        let cases = [
            (
                "outbound|9080||reviews.shop.svc.cluster.local",
                outbound(9080, "", "reviews.shop.svc.cluster.local"),
            ),
            (
                "outbound|9080|v2|reviews.shop.svc.cluster.local",
                outbound(9080, "v2", "reviews.shop.svc.cluster.local"),
            ),
            (
                "outbound|443||api.example.com",
                outbound(443, "", "api.example.com"),
            ),
            (
                "outbound_.9080_.v1_.reviews.shop.svc.cluster.local",
                outbound(9080, "v1", "reviews.shop.svc.cluster.local"),
            ),
            ("inbound|9080||", ClusterName::Inbound { port: 9080 }),
            (
                "inbound|9080|http|reviews.shop.svc.cluster.local",
                ClusterName::Inbound { port: 9080 },
            ),
            ("PassthroughCluster", ClusterName::Passthrough),
            ("BlackHoleCluster", ClusterName::BlackHole),
            ("InboundPassthroughCluster", ClusterName::InboundPassthrough),
            (
                "InboundPassthroughClusterIpv4",
                ClusterName::InboundPassthrough,
            ),
            ("", ClusterName::None),
            ("backend", ClusterName::Other("backend".into())),
            (
                "outbound|http|x|y",
                ClusterName::Other("outbound|http|x|y".into()),
            ),
            (
                "outbound|9080||",
                ClusterName::Other("outbound|9080||".into()),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(ClusterName::parse(name), want, "{name}");
        }
    }

    #[test]
    fn service_hosts() {
        let cluster = ClusterName::parse("outbound|9080|v2|reviews.shop.svc.cluster.local");
        assert_eq!(
            cluster.destination().unwrap(),
            "reviews.shop.svc.cluster.local:9080"
        );
        let service = cluster.service().unwrap();
        assert_eq!(service.name.as_deref(), Some("reviews"));
        assert_eq!(service.namespace.as_deref(), Some("shop"));
        let external = ServiceHost::parse("api.example.com");
        assert_eq!(external.name, None);
        assert_eq!(ClusterName::parse("inbound|9080||").destination(), None);
    }
}
