//! Snapshots: instances as a portable file, to move live workflows to
//! another store (another machine) or keep a copy.
//!
//! ```text
//! "DURABLE-SNAPSHOT" (16 bytes) | format (u16 LE) | body length (u64 LE) | body | CRC-32 of all before (u32 LE)
//! ```
//! Format 1 ([`Snapshot`], `durable export ID FILE`) holds one instance: the
//! [postcard](https://docs.rs/postcard) encoding of its record, buffered
//! signals, pending cancel/terminate requests, the marks that refuse a
//! second completion of a promise or acceptance of an update (with the
//! update's reply), its activities' heartbeat details and history, with a header
//! naming the workflow and its shape fingerprint. Format 2 ([`SnapshotSet`],
//! `durable export --all FILE`) holds a creation time and a list of such
//! instances under one checksum. Formats 3 and 4, written since, are 1 and 2
//! with the [layouts](crate::layout) the instance's state and signals were
//! written with, so the importing store can read them by name; 1 and 2 are
//! still read.

use serde::{Deserialize, Serialize};

use crate::codec;

/// The file's first bytes.
pub const MAGIC: &[u8; 16] = b"DURABLE-SNAPSHOT";
/// The format of a one-instance snapshot.
pub const FORMAT: u16 = 3;
/// The format of a snapshot set (several instances in one file).
pub const SET_FORMAT: u16 = 4;
/// The formats written before snapshots carried layouts (still read).
const OLD_FORMAT: u16 = 1;
const OLD_SET_FORMAT: u16 = 2;

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
        "[DURABLE-SNAPSHOT] snapshot format {found} is not supported (this build reads formats 1 to 4)"
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
    /// The instance's id or state is over this runtime's
    /// [`Limits`](crate::Limits) (`id_bytes`, `state_bytes`): an import is
    /// held to the limits a start and a checkpoint are.
    #[error("{}", crate::limits::over(what, *size, *limit, setting))]
    TooLarge {
        /// What is too large: `instance id` or `state`.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
        /// The [`Limits`](crate::Limits) field that sets it.
        setting: &'static str,
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
    /// The layout entries (`l` and `v` keys) the record and signals refer to.
    pub(crate) layouts: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A snapshot as formats 1 and 2 hold it (no layouts).
#[derive(Deserialize)]
struct OldSnapshot {
    id: String,
    workflow: String,
    fingerprint: u64,
    created_ms: u64,
    record: Vec<u8>,
    signals: Vec<(Vec<u8>, Vec<u8>)>,
    controls: Vec<(Vec<u8>, Vec<u8>)>,
    history: Vec<(Vec<u8>, Vec<u8>)>,
}

impl From<OldSnapshot> for Snapshot {
    fn from(o: OldSnapshot) -> Snapshot {
        Snapshot {
            id: o.id,
            workflow: o.workflow,
            fingerprint: o.fingerprint,
            created_ms: o.created_ms,
            record: o.record,
            signals: o.signals,
            controls: o.controls,
            history: o.history,
            layouts: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct OldSet {
    created_ms: u64,
    snapshots: Vec<OldSnapshot>,
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
        let undecodable = |e: crate::CodecError| SnapshotError::Undecodable(e.to_string());
        match read_frame(bytes)? {
            (FORMAT, body) => codec::decode(body).map_err(undecodable),
            (OLD_FORMAT, body) => codec::decode::<OldSnapshot>(body)
                .map(Snapshot::from)
                .map_err(undecodable),
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
        let undecodable = |e: crate::CodecError| SnapshotError::Undecodable(e.to_string());
        match read_frame(bytes)? {
            (FORMAT | OLD_FORMAT, _) => {
                let one = Snapshot::from_bytes(bytes)?;
                Ok(SnapshotSet {
                    created_ms: one.created_ms,
                    snapshots: vec![one],
                })
            }
            (OLD_SET_FORMAT, body) => {
                let old: OldSet = codec::decode(body).map_err(undecodable)?;
                Ok(SnapshotSet {
                    created_ms: old.created_ms,
                    snapshots: old.snapshots.into_iter().map(Snapshot::from).collect(),
                })
            }
            (_, body) => codec::decode(body).map_err(undecodable),
        }
    }
}

/// Writes a set file one snapshot at a time: the bytes
/// [`SnapshotSet::to_bytes`] writes for a set taken at `created_ms` of
/// `count` snapshots, `next(i)` giving the `i`-th, without the whole set in
/// memory (`durable export --all`). The frame's length is written last, in
/// its place, and the checksum combined from the header's and the body's.
pub(crate) fn write_set<W: std::io::Write + std::io::Seek>(
    out: &mut W,
    created_ms: u64,
    count: usize,
    mut next: impl FnMut(usize) -> Result<Snapshot, SnapshotError>,
) -> Result<(), SnapshotError> {
    let io = |e: std::io::Error| SnapshotError::Io(e.to_string());
    let postcard = |e: postcard::Error| SnapshotError::Undecodable(e.to_string());
    let start = out.stream_position().map_err(io)?;
    let mut header = Vec::with_capacity(MAGIC.len() + 10);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&SET_FORMAT.to_le_bytes());
    out.write_all(&header).map_err(io)?;
    out.write_all(&0u64.to_le_bytes()).map_err(io)?;
    // the body is what `codec::encode` makes of the whole set: its format
    // byte, then the fields in order, the list as its length and each item
    let mut body = crc32fast::Hasher::new();
    let mut len = 0u64;
    let mut put = |out: &mut W, bytes: &[u8]| -> Result<(), SnapshotError> {
        out.write_all(bytes).map_err(io)?;
        body.update(bytes);
        len += bytes.len() as u64;
        Ok(())
    };
    put(out, &[codec::FORMAT_V1])?;
    put(out, &postcard::to_allocvec(&created_ms).map_err(postcard)?)?;
    put(
        out,
        &postcard::to_allocvec(&(count as u64)).map_err(postcard)?,
    )?;
    for i in 0..count {
        put(out, &postcard::to_allocvec(&next(i)?).map_err(postcard)?)?;
    }
    header.extend_from_slice(&len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.combine(&body);
    out.write_all(&crc.finalize().to_le_bytes()).map_err(io)?;
    let end = out.stream_position().map_err(io)?;
    out.seek(std::io::SeekFrom::Start(start + MAGIC.len() as u64 + 2))
        .map_err(io)?;
    out.write_all(&len.to_le_bytes()).map_err(io)?;
    out.seek(std::io::SeekFrom::Start(end)).map_err(io)?;
    out.flush().map_err(io)
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
    if !matches!(format, FORMAT | SET_FORMAT | OLD_FORMAT | OLD_SET_FORMAT) {
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

    proptest::proptest! {
        /// A snapshot file comes from outside (`durable import`, `POST
        /// /api/import`): any bytes read as a snapshot or a set, or are
        /// refused with an error, never a panic.
        #[test]
        fn any_bytes_read_as_a_snapshot_or_are_refused_without_a_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            let _ = Snapshot::from_bytes(&bytes);
            let _ = SnapshotSet::from_bytes(&bytes);
        }

        /// The same for a real snapshot with a byte changed or cut short.
        #[test]
        fn a_damaged_snapshot_is_refused_without_a_panic(
            at in 0usize..4096,
            value in proptest::num::u8::ANY,
            cut in proptest::bool::ANY,
        ) {
            let mut bytes = sample().to_bytes().unwrap();
            let at = at % bytes.len();
            if cut {
                bytes.truncate(at);
            } else {
                bytes[at] = value;
            }
            let _ = Snapshot::from_bytes(&bytes);
        }
    }

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
            layouts: Vec::new(),
        }
    }

    /// The streamed set is byte for byte the set encoded whole, so every
    /// reader of set files reads it.
    #[test]
    fn a_set_written_one_snapshot_at_a_time_is_the_set_encoded_whole() {
        for n in [0usize, 1, 3, 200] {
            let snapshots: Vec<Snapshot> = (0..n)
                .map(|i| Snapshot {
                    id: format!("order-{i}"),
                    created_ms: i as u64 * 1_000_003,
                    ..sample()
                })
                .collect();
            let whole = SnapshotSet {
                created_ms: 1_733_000_000_123,
                snapshots: snapshots.clone(),
            }
            .to_bytes()
            .unwrap();
            let mut streamed = std::io::Cursor::new(Vec::new());
            write_set(&mut streamed, 1_733_000_000_123, n, |i| {
                Ok(snapshots[i].clone())
            })
            .unwrap();
            assert_eq!(streamed.get_ref(), &whole, "{n} snapshots");
            assert_eq!(
                SnapshotSet::from_bytes(streamed.get_ref())
                    .unwrap()
                    .snapshots,
                snapshots
            );
        }
        // a failing write stops it with the I/O error
        struct Full(usize);
        impl std::io::Write for Full {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        "disk full",
                    ));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl std::io::Seek for Full {
            fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
                Ok(0)
            }
        }
        let full = write_set(&mut Full(100), 1, 3, |_| Ok(sample()));
        assert!(
            matches!(&full, Err(SnapshotError::Io(m)) if m.contains("disk full")),
            "{full:?}"
        );
        // a failing snapshot stops the writing with its error
        let mut out = std::io::Cursor::new(Vec::new());
        let failed = write_set(&mut out, 1, 2, |i| match i {
            0 => Ok(sample()),
            _ => Err(SnapshotError::NotFound { id: "gone".into() }),
        });
        assert!(matches!(failed, Err(SnapshotError::NotFound { .. })));
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
    fn files_of_the_formats_before_layouts_still_read() {
        #[derive(Serialize)]
        struct Before<'a> {
            id: &'a str,
            workflow: &'a str,
            fingerprint: u64,
            created_ms: u64,
            record: Vec<u8>,
            signals: Vec<(Vec<u8>, Vec<u8>)>,
            controls: Vec<(Vec<u8>, Vec<u8>)>,
            history: Vec<(Vec<u8>, Vec<u8>)>,
        }
        let s = sample();
        let before = Before {
            id: &s.id,
            workflow: &s.workflow,
            fingerprint: s.fingerprint,
            created_ms: s.created_ms,
            record: s.record.clone(),
            signals: s.signals.clone(),
            controls: s.controls.clone(),
            history: s.history.clone(),
        };
        let one = frame(OLD_FORMAT, &codec::encode(&before).unwrap());
        assert_eq!(Snapshot::from_bytes(&one).unwrap(), s);
        let set = frame(
            OLD_SET_FORMAT,
            &codec::encode(&(7u64, vec![&before, &before])).unwrap(),
        );
        let set = SnapshotSet::from_bytes(&set).unwrap();
        assert_eq!((set.created_ms, set.snapshots.len()), (7, 2));
        assert_eq!(set.snapshots[1], s);
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
        future[16] = 5;
        assert!(matches!(
            SnapshotSet::from_bytes(&future),
            Err(SnapshotError::UnsupportedFormat { found: 5 })
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
