//! Proxy identity: decodes `xds.node` (a serialized `envoy.config.core.v3.Node`, read once at
//! configure time) into the `ProxyIdentity` every batch carries.

use meshwhy_proto::v1::ProxyIdentity;
use prost::Message;

use crate::record::Struct;

/// `envoy.config.core.v3.Node`, only the fields meshwhy reads; the rest are skipped.
#[derive(Clone, PartialEq, Message)]
struct Node {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    cluster: String,
    #[prost(message, optional, tag = "3")]
    metadata: Option<Struct>,
    #[prost(message, optional, tag = "8")]
    user_agent_build_version: Option<BuildVersion>,
}

/// `envoy.config.core.v3.BuildVersion`.
#[derive(Clone, PartialEq, Message)]
struct BuildVersion {
    #[prost(message, optional, tag = "1")]
    version: Option<SemanticVersion>,
}

/// `envoy.type.v3.SemanticVersion`.
#[derive(Clone, PartialEq, Message)]
struct SemanticVersion {
    #[prost(uint32, tag = "1")]
    major_number: u32,
    #[prost(uint32, tag = "2")]
    minor_number: u32,
    #[prost(uint32, tag = "3")]
    patch: u32,
}

/// Why `xds.node` could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeError {
    /// The host did not return the property.
    #[error("xds.node is not available")]
    Missing,
    /// The bytes are not a Node message.
    #[error("xds.node does not decode as an envoy.config.core.v3.Node")]
    Malformed,
}

fn metadata_string(metadata: Option<&Struct>, key: &str) -> Option<String> {
    metadata?.string(key).map(str::to_owned)
}

/// Pod and namespace from an Istio node id `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`
/// (also `router~…` for gateways).
pub fn parse_node_id(node_id: &str) -> Option<(String, String)> {
    let mut parts = node_id.split('~');
    let (_kind, _ip, pod_ns, _domain) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (pod, namespace) = pod_ns.split_once('.')?;
    if pod.is_empty() {
        return None;
    }
    Some((pod.to_owned(), namespace.to_owned()))
}

/// Builds the identity from serialized `xds.node`. Without Istio metadata (plain Envoy) the pod
/// is the node id and the workload the node's cluster (`--service-cluster`).
/// `instance_id`, `plugin_name` and `filter_version` are the caller's.
pub fn identity_from_node(bytes: Option<&[u8]>) -> Result<ProxyIdentity, NodeError> {
    let bytes = bytes.ok_or(NodeError::Missing)?;
    let node = Node::decode(bytes).map_err(|_| NodeError::Malformed)?;
    let metadata = node.metadata.as_ref();
    let parsed = parse_node_id(&node.id);
    let pod = metadata_string(metadata, "NAME")
        .or_else(|| parsed.as_ref().map(|(pod, _)| pod.clone()))
        .unwrap_or_else(|| node.id.clone());
    let namespace = metadata_string(metadata, "NAMESPACE")
        .or_else(|| parsed.as_ref().map(|(_, ns)| ns.clone()))
        .unwrap_or_default();
    let workload =
        metadata_string(metadata, "WORKLOAD_NAME").unwrap_or_else(|| node.cluster.clone());
    let labels = match metadata
        .and_then(|m| m.get("LABELS"))
        .and_then(|v| v.struct_value.as_deref())
    {
        Some(labels) => labels
            .fields
            .iter()
            .filter_map(|e| Some((e.key.clone(), e.value.as_ref()?.string_value.clone()?)))
            .collect(),
        None => Default::default(),
    };
    let envoy_version = node
        .user_agent_build_version
        .and_then(|b| b.version)
        .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
        .unwrap_or_default();
    Ok(ProxyIdentity {
        node_id: node.id,
        pod,
        namespace,
        workload,
        labels,
        istio_version: metadata_string(metadata, "ISTIO_VERSION").unwrap_or_default(),
        envoy_version,
        cluster_id: metadata_string(metadata, "CLUSTER_ID").unwrap_or_default(),
        mesh_id: metadata_string(metadata, "MESH_ID").unwrap_or_default(),
        service_account: metadata_string(metadata, "SERVICE_ACCOUNT").unwrap_or_default(),
        ..Default::default()
    })
}

