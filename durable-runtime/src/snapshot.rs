//! Snapshots: instances as a portable file, to move live workflows to
//! another store (another machine) or keep a copy.
//!
//! ```text
//! "DURABLE-SNAPSHOT" (16 bytes) | format (u16 LE) | body length (u64 LE) | body | CRC-32 of all before (u32 LE)
//! ```
//! Format 1 ([`Snapshot`], `durable export ID FILE`) holds one instance: the
//! [postcard](https://docs.rs/postcard) encoding of its record, buffered
//! signals, pending cancel/terminate requests and history, with a header
//! naming the workflow and its shape fingerprint. Format 2 ([`SnapshotSet`],
//! `durable export --all FILE`) holds a creation time and a list of such
//! instances under one checksum.

use serde::{Deserialize, Serialize};

use crate::codec;

/// The file's first bytes.
pub const MAGIC: &[u8; 16] = b"DURABLE-SNAPSHOT";
/// The format of a one-instance snapshot.
pub const FORMAT: u16 = 1;
/// The format of a snapshot set (several instances in one file).
pub const SET_FORMAT: u16 = 2;

/// Why a snapshot could not be read or imported. Nothing was written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes do not start like a snapshot.
    #[error("[DURABLE-SNAPSHOT] not a snapshot file (no DURABLE-SNAPSHOT header)")]
    NotASnapshot,
    /// The file ends before its declared length.
    #[error("[DURABLE-SNAPSHOT] truncated snapshot: {0}")]
    Truncated(String),
    /// The checksum does not match: the file was damaged.
    #[error("[DURABLE-SNAPSHOT] corrupt snapshot: checksum {found:08x}, expected {expected:08x}")]
    Corrupt {
        /// The checksum computed over the file.
        found: u32,
        /// The checksum stored in it.
        expected: u32,
    },
    /// A format this build does not read.
    #[error(
        "[DURABLE-SNAPSHOT] snapshot format {found} is not supported (this build reads formats {FORMAT} and {SET_FORMAT})"
    )]
    UnsupportedFormat {
        /// The format found.
        found: u16,
    },
    /// The body does not decode.
    #[error("[DURABLE-SNAPSHOT] undecodable snapshot: {0}")]
    Undecodable(String),
    /// A set file was read as a one-instance snapshot.
    #[error(
        "[DURABLE-SNAPSHOT] this file holds a set of instances (`export --all`); read it as a SnapshotSet (`durable import` does)"
    )]
    IsASet,
    /// The registered code cannot run the instance (pinned version, missing
    /// or failing migration, undecodable state).
    #[error("[DURABLE-SNAPSHOT] not imported: {0}")]
    CannotRun(crate::ResumeError),
    /// The workflow is not registered on this runtime.
    #[error(
        "[DURABLE-SNAPSHOT] the snapshot is of workflow `{workflow}`, which this runtime does not register"
    )]
    UnknownWorkflow {
        /// The workflow.
        workflow: String,
    },
    /// The code's state enum has another shape than the snapshot's.
    #[error(
        "[DURABLE-SHAPE] snapshot of `{workflow}` has fingerprint {stored:016x}, the code has {current:016x}; not imported"
    )]
    ShapeMismatch {
        /// The workflow.
        workflow: String,
        /// The snapshot's fingerprint.
        stored: u64,
        /// The code's fingerprint.
        current: u64,
    },
    /// The id exists in this store and replacing was not asked for.
    #[error(
        "[DURABLE-EXISTS] instance `{id}` already exists here; import with replace to overwrite it"
    )]
    AlreadyExists {
        /// The instance id.
        id: String,
    },
    /// No such instance to export.
    #[error("[DURABLE-UNKNOWN] no workflow instance `{id}` to export")]
    NotFound {
        /// The instance id.
        id: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// Reading or writing the file failed.
    #[error("[DURABLE-IO] {0}")]
    Io(String),
}

/// The decoded content of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The shape fingerprint of the stored state.
    pub fingerprint: u64,
    /// When the snapshot was taken, ms since the Unix epoch.
    pub created_ms: u64,
    pub(crate) record: Vec<u8>,
    pub(crate) signals: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) controls: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) history: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Snapshot {
    /// The instance as `describe` would show it (status, version,
    /// variant, fingerprints), read from the snapshot.
    pub fn description(&self) -> Result<crate::Description, SnapshotError> {
        let record = crate::engine::InstanceRecord::decode(&self.record)
            .map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
        Ok(crate::Description::of(&self.id, record))
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        let body = codec::encode(self).map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
        Ok(frame(FORMAT, &body))
    }

    /// Reads file bytes; every damage is an error, never a panic, and no
    /// length field can make it allocate more than the file holds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        match read_frame(bytes)? {
            (FORMAT, body) => {
                codec::decode(body).map_err(|e| SnapshotError::Undecodable(e.to_string()))
            }
            _ => Err(SnapshotError::IsASet),
        }
    }
}

/// Several instances in one file (`durable export --all`), imported all or
/// nothing by [`Runtime::import_set`](crate::Runtime::import_set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSet {
    /// When the set was taken, ms since the Unix epoch.
    pub created_ms: u64,
    /// The instances, in id order.
    pub snapshots: Vec<Snapshot>,
}

impl SnapshotSet {
    /// The file bytes (format [`SET_FORMAT`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        let body = codec::encode(self).map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
        Ok(frame(SET_FORMAT, &body))
    }

    /// Reads a set file, or a one-instance file as a set of one; every damage
    /// is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<SnapshotSet, SnapshotError> {
        match read_frame(bytes)? {
            (FORMAT, body) => {
                let one: Snapshot =
                    codec::decode(body).map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
                Ok(SnapshotSet {
                    created_ms: one.created_ms,
                    snapshots: vec![one],
                })
            }
            (_, body) => codec::decode(body).map_err(|e| SnapshotError::Undecodable(e.to_string())),
        }
    }
}

