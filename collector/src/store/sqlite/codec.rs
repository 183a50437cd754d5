//! How records are laid out in a batch row: one after the other, each as the dictionary ids of
//! its low-cardinality strings (one varint each, in a fixed field order), then the length and
//! protobuf encoding of the rest (those fields emptied).
//!
//! Why this shape: the strings that repeat across records (cluster, route, vhost, provenance
//! paths, upstream host, details, SPIFFE ids, …) are most of a record's bytes and take a few
//! hundred distinct values in a mesh, so each is stored once in `strings` and a record carries
//! ~1–2 bytes per field; the per-request strings (request id, path, authority, trace id,
//! source address) stay in the protobuf body, where empty fields cost nothing. The body keeps
//! the schema stable as the record message grows (prost skips fields it does not know, and
//! fields added later simply decode), while the columns SQL filters on (time, code, flags,
//! request id hash, sender) are plain integers beside it. Pod, namespace and workload live in
//! the sender's identity row, once per identity.

use meshwhy_proto::v1::DecisionRecord;
use prost::Message;

/// Number of interned fields; the order of [`interned_fields`] is part of the file format.
const INTERNED: usize = 17;

/// The record's interned fields, in file-format order. Only fields whose values come from
/// configuration or topology belong here (the dictionary is never pruned).
fn interned_fields(record: &mut DecisionRecord) -> [&mut String; INTERNED] {
    [
        &mut record.method,
        &mut record.response_code_details,
        &mut record.transport_failure_reason,
        &mut record.route_name,
        &mut record.virtual_host,
        &mut record.cluster,
        &mut record.upstream_host,
        &mut record.downstream_peer_principal,
        &mut record.upstream_tls_version,
        &mut record.upstream_peer_principal,
        &mut record.route_provenance,
        &mut record.cluster_provenance,
        &mut record.cluster_subset,
        &mut record.endpoint_tls_mode,
        &mut record.origin,
        &mut record.protocol,
        &mut record.requested_server_name,
    ]
}

/// The string dictionary as held in memory: id → value and value → id. Id 0 is the empty
/// string and is never stored.
#[derive(Debug)]
pub(super) struct Strings {
    values: Vec<String>,
    ids: crate::explain::hash::FxHashMap<String, u64>,
}

/// A row's record could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CorruptRecord {
    /// The protobuf body does not parse.
    #[error("record body: {0}")]
    Body(#[from] prost::DecodeError),
    /// The dictionary ids are truncated or name a string that does not exist.
    #[error("record string ids are damaged")]
    Strings,
}

impl Strings {
    /// The dictionary rebuilt from `(id, value)` rows.
    pub(super) fn load(rows: impl IntoIterator<Item = (u64, String)>) -> Self {
        let mut strings = Self {
            values: vec![String::new()],
            ids: Default::default(),
        };
        for (id, value) in rows {
            let index = id as usize;
            if strings.values.len() <= index {
                strings.values.resize(index + 1, String::new());
            }
            strings.ids.insert(value.clone(), id);
            strings.values[index] = value;
        }
        strings
    }

    /// The id of `value`, and whether it is new (the caller stores new ones).
    fn intern(&mut self, value: &str) -> (u64, bool) {
        if value.is_empty() {
            return (0, false);
        }
        if let Some(&id) = self.ids.get(value) {
            return (id, false);
        }
        let id = self.values.len() as u64;
        self.values.push(value.to_owned());
        self.ids.insert(value.to_owned(), id);
        (id, true)
    }

    fn value(&self, id: u64) -> Option<&str> {
        self.values
            .get(usize::try_from(id).ok()?)
            .map(String::as_str)
    }
}

/// Appends `record` to `out` (its interned fields are taken out and put back), appending
/// strings the dictionary did not know to `new_strings` as `(id, value)`.
pub(super) fn encode(
    record: &mut DecisionRecord,
    dictionary: &mut Strings,
    new_strings: &mut Vec<(u64, String)>,
    out: &mut Vec<u8>,
) {
    let mut taken: [String; INTERNED] = Default::default();
    for (slot, field) in taken.iter_mut().zip(interned_fields(record)) {
        *slot = std::mem::take(field);
        let (id, new) = dictionary.intern(slot);
        if new {
            new_strings.push((id, slot.clone()));
        }
        put_varint(out, id);
    }
    put_varint(out, record.encoded_len() as u64);
    // Into a Vec, which grows as needed: encoding cannot fail.
    record.encode_raw(out);
    for (slot, field) in taken.into_iter().zip(interned_fields(record)) {
        *field = slot;
    }
}

/// Reads the next record of a batch row, advancing `data` past it.
pub(super) fn decode(
    data: &mut &[u8],
    dictionary: &Strings,
) -> Result<DecisionRecord, CorruptRecord> {
    let mut ids = [0u64; INTERNED];
    for id in &mut ids {
        *id = varint(data).ok_or(CorruptRecord::Strings)?;
    }
    let len = varint(data)
        .and_then(|len| usize::try_from(len).ok())
        .filter(|&len| len <= data.len())
        .ok_or(CorruptRecord::Strings)?;
    let (body, rest) = data.split_at(len);
    *data = rest;
    let mut record = DecisionRecord::decode(body)?;
    for (field, id) in interned_fields(&mut record).into_iter().zip(ids) {
        if id != 0 {
            *field = dictionary
                .value(id)
                .ok_or(CorruptRecord::Strings)?
                .to_owned();
        }
    }
    Ok(record)
}

/// Appends `value` as a base-128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one varint; `None` when truncated or too long.
pub(super) fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_interns_repeated_strings_once() {
        let mut dictionary = Strings::load([]);
        let mut record = DecisionRecord {
            request_id: "r1".into(),
            cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
            route_provenance:
                "/apis/networking.istio.io/v1/namespaces/shop/virtual-services/reviews".into(),
            response_code: 503,
            path: "/reviews/1".into(),
            ..Default::default()
        };
        let original = record.clone();
        let (mut new, mut out) = (Vec::new(), Vec::new());
        encode(&mut record, &mut dictionary, &mut new, &mut out);
        assert_eq!(record, original, "the record is put back as it was");
        assert_eq!(new.len(), 2);
        assert!(!out.windows(8).any(|w| w == b"outbound"));
        let first = out.len();
        new.clear();
        encode(&mut record, &mut dictionary, &mut new, &mut out);
        assert!(new.is_empty(), "known strings are not stored again");
        let reloaded = Strings::load([
            (1, original.cluster.clone()),
            (2, original.route_provenance.clone()),
        ]);
        let mut data = out.as_slice();
        assert_eq!(decode(&mut data, &reloaded).unwrap(), original);
        assert_eq!(data.len(), out.len() - first);
        assert_eq!(decode(&mut data, &reloaded).unwrap(), original);
        assert!(data.is_empty());
        assert!(decode(&mut &out[..first - 1], &reloaded).is_err());
    }

    #[test]
    fn varints() {
        for value in [0, 1, 127, 128, 300, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(varint(&mut out.as_slice()), Some(value));
        }
        assert_eq!(varint(&mut [0x80u8].as_slice()), None);
    }
}
