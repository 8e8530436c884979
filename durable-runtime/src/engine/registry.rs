//! The registered code: each workflow version ([`WorkflowEntry`]) and
//! migration, looked up by name, fingerprint and version.

use std::collections::HashMap;

use crate::codec;
use crate::workflow::{Op, Outcome, StepError, VariantInfo};

/// A registered workflow, type-erased.
#[derive(Clone, Copy)]
pub(crate) struct WorkflowEntry {
    pub(crate) name: &'static str,
    pub(crate) version: u32,
    pub(crate) fingerprint: u64,
    pub(crate) drive: fn(Op<'_>) -> Result<Outcome, StepError>,
    pub(crate) variants: &'static [VariantInfo],
    /// Encodes a JSON input as the workflow's `Input` (starts by name:
    /// schedules, tools).
    pub(crate) input_from_json: fn(serde_json::Value) -> Result<Vec<u8>, String>,
    /// Renders an encoded input as JSON.
    pub(crate) input_to_json: fn(&[u8]) -> Result<serde_json::Value, String>,
    /// Renders an encoded output as JSON.
    pub(crate) output_to_json: fn(&[u8]) -> Result<serde_json::Value, String>,
    /// The error text of an encoded output that is an `Err` (the instance failed).
    pub(crate) output_error: fn(&[u8]) -> Option<String>,
    /// The layout of what this version stores.
    pub(crate) layout: &'static crate::layout::Traced,
    /// Rebuilds an output read by another layout, by field and variant
    /// name, and encodes it as this version's `Output` (a child's output
    /// for a parent built with this version's types).
    pub(crate) rebuild_output: fn(&crate::layout::value::Value) -> Result<Vec<u8>, String>,
}

impl WorkflowEntry {
    pub(crate) fn of<W: crate::workflow::Workflow>() -> WorkflowEntry {
        WorkflowEntry {
            name: W::NAME,
            version: W::VERSION,
            fingerprint: W::FINGERPRINT,
            drive: W::drive,
            variants: W::VARIANTS,
            input_from_json: |json| {
                let input: W::Input = serde_json::from_value(json).map_err(|e| e.to_string())?;
                codec::encode(&input).map_err(|e| e.to_string())
            },
            output_error: W::output_error,
            layout: crate::workflow::layout_of::<W>(),
            input_to_json: |bytes| {
                let input: W::Input = codec::decode(bytes).map_err(|e| e.to_string())?;
                serde_json::to_value(input).map_err(|e| e.to_string())
            },
            output_to_json: |bytes| {
                let output: W::Output = codec::decode(bytes).map_err(|e| e.to_string())?;
                serde_json::to_value(output).map_err(|e| e.to_string())
            },
            rebuild_output: |value| {
                let output: W::Output =
                    crate::layout::value::rebuild(value).map_err(|e| e.to_string())?;
                codec::encode(&output).map_err(|e| e.to_string())
            },
        }
    }
}

/// A registered migration, type-erased.
#[derive(Clone)]
pub(crate) struct MigrationEntry {
    pub(crate) workflow: &'static str,
    pub(crate) from: u64,
    pub(crate) from_version: u32,
    pub(crate) from_variants: &'static [VariantInfo],
    /// The version it migrates from, as the migration's code knows it (its
    /// layout and its rebuild by name; registered or not).
    pub(crate) source: WorkflowEntry,
    /// The version it migrates to (registered or not: a chain may pass through it).
    pub(crate) target: WorkflowEntry,
    pub(crate) steps: Vec<(&'static str, crate::migration::Step)>,
}

/// The registered workflows: several versions (shapes) of one name can be
/// registered side by side; an instance runs on the version whose
/// fingerprint it was stored with, new starts by name on the newest.
#[derive(Default, Clone)]
pub(crate) struct Registry {
    versions: HashMap<&'static str, Vec<WorkflowEntry>>,
    upgrading: std::collections::HashSet<&'static str>,
    /// Workflow-level retry policies, by workflow name (`rerun.rs`).
    retries: HashMap<&'static str, crate::activity::RetryPolicy>,
    migrations: Vec<MigrationEntry>,
    /// Registration mistakes, reported by `Builder::open`.
    pub(crate) conflicts: Vec<crate::error::OpenError>,
}

impl Registry {
    pub(crate) fn insert(&mut self, entry: WorkflowEntry) {
        let versions = self.versions.entry(entry.name).or_default();
        if let Some(other) = versions
            .iter()
            .find(|v| v.version == entry.version && v.fingerprint != entry.fingerprint)
        {
            self.conflicts
                .push(crate::error::OpenError::DuplicateVersion {
                    workflow: entry.name.to_owned(),
                    version: entry.version,
                    first: other.fingerprint,
                    second: entry.fingerprint,
                });
            return;
        }
        versions.retain(|v| !(v.fingerprint == entry.fingerprint && v.version == entry.version));
        versions.push(entry);
        // newest last; registration order breaks ties
        versions.sort_by_key(|v| v.version);
    }

