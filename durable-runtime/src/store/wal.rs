//! The embedded stores' write-ahead log: one record per group commit.
//!
//! A group is made durable by appending its writes to this log and
//! `fdatasync`ing it, on the commit thread (one write and one sync), and
//! only then applied to the tree (redb or sled) without a sync of its own.
//! A checkpoint makes the tree durable in its own files and empties the log
//! (see `store::commit`); opening replays what the log holds on top of
//! whatever the tree recovered.
//!
//! Replay is correct from any state the tree recovered to, as long as the
//! tree kept the checkpoint's values of the keys no later record writes:
//! every record holds whole values (sets and removes, no read-modify-write),
//! so applying all the records since the checkpoint in order leaves each
//! key they write at its last value, whatever part of them the tree held.
//!
//! # Layout (format 2)
//!
//! ```text
//! header (24 bytes): "DWAL" | format: u32 LE = 2 | epoch: u64 LE | 0: u32 | crc32(first 20 bytes): u32 LE
//! records, back to back:
//!   len: u32 LE | crc32(epoch ++ payload): u32 LE | epoch: u64 LE | payload (len bytes)
//! payload: the group's writes in order, each
//!   op: u8 (1 set, 0 remove) | key len: u32 LE | key | value len: u32 LE | value (sets only)
//! ```
//!
//! Every reset (the log emptied after a checkpoint) writes a header with a
//! new random epoch, and a record counts only with its file's epoch: bytes
//! from before a reset can never be replayed, even where a power cut left
//! them behind the new records.
//!
//! Reading stops at the first record that is cut short or fails its
//! checksum. If nothing valid follows it, it is a write a crash interrupted,
//! never acknowledged (each append is synced before the next one starts),
//! and it is dropped with a warning. If a valid record of the same epoch
//! follows it, an acknowledged record was damaged on disk: opening is
//! refused with an error naming the file and the offset, never truncated
//! away.
//!
//! Zeros after the last record are not a torn tail: the log is extended
//! ahead of its records, [`PREALLOCATE`] bytes of zeros at a time, so that
//! an append writes inside the file and its `fdatasync` has no new file
//! size to write (on ext4 that is a second disk write per sync). A zero
//! length is never a record's, so reading stops there.
//!
//! Format 1 (no header, no epoch), written by earlier builds, is still read
//! at open; the first checkpoint rewrites the file in format 2.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StoreError;
use super::fs::{Fs, FsFile};

/// The log's file name inside the store directory.
pub(crate) const FILE: &str = "durable.wal";

/// Past this many bytes the log is checkpointed and emptied.
pub(crate) const CHECKPOINT_BYTES: u64 = 8 << 20;

/// An append that reaches the end of the file extends it by this many
/// bytes of zeros past its record, in the same write...
const PREALLOCATE: u64 = 256 << 10;

/// ...if the record is smaller than this. Every byte of zeros is written
/// again by a record: for large records (a disk's bandwidth their bound)
/// that costs more than the file size their syncs write.
const PREALLOCATE_BELOW: usize = 4 << 10;

const MAGIC: &[u8; 4] = b"DWAL";
const FORMAT: u32 = 2;
/// The file header's length.
pub(crate) const FILE_HEADER: usize = 24;
/// A record's header: length, checksum, epoch.
const HEADER: usize = 16;
/// A format-1 record's header: length, checksum.
const HEADER_V1: usize = 8;

const SET: u8 = 1;
const REMOVE: u8 = 0;

/// One group's writes, as a record, built while the group is assembled.
#[derive(Default)]
pub(crate) struct Record {
    buf: Vec<u8>,
}

