//! Next commands with the real names filled in: the pod and namespace of the recording proxy
//! (`<pod>.<ns>`, as istioctl wants it), cluster names, hosts, subsets, route configurations.
//! Unknown names stay visible placeholders (`<pod>`), never a guess.

use meshwhy_proto::v1::ProxyIdentity;

use super::finding::Resource;
use super::group::{Context, Group};
use crate::decode::{ClusterName, ServiceHost};

/// Placeholder for an unknown pod.
const UNKNOWN_POD: &str = "<pod>";
/// Placeholder for an unknown namespace.
const UNKNOWN_NAMESPACE: &str = "<namespace>";

/// A pod to point commands at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pod {
    pub(crate) name: String,
    pub(crate) namespace: String,
}

impl Pod {
    pub(crate) fn of(proxy: &ProxyIdentity) -> Self {
        Self {
            name: non_empty(&proxy.pod, UNKNOWN_POD),
            namespace: non_empty(&proxy.namespace, UNKNOWN_NAMESPACE),
        }
    }

    /// `<pod>.<ns>`: istioctl's proxy name.
    pub(crate) fn proxy(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

fn non_empty(value: &str, placeholder: &str) -> String {
    if value.is_empty() {
        placeholder.to_owned()
    } else {
        value.to_owned()
    }
}

/// The recording proxy's pod.
pub(crate) fn recorder(group: &Group<'_>) -> Pod {
    Pod::of(group.proxy())
}

/// The server pod of an outbound group, when its upstream host is another reporting sidecar
/// (never the recording pod itself, see [`Context::server_for`]).
pub(crate) fn server(group: &Group<'_>, context: &Context<'_>) -> Option<Pod> {
    group
        .upstream_hosts
        .iter()
        .find_map(|host| context.server_for(group.proxy(), host))
        .map(Pod::of)
}

/// The destination Service of an outbound group, when its cluster host is a Service name.
pub(crate) fn service(group: &Group<'_>) -> Option<ServiceHost> {
    group.cluster.service()
}

pub(crate) fn proxy_status(pod: &Pod) -> String {
    format!("istioctl proxy-status {}", pod.proxy())
}

pub(crate) fn routes(pod: &Pod, route_config: Option<&str>) -> String {
    match route_config {
        Some(name) => format!(
            "istioctl proxy-config routes {} --name {name} -o json",
            pod.proxy()
        ),
        None => format!("istioctl proxy-config routes {} -o json", pod.proxy()),
    }
}

/// `istioctl proxy-config clusters` for the group's cluster (fqdn and subset) or, failing that,
/// for `fqdn`.
pub(crate) fn clusters(pod: &Pod, cluster: &ClusterName, fallback_host: &str) -> String {
    match cluster {
        ClusterName::Outbound { fqdn, subset, .. } if !subset.is_empty() => format!(
            "istioctl proxy-config clusters {} --fqdn {fqdn} --subset {subset} -o json",
            pod.proxy()
        ),
        ClusterName::Outbound { fqdn, .. } => {
            format!(
                "istioctl proxy-config clusters {} --fqdn {fqdn} -o json",
                pod.proxy()
            )
        }
        _ if !fallback_host.is_empty() => format!(
            "istioctl proxy-config clusters {} --fqdn {fallback_host}",
            pod.proxy()
        ),
        _ => format!("istioctl proxy-config clusters {}", pod.proxy()),
    }
}

pub(crate) fn endpoints(pod: &Pod, cluster: &str) -> String {
    // A line that did not carry the cluster leaves a placeholder, never an empty name.
    let cluster = if cluster.is_empty() {
        "<cluster>"
    } else {
        cluster
    };
    format!(
        "istioctl proxy-config endpoints {} --cluster \"{cluster}\"",
        pod.proxy()
    )
}

pub(crate) fn listeners(pod: &Pod) -> String {
    format!("istioctl proxy-config listeners {} -o json", pod.proxy())
}

pub(crate) fn describe_pod(pod: &Pod) -> String {
    format!("istioctl x describe pod {} -n {}", pod.name, pod.namespace)
}

pub(crate) fn authz_check(pod: &Pod) -> String {
    format!("istioctl x authz check {}", pod.proxy())
}

pub(crate) fn network_policies(namespace: &str) -> String {
    format!("kubectl get networkpolicy -n {namespace}")
}

/// The app's logs: no `-c`, because Istio's injector sets `kubectl.kubernetes.io/default-container`
/// to the app container.
pub(crate) fn app_logs(pod: &Pod) -> String {
    format!("kubectl logs {} -n {} --tail=200", pod.name, pod.namespace)
}

pub(crate) fn service_logs(service: &ServiceHost) -> Option<String> {
    Some(format!(
        "kubectl logs -n {} -l app={} --tail=200 --prefix",
        service.namespace.as_deref()?,
        service.name.as_deref()?
    ))
}

pub(crate) fn proxy_logs(pod: &Pod, pattern: &str) -> String {
    format!(
        "kubectl logs {} -n {} -c istio-proxy --tail=500 | grep -iE '{pattern}'",
        pod.name, pod.namespace
    )
}

pub(crate) fn proxy_stats(pod: &Pod, pattern: &str) -> String {
    format!(
        "kubectl exec {} -n {} -c istio-proxy -- pilot-agent request GET stats | grep -E '{pattern}'",
        pod.name, pod.namespace
    )
}

/// `kubectl get <kind> <name> -n <ns> -o yaml`.
pub(crate) fn get_yaml(kind: &str, name: &str, namespace: &str) -> String {
    format!("kubectl get {kind} {name} -n {namespace} -o yaml")
}

/// `kubectl get <kind> -n <ns>` (or `-A` without a namespace).
pub(crate) fn list(kind: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("kubectl get {kind} -n {namespace}"),
        None => format!("kubectl get {kind} -A"),
    }
}

pub(crate) fn endpoint_slices(service: &ServiceHost) -> Option<String> {
    Some(format!(
        "kubectl get endpointslices -n {} -l kubernetes.io/service-name={} -o wide",
        service.namespace.as_deref()?,
        service.name.as_deref()?
    ))
}

pub(crate) fn service_yaml(service: &ServiceHost) -> Option<String> {
    Some(get_yaml(
        "service",
        service.name.as_deref()?,
        service.namespace.as_deref()?,
    ))
}

/// The next-command block of a group's finding: the recording pod resolved once, the commands in
/// order without repeats, and the steps rules share (the implicated resource, the upstream's
/// logs, the proxy's routes, clusters and endpoints for this group) so each rule says only which
/// steps, in which order.
pub(crate) struct Next<'g, 'a> {
    group: &'g Group<'a>,
    context: &'g Context<'a>,
    pod: Pod,
    commands: Commands,
}

impl<'g, 'a> Next<'g, 'a> {
    /// An empty block for `group`, pointed at its recording pod.
    pub(crate) fn new(group: &'g Group<'a>, context: &'g Context<'a>) -> Self {
        Self {
            group,
            context,
            pod: recorder(group),
            commands: Commands::new(),
        }
    }

