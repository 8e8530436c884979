//! Acknowledged writes not yet in the tree.
//!
//! Once a group's log record is synced the group is durable and its
//! writers are answered. An embedded store that defers (redb) does not
//! apply each group to its tree at once: the group's writes wait here, the
//! newest value of each key, until the commit thread applies all of them in
//! one transaction of the tree ([`Pending::apply`]). Every read of the store
//! looks here first, so a writer that was answered reads what it wrote.
//!
//! A read that also needs the tree opens its tree read while it holds this
//! map's lock, and the commit thread empties the map only after the tree
//! has committed what the map held: a read sees every group either here or
//! in its tree read, never neither, and never a group in part.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use super::wal::Writes;
use super::{KeyValue, StoreError};

/// The newest value of each key written by groups not yet applied
/// (`None`: removed).
pub(crate) type Latest = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What a lookup found: the key's pending value, or the tree's read to
/// look in.
pub(crate) enum Found<R> {
    Pending(Option<Vec<u8>>),
    Tree(R),
}

/// The writes of acknowledged groups that the tree does not hold yet.
#[derive(Default)]
pub(crate) struct Pending {
    latest: RwLock<Latest>,
}

impl Pending {
    /// `key`'s pending value, or, if no pending group writes it, the read
    /// `open` begins in the tree (begun under the lock, so it holds every
    /// group that has left this map).
    pub(crate) fn get<R>(
        &self,
        key: &[u8],
        open: impl FnOnce() -> Result<R, StoreError>,
    ) -> Result<Found<R>, StoreError> {
        let latest = self.latest.read().unwrap_or_else(PoisonError::into_inner);
        match latest.get(key) {
            Some(value) => Ok(Found::Pending(value.clone())),
            None => open().map(Found::Tree),
        }
    }

    /// The pending writes of keys that start with `prefix` and are `>=
    /// from`, in key order, and the read `open` begins in the tree under
    /// the same lock: together, one consistent view.
    pub(crate) fn range<R>(
        &self,
        prefix: &[u8],
        from: &[u8],
        open: impl FnOnce() -> Result<R, StoreError>,
    ) -> Result<(Writes, R), StoreError> {
        let latest = self.latest.read().unwrap_or_else(PoisonError::into_inner);
        let writes = latest
            .range::<[u8], _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok((writes, open()?))
    }

    /// `key`'s pending value, if a pending group writes it (for the commit
    /// thread's checks, which read the tree themselves).
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let latest = self.latest.read().unwrap_or_else(PoisonError::into_inner);
        latest.get(key).cloned()
    }

    /// Adds a durable group's writes, in order (a later write of a key
    /// replaces an earlier one); returns their bytes.
    pub(crate) fn add(
        &self,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> usize {
        let mut latest = self.latest.write().unwrap_or_else(PoisonError::into_inner);
        let mut bytes = 0;
        for (key, value) in writes {
            bytes += key.len() + value.as_ref().map_or(0, Vec::len);
            latest.insert(key, value);
        }
        bytes
    }

    /// Applies everything pending with `apply` (one transaction of the
    /// tree, visible to its readers when it returns), then empties the map.
    /// On an error nothing is removed: reads go on seeing every
    /// acknowledged write.
    pub(crate) fn apply(
        &self,
        apply: impl FnOnce(&Latest) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        {
            // readers share this lock; only this thread ever writes the map
            let latest = self.latest.read().unwrap_or_else(PoisonError::into_inner);
            if latest.is_empty() {
                return Ok(());
            }
            apply(&latest)?;
        }
        self.latest
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }
}

