//! The hashes of the chain, and what a sealed range says about the entries found in it.
//! Pure: no I/O.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use wearhouse_log::LogEntry;

pub type Hash = [u8; 32];

/// The digest before the first seal.
pub const GENESIS: Hash = [0; 32];

/// The hash of one entry: every field it was committed with (not its transaction id, which
/// only orders the log), and for a sample batch the SHA-256 of the batch's stored Arrow bytes,
/// so a rewritten batch shows as a changed entry.
pub fn entry_hash(entry: &LogEntry, batch_sha256: Option<&[u8]>) -> Hash {
    let mut h = Sha256::new();
    h.update(b"wearhouse-log-entry-v1");
    let metadata = entry.metadata.to_string();
    let recorded_at = entry
        .recorded_at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let user = entry.user_id.map(|u| u.to_string()).unwrap_or_default();
    let fields: [&[u8]; 10] = [
        &entry.position().to_be_bytes(),
        entry.aggregate_type.as_bytes(),
        entry.aggregate_id.as_bytes(),
        &entry.sequence.to_be_bytes(),
        entry.event_type.as_bytes(),
        entry.event_version.as_bytes(),
        entry.payload.get().as_bytes(),
        metadata.as_bytes(),
        recorded_at.as_bytes(),
        user.as_bytes(),
    ];
    for field in fields
        .iter()
        .chain(std::iter::once(&batch_sha256.unwrap_or(&[])))
    {
        // Length-prefixed, so no two different entries can hash the same bytes.
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.finalize().into()
}

/// A seal's digest: the previous seal's digest and the hashes of the entries it covers.
pub fn seal_digest(prev: &Hash, entry_hashes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(b"wearhouse-seal-v1");
    h.update(prev);
    h.update((entry_hashes.len() as u64 / 32).to_be_bytes());
    h.update(entry_hashes);
    h.finalize().into()
}

/// What verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The entry at `position` is not what was sealed.
    Modified { seal: i64, position: i64 },
    /// The entry at `position` was sealed and is gone.
    Deleted { seal: i64, position: i64 },
    /// An entry at `position` sits inside a sealed range but was not sealed with it.
    Inserted { seal: i64, position: i64 },
    /// The seal's stored digest does not follow from its entry hashes.
    SealAltered { seal: i64 },
    /// The seal does not continue the previous seal's digest (a seal removed or rewritten).
    ChainBroken { seal: i64 },
}

/// One stored seal.
#[derive(Debug, Clone)]
pub struct Seal {
    pub seal: i64,
    pub positions: Vec<i64>,
    pub entry_hashes: Vec<u8>,
    pub prev_digest: Vec<u8>,
    pub digest: Vec<u8>,
}

/// Checks one seal against the digest the chain expects before it and the entries now found
/// in its range (position -> current hash).
pub fn check_seal(seal: &Seal, expected_prev: &Hash, found: &HashMap<i64, Hash>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let id = seal.seal;
    if seal.prev_digest != expected_prev {
        problems.push(Problem::ChainBroken { seal: id });
    }
    let well_formed = seal.entry_hashes.len() == seal.positions.len() * 32;
    if !well_formed
        || seal.digest.as_slice() != seal_digest(&to_hash(&seal.prev_digest), &seal.entry_hashes)
    {
        problems.push(Problem::SealAltered { seal: id });
    }
    if well_formed {
        for (position, sealed) in seal.positions.iter().zip(seal.entry_hashes.chunks(32)) {
            match found.get(position) {
                None => problems.push(Problem::Deleted {
                    seal: id,
                    position: *position,
                }),
                Some(now) if now.as_slice() != sealed => problems.push(Problem::Modified {
                    seal: id,
                    position: *position,
                }),
                Some(_) => {}
            }
        }
    }
    let mut extra: Vec<i64> = found
        .keys()
        .filter(|p| !seal.positions.contains(p))
        .copied()
        .collect();
    extra.sort_unstable();
    problems.extend(
        extra
            .into_iter()
            .map(|position| Problem::Inserted { seal: id, position }),
    );
    problems
}

