//! Completing promises from outside ([`crate::promise`]).

use super::Runtime;
use crate::error::SignalError;
use crate::promise;
use crate::store::keys;

impl Runtime {
    /// Completes the promise `token` names with `value`, exactly once: the
    /// workflow awaiting it (now or later) receives `value`. A durable
    /// signal to its instance, written with a mark that refuses a second
    /// completion.
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn webhook(runtime: durable_runtime::Runtime, token: String) -> Result<(), durable_runtime::SignalError> {
    /// # #[derive(serde::Serialize)] struct Paid { cents: u64 }
    /// runtime.complete(&token, &Paid { cents: 1999 }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SignalError::BadToken`] for a token no promise was given,
    /// [`SignalError::AlreadyCompleted`] for a second completion,
    /// [`SignalError::NotFound`] / [`SignalError::Finished`] when its
    /// instance is gone or has ended; as [`Runtime::signal`] otherwise.
    pub async fn complete<T: serde::Serialize>(
        &self,
        token: &str,
        value: &T,
    ) -> Result<(), SignalError> {
        let (id, key) = self.not_completed(token).await?;
        let mark = (keys::completed(id, key), token);
        self.send(id, &promise::signal_name(key), value, Some(mark))
            .await
    }

    /// [`Runtime::complete`] with a JSON value, converted to the type the
    /// workflow awaits (what `POST /api/promises/{token}` does): the
    /// instance must be awaiting the promise now, since only then is the
    /// type known ([`SignalError::NotWaiting`] before; a webhook sender
    /// retries).
    ///
    /// # Errors
    /// As [`Runtime::complete`], and [`SignalError::Payload`] for JSON that
    /// does not fit the awaited type.
    pub async fn complete_json(
        &self,
        token: &str,
        value: &serde_json::Value,
    ) -> Result<(), SignalError> {
        let (id, key) = self.not_completed(token).await?;
        let mark = (keys::completed(id, key), token);
        self.send_json(id, &promise::signal_name(key), value, Some(mark))
            .await
    }

    /// The instance and key `token` names, unless the promise was completed
    /// already (said before anything else: its instance may have ended
    /// since). The commit checks again.
    async fn not_completed<'t>(&self, token: &'t str) -> Result<(&'t str, &'t str), SignalError> {
        let (id, key) = parse(token)?;
        if self.engine.get(&keys::completed(id, key)).await?.is_some() {
            return Err(SignalError::AlreadyCompleted {
                token: token.to_owned(),
            });
        }
        Ok((id, key))
    }
}

fn parse(token: &str) -> Result<(&str, &str), SignalError> {
    promise::split(token).ok_or_else(|| SignalError::BadToken {
        token: token.to_owned(),
    })
}
