//! [`Compatibility`]: whether the code registered on a runtime can run a
//! stored instance, the verdict `check_compatibility` and the CI check give.

use crate::error::ResumeError;

/// Whether the code registered on a runtime can run a stored instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum Compatibility {
    /// A registered version has its exact shape: it resumes as it is.
    Resumes,
    /// It would continue on a newer version (`Builder::workflow_upgrading`):
    /// the variant it waits at has the same shape there and decodes.
    Upgrades {
        /// The fingerprint it would move to.
        to: u64,
    },
    /// A registered migration would move it to another version (tried on a
    /// copy: the migration functions ran and the result decodes).
    Migrates {
        /// The version it is stored with.
        from: u32,
        /// The version it would run on.
        to: u32,
    },
    /// Its state was written by code whose types were laid out otherwise
    /// (fields reordered, added with a default, an integer widened...): it
    /// would be read by the stored layout and rebuilt by name.
    Transcodes {
        /// The edits it crosses, in the user's terms.
        changes: Vec<String>,
    },
    /// It has ended; nothing will run.
    Finished,
    /// This code cannot run it: it would be parked.
    Parked(#[serde(serialize_with = "as_text")] ResumeError),
}

fn as_text<S: serde::Serializer>(e: &ResumeError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

impl Compatibility {
    /// Whether the instance would be parked: what a CI check fails on.
    pub fn would_park(&self) -> bool {
        matches!(self, Compatibility::Parked(_))
    }
}
