//! The sled store's write-ahead log: one record per group commit.
//!
//! sled 0.34 makes a write durable only through `flush`, which hands the
//! write to sled's I/O thread pool, waits for it on a condition variable and
//! ends in `sync_file_range` (not durable: sled issue #1452), so a group
//! paid sled's flush and then our `fdatasync` of sled's file. Now a group is
//! made durable by appending its writes to this log and `fdatasync`ing it,
//! on the commit thread (one write and one sync), and only then applied to
//! sled's tree in memory. A checkpoint (sled `flush` + `fdatasync` of its files) empties the
//! log from time to time and on close; opening replays what the log holds
//! on top of whatever sled recovered.
//!
//! Replay is correct from any state sled recovered to, as long as sled kept
//! the checkpoint's values of the keys no later record writes: every record
//! holds whole values (sets and removes, no read-modify-write), so applying
//! all the records since the checkpoint in order leaves each key they write
//! at its last value, whatever part of them sled held before.
//!
//! Layout: records back to back, each `len: u32 LE | crc32(payload): u32 LE
//! | payload`; the payload is the group's writes in order, each `op: u8`
//! (1 set, 0 remove) `| key len: u32 LE | key | value len: u32 LE | value`
//! (no value for a remove). A record cut short or failing its checksum is a
//! write a crash interrupted, never acknowledged: reading stops there.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::StoreError;

/// The log's file name inside the sled directory.
pub(crate) const FILE: &str = "durable.wal";

/// Past this many bytes the log is checkpointed and emptied.
pub(crate) const CHECKPOINT_BYTES: u64 = 8 << 20;

const SET: u8 = 1;
const REMOVE: u8 = 0;
const HEADER: usize = 8;

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

    /// Frames the record (header: length and checksum); an error if the
    /// group's writes add up to 4 GiB or more. Then [`bytes`](Record::bytes)
    /// is what to append.
    pub(crate) fn seal(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            self.clear();
        }
        let payload = &self.buf[HEADER..];
        let len = u32::try_from(payload.len()).map_err(|_| {
            StoreError::Io("a group of writes of 4 GiB or more cannot be stored".into())
        })?;
        let crc = crc32fast::hash(payload);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..HEADER].copy_from_slice(&crc.to_le_bytes());
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

/// What a log's bytes hold: the complete records, and how many bytes of a
/// torn or corrupt tail follow them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Contents {
    pub(crate) records: Vec<Writes>,
    pub(crate) valid_bytes: u64,
    pub(crate) torn_bytes: u64,
}

/// Reads the records of a log's bytes up to the first incomplete or
/// corrupt one.
pub(crate) fn parse(bytes: &[u8]) -> Contents {
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(writes) = record_at(bytes, at) {
        let (writes, next) = writes;
        records.push(writes);
        at = next;
    }
    Contents {
        records,
        valid_bytes: at as u64,
        torn_bytes: (bytes.len() - at) as u64,
    }
}

/// The record starting at `at` and where the next begins, if it is whole.
fn record_at(bytes: &[u8], at: usize) -> Option<(Writes, usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let start = at + HEADER;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    if len == 0 || crc32fast::hash(payload) != crc {
        return None;
    }
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
    Some((writes, start + len))
}

fn take_bytes(p: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(p.get(..4)?.try_into().ok()?) as usize;
    let bytes = p.get(4..4usize.checked_add(len)?)?;
    Some((bytes, &p[4 + len..]))
}

/// The open log file.
pub(crate) struct Wal {
    file: File,
    len: u64,
}

fn io_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("write-ahead log: {e}"))
}

impl Wal {
    /// Opens (or creates, durably) the log in `dir` and reads it.
    pub(crate) fn open(dir: &Path) -> Result<(Wal, Contents), StoreError> {
        let path = dir.join(FILE);
        let existed = path.exists();
        let mut file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err)?;
        if !existed {
            // the new name must survive a power cut before anything is in it
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        let contents = parse(&bytes);
        if contents.torn_bytes > 0 {
            // an interrupted append: records written after it would be unreadable
            tracing::warn!(
                bytes = contents.torn_bytes,
                "write-ahead log ends in an incomplete record (an interrupted write, never acknowledged); dropped"
            );
            file.set_len(contents.valid_bytes).map_err(io_err)?;
            file.sync_data().map_err(io_err)?;
        }
        let len = contents.valid_bytes;
        Ok((Wal { file, len }, contents))
    }

