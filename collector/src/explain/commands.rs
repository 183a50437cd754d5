//! Next commands with the real names filled in: the pod and namespace of the recording proxy
//! (`<pod>.<ns>`, as istioctl wants it), cluster names, hosts, subsets, route configurations.
//! Unknown names stay visible placeholders (`<pod>`), never a guess.

use meshwhy_proto::v1::ProxyIdentity;

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
