//! A simulated disk for fault sweeps (feature `testing`): the embedded
//! store's real file formats on an in-memory [`Fs`] that can fail any call
//! and lose power.
//!
//! The model (turmoil's and redb's): each file has the bytes readers see
//! and the bytes that survive a power cut. A write or a length change is
//! *pending* until a successful [`FsFile::sync_data`] of its file; a new
//! file's name is pending until its directory is synced.
//!
//! - [`Fault::Eio`] / [`Fault::Enospc`] at call `n`: that call fails and has
//!   no effect — except a failed sync, which (as Linux does after a failed
//!   write-back) drops the file's pending writes from what will ever reach
//!   the disk while readers still see them, and reports success next time.
//! - [`Fault::TornWrite`] at call `n`: a write stores only a prefix of its
//!   bytes, then fails with `EIO` (other calls: as `Eio`).
//! - [`Fault::PowerCut`] at call `n`: that call and every later one fail;
//!   [`SimFs::after_power_cut`] is the disk as it boots again.
//!
//! Calls counted (the sweep's "call index"): every write, sync, length
//! change, file creation and directory sync. Reads are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fs::{Fs, FsFile};

/// A fault to inject at one call index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The call fails with `EIO`.
    Eio,
    /// The call fails with `ENOSPC` (a full disk).
    Enospc,
    /// A write stores only a prefix of its bytes, then fails with `EIO`.
    TornWrite,
    /// The power goes out: this call and every later one fail.
    PowerCut,
}

