//! Envoy response flags: bit → short name → what it really means (decoded here, not in the filter).

/// One Envoy core response flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagInfo {
    /// Bit index in `response.flags` (the flag is `1 << bit`).
    pub bit: u32,
    /// Envoy's short name, as in access logs (`%RESPONSE_FLAGS%`).
    pub name: &'static str,
    /// One line on what Envoy decided; corrects the usual folk readings (RL, UO, URX, NR).
    pub meaning: &'static str,
}

/// Envoy's core response flags as of 1.40, indexed by bit. Later Envoys may add bits: those are
/// shown as `bit<N>`, never dropped.
pub const FLAGS: [FlagInfo; 30] = [
    flag(0, "LH", "local service failed its health check (503)"),
    flag(1, "UH", "no healthy upstream host in the cluster (503)"),
    flag(
        2,
        "UT",
        "upstream request timeout: route timeout expired (504)",
    ),
    flag(3, "LR", "connection reset locally by Envoy"),
    flag(
        4,
        "UR",
        "upstream remote reset: the upstream reset the stream",
    ),
    flag(
        5,
        "UF",
        "upstream connection failure: could not connect (refused, timeout, TLS handshake)",
    ),
    flag(
        6,
        "UC",
        "upstream connection termination: the upstream closed the connection",
    ),
    flag(
        7,
        "UO",
        "upstream overflow: a circuit breaker limit was reached (503)",
    ),
    flag(
        8,
        "NR",
        "no route matched: Envoy's own 404 (or no filter chain matched a connection)",
    ),
    flag(
        9,
        "DI",
        "request delayed by fault injection (also on successes)",
    ),
    flag(10, "FI", "request aborted by fault injection"),
    flag(
        11,
        "RL",
        "rate limited by the local or global rate limit filter (429 by default)",
    ),
    flag(
        12,
        "UAEX",
        "denied by the external authorization service (ext_authz)",
    ),
    flag(13, "RLSE", "rejected because the rate limit service failed"),
    flag(
        14,
        "DC",
        "downstream connection termination: the client went away before the response",
    ),
    flag(
        15,
        "URX",
        "upstream retry limit exceeded: retries exhausted, the last attempt failed",
    ),
    flag(16, "SI", "stream idle timeout"),
    flag(
        17,
        "IH",
        "invalid Envoy request headers: strict header check failed (400)",
    ),
    flag(
        18,
        "DPE",
        "downstream protocol error: malformed request from the client",
    ),
    flag(19, "UMSDR", "upstream max stream duration reached"),
    flag(
        20,
        "RFCF",
        "response served from Envoy's cache filter (also on successes)",
    ),
    flag(
        21,
        "NFCF",
        "no filter config found: a discovered (ECDS) filter config is missing",
    ),
    flag(22, "DT", "max connection or downstream duration exceeded"),
    flag(
        23,
        "UPE",
        "upstream protocol error: malformed response from the upstream",
    ),
    flag(
        24,
        "NC",
        "no cluster: the route names a cluster Envoy does not have (503)",
    ),
    flag(25, "OM", "terminated by the overload manager"),
    flag(26, "DF", "DNS resolution of the upstream failed"),
    flag(
        27,
        "DO",
        "dropped by the cluster's drop_overload setting (503)",
    ),
    flag(
        28,
        "DR",
        "downstream remote reset: the client reset the stream",
    ),
    flag(29, "UDO", "dropped unconditionally by drop_overload (503)"),
];

const fn flag(bit: u32, name: &'static str, meaning: &'static str) -> FlagInfo {
    FlagInfo { bit, name, meaning }
}

/// The flag at `bit`, when Envoy 1.40 defines one.
pub fn info(bit: u32) -> Option<&'static FlagInfo> {
    FLAGS.get(usize::try_from(bit).ok()?)
}

/// Short names of the set bits, lowest bit first; bits Envoy 1.40 does not define are kept as
/// `bit<N>` so a newer Envoy's flags are never silently lost.
pub fn names(bits: u64) -> Vec<String> {
    (0..u64::BITS)
        .filter(|bit| bits & (1u64 << bit) != 0)
        .map(|bit| match info(bit) {
            Some(flag) => flag.name.to_owned(),
            None => format!("bit{bit}"),
        })
        .collect()
}

/// The bit mask (`1 << bit`) for a short name such as `UF` or `urx`, or `bit<N>` for any bit
/// 0..=63. `None` for anything else.
pub fn parse(name: &str) -> Option<u64> {
    let name = name.trim();
    if let Some(flag) = FLAGS
        .iter()
        .find(|flag| flag.name.eq_ignore_ascii_case(name))
    {
        return Some(1u64 << flag.bit);
    }
    let digits = name
        .get(..3)
        .filter(|prefix| prefix.eq_ignore_ascii_case("bit"))
        .and_then(|_| name.get(3..))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bit: u32 = digits.parse().ok()?;
    1u64.checked_shl(bit).filter(|_| bit < u64::BITS)
}

/// All known short names, comma separated: for error messages that list what is valid.
pub fn valid_names() -> String {
    FLAGS
        .iter()
        .map(|flag| flag.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED: [&str; 30] = [
        "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
        "DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF",
        "DO", "DR", "UDO",
    ];

    #[test]
    fn every_bit_has_its_envoy_name() {
        for (bit, name) in EXPECTED.iter().enumerate() {
            let bit = u32::try_from(bit).unwrap();
            assert_eq!(FLAGS[bit as usize].bit, bit);
            assert_eq!(FLAGS[bit as usize].name, *name);
            assert_eq!(names(1 << bit), vec![name.to_string()]);
            assert_eq!(parse(name), Some(1 << bit));
            assert_eq!(parse(&name.to_lowercase()), Some(1 << bit));
            assert!(!FLAGS[bit as usize].meaning.is_empty());
        }
    }

    #[test]
    fn folk_errors_are_corrected() {
        assert!(FLAGS[11].meaning.contains("rate limit"));
        assert!(FLAGS[7].meaning.contains("circuit breaker"));
        assert!(FLAGS[15].meaning.contains("retries exhausted"));
        assert!(FLAGS[8].meaning.contains("Envoy's own 404"));
    }

    #[test]
    fn several_bits_lowest_first() {
        assert_eq!(names((1 << 5) | (1 << 15)), vec!["UF", "URX"]);
        assert!(names(0).is_empty());
    }

    #[test]
    fn unknown_bits_are_kept_raw() {
        assert_eq!(names(1 << 30), vec!["bit30"]);
        assert_eq!(names((1 << 63) | 1), vec!["LH", "bit63"]);
        assert_eq!(names(u64::MAX).len(), 64);
        assert_eq!(parse("bit30"), Some(1 << 30));
        assert_eq!(parse("BIT5"), Some(1 << 5));
        assert_eq!(parse("bit63"), Some(1 << 63));
    }

    #[test]
    fn parse_rejects_unknown_names() {
        for bad in ["", "XX", "bit", "bit64", "bit-1", "bitx", "U F"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn valid_names_lists_all() {
        let list = valid_names();
        assert!(list.starts_with("LH, UH"));
        assert!(list.ends_with("DR, UDO"));
    }
}