impl Record {
    /// Starts a new record, keeping the buffer's capacity.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER]);
    }

    /// Adds a set (`Some`) or a remove (`None`) of `key`, which must
    /// [fit](fits).
    pub(crate) fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        if self.buf.is_empty() {
            self.clear();
        }
        self.buf.push(if value.is_some() { SET } else { REMOVE });
        put_bytes(&mut self.buf, key);
        if let Some(value) = value {
            put_bytes(&mut self.buf, value);
        }
    }

    /// Bytes the buffer holds room for.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the record holds no write.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.len() <= HEADER
    }

    /// Frames the record for a log of `epoch` (length, checksum, epoch); an
    /// error if the group's writes add up to 4 GiB or more. Then
    /// [`bytes`](Record::bytes) is what to append.
    pub(crate) fn seal(&mut self, epoch: u64) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            self.clear();
        }
        let len = u32::try_from(self.buf.len() - HEADER).map_err(|_| StoreError::TooLarge {
            what: "a group of writes".into(),
            size: self.buf.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        self.buf[8..HEADER].copy_from_slice(&epoch.to_le_bytes());
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// The sealed record.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Whether a write fits a record: keys and values under 4 GiB.
pub(crate) fn fits(key: &[u8], value: Option<&[u8]>) -> bool {
    let fits = |b: &[u8]| u32::try_from(b.len()).is_ok();
    fits(key) && value.is_none_or(fits)
}

/// `bytes`, prefixed by its length (checked to [fit](fits) by the caller).
fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// The writes of one record, in order.
pub(crate) type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// What a log's bytes hold: the complete records of its epoch, and how
/// many bytes of a torn tail follow them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Contents {
    pub(crate) records: Vec<Writes>,
    /// Where the valid part ends (the next append goes here).
    pub(crate) valid_bytes: u64,
    /// Bytes after it, not all zeros: a torn tail, dropped. (Zeros are
    /// space the log was extended by ahead of its records, kept.)
    pub(crate) torn_bytes: u64,
    /// The epoch of the file's header (`None`: no valid header).
    pub(crate) epoch: Option<u64>,
}

/// The file header for `epoch`.
fn file_header(epoch: u64) -> [u8; FILE_HEADER] {
    let mut h = [0u8; FILE_HEADER];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&FORMAT.to_le_bytes());
    h[8..16].copy_from_slice(&epoch.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The epoch of a valid file header at the start of `bytes`.
fn header_epoch(bytes: &[u8]) -> Option<u64> {
    let h = bytes.get(..FILE_HEADER)?;
    let crc = u32::from_le_bytes(h[20..].try_into().ok()?);
    if &h[..4] != MAGIC
        || u32::from_le_bytes(h[4..8].try_into().ok()?) != FORMAT
        || crc32fast::hash(&h[..20]) != crc
    {
        return None;
    }
    Some(u64::from_le_bytes(h[8..16].try_into().ok()?))
}

/// Reads a log's bytes: the records up to the first incomplete or corrupt
/// one. An error if valid records of the file's epoch follow a damaged one
/// (named by `path` and its offset), or if the header is damaged while
/// records follow it.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Contents, StoreError> {
    if bytes.is_empty() {
        return Ok(Contents::default());
    }
    if !bytes.starts_with(MAGIC) {
        let v1 = parse_v1(bytes);
        if v1.records.is_empty() && bytes.len() > FILE_HEADER {
            // neither a format-2 header nor a format-1 record: a damaged header
            return Err(corrupt(path, 0, "the log's header is damaged"));
        }
        return Ok(v1);
    }
    let Some(epoch) = header_epoch(bytes) else {
        if bytes.len() <= FILE_HEADER {
            // a reset cut short (its header torn): nothing was appended after it
            return Ok(Contents {
                torn_bytes: bytes.len() as u64,
                ..Contents::default()
            });
        }
        return Err(corrupt(path, 0, "the log's header is damaged"));
    };
    let mut records = Vec::new();
    let mut at = FILE_HEADER;
    while let Some((writes, next)) = record_at(bytes, at, epoch) {
        records.push(writes);
        at = next;
    }
    if let Some(later) = (at + 1..bytes.len()).find(|&p| record_at(bytes, p, epoch).is_some()) {
        return Err(corrupt(
            path,
            at as u64,
            &format!(
                "the record at offset {at} is damaged and a valid record follows at offset {later}: \
                 an acknowledged write was damaged on disk"
            ),
        ));
    }
    let preallocated = bytes[at..].iter().all(|&b| b == 0);
    Ok(Contents {
        records,
        valid_bytes: at as u64,
        torn_bytes: if preallocated {
            0
        } else {
            (bytes.len() - at) as u64
        },
        epoch: Some(epoch),
    })
}

fn corrupt(path: &Path, offset: u64, reason: &str) -> StoreError {
    StoreError::CorruptFile {
        path: path.to_path_buf(),
        offset,
        reason: format!(
            "{reason}; the store was not opened (restore the directory from a backup or export, \
             or move the file away to lose what it holds)"
        ),
    }
}

/// The record of `epoch` starting at `at` and where the next begins, if it
/// is whole.
fn record_at(bytes: &[u8], at: usize, epoch: u64) -> Option<(Writes, usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    if header[8..16] != epoch.to_le_bytes() {
        return None;
    }
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let end = (at + HEADER).checked_add(len)?;
    let checked = bytes.get(at + 8..end)?;
    if len == 0 || crc32fast::hash(checked) != crc {
        return None;
    }
    Some((writes_of(&bytes[at + HEADER..end])?, end))
}

/// Format 1: records without header or epoch, read to the first bad one.
fn parse_v1(bytes: &[u8]) -> Contents {
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = at.checked_add(HEADER_V1).and_then(|end| bytes.get(at..end)) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let start = at + HEADER_V1;
        let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            break;
        };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        let Some(writes) = writes_of(payload) else {
            break;
        };
        records.push(writes);
        at = start + len;
    }
    Contents {
        records,
        valid_bytes: at as u64,
        torn_bytes: (bytes.len() - at) as u64,
        epoch: None,
    }
}