/// How a power cut treats the bytes no sync covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Loss {
    /// Every pending write and every unsynced name is lost.
    All,
    /// Each pending write is kept, lost or torn (a prefix kept), and each
    /// unsynced name kept or lost, independently, chosen by the seed.
    Some(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct FileState {
    /// What readers see.
    data: Vec<u8>,
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Changes since the last successful sync, in order.
    pending: Vec<Op>,
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<PathBuf, Arc<Mutex<FileState>>>,
    /// Names that survive a power cut.
    durable_names: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    /// Calls counted so far.
    calls: u64,
    /// The faults to inject, and at which calls.
    plan: Vec<(u64, Fault)>,
    /// The call at which a fault fired.
    fired: Option<u64>,
    powered_off: bool,
}

/// A simulated disk. Cheap to clone (clones share the disk).
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    disk: Arc<Mutex<Disk>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `EIO` (the call that failed is in the store's error context).
fn eio(_what: &str) -> io::Error {
    io::Error::from_raw_os_error(5)
}

/// What a counted call should do.
enum Verdict {
    Go,
    Fail(io::Error),
    Tear,
}

impl SimFs {
    /// An empty disk with no fault planned.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// Injects `fault` at call `index` (from 0, counted from now on); may
    /// be called again to plan several (a fault, then a power cut).
    pub fn plan(&self, index: u64, fault: Fault) {
        let mut disk = lock(&self.disk);
        let at = disk.calls + index;
        disk.plan.push((at, fault));
    }

    /// Calls counted so far.
    pub fn calls(&self) -> u64 {
        lock(&self.disk).calls
    }

    /// Whether the first planned fault fired.
    pub fn fired(&self) -> bool {
        lock(&self.disk).fired.is_some()
    }

    /// The disk as it boots after a power cut now: only what syncs covered,
    /// plus what `loss` keeps of the rest. Locks are released.
    pub fn after_power_cut(&self, loss: Loss) -> SimFs {
        let disk = lock(&self.disk);
        let mut rng = Rng(match loss {
            Loss::All => 0,
            Loss::Some(seed) => seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        });
        let mut files = BTreeMap::new();
        let mut names = BTreeSet::new();
        for (path, file) in &disk.files {
            let durable_name = disk.durable_names.contains(path);
            let keep_name = durable_name || (matches!(loss, Loss::Some(_)) && rng.below(2) == 0);
            if !keep_name {
                continue;
            }
            let state = lock(file);
            let mut bytes = state.durable.clone();
            if matches!(loss, Loss::Some(_)) {
                for op in &state.pending {
                    match (op, rng.below(3)) {
                        (_, 0) => {}
                        (Op::Write(at, data), 1) => write_into(&mut bytes, *at, data),
                        (Op::Write(at, data), _) => {
                            let keep = rng.below(data.len() as u64 + 1) as usize;
                            write_into(&mut bytes, *at, &data[..keep]);
                        }
                        (Op::SetLen(len), _) => bytes.resize(*len as usize, 0),
                    }
                }
            }
            names.insert(path.clone());
            files.insert(
                path.clone(),
                Arc::new(Mutex::new(FileState {
                    data: bytes.clone(),
                    durable: bytes,
                    pending: Vec::new(),
                })),
            );
        }
        SimFs {
            disk: Arc::new(Mutex::new(Disk {
                files,
                durable_names: names,
                dirs: disk.dirs.clone(),
                ..Disk::default()
            })),
        }
    }

    /// The disk as a restarted process finds it without a power cut (the
    /// kernel's cache intact): everything written, pending writes still
    /// pending. Locks are released, no fault is planned.
    pub fn after_restart(&self) -> SimFs {
        let disk = lock(&self.disk);
        let files = disk
            .files
            .iter()
            .map(|(p, f)| (p.clone(), Arc::new(Mutex::new(lock(f).clone()))))
            .collect();
        SimFs {
            disk: Arc::new(Mutex::new(Disk {
                files,
                durable_names: disk.durable_names.clone(),
                dirs: disk.dirs.clone(),
                ..Disk::default()
            })),
        }
    }

    fn call(&self, what: &str) -> Verdict {
        let mut disk = lock(&self.disk);
        if disk.powered_off {
            return Verdict::Fail(eio(&format!("{what} after the power cut")));
        }
        let index = disk.calls;
        disk.calls += 1;
        let planned = disk
            .plan
            .iter()
            .find(|(at, _)| *at == index)
            .map(|(_, f)| *f);
        match planned {
            Some(fault) => {
                disk.fired.get_or_insert(index);
                match fault {
                    Fault::Eio => Verdict::Fail(eio(what)),
                    Fault::Enospc => Verdict::Fail(io::Error::from_raw_os_error(28)),
                    Fault::TornWrite => Verdict::Tear,
                    Fault::PowerCut => {
                        disk.powered_off = true;
                        Verdict::Fail(eio(&format!("{what} at the power cut")))
                    }
                }
            }
            None => Verdict::Go,
        }
    }
}

fn write_into(bytes: &mut Vec<u8>, at: u64, data: &[u8]) {
    let at = at as usize;
    if bytes.len() < at + data.len() {
        bytes.resize(at + data.len(), 0);
    }
    bytes[at..at + data.len()].copy_from_slice(data);
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        if self.0 == 0 || n == 0 {
            return 0;
        }
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    state: Arc<Mutex<FileState>>,
}

impl FsFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.state).data.len() as u64)
    }

    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = lock(&self.state);
        let at = offset as usize;
        let bytes = state
            .data
            .get(at..at + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let (data, torn) = match self.fs.call("write") {
            Verdict::Go => (data, false),
            Verdict::Fail(e) => return Err(e),
            Verdict::Tear => (&data[..data.len() / 2], true),
        };
        let mut state = lock(&self.state);
        write_into(&mut state.data, offset, data);
        state.pending.push(Op::Write(offset, data.to_vec()));
        if torn {
            return Err(eio("torn write"));
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        match self.fs.call("set_len") {
            Verdict::Go => {}
            Verdict::Fail(e) => return Err(e),
            Verdict::Tear => return Err(eio("set_len")),
        }
        let mut state = lock(&self.state);
        state.data.resize(len as usize, 0);
        state.pending.push(Op::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let failed = match self.fs.call("sync") {
            Verdict::Go => None,
            Verdict::Fail(e) => Some(e),
            Verdict::Tear => Some(eio("sync")),
        };
        let mut state = lock(&self.state);
        match failed {
            None => {
                let ops = std::mem::take(&mut state.pending);
                for op in ops {
                    match op {
                        Op::Write(at, data) => write_into(&mut state.durable, at, &data),
                        Op::SetLen(len) => state.durable.resize(len as usize, 0),
                    }
                }
                Ok(())
            }
            Some(e) => {
                // the write-back failed: those pages are clean now and will
                // never reach the disk; the next sync has nothing to report
                if !lock(&self.fs.disk).powered_off {
                    state.pending.clear();
                }
                Err(e)
            }
        }
    }
}

#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        lock(&self.fs.disk).locks.remove(&self.path);
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        let existing = lock(&self.disk).files.get(path).cloned();
        let state = match existing {
            Some(state) => state,
            None if create => {
                match self.call("create") {
                    Verdict::Go => {}
                    Verdict::Fail(e) => return Err(e),
                    Verdict::Tear => return Err(eio("create")),
                }
                let state = Arc::new(Mutex::new(FileState::default()));
                lock(&self.disk)
                    .files
                    .insert(path.to_path_buf(), state.clone());
                state
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} not found (simulated)", path.display()),
                ));
            }
        };
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            state,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let disk = lock(&self.disk);
        Ok(disk.files.contains_key(path) || disk.dirs.contains(path))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        // directories themselves are taken as durable: the stores create
        // theirs once, before anything is in them
        let mut disk = lock(&self.disk);
        for dir in path.ancestors() {
            disk.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        match self.call("sync_dir") {
            Verdict::Go => {}
            Verdict::Fail(e) => return Err(e),
            Verdict::Tear => return Err(eio("sync_dir")),
        }
        let mut disk = lock(&self.disk);
        let names: Vec<PathBuf> = disk
            .files
            .keys()
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect();
        disk.durable_names.extend(names);
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        let mut disk = lock(&self.disk);
        if !disk.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            fs: self.clone(),
            path: path.to_path_buf(),
        })))
    }
}