fn frame(format: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks the frame (magic, a known format, length, checksum) and returns
/// the format and the body.
fn read_frame(bytes: &[u8]) -> Result<(u16, &[u8]), SnapshotError> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(SnapshotError::NotASnapshot)?;
    let (format, rest) = rest
        .split_first_chunk::<2>()
        .ok_or_else(|| SnapshotError::Truncated("no format".into()))?;
    let format = u16::from_le_bytes(*format);
    if format != FORMAT && format != SET_FORMAT {
        return Err(SnapshotError::UnsupportedFormat { found: format });
    }
    let (len, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| SnapshotError::Truncated("no length".into()))?;
    let len = u64::from_le_bytes(*len);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| l.checked_add(4).is_some_and(|n| n <= rest.len()))
        .ok_or_else(|| {
            SnapshotError::Truncated(format!(
                "the body should be {len} bytes, {} remain",
                rest.len().saturating_sub(4)
            ))
        })?;
    let (body, tail) = rest.split_at(len);
    let (crc, extra) = tail
        .split_first_chunk::<4>()
        .ok_or_else(|| SnapshotError::Truncated("no checksum".into()))?;
    if !extra.is_empty() {
        return Err(SnapshotError::Undecodable(format!(
            "{} bytes after the checksum",
            extra.len()
        )));
    }
    let expected = u32::from_le_bytes(*crc);
    let found = crc32fast::hash(&bytes[..bytes.len() - 4]);
    if found != expected {
        return Err(SnapshotError::Corrupt { found, expected });
    }
    Ok((format, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            id: "order-7".into(),
            workflow: "process_order".into(),
            fingerprint: 0xfeed,
            created_ms: 1,
            record: vec![1, 2, 3],
            signals: vec![(b"g".to_vec(), vec![9])],
            controls: Vec::new(),
            history: vec![(b"h".to_vec(), vec![4, 5])],
        }
    }

    #[test]
    fn round_trips_and_names_each_kind_of_damage() {
        let bytes = sample().to_bytes().unwrap();
        assert_eq!(Snapshot::from_bytes(&bytes).unwrap(), sample());
        assert!(matches!(
            Snapshot::from_bytes(b"hello"),
            Err(SnapshotError::NotASnapshot)
        ));
        assert!(matches!(
            Snapshot::from_bytes(&bytes[..bytes.len() - 7]),
            Err(SnapshotError::Truncated(_))
        ));
        let mut flipped = bytes.clone();
        flipped[30] ^= 0x40;
        assert!(matches!(
            Snapshot::from_bytes(&flipped),
            Err(SnapshotError::Corrupt { .. })
        ));
        let mut future = bytes.clone();
        future[16] = 9;
        assert!(matches!(
            Snapshot::from_bytes(&future),
            Err(SnapshotError::UnsupportedFormat { found: 9 })
        ));
        let mut huge = bytes.clone();
        huge[18..26].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Snapshot::from_bytes(&huge),
            Err(SnapshotError::Truncated(_))
        ));
    }

    #[test]
    fn sets_round_trip_and_read_single_files_as_a_set_of_one() {
        let mut second = sample();
        second.id = "order-8".into();
        let set = SnapshotSet {
            created_ms: 5,
            snapshots: vec![sample(), second],
        };
        let bytes = set.to_bytes().unwrap();
        assert_eq!(SnapshotSet::from_bytes(&bytes).unwrap(), set);
        assert!(matches!(
            Snapshot::from_bytes(&bytes),
            Err(SnapshotError::IsASet)
        ));
        let one = SnapshotSet::from_bytes(&sample().to_bytes().unwrap()).unwrap();
        assert_eq!(one.snapshots, vec![sample()]);
        // every damage of a set file is an error too
        assert!(matches!(
            SnapshotSet::from_bytes(&bytes[..bytes.len() - 1]),
            Err(SnapshotError::Truncated(_))
        ));
        let mut flipped = bytes.clone();
        flipped[40] ^= 2;
        assert!(matches!(
            SnapshotSet::from_bytes(&flipped),
            Err(SnapshotError::Corrupt { .. })
        ));
        let mut future = bytes.clone();
        future[16] = 3;
        assert!(matches!(
            SnapshotSet::from_bytes(&future),
            Err(SnapshotError::UnsupportedFormat { found: 3 })
        ));
        // a huge element count in a valid frame does not allocate it
        let mut body = vec![codec::FORMAT_V1, 5];
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            SnapshotSet::from_bytes(&frame(SET_FORMAT, &body)),
            Err(SnapshotError::Undecodable(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = Snapshot::from_bytes(&bytes);
            let _ = SnapshotSet::from_bytes(&bytes);
        }

        #[test]
        fn arbitrary_set_bodies_behind_a_valid_frame_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = SnapshotSet::from_bytes(&frame(SET_FORMAT, &body));
        }

        #[test]
        fn any_single_byte_change_of_a_set_file_is_refused(at in 0usize..1000, bit in 0u8..8) {
            let set = SnapshotSet { created_ms: 1, snapshots: vec![sample(), sample()] };
            let mut bytes = set.to_bytes().unwrap();
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            proptest::prop_assert!(SnapshotSet::from_bytes(&bytes).is_err());
        }

        #[test]
        fn arbitrary_bodies_behind_a_valid_frame_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&FORMAT.to_le_bytes());
            out.extend_from_slice(&(body.len() as u64).to_le_bytes());
            out.extend_from_slice(&body);
            let crc = crc32fast::hash(&out);
            out.extend_from_slice(&crc.to_le_bytes());
            let _ = Snapshot::from_bytes(&out);
        }
    }
}
