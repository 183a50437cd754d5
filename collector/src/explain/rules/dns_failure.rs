//! `dns_failure`: DF — resolving the upstream's name failed (STRICT_DNS/LOGICAL_DNS clusters,
//! i.e. ServiceEntries with `resolution: DNS`, or dynamic forward proxy).

use super::{Diagnosis, Rule, authority_host, bits, code, subject};
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct DnsFailure;

impl Rule for DnsFailure {
    fn cause(&self) -> Cause {
        Cause::DnsFailure
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if !group.has(bits::DF) {
            return None;
        }
        let host = match group.cluster.service() {
            Some(service) => service.fqdn,
            None => authority_host(group).to_owned(),
        };
        let mut next = Next::new(group, context);
        let lookup = format!(
            "kubectl run dnscheck -n {} --rm -it --restart=Never --image=busybox -- nslookup {host}",
            next.pod().namespace
        );
        next.clusters_or(&host)
            .list("serviceentry", None)
            .push(lookup);
        Some(
            Diagnosis::new(
                format!(
                    "{}: DNS resolution of {host} failed, so Envoy answered {} (DF)",
                    subject(group),
                    code(group)
                ),
                Confidence::High,
            )
            .resource(Some(Resource::hint(format!(
                "the ServiceEntry for {host} (resolution: DNS) or the name itself"
            ))))
            .commands(next),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        let mut record = outbound(503, "DF", "");
        record.cluster = "outbound|443||api.example.com".into();
        let diagnosis = check(&DnsFailure, client(), record).unwrap();
        assert!(
            diagnosis
                .title
                .contains("DNS resolution of api.example.com failed")
        );
        assert!(check(&DnsFailure, client(), outbound(503, "UF", "")).is_none());
    }
}
