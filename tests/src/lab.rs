//! The mesh lab: a tiny Istio mesh on one machine. A [`model::Mesh`] (Services, workloads,
//! VirtualServices, DestinationRules, AuthorizationPolicies, REGISTRY_ONLY, STRICT mTLS) is
//! rendered into Envoy bootstraps shaped exactly like istiod's sidecar output
//! ([`render`]), started as real Envoys with the meshwhy filter ([`mesh::MeshLab`]), and driven
//! through the classic Istio failures ([`scenarios`]); [`observe`] reads back what each sidecar
//! recorded. The e2e tests and the demo share all of it.

pub mod mesh;
pub mod model;
pub mod observe;
pub mod pki;
pub mod render;
pub mod scenarios;
