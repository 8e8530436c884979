//! The file-system seam of the embedded stores: every byte the log and the
//! default store write, and every sync that makes it durable, goes through
//! these two traits.
//!
//! The real implementation ([`RealFs`]) is a thin layer over `std::fs`. The
//! seam exists so that tests can put a simulated disk under the real store
//! formats (`store::faults::SimFs`, feature `testing`): fail any call with
//! `EIO` or `ENOSPC`, tear a write, or cut the power and keep only what a
//! completed sync covered.

use std::io;
use std::path::Path;
use std::sync::Arc;

/// An open file: positioned reads and writes, length and `fdatasync`.
#[allow(clippy::len_without_is_empty)]
pub trait FsFile: std::fmt::Debug + Send + Sync + 'static {
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `out` from `offset`; an error if the file is shorter.
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data and length durable (`fdatasync`). A failure
    /// means some written data may never reach the disk: the caller must
    /// not rely on any write since the last successful sync, and must not
    /// retry the sync as if it could repair that.
    fn sync_data(&self) -> io::Result<()>;
}

/// A directory tree the stores keep their files in.
pub trait Fs: std::fmt::Debug + Send + Sync + 'static {
    /// Opens `path` for reading and writing, creating it (empty) if
    /// `create` and it does not exist. A file created here is durable only
    /// once its directory is [synced](Fs::sync_dir).
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Creates directory `path` and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the names in directory `path` durable (`fsync` of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Reads the whole of a small file (the store's kind marker).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open(path, false)?;
        let len = usize::try_from(file.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        let mut out = vec![0; len];
        file.read_at(0, &mut out)?;
        Ok(out)
    }
    /// Holds an exclusive lock on `path` (created if missing) while the
    /// returned guard lives; `Ok(None)` if another process holds it.
    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send + Sync>>>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: std::fs::File,
}

impl FsFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, out, offset)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(RealFile { file }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Writes `bytes` to the file at `path` (created or replaced) and makes it
/// durable: the file's data, then the directory entry that names it. Only
/// when this returns is the file sure to survive a power cut (`durable
/// export` reports success after it).
///
/// # Errors
/// The first failed operation, with the file in its message.
pub fn write_durably(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let file = fs.open(path, true).map_err(with_path)?;
    file.set_len(0).map_err(with_path)?;
    file.write_at(0, bytes).map_err(with_path)?;
    file.sync_data().map_err(with_path)?;
    sync_parent(fs, path).map_err(with_path)
}

/// Makes the directory entry naming `path` durable: syncs the directory
/// that holds it (the current one for a bare file name). After a file is
/// created or renamed into place, only this makes its name survive a
/// power cut.
///
/// # Errors
/// The directory could not be opened or synced.
pub fn sync_parent(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs.sync_dir(dir)
}

/// A failed file operation, with the file it was on; kept as the source of
/// [`StoreError::Io`](super::StoreError::Io).
pub(crate) fn at(path: &Path, what: &str, e: io::Error) -> super::StoreError {
    super::StoreError::io(format!("{what} {}", path.display()), e)
}