    /// The recording proxy's pod.
    pub(crate) fn pod(&self) -> &Pod {
        &self.pod
    }

    /// Any command, once.
    pub(crate) fn push(&mut self, command: impl Into<String>) -> &mut Self {
        self.commands.push(command);
        self
    }

    /// A command when there is one.
    pub(crate) fn push_opt(&mut self, command: Option<String>) -> &mut Self {
        self.commands.push_opt(command);
        self
    }

    /// `kubectl get` of the implicated resource, when it is named.
    pub(crate) fn resource(&mut self, resource: &Resource) -> &mut Self {
        self.push_opt(super::rules::get_resource(resource))
    }

    /// The upstream app's logs: the server pod's when a reporting sidecar is at the upstream
    /// host, else the pods of the destination Service.
    pub(crate) fn upstream_logs(&mut self) -> &mut Self {
        match server(self.group, self.context) {
            Some(server) => self.push(app_logs(&server)),
            None => self.push_opt(service(self.group).as_ref().and_then(service_logs)),
        }
    }

    /// The recording pod's own app logs.
    pub(crate) fn recorder_logs(&mut self) -> &mut Self {
        let command = app_logs(&self.pod);
        self.push(command)
    }

    /// The route configuration this group's vhost lives in.
    pub(crate) fn routes(&mut self) -> &mut Self {
        let command = routes(&self.pod, super::rules::route_config(self.group).as_deref());
        self.push(command)
    }

