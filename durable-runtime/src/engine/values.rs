//! How one stored field value (an `f` key's: a large field of a state, or
//! a large input; see [`super::fields`]) is kept under its keys.
//!
//! - **Compressed** when LZ4 saves at least an eighth of it (a document,
//!   a list of line items, JSON text held as a string): its number then
//!   has [`PACKED`] set.
//! - **Cut into pieces** of at most [`PIECE`] bytes when what is stored is
//!   larger: redb gives a value a region of the next power of two above its
//!   size, so a 64 KiB value took 128 KiB of disk; in pieces it takes what
//!   it needs. The number of pieces is in the value's number (bits 48–62),
//!   and the pieces are under its key with a `u16` piece index after it.
//!
//! The number a record refers to (`Part::Field`), retires and deletes
//! carries both flags, so the keys say how to read the value; stores
//! written before either read as they were (no flag: one key, as it is).

use super::fields::INPUT;
use crate::store::{self, Batch, Store, StoreError, Wait, keys};

/// Set in the number of a stored value that is LZ4-compressed (its
/// uncompressed length first, as a little-endian `u32`, then the LZ4 block).
pub(crate) const PACKED: u64 = 1 << 63;

/// Where a number holds how many pieces its value is stored in (0: one
/// key, no piece index).
const PIECES_SHIFT: u32 = 48;
const PIECES: u64 = 0x7fff << PIECES_SHIFT;

/// The largest piece: 8,000 bytes and its key fit an 8 KiB region of
/// redb's with room to spare (measured: 64 KiB of random bytes take 69.9
/// KiB of disk in pieces of 8,000, 165.9 KiB whole).
pub(crate) const PIECE: usize = 8000;

/// The number of stored value `seq` without its flags: what orders values
/// and tells the input from the others.
pub(crate) fn number(seq: u64) -> u64 {
    seq & !(PACKED | PIECES)
}

fn pieces(seq: u64) -> u64 {
    (seq & PIECES) >> PIECES_SHIFT
}

/// The key of piece `index` of value `seq`, or its only key.
fn key(id: &str, seq: u64, index: Option<u64>) -> Vec<u8> {
    let mut key = keys::field(id, seq & !PIECES);
    if let Some(i) = index {
        key.extend_from_slice(&(i as u16).to_be_bytes());
    }
    key
}

/// The first key value `seq` is stored under (for messages).
pub(crate) fn first_key(id: &str, seq: u64) -> Vec<u8> {
    key(id, seq, (pieces(seq) > 0).then_some(0))
}

/// Adds value number `number` (no flags) of instance `id`, holding
/// `bytes`, to `batch`: compressed if that pays, in pieces if large. The
/// number to refer to it by, with its flags.
pub(crate) fn put(batch: &mut Batch, id: &str, number: u64, bytes: &[u8]) -> u64 {
    let (seq, stored) = pack(number, bytes);
    let count = stored.len().div_ceil(PIECE) as u64;
    if count <= 1 || count > PIECES >> PIECES_SHIFT {
        batch.put(key(id, seq, None), stored);
        return seq;
    }
    for (i, piece) in stored.chunks(PIECE).enumerate() {
        batch.put(key(id, seq, Some(i as u64)), piece.to_vec());
    }
    seq | (count << PIECES_SHIFT)
}

/// Adds the deletion of value `seq` (every piece of it) to `batch`.
pub(crate) fn delete(batch: &mut Batch, id: &str, seq: u64) {
    match pieces(seq) {
        0 => {
            batch.delete(key(id, seq, None));
        }
        count => {
            for i in 0..count {
                batch.delete(key(id, seq, Some(i)));
            }
        }
    }
}

/// The bytes of value `seq` of instance `id`; `None` when it (or a piece
/// of it) is not stored: a later checkpoint replaced it meanwhile.
pub(crate) async fn read(
    store: &dyn Store,
    id: &str,
    seq: u64,
    wait: Wait,
) -> Result<Option<Vec<u8>>, StoreError> {
    let stored = match pieces(seq) {
        0 => store::get(store, &key(id, seq, None), wait).await?,
        count => {
            let mut whole = Vec::with_capacity(count as usize * PIECE);
            for i in 0..count {
                match store::get(store, &key(id, seq, Some(i)), wait).await? {
                    Some(piece) => whole.extend_from_slice(&piece),
                    None => return Ok(None),
                }
            }
            Some(whole)
        }
    };
    stored
        .map(|s| unpack(&first_key(id, seq), seq, s))
        .transpose()
}

