//! Which kind of embedded store a directory holds, recorded in the
//! directory itself (`durable.store`), so that opening it with the other
//! backend is a clear error instead of a silent new, empty store beside the
//! old one.

use std::path::Path;

use super::StoreError;
use super::fs::Fs;

/// The marker file's name.
pub(crate) const FILE: &str = "durable.store";

/// An embedded store kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// [`RedbStore`](super::redb::RedbStore), the default.
    Redb,
    /// [`SledStore`](super::sled::SledStore).
    Sled,
}

impl Kind {
    /// The kind's name, as in store URLs (`redb:DIR`, `sled:DIR`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Redb => "redb",
            Kind::Sled => "sled",
        }
    }

    fn marker(self) -> String {
        format!("durable-store {}\n", self.name())
    }
}

/// The kind of store in `dir`: from its marker, or for a sled directory
/// written before markers existed, from sled's files; `None` for a new
/// directory (or one whose creation a crash cut short).
pub(crate) fn detect(fs: &dyn Fs, dir: &Path) -> Result<Option<Kind>, StoreError> {
    let marker = dir.join(FILE);
    let io = |what: &'static str| move |e| super::fs::at(dir, what, e);
    if fs.exists(&marker).map_err(io("looking into"))? {
        let text = fs
            .read(&marker)
            .map_err(|e| super::fs::at(&marker, "reading", e))?;
        return match std::str::from_utf8(&text).map(str::trim) {
            Ok("durable-store redb") => Ok(Some(Kind::Redb)),
            Ok("durable-store sled") => Ok(Some(Kind::Sled)),
            // an empty marker is a creation a crash cut short: nothing is in the store yet
            Ok("") => Ok(None),
            _ => Err(StoreError::CorruptFile {
                path: marker,
                offset: 0,
                reason: format!(
                    "not a store-kind marker (expected `durable-store redb` or `durable-store sled`, found {:?})",
                    String::from_utf8_lossy(&text[..text.len().min(64)])
                ),
            }),
        };
    }
    // sled's own files, from builds before the marker
    if fs.exists(&dir.join("conf")).map_err(io("looking into"))?
        && fs.exists(&dir.join("db")).map_err(io("looking into"))?
    {
        return Ok(Some(Kind::Sled));
    }
    // a redb file without a marker is a creation a crash cut short (the
    // marker is written once redb's first commit is durable): a new store
    Ok(None)
}

/// Makes sure `dir` exists and holds a store of `kind` or none yet:
/// `Ok(true)` if it holds one, `Ok(false)` for a new store (then
/// [`mark`] once the store's own files are durable).
pub(crate) fn check(fs: &dyn Fs, dir: &Path, kind: Kind) -> Result<bool, StoreError> {
    fs.create_dir_all(dir)
        .map_err(|e| super::fs::at(dir, "creating", e))?;
    match detect(fs, dir)? {
        Some(found) if found != kind => Err(StoreError::WrongKind {
            path: dir.to_path_buf(),
            found: found.name().into(),
            expected: kind.name().into(),
        }),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// Records durably that `dir` holds a store of `kind` (if the marker is
/// not there yet).
pub(crate) fn mark(fs: &dyn Fs, dir: &Path, kind: Kind) -> Result<(), StoreError> {
    let marker = dir.join(FILE);
    let at = |what: &'static str| {
        let marker = marker.clone();
        move |e| super::fs::at(&marker, what, e)
    };
    if fs.exists(&marker).map_err(at("looking for"))?
        && !fs.read(&marker).map_err(at("reading"))?.is_empty()
    {
        return Ok(());
    }
    let file = fs.open(&marker, true).map_err(at("creating"))?;
    file.set_len(0).map_err(at("writing"))?;
    file.write_at(0, kind.marker().as_bytes())
        .map_err(at("writing"))?;
    file.sync_data().map_err(at("syncing"))?;
    fs.sync_dir(dir)
        .map_err(|e| super::fs::at(dir, "syncing", e))
}
