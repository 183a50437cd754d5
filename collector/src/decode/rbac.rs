//! Istio RBAC policy ids as they appear in `rbac_access_denied_matched_policy[<id>]`:
//! `ns[<ns>]-policy[<name>]-rule[<n>]`, or `none` when ALLOW policies exist and none matched.

/// The policy an RBAC decision names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RbacPolicy {
    /// An Istio AuthorizationPolicy rule (a DENY policy matched, or — for a `[none]`-less deny —
    /// the rule that decided).
    Istio {
        /// Namespace of the AuthorizationPolicy.
        namespace: String,
        /// Its name.
        name: String,
        /// Index of the rule within the policy.
        rule: Option<u32>,
    },
    /// `none`: ALLOW policies apply to the workload and none of them matched the request.
    NoneMatched,
    /// A policy id in another syntax (a hand-written Envoy RBAC config); kept raw.
    Other(String),
}

impl RbacPolicy {
    /// Decodes a policy id; `none` (any case) is [`RbacPolicy::NoneMatched`].
    pub fn parse(id: &str) -> Self {
        let id = id.trim();
        if id.eq_ignore_ascii_case("none") {
            return Self::NoneMatched;
        }
        Self::parse_istio(id).unwrap_or_else(|| Self::Other(id.to_owned()))
    }

    fn parse_istio(id: &str) -> Option<Self> {
        let rest = id.strip_prefix("ns[")?;
        let (namespace, rest) = rest.split_once("]-policy[")?;
        let (name, rule) = match rest.rsplit_once("]-rule[") {
            Some((name, rule)) => (name, rule.trim_end_matches(']').parse().ok()),
            None => (rest.trim_end_matches(']'), None),
        };
        (!namespace.is_empty() && !name.is_empty()).then(|| Self::Istio {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let istio = |namespace: &str, name: &str, rule| RbacPolicy::Istio {
            namespace: namespace.into(),
            name: name.into(),
            rule,
        };
        let cases = [
            (
                "ns[shop]-policy[deny-admin]-rule[0]",
                istio("shop", "deny-admin", Some(0)),
            ),
            (
                "ns[istio-system]-policy[global.deny]-rule[12]",
                istio("istio-system", "global.deny", Some(12)),
            ),
            (
                "ns[shop]-policy[deny-admin]",
                istio("shop", "deny-admin", None),
            ),
            ("none", RbacPolicy::NoneMatched),
            ("NONE", RbacPolicy::NoneMatched),
            (
                "my-envoy-policy",
                RbacPolicy::Other("my-envoy-policy".into()),
            ),
            (
                "ns[]-policy[x]-rule[0]",
                RbacPolicy::Other("ns[]-policy[x]-rule[0]".into()),
            ),
        ];
        for (id, want) in cases {
            assert_eq!(RbacPolicy::parse(id), want, "{id}");
        }
    }
}
