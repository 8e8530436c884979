//! How a command fails: the message and the exit code scripts rely on.

use durable_runtime::snapshot::SnapshotError;
use durable_runtime::{ResultError, StoreError};

/// Exit code: no instance has the id.
pub(crate) const EXIT_UNKNOWN: u8 = 3;
/// Exit code: another process has the store open.
pub(crate) const EXIT_LOCKED: u8 = 4;
/// Exit code: the service at `--url` does not answer.
pub(crate) const EXIT_UNREACHABLE: u8 = 5;
/// Exit code: the service refused the token.
pub(crate) const EXIT_TOKEN: u8 = 6;
/// Exit code: `check` found instances the new build would park.
pub(crate) const EXIT_WOULD_PARK: u8 = 7;
/// Exit code: `--db` names no store.
pub(crate) const EXIT_NO_STORE: u8 = 8;
/// Exit code: `result` found the instance ended without completing
/// (failed, cancelled, terminated; the error is printed).
pub(crate) const EXIT_NOT_COMPLETED: u8 = 9;
/// Exit code: `result --wait` waited and the instance still runs.
pub(crate) const EXIT_STILL_RUNNING: u8 = 10;

/// A failure with the exit code scripts can rely on.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    /// Bad usage or input (exit code 2).
    pub(crate) fn usage(message: String) -> Failure {
        Failure { code: 2, message }
    }

    pub(crate) fn other(message: String) -> Failure {
        Failure { code: 1, message }
    }
}

/// Whether `--db` names a store by URL rather than by directory.
pub(crate) fn is_store_url(db: &str) -> bool {
    ["postgres://", "postgresql://", "sled:", "redb:"]
        .iter()
        .any(|scheme| db.starts_with(scheme))
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::Locked { .. } => EXIT_LOCKED,
            StoreError::BadUrl { .. } => 2,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl From<ResultError> for Failure {
    fn from(e: ResultError) -> Self {
        match e {
            ResultError::NotFound { .. } => Failure {
                code: EXIT_UNKNOWN,
                message: e.to_string(),
            },
            ResultError::Store(s) => s.into(),
            other => Failure::other(other.to_string()),
        }
    }
}

impl From<durable_runtime::ResetError> for Failure {
    fn from(e: durable_runtime::ResetError) -> Self {
        match e {
            durable_runtime::ResetError::Unknown { .. } => Failure {
                code: EXIT_UNKNOWN,
                message: e.to_string(),
            },
            durable_runtime::ResetError::Store(s) => s.into(),
            other => Failure::other(other.to_string()),
        }
    }
}

impl From<SnapshotError> for Failure {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::NotFound { .. } => Failure {
                code: EXIT_UNKNOWN,
                message: e.to_string(),
            },
            SnapshotError::Store(s) => s.into(),
            other => Failure::other(other.to_string()),
        }
    }
}

impl From<durable_runtime::OpenError> for Failure {
    fn from(e: durable_runtime::OpenError) -> Self {
        match e {
            durable_runtime::OpenError::Store(s) => s.into(),
            other => Failure {
                code: 1,
                message: other.to_string(),
            },
        }
    }
}

pub(crate) fn snapshot_failure(e: durable_runtime::snapshot::SnapshotError) -> Failure {
    use durable_runtime::snapshot::SnapshotError;
    match e {
        SnapshotError::NotFound { .. } => Failure {
            code: 3,
            message: e.to_string(),
        },
        SnapshotError::Store(s) => s.into(),
        other => Failure {
            code: 1,
            message: other.to_string(),
        },
    }
}