/// A stored digest as a hash (a wrong length gives one that matches nothing).
pub fn to_hash(bytes: &[u8]) -> Hash {
    bytes.try_into().unwrap_or([0xff; 32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use wearhouse_log::Cursor;

    fn entry(position: i64, payload: &str) -> LogEntry {
        LogEntry {
            cursor: Cursor { tx: 7, position },
            aggregate_type: "User".into(),
            aggregate_id: "u1".into(),
            sequence: position,
            event_type: "UserUpdated".into(),
            event_version: "1".into(),
            payload: serde_json::value::RawValue::from_string(payload.into()).unwrap(),
            metadata: serde_json::json!({"actor": "api_key:1", "request_id": "r"}),
            recorded_at: chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            user_id: None,
        }
    }

    fn sealed(entries: &[(i64, Hash)], prev: Hash) -> Seal {
        let hashes: Vec<u8> = entries.iter().flat_map(|(_, h)| *h).collect();
        Seal {
            seal: 1,
            positions: entries.iter().map(|(p, _)| *p).collect(),
            digest: seal_digest(&prev, &hashes).to_vec(),
            entry_hashes: hashes,
            prev_digest: prev.to_vec(),
        }
    }

    #[test]
    fn every_field_and_the_batch_bytes_change_the_hash() {
        let a = entry(1, r#"{"a": 1}"#);
        let base = entry_hash(&a, None);
        assert_eq!(base, entry_hash(&a.clone(), None), "deterministic");
        assert_ne!(base, entry_hash(&entry(1, r#"{"a": 2}"#), None));
        assert_ne!(base, entry_hash(&entry(2, r#"{"a": 1}"#), None));
        let mut b = a.clone();
        b.metadata = serde_json::json!({"actor": "developer:2", "request_id": "r"});
        assert_ne!(base, entry_hash(&b, None));
        let mut c = a.clone();
        c.recorded_at += chrono::Duration::microseconds(1);
        assert_ne!(base, entry_hash(&c, None));
        assert_ne!(base, entry_hash(&a, Some(b"batch")));
        assert_ne!(
            entry_hash(&a, Some(b"batch")),
            entry_hash(&a, Some(b"batcH"))
        );
        // The transaction id only orders the log: a restored copy keeps the same hashes.
        let mut d = a.clone();
        d.cursor.tx = 99;
        assert_eq!(base, entry_hash(&d, None));
    }

    #[test]
    fn an_intact_seal_has_no_problems() {
        let entries = [(1, [1; 32]), (2, [2; 32])];
        let seal = sealed(&entries, GENESIS);
        let found: HashMap<i64, Hash> = entries.into_iter().collect();
        assert_eq!(check_seal(&seal, &GENESIS, &found), vec![]);
    }

    #[test]
    fn edits_deletions_insertions_and_rewritten_seals_are_named() {
        let seal = sealed(&[(1, [1; 32]), (2, [2; 32]), (3, [3; 32])], GENESIS);
        let found: HashMap<i64, Hash> = [(1, [1; 32]), (3, [9; 32]), (4, [4; 32])].into();
        assert_eq!(
            check_seal(&seal, &GENESIS, &found),
            vec![
                Problem::Deleted {
                    seal: 1,
                    position: 2
                },
                Problem::Modified {
                    seal: 1,
                    position: 3
                },
                Problem::Inserted {
                    seal: 1,
                    position: 4
                },
            ]
        );
        let all: HashMap<i64, Hash> = [(1, [1; 32]), (2, [2; 32]), (3, [3; 32])].into();
        assert_eq!(
            check_seal(&seal, &[5; 32], &all),
            vec![Problem::ChainBroken { seal: 1 }]
        );
        let mut rewritten = seal.clone();
        rewritten.entry_hashes[0] ^= 1;
        assert_eq!(
            check_seal(&rewritten, &GENESIS, &all),
            vec![
                Problem::SealAltered { seal: 1 },
                Problem::Modified {
                    seal: 1,
                    position: 1
                }
            ]
        );
    }
}
