//! gRPC types generated from `proto/sluice/v1/{control,inference}.proto`, and the
//! snapshot digest.

use sha2::{Digest, Sha256};

tonic::include_proto!("sluice.v1");

/// The largest gRPC message any Sluice component sends or accepts (tonic's
/// default is 4 MiB to decode). A snapshot with ~30,000 client keys, an
/// audit batch with bodies, or a long prompt can exceed 4 MiB; 64 MiB still
/// bounds what one message can make a process hold.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The digest of what a snapshot configures: the pack text and the client
/// keys (sorted by id), each field length-prefixed so no two different
/// snapshots can collide by concatenation. Version labels are left out:
/// equal digests mean identical gateway behaviour.
pub fn snapshot_sha256(pack_text: &str, keys: &[ClientKey], require_key: bool) -> String {
    let mut sorted: Vec<&ClientKey> = keys.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(pack_text.as_bytes());
    field(&[u8::from(require_key)]);
    for k in sorted {
        field(k.id.as_bytes());
        field(k.role.as_bytes());
        field(k.key_sha256.as_bytes());
        field(&k.expires_at.to_le_bytes());
    }
    hex::encode(h.finalize())
}

impl Snapshot {
    /// Whether `sha256` matches the content (a corrupted cache file or a
    /// buggy peer must not configure a gateway).
    pub fn is_intact(&self) -> bool {
        snapshot_sha256(&self.pack_text, &self.client_keys, self.require_client_key) == self.sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, role: &str) -> ClientKey {
        ClientKey {
            id: id.into(),
            role: role.into(),
            key_sha256: "ab".repeat(32),
            expires_at: 0,
        }
    }

    #[test]
    fn digest_ignores_key_order_but_not_content() {
        let a = snapshot_sha256("pack", &[key("a", "x"), key("b", "y")], false);
        let b = snapshot_sha256("pack", &[key("b", "y"), key("a", "x")], false);
        assert_eq!(a, b);
        assert_ne!(
            a,
            snapshot_sha256("pack", &[key("a", "y"), key("b", "y")], false)
        );
        assert_ne!(
            a,
            snapshot_sha256("pack ", &[key("a", "x"), key("b", "y")], false)
        );
        assert_ne!(
            a,
            snapshot_sha256("pack", &[key("a", "x"), key("b", "y")], true)
        );
        // Length prefixes: moving a byte between fields changes the digest.
        assert_ne!(
            snapshot_sha256("ab", &[key("c", "r")], false),
            snapshot_sha256("a", &[key("bc", "r")], false)
        );
    }
}
