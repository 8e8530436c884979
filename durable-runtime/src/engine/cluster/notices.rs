//! The messages of other processes: signals, cancel requests, finished
//! instances and instances waiting for an owner.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::store::{Notice, StoreError};

/// How long opening waits for the store's subscription to be in place
/// before it reads its instances; a later one makes the engine look again
/// when it comes.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// Waits until the store's subscription is in place
/// ([`Notice::Listening`]), so that no message published after the
/// instances are read is missed; returns a notice that came first instead
/// (a store that does not announce it), to be acted on first.
pub(crate) async fn until_listening(
    notices: &mut tokio::sync::mpsc::UnboundedReceiver<Notice>,
) -> Option<Notice> {
    match tokio::time::timeout(LISTEN_WAIT, notices.recv()).await {
        Ok(Some(Notice::Listening) | None) => None,
        Ok(Some(other)) => Some(other),
        Err(_) => {
            tracing::warn!(
                "the store's subscription is not in place after {LISTEN_WAIT:?}: opening without it; instances are looked at again once it is"
            );
            None
        }
    }
}

impl Engine {
    /// Acts on the other processes' messages (`first`, then those
    /// received); runs until the runtime stops. What a worker fails to act
    /// on (a store error) is kept and acted on again by its next pass.
    pub(crate) async fn notice_service(
        self: Arc<Self>,
        first: Option<Notice>,
        mut notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    ) {
        let mut next = first;
        loop {
            let notice = match next.take() {
                Some(notice) => notice,
                None => match notices.recv().await {
                    Some(notice) => notice,
                    None => return,
                },
            };
            if let Err(e) = self.on_notice(&notice).await {
                tracing::warn!(error = %e, "acting on another process's message failed; the next pass acts on it again");
                if let Some(m) = &self.member {
                    m.missed(notice);
                }
            }
        }
    }

    /// Acts on one notice.
    pub(super) async fn on_notice(self: &Arc<Self>, notice: &Notice) -> Result<(), StoreError> {
        match notice {
            Notice::Message(message) => self.on_message(message).await,
            // a subscription that came after the instances were read (it is
            // awaited at open, within a bound) is a gap like any other
            Notice::Resync | Notice::Listening => self.resync().await,
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
