//! "Would this deploy park instances?": checks for CI, with and without the
//! workflows' code.
//!
//! - With the code (in your test suite): [`check_snapshots`] imports a
//!   directory of snapshot files (`durable export --all`) into a scratch
//!   in-memory store opened by your [`Builder`] and answers, per instance,
//!   what the new code would do: resume it, upgrade it, migrate it (the
//!   migration functions really run, on copies), or park it. Fail the job on
//!   [`CheckReport::would_park`].
//! - Without the code (the `durable` CLI): your service writes its
//!   [`Manifest`] (registered versions, their fingerprints and
//!   [layouts](crate::layout), upgrade policies and migrations) as a build
//!   artefact (`Builder::manifest().write(..)`), and `durable check
//!   --manifest FILE --snapshots DIR` (or `--db DIR`) compares the stored
//!   instances with it: fingerprints decide which version would run each,
//!   and a state stored under another layout is read by its stored layout
//!   and checked field by field against the new one (the edits it crosses,
//!   whether every field the new types need is there or has a default,
//!   every variant still exists, every integer fits). It cannot run
//!   migration functions, so it trusts a listed one: [`check_snapshots`] is
//!   the stronger check for migrations.
//!
//! ```
//! use durable_runtime::prelude::*;
//!
//! #[activity]
//! async fn greet(name: String) -> Result<String, ActivityError> {
//!     Ok(format!("hello {name}"))
//! }
//!
//! #[workflow]
//! async fn hello(name: String) -> Result<String, WorkflowError> {
//!     let greeting = greet(name).await?;
//!     Ok(greeting)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! // in CI, `dir` holds files written by `durable export --all` in production
//! let report = durable_runtime::check::check_snapshots(Runtime::builder().workflow::<hello>(), dir.path()).await?;
//! assert!(report.would_park().is_empty(), "{report}");
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compatibility::Compatibility;
use crate::engine::InstanceRecord;
use crate::layout::WorkflowLayout;
use crate::snapshot::{Snapshot, SnapshotError, SnapshotSet};
use crate::store::keys;
use crate::{Builder, ResumeError, Runtime, StoreError};

/// Why a check could not be carried out.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// A file could not be read.
    #[error("[DURABLE-IO] cannot read {path}: {reason}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// A file is not a readable snapshot.
    #[error("{path}: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<SnapshotError>,
    },
    /// A manifest does not parse.
    #[error("[DURABLE-MANIFEST] {path}: {reason}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        reason: String,
    },
    /// The scratch runtime could not be opened (e.g. a duplicate version).
    #[error(transparent)]
    Open(#[from] crate::OpenError),
}

/// One instance's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CheckEntry {
    /// Where it came from: a snapshot file, or `store`.
    pub source: String,
    /// The instance id.
    pub id: String,
    /// Its workflow.
    pub workflow: String,
    /// The version it is stored with.
    pub version: u32,
    /// What the code would do with it.
    pub verdict: Compatibility,
}

impl CheckEntry {
    /// The verdict on the instance `d` describes, found in `source`.
    pub fn new(source: &str, d: &crate::Description, verdict: Compatibility) -> CheckEntry {
        CheckEntry {
            source: source.to_owned(),
            id: d.id.clone(),
            workflow: d.workflow.clone(),
            version: d.version,
            verdict,
        }
    }
}

/// The verdicts of a check, one per instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Every instance checked, in file then id order.
    pub entries: Vec<CheckEntry>,
}

impl CheckReport {
    /// The instances the code would park: fail the deploy on any.
    pub fn would_park(&self) -> Vec<&CheckEntry> {
        self.entries
            .iter()
            .filter(|e| e.verdict.would_park())
            .collect()
    }

    /// The instances a registered migration would move.
    pub fn would_migrate(&self) -> Vec<&CheckEntry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.verdict, Compatibility::Migrates { .. }))
            .collect()
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.entries {
            let verdict = match &e.verdict {
                Compatibility::Resumes => "resumes".to_owned(),
                Compatibility::Upgrades { to } => format!("upgrades to {to:016x}"),
                Compatibility::Migrates { from, to } => format!("migrates v{from} -> v{to}"),
                Compatibility::Transcodes { changes } => {
                    format!("transcodes by name ({})", changes.join("; "))
                }
                Compatibility::Finished => "finished".to_owned(),
                Compatibility::Parked(why) => format!("WOULD PARK: {why}"),
            };
            writeln!(
                f,
                "{}  {}  {} v{}  {verdict}",
                e.source, e.id, e.workflow, e.version
            )?;
        }
        let parked = self.would_park().len();
        write!(f, "{} instances, {} would park", self.entries.len(), parked)
    }
}