/// At most `limit` keys starting with `prefix`, in key order: the `pending`
/// writes (from [`Pending::range`]) laid over `tree`, the tree's pairs from
/// the same `from` on in key order (read only as far as needed).
pub(crate) fn merge(
    pending: Writes,
    tree: impl Iterator<Item = Result<KeyValue, StoreError>>,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<KeyValue>, StoreError> {
    let mut pending = pending.into_iter().peekable();
    let mut tree = tree
        .take_while(|read| match read {
            Ok((key, _)) => key.starts_with(prefix),
            Err(_) => true,
        })
        .peekable();
    let mut out = Vec::new();
    while out.len() < limit {
        if let Some(Err(e)) = tree.next_if(Result::is_err) {
            return Err(e);
        }
        let tree_key = tree
            .peek()
            .and_then(|r| r.as_ref().ok())
            .map(|(k, _)| k.as_slice());
        let pending_key = pending.peek().map(|(k, _)| k.as_slice());
        let (from_pending, replaces) = match (pending_key, tree_key) {
            (None, None) => break,
            (Some(p), Some(t)) => (p <= t, p == t),
            (Some(_), None) => (true, false),
            (None, Some(_)) => (false, false),
        };
        if from_pending {
            if replaces {
                tree.next();
            }
            if let Some((key, Some(value))) = pending.next() {
                out.push((key, value));
            }
        } else if let Some(Ok(pair)) = tree.next() {
            out.push(pair);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    fn tree(pairs: &[(&str, &str)]) -> impl Iterator<Item = Result<KeyValue, StoreError>> {
        pairs
            .iter()
            .map(|(k, v)| Ok(kv(k, v)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn write(k: &str, v: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn a_scan_shows_pending_writes_over_the_tree_removals_included() {
        let pending = vec![
            write("p/a", Some("new")),
            write("p/b", None),
            write("p/d", Some("added")),
        ];
        let tree = tree(&[
            ("p/a", "old"),
            ("p/b", "gone"),
            ("p/c", "kept"),
            ("q/a", "other"),
        ]);
        let got = merge(pending, tree, b"p/", usize::MAX).unwrap();
        assert_eq!(
            got,
            vec![kv("p/a", "new"), kv("p/c", "kept"), kv("p/d", "added")]
        );
    }

    #[test]
    fn a_scan_stops_at_its_limit_and_at_the_end_of_its_prefix() {
        let pending = vec![write("p/b", Some("2")), write("p/d", Some("4"))];
        let tree = tree(&[("p/a", "1"), ("p/c", "3"), ("p/e", "5"), ("q/a", "x")]);
        let got = merge(pending.clone(), tree, b"p/", 3).unwrap();
        assert_eq!(got, vec![kv("p/a", "1"), kv("p/b", "2"), kv("p/c", "3")]);
        let only_tree_after = super::tests::tree(&[("q/a", "x")]);
        assert_eq!(merge(pending, only_tree_after, b"p/", 10).unwrap().len(), 2);
    }

    #[test]
    fn a_tree_read_error_is_returned() {
        let failing = vec![Ok(kv("p/a", "1")), Err(StoreError::Closed)].into_iter();
        assert!(merge(Vec::new(), failing, b"p/", 10).is_err());
    }

    #[test]
    fn pending_writes_keep_the_newest_value_and_leave_only_once_applied() {
        let pending = Pending::default();
        pending.add([write("a", Some("1")), write("b", Some("1"))]);
        pending.add([write("a", Some("2")), write("b", None)]);
        assert_eq!(pending.lookup(b"a"), Some(Some(b"2".to_vec())));
        assert_eq!(pending.lookup(b"b"), Some(None));
        assert_eq!(pending.lookup(b"c"), None);
        // a failed apply keeps everything
        let failed = pending.apply(|_| Err(StoreError::Closed));
        assert!(failed.is_err());
        assert_eq!(pending.lookup(b"a"), Some(Some(b"2".to_vec())));
        let mut applied = Latest::new();
        pending
            .apply(|latest| {
                applied = latest.clone();
                Ok(())
            })
            .unwrap();
        assert_eq!(applied.len(), 2);
        assert_eq!(pending.lookup(b"a"), None);
        let (range, ()) = pending.range(b"", b"", || Ok(())).unwrap();
        assert!(range.is_empty());
    }
}