    pub(crate) fn insert_migration(&mut self, m: MigrationEntry) {
        self.migrations
            .retain(|o| !(o.workflow == m.workflow && o.from == m.from));
        self.migrations.push(m);
    }

    /// The version with exactly this shape (the stored version preferred
    /// when two versions share a shape).
    pub(crate) fn exact(
        &self,
        name: &str,
        fingerprint: u64,
        version: u32,
    ) -> Option<WorkflowEntry> {
        let versions = self.versions.get(name)?;
        let mut same = versions.iter().filter(|v| v.fingerprint == fingerprint);
        let first = same.clone().next_back().copied();
        same.find(|v| v.version == version).copied().or(first)
    }

    /// The version with the highest number (starts by name and children run on it).
    pub(crate) fn newest(&self, name: &str) -> Option<WorkflowEntry> {
        self.versions.get(name)?.last().copied()
    }

    /// Workflow `name` as a metrics label: the registered name, or
    /// `unregistered` (a label never comes from stored data, so the number
    /// of series stays bounded by the code).
    pub(crate) fn label(&self, name: &str) -> &'static str {
        self.versions
            .get_key_value(name)
            .map_or("unregistered", |(k, _)| *k)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &&'static str> {
        self.versions.keys()
    }

    /// Every registered version, for manifests.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &WorkflowEntry> {
        self.versions.values().flatten()
    }

    pub(crate) fn migrations(&self) -> &[MigrationEntry] {
        &self.migrations
    }

    /// The retry policy of workflow `name`'s failed runs, if it has one.
    pub(crate) fn retry_policy(&self, name: &str) -> Option<&crate::activity::RetryPolicy> {
        self.retries.get(name)
    }

    /// Gives workflow `name`'s failed runs a retry policy.
    pub(crate) fn set_retry_policy(
        &mut self,
        name: &'static str,
        policy: crate::activity::RetryPolicy,
    ) {
        self.retries.insert(name, policy);
    }

    pub(crate) fn upgrades_allowed(&self, name: &str) -> bool {
        self.upgrading.contains(name)
    }

    /// Lets instances of other versions of `name` continue on a registered
    /// version when their current variant has the same shape there.
    pub(crate) fn allow_upgrade(&mut self, name: &'static str) {
        self.upgrading.insert(name);
    }

    /// The newest version whose variant `variant` has own fingerprint `fp`,
    /// whether or not upgrades are allowed for `name`.
    pub(crate) fn compatible_version(
        &self,
        name: &str,
        variant: &str,
        fp: u64,
    ) -> Option<WorkflowEntry> {
        if fp == 0 {
            return None;
        }
        self.versions
            .get(name)?
            .iter()
            .rev()
            .find(|e| e.variant_fp(variant) == fp)
            .copied()
    }

    /// The migration that takes shape `from` of `name` elsewhere.
    pub(crate) fn migration_from(&self, name: &str, from: u64) -> Option<&MigrationEntry> {
        self.migrations
            .iter()
            .find(|m| m.workflow == name && m.from == from)
    }
}

impl WorkflowEntry {
    /// The own fingerprint of variant `name` in this version (0 if none).
    pub(crate) fn variant_fp(&self, name: &str) -> u64 {
        self.variant(name).map_or(0, |v| v.fingerprint)
    }

    pub(crate) fn variant(&self, name: &str) -> Option<&'static VariantInfo> {
        self.variants.iter().find(|v| v.name == name)
    }
}
