//! The mesh's certificate authority, made at test time (nothing is committed): a root CA and one
//! workload certificate per service account with the SPIFFE identity Istio gives it
//! (`spiffe://cluster.local/ns/<ns>/sa/<sa>`), as PEM text to inline into Envoy's TLS contexts.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::{collections::HashMap, sync::Mutex};

/// The mesh's trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// The SPIFFE id Istio gives a service account.
pub fn spiffe_id(namespace: &str, service_account: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}")
}

/// A workload's certificate and key, PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
    pub spiffe_id: String,
    /// The leaf certificate (signed by the mesh root).
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// The mesh root CA; issues (and remembers) one identity per service account.
pub struct Pki {
    root: Certificate,
    root_key: KeyPair,
    /// The root certificate, PEM (every sidecar trusts it).
    pub root_pem: String,
    issued: Mutex<HashMap<String, Identity>>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// A fresh root CA.
    pub fn new() -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::OrganizationName, TRUST_DOMAIN);
        params
            .distinguished_name
            .push(DnType::CommonName, "meshwhy lab root CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let root_key = KeyPair::generate().context("generate the root CA key")?;
        let root = params
            .self_signed(&root_key)
            .context("self-sign the root CA")?;
        let root_pem = root.pem();
        Ok(Self {
            root,
            root_key,
            root_pem,
            issued: Mutex::new(HashMap::new()),
        })
    }

    /// The identity of `namespace/service_account`, issued on first use.
    pub fn identity(&self, namespace: &str, service_account: &str) -> Result<Identity> {
        let spiffe_id = spiffe_id(namespace, service_account);
        let mut issued = self
            .issued
            .lock()
            .map_err(|_| anyhow::anyhow!("the PKI lock is poisoned"))?;
        if let Some(identity) = issued.get(&spiffe_id) {
            return Ok(identity.clone());
        }
        // Like istiod's workload certificates: no subject, the SPIFFE id as the only (URI) SAN,
        // usable for both ends of a connection.
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = vec![SanType::URI(spiffe_id.as_str().try_into()?)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().context("generate a workload key")?;
        let cert = params
            .signed_by(&key, &self.root, &self.root_key)
            .with_context(|| format!("sign the certificate of {spiffe_id}"))?;
        let identity = Identity {
            spiffe_id: spiffe_id.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        issued.insert(spiffe_id, identity.clone());
        Ok(identity)
    }
}