    /// The group's cluster (`fallback_host` when the group has none).
    pub(crate) fn clusters_or(&mut self, fallback_host: &str) -> &mut Self {
        let command = clusters(&self.pod, &self.group.cluster, fallback_host);
        self.push(command)
    }

    /// The group's cluster.
    pub(crate) fn clusters(&mut self) -> &mut Self {
        self.clusters_or("")
    }

    /// The endpoints of the group's cluster.
    pub(crate) fn endpoints(&mut self) -> &mut Self {
        let command = endpoints(&self.pod, &self.group.record().cluster);
        self.push(command)
    }

    /// Whether the recording proxy's config is in sync with istiod.
    pub(crate) fn proxy_status(&mut self) -> &mut Self {
        let command = proxy_status(&self.pod);
        self.push(command)
    }

    /// The recording proxy's listeners.
    pub(crate) fn listeners(&mut self) -> &mut Self {
        let command = listeners(&self.pod);
        self.push(command)
    }

    /// `istioctl x describe pod` of the recording pod.
    pub(crate) fn describe(&mut self) -> &mut Self {
        let command = describe_pod(&self.pod);
        self.push(command)
    }

    /// `istioctl x describe pod` of the server pod, when it is known.
    pub(crate) fn describe_server(&mut self) -> &mut Self {
        let command = server(self.group, self.context).map(|pod| describe_pod(&pod));
        self.push_opt(command)
    }

    /// The authorization policies that apply to the recording pod.
    pub(crate) fn authz_check(&mut self) -> &mut Self {
        let command = authz_check(&self.pod);
        self.push(command)
    }

    /// `kubectl get <kind>` in `namespace`, or in every namespace.
    pub(crate) fn list(&mut self, kind: &str, namespace: Option<&str>) -> &mut Self {
        self.push(list(kind, namespace))
    }

    /// `kubectl get <kind>` in the recording pod's namespace.
    pub(crate) fn list_here(&mut self, kind: &str) -> &mut Self {
        let command = list(kind, Some(&self.pod.namespace));
        self.push(command)
    }

    /// The recording sidecar's own log lines matching `pattern`.
    pub(crate) fn proxy_logs(&mut self, pattern: &str) -> &mut Self {
        let command = proxy_logs(&self.pod, pattern);
        self.push(command)
    }

    /// The recording sidecar's stats matching `pattern`.
    pub(crate) fn proxy_stats(&mut self, pattern: &str) -> &mut Self {
        let command = proxy_stats(&self.pod, pattern);
        self.push(command)
    }

    /// The commands, in order.
    pub(crate) fn into_vec(self) -> Vec<String> {
        self.commands.into_vec()
    }
}

/// Ordered commands without repeats.
#[derive(Debug, Default)]
pub(crate) struct Commands(Vec<String>);

impl Commands {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, command: impl Into<String>) -> &mut Self {
        let command = command.into();
        if !self.0.contains(&command) {
            self.0.push(command);
        }
        self
    }

    pub(crate) fn push_opt(&mut self, command: Option<String>) -> &mut Self {
        if let Some(command) = command {
            self.push(command);
        }
        self
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_filled_in_or_visible_placeholders() {
        let pod = Pod::of(&ProxyIdentity {
            pod: "productpage-v1-7d9c".into(),
            namespace: "shop".into(),
            ..Default::default()
        });
        assert_eq!(
            endpoints(&pod, "outbound|9080||reviews.shop.svc.cluster.local"),
            "istioctl proxy-config endpoints productpage-v1-7d9c.shop --cluster \"outbound|9080||reviews.shop.svc.cluster.local\""
        );
        let cluster = ClusterName::parse("outbound|9080|v2|reviews.shop.svc.cluster.local");
        assert_eq!(
            clusters(&pod, &cluster, ""),
            "istioctl proxy-config clusters productpage-v1-7d9c.shop --fqdn reviews.shop.svc.cluster.local --subset v2 -o json"
        );
        assert_eq!(
            routes(&pod, Some("9080")),
            "istioctl proxy-config routes productpage-v1-7d9c.shop --name 9080 -o json"
        );
        let unknown = Pod::of(&ProxyIdentity::default());
        assert_eq!(
            proxy_status(&unknown),
            "istioctl proxy-status <pod>.<namespace>"
        );
        let mut commands = Commands::new();
        commands.push("a").push("b").push("a");
        assert_eq!(commands.into_vec(), ["a", "b"]);
    }
}
