//! The messages of other processes: signals, cancel requests, finished
//! instances and instances waiting for an owner.

use std::sync::Arc;

use crate::engine::Engine;
use crate::store::{Notice, StoreError};

impl Engine {
    /// Acts on the other processes' messages; runs until the runtime stops.
    pub(crate) async fn notice_service(
        self: Arc<Self>,
        mut notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    ) {
        while let Some(notice) = notices.recv().await {
            let result = match notice {
                Notice::Message(message) => self.on_message(&message).await,
                Notice::Resync => self.resync().await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "acting on another process's message failed");
            }
        }
    }

    pub(super) async fn on_message(self: &Arc<Self>, message: &str) -> Result<(), StoreError> {
        let Some((kind, id)) = parse_message(message) else {
            return Ok(());
        };
        match kind {
            'w' => {
                self.wake(id);
                if self.member.is_some() && self.runs_here(id) {
                    self.interrupt_if_a_branch_came(id).await?;
                    self.wake_instance(id).await?;
                }
            }
            'c' if self.member.is_some() && self.runs_here(id) => {
                self.control_requested(id).await?
            }
            // a queued call's result, or a new task of a queue
            'r' => self.wake(&format!("\0r{id}")),
            // an update's reply
            'y' => self.wake(&crate::update::waiter(id)),
            'q' => self.wake(&format!("\0q{id}")),
            'u' if self.member.is_some() => {
                self.claim_one(id).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// After messages may have been lost: every local waiter looks again,
    /// and a worker re-reads the requests of its instances and wakes them.
    pub(super) async fn resync(self: &Arc<Self>) -> Result<(), StoreError> {
        self.waiters.notify_all();
        if self.member.is_some() {
            self.resync_owned().await?;
            self.claim_unassigned().await?;
        }
        Ok(())
    }
}

/// A message of another process: its kind (the first character) and the
/// instance id or key after it; `None` for an empty one. Any text parses:
/// the payload comes from outside this process.
fn parse_message(message: &str) -> Option<(char, &str)> {
    let kind = message.chars().next()?;
    Some((kind, &message[kind.len_utf8()..]))
}

#[cfg(test)]
mod message_tests {
    use super::parse_message;

    #[test]
    pub(super) fn a_message_starting_with_a_multibyte_character_parses() {
        // sliced at byte 1, this panicked and killed the notice task
        assert_eq!(parse_message("éorder-1"), Some(('é', "order-1")));
        assert_eq!(parse_message("w"), Some(('w', "")));
        assert_eq!(parse_message(""), None);
    }

    proptest::proptest! {
        #[test]
        fn any_message_parses_without_panicking(message in ".*") {
            if let Some((kind, rest)) = parse_message(&message) {
                proptest::prop_assert_eq!(format!("{kind}{rest}"), message);
            }
        }
    }
}