fn writes_of(payload: &[u8]) -> Option<Writes> {
    let mut writes = Vec::new();
    let mut p = payload;
    while let Some((&op, rest)) = p.split_first() {
        let (key, rest) = take_bytes(rest)?;
        p = rest;
        let value = match op {
            SET => {
                let (value, rest) = take_bytes(p)?;
                p = rest;
                Some(value.to_vec())
            }
            REMOVE => None,
            _ => return None,
        };
        writes.push((key.to_vec(), value));
    }
    Some(writes)
}

fn take_bytes(p: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(p.get(..4)?.try_into().ok()?) as usize;
    let bytes = p.get(4..4usize.checked_add(len)?)?;
    Some((bytes, &p[4 + len..]))
}

/// The open log file.
pub(crate) struct Wal {
    file: Arc<dyn FsFile>,
    path: PathBuf,
    /// Where the next record goes.
    len: u64,
    /// The file's length: `len` and the zeros after it.
    size: u64,
    epoch: u64,
    /// The file is not in format 2 yet (new, or format 1 being replayed):
    /// the first [`reset`](Wal::reset) must come before any append.
    needs_reset: bool,
}

impl Wal {
    /// Opens (or creates, durably) the log in `dir` and reads it.
    pub(crate) fn open(fs: &dyn Fs, dir: &Path) -> Result<(Wal, Contents), StoreError> {
        let path = dir.join(FILE);
        let at = |what: &str| {
            let path = path.clone();
            let what = what.to_owned();
            move |e| super::fs::at(&path, &what, e)
        };
        let existed = fs.exists(&path).map_err(at("looking for"))?;
        let file = fs.open(&path, true).map_err(at("opening"))?;
        if !existed {
            // the new name must survive a power cut before anything is in it
            fs.sync_dir(dir).map_err(at("syncing the directory of"))?;
        }
        let len = file.len().map_err(at("reading"))?;
        let mut bytes = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        file.read_at(0, &mut bytes).map_err(at("reading"))?;
        let contents = parse(&path, &bytes)?;
        if contents.torn_bytes > 0 {
            tracing::warn!(
                file = %path.display(),
                offset = contents.valid_bytes,
                bytes = contents.torn_bytes,
                "write-ahead log ends in an incomplete record (an interrupted write, never acknowledged); dropped"
            );
        }
        let mut wal = Wal {
            file,
            path: path.clone(),
            len: contents.valid_bytes,
            size: len,
            epoch: contents.epoch.unwrap_or(0),
            needs_reset: contents.epoch.is_none(),
        };
        if contents.torn_bytes > 0 && !wal.needs_reset {
            // an interrupted append: records written after it would be unreadable
            wal.file
                .set_len(wal.len)
                .and_then(|()| wal.file.sync_data())
                .map_err(at("truncating the torn tail of"))?;
            wal.size = wal.len;
        }
        Ok((wal, contents))
    }

    /// Whether the log must be [reset](Wal::reset) before the first append
    /// (it is new, or in an older format).
    pub(crate) fn needs_reset(&self) -> bool {
        self.needs_reset
    }