/// The bytes of instance `id`'s kept input (value [`INPUT`]), however it
/// was stored, found by its keys: the history and a rerun refer to it
/// without its flags. Written whole in one batch and deleted only with the
/// instance, so its pieces are read up to the first missing one.
pub(crate) async fn read_input(
    store: &dyn Store,
    id: &str,
    wait: Wait,
) -> Result<Option<Vec<u8>>, StoreError> {
    for seq in [INPUT | PACKED, INPUT] {
        if let Some(stored) = store::get(store, &key(id, seq, None), wait).await? {
            return unpack(&key(id, seq, None), seq, stored).map(Some);
        }
        let mut whole = Vec::new();
        let mut count = 0;
        while let Some(piece) = store::get(store, &key(id, seq, Some(count)), wait).await? {
            whole.extend_from_slice(&piece);
            count += 1;
        }
        if count > 0 {
            return unpack(&key(id, seq, Some(0)), seq, whole).map(Some);
        }
    }
    Ok(None)
}

/// The numbers (with their flags) of the values the store holds for
/// instance `id`, read off its keys.
pub(crate) fn stored(store: &dyn Store, id: &str) -> Result<Vec<u64>, StoreError> {
    let prefix = keys::fields_prefix(id);
    let mut out: Vec<u64> = Vec::new();
    for (key, _) in store.scan_prefix(&prefix)? {
        let rest = &key[prefix.len()..];
        let Some(seq) = rest.get(..8).and_then(|b| b.try_into().ok()) else {
            continue;
        };
        let seq = u64::from_be_bytes(seq);
        match (rest.len(), out.last_mut()) {
            // a further piece of the value before
            (10, Some(last)) if *last & !PIECES == seq => *last += 1 << PIECES_SHIFT,
            (10, _) => out.push(seq | (1 << PIECES_SHIFT)),
            _ => out.push(seq),
        }
    }
    Ok(out)
}

/// How value number `seq` (no [`PACKED`] bit) holding `bytes` is stored:
/// the number it is stored under and the stored bytes. Compressed when
/// that saves at least an eighth; a sample of the start decides first, so
/// a value that does not compress (random, already compressed) costs only
/// the sample.
fn pack(seq: u64, bytes: &[u8]) -> (u64, Vec<u8>) {
    const SAMPLE: usize = 4096;
    let pays = |raw: usize, packed: usize| packed <= raw - raw / 8;
    if bytes.len() > 2 * SAMPLE {
        let sample = &bytes[..SAMPLE];
        if !pays(SAMPLE, lz4_flex::block::compress(sample).len()) {
            return (seq, bytes.to_vec());
        }
    }
    let packed = lz4_flex::block::compress_prepend_size(bytes);
    if pays(bytes.len(), packed.len()) {
        (seq | PACKED, packed)
    } else {
        (seq, bytes.to_vec())
    }
}

