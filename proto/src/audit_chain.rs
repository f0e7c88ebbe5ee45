//! The audit hash chain: each record holds `seq`, the SHA-256 of the previous
//! record (`prev_hash`) and its own `hash`, computed over the record's
//! canonical bytes (JSON with keys sorted at every level, no whitespace,
//! the `hash` field left out). Changing, removing or reordering any record
//! breaks a link that `verify` finds. Numbers must survive a parse and a
//! re-print unchanged, hence serde_json's `float_roundtrip` feature.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Canonical JSON: keys sorted, whatever map order serde_json was built with.
pub fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            canonical_object(map, out, false);
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        // Strings, numbers, booleans and null print the same whatever the
        // map order; written in place, with no String in between.
        scalar => scalar_into(scalar, out),
    }
}

fn scalar_into(v: &impl serde::Serialize, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail, and a Value or a str always encodes.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Writes `map` canonically; with `top`, leaving out its `hash` key (only
/// a record's own `hash` is outside what is hashed; a `hash` deeper down,
/// in a request body say, is content). Returns
/// the byte offset where a `"hash":…` member would go to keep the keys
/// sorted, and whether it would need a comma after it (a key follows) or
/// before it (it would be the last member).
fn canonical_object(map: &Map<String, Value>, out: &mut Vec<u8>, top: bool) -> (usize, bool) {
    let mut members: Vec<(&String, &Value)> =
        map.iter().filter(|(k, _)| !top || *k != HASH).collect();
    // serde_json's map is a BTreeMap (keys already in order) unless some
    // crate in the build turns on `preserve_order`: check, sort only then.
    if !members.is_sorted_by(|a, b| a.0 <= b.0) {
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    out.push(b'{');
    let mut hash_at = None;
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if top && hash_at.is_none() && k.as_str() > HASH {
            hash_at = Some(out.len());
        }
        scalar_into(k, out);
        out.push(b':');
        canonical(v, out);
    }
    out.push(b'}');
    match hash_at {
        Some(at) => (at, true),
        None => (out.len() - 1, false),
    }
}

const HASH: &str = "hash";

fn digest(record: &Map<String, Value>) -> String {
    let mut bytes = Vec::with_capacity(1024);
    canonical_object(record, &mut bytes, true);
    hex::encode(Sha256::digest(&bytes))
}

/// Adds `seq`, `prev_hash` and `hash` to a record; returns the hash.
pub fn seal(record: &mut Map<String, Value>, seq: u64, prev: &str) -> String {
    record.insert("seq".into(), Value::from(seq));
    record.insert("prev_hash".into(), Value::from(prev));
    let hash = digest(record);
    record.insert(HASH.into(), Value::from(hash.clone()));
    hash
}

/// Seals `record` like [`seal`] and appends its canonical line (with the
/// hash, without the newline) to `out`, encoding the record once: the
/// bytes that are hashed are the line, with the `hash` member spliced in
/// where sorting puts it. Returns the hash.
pub fn seal_into(
    mut record: Map<String, Value>,
    seq: u64,
    prev: &str,
    out: &mut Vec<u8>,
) -> String {
    record.insert("seq".into(), Value::from(seq));
    record.insert("prev_hash".into(), Value::from(prev));
    let start = out.len();
    let (at, comma_after) = canonical_object(&record, out, true);
    let hash = hex::encode(Sha256::digest(&out[start..]));
    let member = if comma_after {
        format!("\"{HASH}\":\"{hash}\",")
    } else if at == start + 1 {
        format!("\"{HASH}\":\"{hash}\"")
    } else {
        format!(",\"{HASH}\":\"{hash}\"")
    };
    out.splice(at..at, member.into_bytes());
    hash
}

/// A sealed record's link, after checking its own hash.
#[derive(Debug)]
pub struct Link {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
}

pub fn check(line: &str) -> Result<Link, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON record: {e}"))?;
    let Value::Object(map) = v else {
        return Err("not a JSON object".into());
    };
    let field = |k: &str| {
        map.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("missing {k}"))
    };
    let hash = field("hash")?;
    let prev_hash = field("prev_hash")?;
    let seq = map
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("missing seq")?;
    if digest(&map) != hash {
        return Err("record content does not match its hash (the record was altered)".into());
    }
    Ok(Link {
        seq,
        prev_hash,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_at_every_level() {
        let mut out = Vec::new();
        canonical(
            &json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "s"}], "c": null}}),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"c":null,"d":[1,{"y":"s","z":0}]},"b":1}"#
        );
    }

    #[test]
    fn one_pass_sealing_writes_the_canonical_line_of_the_sealed_record() {
        for record in [
            json!({"request_id": "r1", "status": 200, "zeta": [1.5, {"b": 1, "a": "x"}]}),
            json!({"a": 1}),
            json!({"zzz": 1}),
            json!({}),
            json!({"hash": "forged", "m": "keep"}),
            json!({"request": {"hash": "content", "z": 1}}),
        ] {
            let map = record.as_object().unwrap().clone();
            let mut expected = map.clone();
            let h = seal(&mut expected, 7, GENESIS);
            let mut want = Vec::new();
            canonical(&Value::Object(expected), &mut want);
            let mut line = b"prefix".to_vec();
            assert_eq!(seal_into(map, 7, GENESIS, &mut line), h);
            assert_eq!(
                String::from_utf8(line[6..].to_vec()).unwrap(),
                String::from_utf8(want).unwrap()
            );
            let link = check(std::str::from_utf8(&line[6..]).unwrap()).unwrap();
            assert_eq!((link.seq, link.hash), (7, h));
        }
    }

    #[test]
    fn sealed_records_check_and_tampering_is_caught() {
        let mut r = json!({"request_id": "r1", "status": 200})
            .as_object()
            .unwrap()
            .clone();
        let h = seal(&mut r, 1, GENESIS);
        let line = serde_json::to_string(&r).unwrap();
        let link = check(&line).unwrap();
        assert_eq!(
            (link.seq, link.hash.as_str(), link.prev_hash.as_str()),
            (1, h.as_str(), GENESIS)
        );
        let tampered = line.replace("200", "500");
        let mut f = json!({"latency_ms": 0.1 + 0.2, "score": 0.123_456_79_f32})
            .as_object()
            .unwrap()
            .clone();
        seal(&mut f, 2, &h);
        assert!(
            check(&serde_json::to_string(&f).unwrap()).is_ok(),
            "floats must round-trip through the hash"
        );
        assert!(check(&tampered).unwrap_err().contains("altered"));
    }
}