/// The snapshot files of `path` (a file, or every file of a directory, in
/// name order), each read as a set.
pub fn read_snapshots(path: &Path) -> Result<Vec<(PathBuf, SnapshotSet)>, CheckError> {
    let io = |p: &Path, e: std::io::Error| CheckError::Io {
        path: p.to_owned(),
        reason: e.to_string(),
    };
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
            let p = entry.map_err(|e| io(path, e))?.path();
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_owned());
    }
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
            let set = SnapshotSet::from_bytes(&bytes).map_err(|source| CheckError::Snapshot {
                path: p.clone(),
                source: Box::new(source),
            })?;
            Ok((p, set))
        })
        .collect()
}

/// Checks every snapshot file in `dir` against the code registered on
/// `builder`: imports them into a scratch in-memory store (nothing runs,
/// nothing is written elsewhere) and asks, per instance, whether the code
/// resumes, upgrades, migrates or would park it. Migration functions and
/// decoding run for real, on copies.
///
/// # Errors
/// A file that cannot be read or is not a snapshot (truncated, corrupt,
/// unknown format): a CI check must not pass on files it did not read.
pub async fn check_snapshots(
    builder: Builder,
    dir: impl AsRef<Path>,
) -> Result<CheckReport, CheckError> {
    let files = read_snapshots(dir.as_ref())?;
    let mut report = CheckReport::default();
    for (path, set) in files {
        let source = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for snapshot in &set.snapshots {
            // one scratch store per instance: ids may repeat across files
            let runtime = builder
                .scratch()
                .resume_on_open(false)
                .open_store(crate::store::mem::MemStore::default())
                .await?;
            let entry = match runtime.import_unchecked(snapshot, false).await {
                Err(e) => CheckEntry {
                    source: source.clone(),
                    id: snapshot.id.clone(),
                    workflow: snapshot.workflow.clone(),
                    version: 0,
                    verdict: Compatibility::Parked(ResumeError::Undecodable {
                        instance: snapshot.id.clone(),
                        reason: e.to_string(),
                    }),
                },
                Ok(()) => {
                    let verdict = runtime
                        .check_compatibility()
                        .map_err(|e| CheckError::Open(e.into()))?
                        .into_iter()
                        .next()
                        .map_or(Compatibility::Finished, |(_, v)| v);
                    let version = runtime.describe(&snapshot.id).map_or(0, |d| d.version);
                    CheckEntry {
                        source: source.clone(),
                        id: snapshot.id.clone(),
                        workflow: snapshot.workflow.clone(),
                        version,
                        verdict,
                    }
                }
            };
            runtime.shutdown().await;
            report.entries.push(entry);
        }
    }
    Ok(report)
}

/// The registered versions and migrations of a [`Builder`], as a file the
/// `durable` CLI can check stored instances against without the code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Every registered version.
    pub workflows: Vec<ManifestWorkflow>,
    /// Every registered migration.
    pub migrations: Vec<ManifestMigration>,
}

/// One registered version in a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestWorkflow {
    /// The workflow name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// Its shape fingerprint.
    pub fingerprint: u64,
    /// Whether its name allows upgrades (`workflow_upgrading`).
    pub upgrading: bool,
    /// Its variants' names and own fingerprints.
    pub variants: Vec<(String, u64)>,
    /// The layout of what it stores (`None` when its types could not be
    /// traced, or in a manifest written before layouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<WorkflowLayout>,
}

/// One registered migration in a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestMigration {
    /// The workflow name.
    pub workflow: String,
    /// The old version and its fingerprint.
    pub from: (u32, u64),
    /// The new version and its fingerprint.
    pub to: (u32, u64),
    /// The old variants that have a migration function.
    pub functions: Vec<String>,
    /// The new version's variants' names and own fingerprints (variants
    /// with the same shape are carried over without a function).
    pub to_variants: Vec<(String, u64)>,
}

/// Whether the results of the awaited `join_all`'s parts that `record`
/// holds, recorded by the code of layout `old`, would be read by the code
/// of layout `new` (by name: every field present or defaulted).
fn parts_fit(
    record: &InstanceRecord,
    old: &WorkflowLayout,
    new: &WorkflowLayout,
) -> Result<(), String> {
    let values = crate::layout::parts_across(&record.partial, old, new, &record.variant)
        .map_err(|why| why.join("; "))?;
    let Some(part) = crate::layout::part_shape(new, &record.variant) else {
        return Ok(());
    };
    values.iter().flatten().try_for_each(|value| {
        crate::layout::fits(value, part, &new.types)
            .map_err(|why| crate::layout::parts_changed(&record.variant, &why))
    })
}

