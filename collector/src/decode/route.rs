//! Istio route entry and virtual host names: `default` (no VirtualService), `allow_any`,
//! `block_all`, a VirtualService route name; vhosts `<host>:<port>`, `inbound|http|<port>`.

/// A decoded route entry name (`xds.route_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteName {
    /// No route matched (NR), or the VirtualService route has no name.
    Empty,
    /// `default`: Istio's route for a Service no VirtualService covers.
    Default,
    /// `allow_any`: the passthrough route of ALLOW_ANY mode.
    AllowAny,
    /// `block_all`: REGISTRY_ONLY's route for unknown destinations (a 502 direct response).
    BlockAll,
    /// A VirtualService `http[].name` (plus `.<match name>` when the match is named).
    Named(String),
}

impl RouteName {
    /// Decodes a route name.
    pub fn parse(name: &str) -> Self {
        match name.trim() {
            "" => Self::Empty,
            "default" => Self::Default,
            "allow_any" => Self::AllowAny,
            "block_all" => Self::BlockAll,
            other => Self::Named(other.to_owned()),
        }
    }
}

/// A decoded virtual host name (`xds.virtual_host_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirtualHost {
    /// An outbound service vhost `<host>:<port>`.
    Service {
        /// Host as in the route configuration.
        host: String,
        /// Port, which is also the name of the outbound route configuration.
        port: u16,
    },
    /// The inbound vhost `inbound|http|<port>`.
    Inbound {
        /// The application's port.
        port: u16,
    },
    /// `allow_any`.
    AllowAny,
    /// `block_all` (REGISTRY_ONLY).
    BlockAll,
    /// Empty.
    None,
    /// Anything else (plain Envoy configs).
    Other(String),
}

impl VirtualHost {
    /// Decodes a virtual host name.
    pub fn parse(name: &str) -> Self {
        let name = name.trim();
        match name {
            "" => return Self::None,
            "allow_any" => return Self::AllowAny,
            "block_all" => return Self::BlockAll,
            _ => {}
        }
        if let Some(port) = name.strip_prefix("inbound|http|")
            && let Ok(port) = port.parse()
        {
            return Self::Inbound { port };
        }
        if let Some((host, port)) = name.rsplit_once(':')
            && !host.is_empty()
            && let Ok(port) = port.parse()
        {
            return Self::Service {
                host: host.to_owned(),
                port,
            };
        }
        Self::Other(name.to_owned())
    }

    /// The name of the route configuration that holds this vhost, as `istioctl proxy-config
    /// routes --name` wants it: the port for outbound vhosts, `inbound|<port>||` for inbound.
    pub fn route_config(&self) -> Option<String> {
        match self {
            Self::Service { port, .. } => Some(port.to_string()),
            Self::Inbound { port } => Some(format!("inbound|{port}||")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names() {
        assert_eq!(RouteName::parse(""), RouteName::Empty);
        assert_eq!(RouteName::parse("default"), RouteName::Default);
        assert_eq!(RouteName::parse("allow_any"), RouteName::AllowAny);
        assert_eq!(RouteName::parse("block_all"), RouteName::BlockAll);
        assert_eq!(
            RouteName::parse("reviews-v2.canary"),
            RouteName::Named("reviews-v2.canary".into())
        );
    }

    #[test]
    fn virtual_hosts() {
        let cases = [
            (
                "reviews.shop.svc.cluster.local:9080",
                VirtualHost::Service {
                    host: "reviews.shop.svc.cluster.local".into(),
                    port: 9080,
                },
                Some("9080"),
            ),
            (
                "inbound|http|9080",
                VirtualHost::Inbound { port: 9080 },
                Some("inbound|9080||"),
            ),
            ("allow_any", VirtualHost::AllowAny, None),
            ("block_all", VirtualHost::BlockAll, None),
            ("", VirtualHost::None, None),
            ("backend", VirtualHost::Other("backend".into()), None),
            ("[::1]:x", VirtualHost::Other("[::1]:x".into()), None),
        ];
        for (name, want, config) in cases {
            let vhost = VirtualHost::parse(name);
            assert_eq!(vhost, want, "{name}");
            assert_eq!(vhost.route_config().as_deref(), config, "{name}");
        }
    }
}