/// Largest audit record a gateway ships (bytes of its JSON line): half the
/// gRPC message limit, so one record always fits in a batch.
pub const MAX_SHIPPED_RECORD_BYTES: usize = crate::wire::MAX_MESSAGE_BYTES / 2;

/// One audit record as the control plane stores it: checked, with the
/// columns its query API filters on. Gateways run the same check before
/// shipping, so a record the control plane would refuse is set aside
/// instead of blocking every record behind it.
#[derive(Debug)]
pub struct Shipped {
    /// The de-duplication key: the id the gateway minted for the record
    /// (`record_id`), or, for records from gateways older than that field,
    /// the request id.
    pub record_id: String,
    pub request_id: String,
    pub time: time::OffsetDateTime,
    /// The record without the gateway's own chain fields (`seq`,
    /// `prev_hash`, `hash`), which the control plane's chain replaces.
    pub record: Map<String, Value>,
}

impl Shipped {
    pub fn parse(text: &str) -> Result<Shipped, String> {
        if text.len() > MAX_SHIPPED_RECORD_BYTES {
            return Err(format!(
                "{} bytes, over the {MAX_SHIPPED_RECORD_BYTES}-byte limit for one record",
                text.len()
            ));
        }
        let Ok(Value::Object(mut record)) = serde_json::from_str::<Value>(text) else {
            return Err("not a JSON object".into());
        };
        let id = |v: &Value| {
            v.as_str()
                .filter(|s| !s.is_empty() && s.len() <= 200)
                .map(str::to_string)
        };
        let request_id = record
            .get("request_id")
            .and_then(id)
            .ok_or("missing request_id")?;
        let record_id = match record.get("record_id") {
            None => request_id.clone(),
            Some(v) => id(v).ok_or("record_id must be a string of 1–200 characters")?,
        };
        let time = record
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .ok_or("missing or non-RFC 3339 time")?;
        for k in ["seq", "prev_hash", "hash"] {
            record.remove(k);
        }
        Ok(Shipped {
            record_id,
            request_id,
            time,
            record,
        })
    }
}