/// The bytes of stored value `seq` (under `key`) as the store holds
/// `stored`: decompressed when [`PACKED`].
fn unpack(key: &[u8], seq: u64, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if seq & PACKED == 0 {
        return Ok(stored);
    }
    let corrupt = |reason: String| StoreError::Corrupt {
        key: crate::store::printable(key),
        reason,
    };
    // the stated length bounds what is allocated: a value is at most what
    // the limits let a payload be, far under this
    const MOST: usize = 1 << 30;
    let stated = stored
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")) as usize)
        .ok_or_else(|| corrupt("a compressed value shorter than its length".into()))?;
    if stated > MOST {
        return Err(corrupt(format!(
            "a compressed value stating {stated} bytes uncompressed"
        )));
    }
    let bytes = lz4_flex::block::decompress(&stored[4..], stated)
        .map_err(|e| corrupt(format!("a compressed value that does not decompress: {e}")))?;
    if bytes.len() != stated {
        return Err(corrupt(format!(
            "a compressed value of {} bytes stating {stated}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fields::FIELD_AT;
    use crate::store::mem::MemStore;

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_value_that_compresses_is_stored_packed_and_reads_back_whole() {
        let text: Vec<u8> = b"line item: book, 1234 cents; ".repeat(2000);
        let (seq, stored) = pack(7, &text);
        assert_eq!(seq, 7 | PACKED);
        assert_eq!(number(seq), 7);
        assert!(stored.len() < text.len() / 8, "{}", stored.len());
        assert_eq!(unpack(b"k", seq, stored).unwrap(), text);
    }

    #[test]
    fn a_value_that_does_not_compress_is_stored_as_it_is() {
        for len in [FIELD_AT, 5000, 64 * 1024] {
            let bytes = noise(len);
            let (seq, stored) = pack(3, &bytes);
            assert_eq!(seq, 3, "{len}");
            assert_eq!(stored, bytes);
            assert_eq!(unpack(b"k", seq, stored).unwrap(), bytes);
        }
        // compressible at the start only: the sample lets it try, the whole
        // does not pay, so it stays as it is
        let mut mixed = vec![b'x'; 4096];
        mixed.extend(noise(60 * 1024));
        let (seq, stored) = pack(4, &mixed);
        assert_eq!((seq, stored.len()), (4, mixed.len()));
    }

    #[test]
    fn a_damaged_packed_value_is_a_corrupt_error_naming_it_never_a_panic() {
        let (seq, good) = pack(1, &[b'a'; 10_000]);
        assert_eq!(seq & PACKED, PACKED);
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut cut = good.clone();
        cut.truncate(good.len() / 2);
        let mut wrong_len = good.clone();
        wrong_len[..4].copy_from_slice(&20_000u32.to_le_bytes());
        for bad in [vec![], vec![1, 2], huge, cut, wrong_len, noise(300)] {
            match unpack(b"f-x", seq, bad) {
                Err(StoreError::Corrupt { key, reason }) => {
                    assert!(key.contains("f-x"), "{key}");
                    assert!(reason.contains("compressed value"), "{reason}");
                }
                other => panic!("{:?}", other.map(|v| v.len())),
            }
        }
    }

    async fn committed(batch: Batch) -> MemStore {
        let store = MemStore::new();
        store.commit(batch).await.unwrap();
        store
    }

    #[tokio::test]
    async fn a_large_value_is_stored_in_pieces_read_whole_and_deleted_with_every_piece() {
        let bytes = noise(20_000);
        let mut batch = Batch::default();
        let seq = put(&mut batch, "w", 5, &bytes);
        assert_eq!((number(seq), pieces(seq), seq & PACKED), (5, 3, 0));
        assert!(
            batch
                .writes
                .iter()
                .all(|(_, v)| v.as_ref().unwrap().len() <= PIECE)
        );
        let store = committed(batch).await;
        assert_eq!(
            store::now(read(&store, "w", seq, Wait::Thread))
                .unwrap()
                .unwrap(),
            bytes
        );
        assert_eq!(stored(&store, "w").unwrap(), vec![seq]);
        let mut gone = Batch::default();
        delete(&mut gone, "w", seq);
        store.commit(gone).await.unwrap();
        assert!(
            store
                .scan_prefix(&keys::fields_prefix("w"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store::now(read(&store, "w", seq, Wait::Thread)).unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn values_of_every_kind_read_back_and_are_listed_by_their_numbers() {
        let mut batch = Batch::default();
        let small = put(&mut batch, "w", 1, &noise(600));
        let packed = put(&mut batch, "w", 2, &b"book ".repeat(20_000));
        let pieces_of_packed = put(&mut batch, "w", 3, &{
            // compresses by half: packed, and still over a piece
            let mut v = vec![b'x'; 20_000];
            v.extend(noise(20_000));
            v
        });
        let input = put(&mut batch, "w", INPUT, &noise(9_000));
        let store = committed(batch).await;
        assert_eq!(pieces(small) + (small & PACKED), 0);
        assert_eq!((packed & PACKED, pieces(packed)), (PACKED, 0));
        assert_eq!(pieces_of_packed & PACKED, PACKED);
        assert!(pieces(pieces_of_packed) >= 2, "{pieces_of_packed:x}");
        assert_eq!(pieces(input), 2);
        let mut listed = stored(&store, "w").unwrap();
        listed.sort_unstable();
        let mut expected = vec![small, packed, pieces_of_packed, input];
        expected.sort_unstable();
        assert_eq!(listed, expected);
        assert_eq!(
            store::now(read(&store, "w", packed, Wait::Thread))
                .unwrap()
                .unwrap(),
            b"book ".repeat(20_000)
        );
        assert_eq!(
            store::now(read_input(&store, "w", Wait::Thread))
                .unwrap()
                .unwrap(),
            noise(9_000)
        );
        // a piece gone (replaced meanwhile): not stored, so read again
        let mut cut = Batch::default();
        cut.delete(key("w", pieces_of_packed, Some(1)));
        store.commit(cut).await.unwrap();
        assert_eq!(
            store::now(read(&store, "w", pieces_of_packed, Wait::Thread)).unwrap(),
            None
        );
    }
}
