//! Where the instances are: a store this process opens, or a running
//! service's HTTP API.

use durable_runtime::history::HistoryEvent;
use durable_runtime::snapshot::{Snapshot, SnapshotSet};
use durable_runtime::{Description, ListFilter, Phase, Runtime};

use crate::failure::{EXIT_NO_STORE, Failure, is_store_url};
use crate::{Cli, Command, remote};

/// Where the instances are: a store this process opens, or a running
/// service's HTTP API. Both answer with the same types, so every command
/// prints the same way whichever it is.
pub(crate) enum Source {
    Local(Runtime),
    Remote(remote::Client),
}

impl Source {
    pub(crate) async fn open(cli: &Cli) -> Result<Source, Failure> {
        match (&cli.db, &cli.url) {
            (_, Some(url)) => Ok(Source::Remote(remote::Client::new(url, cli.token.clone())?)),
            (Some(db), None) => {
                let builder = Runtime::builder().resume_on_open(false);
                // a store URL (postgres://..., redb:DIR, sled:DIR) or a store directory
                let rt = match db.to_str().filter(|d| is_store_url(d)) {
                    Some(url) => builder.open_url(url).await?,
                    None => {
                        // opening would create a store: only `import` may (to fill a
                        // new one), not a command given a mistyped path
                        // a store's kind marker, or sled's own files (directories it
                        // wrote before the marker existed)
                        let is_store = db.join("durable.store").is_file()
                            || (db.join("conf").is_file() && db.join("db").is_file());
                        let creates = matches!(cli.command, Command::Import { .. }) && !db.exists();
                        if !is_store && !creates {
                            return Err(Failure {
                                code: EXIT_NO_STORE,
                                message: format!(
                                    "{} is not a durable store (no `durable.store` file there)",
                                    db.display()
                                ),
                            });
                        }
                        builder.open(db).await?
                    }
                };
                Ok(Source::Local(rt))
            }
            (None, None) => Err(Failure::usage("give --db DIR or --url URL".into())),
        }
    }

    /// `attr` is the search-attribute filter as typed (`NAME=VALUE`).
    pub(crate) fn list(
        &self,
        filter: &ListFilter,
        attr: Option<&str>,
    ) -> Result<Vec<Description>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.list(filter)?),
            Source::Remote(c) => c.list(filter, attr),
        }
    }

    pub(crate) fn describe(&self, id: &str) -> Result<Description, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.describe(id)?),
            Source::Remote(c) => c.describe(id),
        }
    }

    pub(crate) fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.history(id)?),
            Source::Remote(c) => c.history(id),
        }
    }

    pub(crate) fn state(&self, id: &str) -> Result<serde_json::Value, Failure> {
        match self {
            // by the layout stored with it: no workflow code needed
            Source::Local(rt) => Ok(rt.state_json(id)?),
            Source::Remote(c) => c.state(id),
        }
    }

    pub(crate) async fn result(
        &self,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<Description, Failure> {
        match self {
            Source::Local(rt) => Ok(match rt.result_json(id, wait).await? {
                Some(ended) => ended,
                None => rt.describe(id)?,
            }),
            Source::Remote(c) => c.result(id, wait),
        }
    }

    pub(crate) async fn signal(
        &self,
        id: &str,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => {
                rt.describe(id)?;
                Err(Failure::other(format!(
                    "a signal's payload is encoded as the type its workflow awaits, which only the \
                     service's code knows: run `durable --url <service> signal {id} {name} ..`"
                )))
            }
            Source::Remote(c) => c.signal(id, name, payload),
        }
    }

    pub(crate) async fn cancel(&self, id: &str) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => Ok(rt.cancel(id).await?),
            Source::Remote(c) => c.cancel(id),
        }
    }

    pub(crate) async fn terminate(&self, id: &str, reason: &str) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => Ok(rt.terminate(id, reason).await?),
            Source::Remote(c) => c.terminate(id, reason),
        }
    }

    pub(crate) fn reset_points(
        &self,
        id: &str,
    ) -> Result<Vec<durable_runtime::reset::ResetPoint>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.reset_points(id)?),
            Source::Remote(c) => c.get_json(&format!(
                "/api/instances/{}/reset-points",
                crate::remote::encode(id)
            )),
        }
    }

    pub(crate) fn workers(&self) -> Result<Vec<durable_runtime::WorkerInfo>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.workers()?),
            Source::Remote(c) => c.get_json("/api/workers"),
        }
    }

    pub(crate) fn counts(&self) -> Result<Vec<(Phase, usize)>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.counts_by_phase()?),
            Source::Remote(c) => c.counts(),
        }
    }

    /// The instance as a snapshot file's bytes.
    pub(crate) fn export(&self, id: &str) -> Result<Vec<u8>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.export(id)?.to_bytes()?),
            Source::Remote(c) => c.export(id),
        }
    }

    /// Imports a snapshot: unchecked into a store (this process lacks the
    /// code; the service checks the shape when it opens it), checked by a
    /// running service.
    pub(crate) async fn import(
        &self,
        bytes: &[u8],
        set: &SnapshotSet,
        replace: bool,
    ) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => {
                rt.import_set_unchecked(set, replace).await?;
                Ok(())
            }
            Source::Remote(c) => match set.snapshots.as_slice() {
                [_] if Snapshot::from_bytes(bytes).is_ok() => c.import(bytes, replace),
                [one] => c.import(&one.to_bytes()?, replace),
                many => Err(Failure::usage(format!(
                    "a set of {} instances is imported all or nothing through the store \
                     (--db DIR with the service stopped); through --url, one snapshot at a time",
                    many.len()
                ))),
            },
        }
    }

    /// What a steering command's effect waits for.
    pub(crate) fn when(&self) -> &'static str {
        match self {
            Source::Local(_) => "; it takes effect when the service runs",
            Source::Remote(_) => "",
        }
    }

    pub(crate) async fn close(self) {
        if let Source::Local(rt) = self {
            rt.shutdown().await;
        }
    }
}