/// Formats an instance id as 16 hex digits.
pub fn format_instance_id(id: u64) -> String {
    format!("{id:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use crate::record::tests::{entry, string_struct};

    fn node(
        id: &str,
        cluster: &str,
        metadata: Option<Struct>,
        version: Option<(u32, u32, u32)>,
    ) -> Vec<u8> {
        Node {
            id: id.into(),
            cluster: cluster.into(),
            metadata,
            user_agent_build_version: version.map(|(major_number, minor_number, patch)| {
                BuildVersion {
                    version: Some(SemanticVersion {
                        major_number,
                        minor_number,
                        patch,
                    }),
                }
            }),
        }
        .encode_to_vec()
    }

    fn istio_metadata() -> Struct {
        let mut metadata = string_struct(&[
            ("NAME", "reviews-v1-5d8c"),
            ("NAMESPACE", "bookinfo"),
            ("WORKLOAD_NAME", "reviews-v1"),
            ("ISTIO_VERSION", "1.28.0"),
            ("CLUSTER_ID", "Kubernetes"),
            ("MESH_ID", "cluster.local"),
            ("SERVICE_ACCOUNT", "bookinfo-reviews"),
        ]);
        let labels = string_struct(&[("app", "reviews"), ("version", "v1")]);
        metadata.fields.push(entry(
            "LABELS",
            Value {
                string_value: None,
                struct_value: Some(Box::new(labels)),
            },
        ));
        Struct {
            fields: metadata.fields,
        }
    }

    #[test]
    fn istio_sidecar_identity() {
        let bytes = node(
            "sidecar~10.0.0.7~reviews-v1-5d8c.bookinfo~bookinfo.svc.cluster.local",
            "reviews.bookinfo",
            Some(istio_metadata()),
            Some((1, 40, 0)),
        );
        let identity = identity_from_node(Some(&bytes)).expect("decodes");
        assert_eq!(
            identity.node_id,
            "sidecar~10.0.0.7~reviews-v1-5d8c.bookinfo~bookinfo.svc.cluster.local"
        );
        assert_eq!(identity.pod, "reviews-v1-5d8c");
        assert_eq!(identity.namespace, "bookinfo");
        assert_eq!(identity.workload, "reviews-v1");
        assert_eq!(identity.istio_version, "1.28.0");
        assert_eq!(identity.envoy_version, "1.40.0");
        assert_eq!(identity.cluster_id, "Kubernetes");
        assert_eq!(identity.mesh_id, "cluster.local");
        assert_eq!(identity.service_account, "bookinfo-reviews");
        assert_eq!(
            identity.labels.get("app").map(String::as_str),
            Some("reviews")
        );
        assert_eq!(
            identity.labels.get("version").map(String::as_str),
            Some("v1")
        );
    }

    #[test]
    fn pod_and_namespace_fall_back_to_the_node_id() {
        let bytes = node(
            "sidecar~10.0.0.7~ratings-7f9.shop~shop.svc.cluster.local",
            "",
            None,
            None,
        );
        let identity = identity_from_node(Some(&bytes)).expect("decodes");
        assert_eq!(identity.pod, "ratings-7f9");
        assert_eq!(identity.namespace, "shop");
        assert_eq!(identity.envoy_version, "");
    }

    #[test]
    fn plain_envoy_still_has_an_identity() {
        let bytes = node("edge-1", "edge", None, Some((1, 40, 0)));
        let identity = identity_from_node(Some(&bytes)).expect("decodes");
        assert_eq!(identity.node_id, "edge-1");
        assert_eq!(identity.pod, "edge-1");
        assert_eq!(identity.namespace, "");
        assert_eq!(identity.workload, "edge");
        assert_eq!(identity.envoy_version, "1.40.0");
        assert!(identity.labels.is_empty());
    }

    #[test]
    fn unknown_node_fields_are_skipped() {
        // user_agent_name (6) and client_features (10) are not declared.
        let mut bytes = node("n", "c", None, Some((1, 2, 3)));
        bytes.extend_from_slice(&[0x32, 5, b'e', b'n', b'v', b'o', b'y', 0x52, 1, b'x']);
        let identity = identity_from_node(Some(&bytes)).expect("decodes");
        assert_eq!(identity.envoy_version, "1.2.3");
    }

    #[test]
    fn missing_or_malformed_node() {
        assert_eq!(identity_from_node(None), Err(NodeError::Missing));
        assert!(matches!(
            identity_from_node(Some(&[0xff, 0xff])),
            Err(NodeError::Malformed)
        ));
    }

    #[test]
    fn node_id_parsing() {
        assert_eq!(
            parse_node_id(
                "router~10.0.0.1~istio-ingressgateway-abc.istio-system~istio-system.svc.cluster.local"
            ),
            Some(("istio-ingressgateway-abc".into(), "istio-system".into()))
        );
        assert_eq!(parse_node_id("edge-1"), None);
        assert_eq!(parse_node_id("a~b~nodot~d"), None);
        assert_eq!(parse_node_id("a~b~.ns~d"), None);
    }

    #[test]
    fn instance_ids_are_16_hex_digits() {
        assert_eq!(format_instance_id(0xab), "00000000000000ab");
        assert_eq!(format_instance_id(u64::MAX).len(), 16);
    }
}