    /// The epoch records must be [sealed](Record::seal) with.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Appends a sealed record; [`sync`](Wal::sync) makes it durable.
    ///
    /// A small record that reaches the end of the file is written with
    /// [`PREALLOCATE`] bytes of zeros after it, so that the appends after it
    /// change no file size.
    pub(crate) fn append(&mut self, record: &[u8]) -> Result<(), StoreError> {
        debug_assert!(!self.needs_reset, "append to a log that needs a reset");
        let end = self.len + record.len() as u64;
        let written = if end > self.size && record.len() < PREALLOCATE_BELOW {
            let mut extended = Vec::with_capacity(record.len() + PREALLOCATE as usize);
            extended.extend_from_slice(record);
            extended.resize(record.len() + PREALLOCATE as usize, 0);
            self.file
                .write_at(self.len, &extended)
                .map(|()| end + PREALLOCATE)
        } else {
            self.file
                .write_at(self.len, record)
                .map(|()| self.size.max(end))
        };
        self.size = written.map_err(|e| super::fs::at(&self.path, "appending to", e))?;
        self.len = end;
        Ok(())
    }

    /// Makes what was appended durable (`fdatasync`).
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| super::fs::at(&self.path, "syncing", e))
    }

    /// Bytes of records in the log.
    pub(crate) fn len(&self) -> u64 {
        self.len.saturating_sub(FILE_HEADER as u64)
    }

    /// Empties the log under a new epoch, durably; only once everything in
    /// it is durable in the tree (a checkpoint). On an error the log is in
    /// an unknown state: the caller must take no more commits.
    pub(crate) fn reset(&mut self) -> Result<(), StoreError> {
        let epoch = loop {
            let e = rand::random::<u64>();
            if e != self.epoch {
                break e;
            }
        };
        let err = |e| super::fs::at(&self.path, "emptying", e);
        // the truncation is durable before the new header is written: a
        // power cut then leaves an empty log, or a short (torn) header that
        // reads as an empty one, never a new header torn over old records
        self.file.set_len(0).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.file.write_at(0, &file_header(epoch)).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.epoch = epoch;
        self.len = FILE_HEADER as u64;
        self.size = self.len;
        self.needs_reset = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fs::RealFs;
    use super::*;

    const EPOCH: u64 = 0x5eed;

    fn record(epoch: u64, writes: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut r = Record::default();
        r.clear();
        for (k, v) in writes {
            r.push(k, *v);
        }
        r.seal(epoch).unwrap();
        r.bytes().to_vec()
    }

    fn log(records: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = file_header(EPOCH).to_vec();
        for r in records {
            bytes.extend_from_slice(r);
        }
        bytes
    }

    fn parse_ok(bytes: &[u8]) -> Contents {
        parse(Path::new("test.wal"), bytes).unwrap()
    }

    /// A power cut anywhere in a reset, whatever it keeps of the unsynced
    /// writes, leaves a log that opens (its records were all in the tree
    /// already). Before the truncation was synced on its own, the new
    /// header could be torn over the old records: a damaged header, and a
    /// store that refused to open (seen once in the power-loss sweep).
    #[cfg(feature = "testing")]
    #[test]
    fn a_power_cut_during_a_reset_leaves_a_log_that_opens() {
        use crate::store::faults::{Fault, Loss, SimFs};
        let dir = Path::new("/sim");
        for cut in 0..4 {
            for seed in 0..64 {
                let fs = SimFs::new();
                fs.create_dir_all(dir).unwrap();
                let (mut wal, _) = Wal::open(&fs, dir).unwrap();
                wal.reset().unwrap();
                for i in 0..3u8 {
                    wal.append(&record(wal.epoch(), &[(&[i], Some(&[i; 40]))]))
                        .unwrap();
                }
                wal.sync().unwrap();
                fs.plan(cut, Fault::PowerCut);
                let _ = wal.reset();
                assert!(fs.fired(), "cut {cut} fired");
                let rebooted = fs.after_power_cut(Loss::Some(seed));
                let opened = Wal::open(&rebooted, dir);
                assert!(
                    opened.is_ok(),
                    "cut at call {cut} of the reset, seed {seed}: {:?}",
                    opened.err()
                );
            }
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let bytes = log(&[
            record(EPOCH, &[(b"a", Some(b"1")), (b"b", None), (b"", Some(b""))]),
            record(EPOCH, &[(b"c", Some(&[7; 300]))]),
        ]);
        let c = parse_ok(&bytes);
        assert_eq!((c.torn_bytes, c.epoch), (0, Some(EPOCH)));
        assert_eq!(c.valid_bytes, bytes.len() as u64);
        assert_eq!(
            c.records,
            vec![
                vec![
                    (b"a".to_vec(), Some(b"1".to_vec())),
                    (b"b".to_vec(), None),
                    (Vec::new(), Some(Vec::new())),
                ],
                vec![(b"c".to_vec(), Some(vec![7; 300]))],
            ]
        );
    }

    #[test]
    fn a_log_cut_anywhere_keeps_exactly_the_whole_records_before_the_cut() {
        let first = record(EPOCH, &[(b"k1", Some(b"v1")), (b"k2", None)]);
        let second = record(EPOCH, &[(b"k3", Some(&[9; 40]))]);
        let third = record(EPOCH, &[(b"k4", Some(b"v4"))]);
        let all = log(&[first.clone(), second.clone(), third.clone()]);
        let ends = [
            FILE_HEADER + first.len(),
            FILE_HEADER + first.len() + second.len(),
            all.len(),
        ];
        for cut in 0..=all.len() {
            let c = parse_ok(&all[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(c.records.len(), whole, "cut at {cut}");
            assert_eq!(c.valid_bytes + c.torn_bytes, cut as u64);
        }
    }

    #[test]
    fn a_damaged_last_record_is_a_torn_tail_but_a_damaged_earlier_one_refuses_the_open() {
        let first = record(EPOCH, &[(b"k1", Some(b"v1"))]);
        let second = record(EPOCH, &[(b"k2", Some(b"v2"))]);
        let all = log(&[first.clone(), second.clone()]);
        let second_at = FILE_HEADER + first.len();
        for i in 0..all.len() {
            let mut damaged = all.clone();
            damaged[i] ^= 0x10;
            let parsed = parse(Path::new("x/durable.wal"), &damaged);
            if i < FILE_HEADER {
                // records follow a damaged header: their epoch cannot be trusted
                assert!(
                    matches!(parsed, Err(StoreError::CorruptFile { offset: 0, .. })),
                    "byte {i}"
                );
            } else if i < second_at {
                // the first record damaged, a valid one after it: never dropped silently
                match parsed {
                    Err(StoreError::CorruptFile {
                        path,
                        offset,
                        reason,
                    }) => {
                        assert_eq!(path, Path::new("x/durable.wal"));
                        assert_eq!(offset, FILE_HEADER as u64, "byte {i}");
                        assert!(reason.contains(&format!("offset {second_at}")), "{reason}");
                    }
                    other => panic!("byte {i}: expected a refusal, got {other:?}"),
                }
            } else {
                let c = parsed.unwrap();
                assert_eq!(c.records.len(), 1, "bit flipped in byte {i}");
            }
        }
    }

    #[test]
    fn records_of_an_earlier_epoch_are_never_replayed() {
        // a reset's new header over old records whose length lines up: a
        // log without epochs would replay the stale record
        let stale = record(EPOCH, &[(b"k", Some(b"old"))]);
        let mut bytes = file_header(EPOCH + 1).to_vec();
        bytes.extend_from_slice(&record(EPOCH + 1, &[(b"k", Some(b"new"))]));
        bytes.extend_from_slice(&stale);
        let c = parse_ok(&bytes);
        assert_eq!(
            c.records,
            vec![vec![(b"k".to_vec(), Some(b"new".to_vec()))]]
        );
        assert_eq!(c.torn_bytes, stale.len() as u64);
    }

    #[test]
    fn a_format_1_log_is_still_read() {
        let mut bytes = Vec::new();
        for (k, v) in [(&b"a"[..], &b"1"[..]), (b"b", b"2")] {
            let mut payload = vec![SET];
            put_bytes(&mut payload, k);
            put_bytes(&mut payload, v);
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
        }
        let c = parse_ok(&bytes);
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.epoch, None);
    }

    #[test]
    fn an_appended_log_reopens_with_its_records_and_resets_to_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, c) = Wal::open(&RealFs, dir.path()).unwrap();
        assert_eq!(c, Contents::default());
        assert!(wal.needs_reset());
        wal.reset().unwrap();
        let e = wal.epoch();
        wal.append(&record(e, &[(b"a", Some(b"1"))])).unwrap();
        wal.append(&record(e, &[(b"a", None)])).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (mut wal, c) = Wal::open(&RealFs, dir.path()).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(wal.len() + FILE_HEADER as u64, c.valid_bytes);
        wal.reset().unwrap();
        assert_ne!(wal.epoch(), e, "a reset starts a new epoch");
        let e = wal.epoch();
        wal.append(&record(e, &[(b"b", Some(b"2"))])).unwrap();
        drop(wal);
        let (_, c) = Wal::open(&RealFs, dir.path()).unwrap();
        assert_eq!(c.records, vec![vec![(b"b".to_vec(), Some(b"2".to_vec()))]]);
    }

    #[test]
    fn a_torn_tail_is_dropped_at_open_so_later_records_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let whole = record(EPOCH, &[(b"a", Some(b"1"))]);
        let torn = record(EPOCH, &[(b"b", Some(b"2"))]);
        std::fs::write(
            dir.path().join(FILE),
            [log(&[whole]).as_slice(), &torn[..torn.len() - 1]].concat(),
        )
        .unwrap();
        let (mut wal, c) = Wal::open(&RealFs, dir.path()).unwrap();
        assert_eq!((c.records.len(), c.torn_bytes), (1, torn.len() as u64 - 1));
        wal.append(&record(EPOCH, &[(b"c", Some(b"3"))])).unwrap();
        drop(wal);
        let (_, c) = Wal::open(&RealFs, dir.path()).unwrap();
        let keys: Vec<_> = c.records.iter().map(|w| w[0].0.clone()).collect();
        assert_eq!(keys, [b"a".to_vec(), b"c".to_vec()]);
    }

    /// The first append extends the file ahead of its record; the next
    /// ones write inside it (their syncs write no file size), and a reopen
    /// reads the records and keeps the zeros after them as space.
    #[test]
    fn appends_fill_the_zeros_the_log_was_extended_by_and_reopen_with_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let size = || std::fs::metadata(dir.path().join(FILE)).unwrap().len();
        let (mut wal, _) = Wal::open(&RealFs, dir.path()).unwrap();
        wal.reset().unwrap();
        let r = record(wal.epoch(), &[(b"k", Some(&[1; 100]))]);
        wal.append(&r).unwrap();
        let extended = (FILE_HEADER + r.len()) as u64 + PREALLOCATE;
        assert_eq!(size(), extended);
        for _ in 1..10 {
            wal.append(&r).unwrap();
        }
        wal.sync().unwrap();
        assert_eq!(size(), extended, "appends inside the zeros change no size");
        drop(wal);
        let (mut wal, c) = Wal::open(&RealFs, dir.path()).unwrap();
        assert_eq!((c.records.len(), c.torn_bytes), (10, 0));
        assert_eq!(wal.len(), 10 * r.len() as u64);
        assert_eq!(size(), extended, "the zeros are kept at open");
        wal.append(&r).unwrap();
        drop(wal);
        let (_, c) = Wal::open(&RealFs, dir.path()).unwrap();
        assert_eq!(c.records.len(), 11);
        // a large record past the zeros extends the file by itself (its
        // bytes, not the file size, are what its sync waits for); a small
        // one after it extends it with zeros again
        let (mut wal, _) = Wal::open(&RealFs, dir.path()).unwrap();
        let big = record(wal.epoch(), &[(b"k", Some(&vec![2; PREALLOCATE as usize]))]);
        wal.append(&big).unwrap();
        let end = (FILE_HEADER + 11 * r.len() + big.len()) as u64;
        assert_eq!(size(), end);
        wal.append(&r).unwrap();
        let end = end + r.len() as u64;
        assert_eq!(size(), end + PREALLOCATE);
        drop(wal);
        let (_, c) = Wal::open(&RealFs, dir.path()).unwrap();
        assert_eq!((c.records.len(), c.torn_bytes, c.valid_bytes), (13, 0, end));
    }
}