    /// Appends a sealed record; [`sync`](Wal::sync) makes it durable.
    pub(crate) fn append(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(record).map_err(io_err)?;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Makes what was appended durable (`fdatasync`).
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(io_err)
    }

    /// Bytes in the log.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Empties the log, durably; only once everything in it is durable in
    /// sled (a checkpoint).
    pub(crate) fn reset(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0).map_err(io_err)?;
        self.file.sync_data().map_err(io_err)?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(writes: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut r = Record::default();
        r.clear();
        for (k, v) in writes {
            r.push(k, *v);
        }
        r.seal().unwrap();
        r.bytes().to_vec()
    }

    #[test]
    fn records_read_back_as_written() {
        let mut bytes = record(&[(b"a", Some(b"1")), (b"b", None), (b"", Some(b""))]);
        bytes.extend(record(&[(b"c", Some(&[7; 300]))]));
        let c = parse(&bytes);
        assert_eq!(c.torn_bytes, 0);
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
        let first = record(&[(b"k1", Some(b"v1")), (b"k2", None)]);
        let second = record(&[(b"k3", Some(&[9; 40]))]);
        let third = record(&[(b"k4", Some(b"v4"))]);
        let all = [first.clone(), second.clone(), third.clone()].concat();
        let ends = [first.len(), first.len() + second.len(), all.len()];
        for cut in 0..=all.len() {
            let c = parse(&all[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(c.records.len(), whole, "cut at {cut}");
            assert_eq!(c.valid_bytes + c.torn_bytes, cut as u64);
        }
    }

    #[test]
    fn a_flipped_bit_ends_the_log_at_the_damaged_record() {
        let first = record(&[(b"k1", Some(b"v1"))]);
        let second = record(&[(b"k2", Some(b"v2"))]);
        let all = [first.clone(), second].concat();
        for i in 0..all.len() {
            let mut damaged = all.clone();
            damaged[i] ^= 0x10;
            let c = parse(&damaged);
            let expected = usize::from(i >= first.len());
            assert_eq!(c.records.len(), expected, "bit flipped in byte {i}");
        }
    }

    #[test]
    fn an_appended_log_reopens_with_its_records_and_resets_to_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, c) = Wal::open(dir.path()).unwrap();
        assert_eq!(c, Contents::default());
        wal.append(&record(&[(b"a", Some(b"1"))])).unwrap();
        wal.append(&record(&[(b"a", None)])).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (mut wal, c) = Wal::open(dir.path()).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(wal.len(), c.valid_bytes);
        wal.reset().unwrap();
        wal.append(&record(&[(b"b", Some(b"2"))])).unwrap();
        drop(wal);
        let (_, c) = Wal::open(dir.path()).unwrap();
        assert_eq!(c.records, vec![vec![(b"b".to_vec(), Some(b"2".to_vec()))]]);
    }

    #[test]
    fn a_torn_tail_is_dropped_at_open_so_later_records_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let whole = record(&[(b"a", Some(b"1"))]);
        let torn = record(&[(b"b", Some(b"2"))]);
        std::fs::write(
            dir.path().join(FILE),
            [whole.as_slice(), &torn[..torn.len() - 1]].concat(),
        )
        .unwrap();
        let (mut wal, c) = Wal::open(dir.path()).unwrap();
        assert_eq!((c.records.len(), c.torn_bytes), (1, torn.len() as u64 - 1));
        wal.append(&record(&[(b"c", Some(b"3"))])).unwrap();
        drop(wal);
        let (_, c) = Wal::open(dir.path()).unwrap();
        let keys: Vec<_> = c.records.iter().map(|w| w[0].0.clone()).collect();
        assert_eq!(keys, [b"a".to_vec(), b"c".to_vec()]);
    }
}