impl Manifest {
    pub(crate) fn of(registry: &crate::engine::Registry) -> Manifest {
        let variants = |v: &[crate::workflow::VariantInfo]| {
            v.iter()
                .map(|v| (v.name.to_owned(), v.fingerprint))
                .collect::<Vec<_>>()
        };
        let mut workflows: Vec<ManifestWorkflow> = registry
            .entries()
            .map(|e| ManifestWorkflow {
                name: e.name.to_owned(),
                version: e.version,
                fingerprint: e.fingerprint,
                upgrading: registry.upgrades_allowed(e.name),
                variants: variants(e.variants),
                layout: e.layout.layout.as_ref().ok().cloned(),
            })
            .collect();
        workflows.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        let migrations = registry
            .migrations()
            .iter()
            .map(|m| ManifestMigration {
                workflow: m.workflow.to_owned(),
                from: (m.from_version, m.from),
                to: (m.target.version, m.target.fingerprint),
                functions: m.steps.iter().map(|(n, _)| (*n).to_owned()).collect(),
                to_variants: variants(m.target.variants),
            })
            .collect();
        Manifest {
            workflows,
            migrations,
        }
    }

    /// Writes the manifest as JSON (a build artefact for `durable check`).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), CheckError> {
        let path = path.as_ref();
        let json = serde_json::to_vec_pretty(self).map_err(|e| CheckError::Manifest {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, json).map_err(|e| CheckError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Reads a manifest written by [`Manifest::write`].
    pub fn read(path: impl AsRef<Path>) -> Result<Manifest, CheckError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| CheckError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| CheckError::Manifest {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// What code with this manifest would do with each instance of the
    /// store `runtime` opened (by id, as [`Runtime::check_compatibility`]
    /// answers for the code it has).
    ///
    /// # Errors
    /// The store failed.
    pub fn check_store(
        &self,
        runtime: &Runtime,
    ) -> Result<Vec<(String, Compatibility)>, StoreError> {
        let engine = &runtime.engine;
        let mut out = Vec::new();
        for (key, bytes) in engine.store.scan_prefix(&[keys::INSTANCE])? {
            let id = keys::instance_id(&key);
            let Some(record) = engine.decode_whole(&id, &bytes)? else {
                continue;
            };
            let verdict = match record {
                Err(e) => Compatibility::Parked(ResumeError::Undecodable {
                    instance: id.clone(),
                    reason: e.to_string(),
                }),
                Ok(record) => self.judge(&id, record, |hash| {
                    engine
                        .stored_layout(hash)
                        .ok()
                        .flatten()
                        .map(|l| (*l).clone())
                }),
            };
            out.push((id, verdict));
        }
        Ok(out)
    }

    /// What code with this manifest would do with the instance in
    /// `snapshot`.
    ///
    /// # Errors
    /// The snapshot's record does not decode.
    pub fn check_snapshot(&self, snapshot: &Snapshot) -> Result<Compatibility, SnapshotError> {
        let record = InstanceRecord::decode(&snapshot.record)
            .map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
        if !record.parts.is_empty() {
            return Err(SnapshotError::Undecodable(
                "the record refers to stored fields instead of holding its state".into(),
            ));
        }
        Ok(self.judge(&snapshot.id, record, |hash| {
            let key = keys::layout(hash);
            let (_, bytes) = snapshot.layouts.iter().find(|(k, _)| *k == key)?;
            crate::layout::decode::<WorkflowLayout>(bytes)
                .ok()
                .filter(|l| l.hash() == hash)
        }))
    }

    /// The verdict on `record`: which version would run it (by
    /// fingerprints), then whether its state reads under that version's
    /// layout (`stored` finds a stored layout by hash).
    fn judge(
        &self,
        id: &str,
        record: InstanceRecord,
        stored: impl Fn(u64) -> Option<WorkflowLayout>,
    ) -> Compatibility {
        let d = crate::Description::of(id, record.clone());
        let verdict = self.by_fingerprints(&d);
        let target = match &verdict {
            Compatibility::Resumes => self.workflows.iter().find(|w| {
                w.name == d.workflow && w.fingerprint == d.fingerprint && w.version == d.version
            }),
            Compatibility::Upgrades { to } => self
                .workflows
                .iter()
                .filter(|w| w.name == d.workflow && w.fingerprint == *to)
                .max_by_key(|w| w.version),
            _ => None,
        };
        let Some(new) = target.and_then(|w| w.layout.as_ref()) else {
            return verdict;
        };
        if record.layout == 0 || record.state.is_empty() || record.layout == new.hash() {
            return verdict;
        }
        let parked = |changes: Vec<String>| {
            Compatibility::Parked(ResumeError::LayoutChanged {
                workflow: record.workflow.clone(),
                instance: id.to_owned(),
                variant: record.variant.clone(),
                changes,
            })
        };
        let Some(old) = stored(record.layout) else {
            return Compatibility::Parked(ResumeError::LayoutMissing {
                workflow: record.workflow.clone(),
                instance: id.to_owned(),
                layout: record.layout,
            });
        };
        match crate::layout::read_across(&record.state, &old, new, &record.variant) {
            Err(changes) => parked(changes),
            Ok((edits, value)) => match crate::layout::fits(&value, &new.state, &new.types)
                .and_then(|()| parts_fit(&record, &old, new))
            {
                Err(why) => parked(vec![why]),
                Ok(()) if matches!(verdict, Compatibility::Resumes) => Compatibility::Transcodes {
                    changes: edits.iter().map(ToString::to_string).collect(),
                },
                Ok(()) => verdict,
            },
        }
    }

    /// What code with this manifest would do with an instance described by
    /// `d`, by fingerprints alone.
    fn by_fingerprints(&self, d: &crate::Description) -> Compatibility {
        if d.status.is_terminal() {
            return Compatibility::Finished;
        }
        let id = d.id.clone();
        let mine: Vec<&ManifestWorkflow> = self
            .workflows
            .iter()
            .filter(|w| w.name == d.workflow)
            .collect();
        let Some(newest) = mine.iter().max_by_key(|w| w.version) else {
            return Compatibility::Parked(ResumeError::NotRegistered {
                workflow: d.workflow.clone(),
                instance: id,
            });
        };
        let (mut fp, mut version, mut variant, mut vfp) = (
            d.fingerprint,
            d.version,
            d.variant.clone(),
            d.variant_fingerprint,
        );
        let mut migrated = false;
        for _ in 0..=self.migrations.len() {
            let same_shape = mine.iter().filter(|w| w.fingerprint == fp);
            if let Some(w) = same_shape.clone().max_by_key(|w| w.version) {
                return if migrated {
                    Compatibility::Migrates {
                        from: d.version,
                        to: version,
                    }
                } else if same_shape.clone().any(|w| w.version == version) {
                    Compatibility::Resumes
                } else {
                    // its version is gone; another version has its very shape
                    Compatibility::Upgrades { to: w.fingerprint }
                };
            }
            let Some(m) = self
                .migrations
                .iter()
                .find(|m| m.workflow == d.workflow && m.from.1 == fp)
            else {
                break;
            };
            let same = m
                .to_variants
                .iter()
                .find(|(n, _)| *n == variant)
                .is_some_and(|(_, f)| *f == vfp && vfp != 0);
            if !m.functions.contains(&variant) && !same {
                return Compatibility::Parked(ResumeError::MigrationMissing {
                    workflow: d.workflow.clone(),
                    instance: id,
                    from: m.from.0,
                    to: m.to.0,
                    variant,
                });
            }
            if !same {
                // a function decides the new variant: further steps cannot be followed
                variant = String::new();
                vfp = 0;
            }
            (fp, version, migrated) = (m.to.1, m.to.0, true);
        }
        let compatible = mine
            .iter()
            .filter(|w| vfp != 0 && w.variants.iter().any(|(n, f)| *n == variant && *f == vfp))
            .max_by_key(|w| w.version);
        match compatible {
            Some(w) if w.upgrading => Compatibility::Upgrades { to: w.fingerprint },
            Some(w) => Compatibility::Parked(ResumeError::Pinned {
                workflow: d.workflow.clone(),
                instance: id,
                stored: fp,
                version,
                variant,
                compatible: w.version,
                changes: Vec::new(),
            }),
            None => Compatibility::Parked(ResumeError::ShapeMismatch {
                workflow: d.workflow.clone(),
                stored: fp,
                current: newest.fingerprint,
                instance: id,
                changes: Vec::new(),
            }),
        }
    }
}
