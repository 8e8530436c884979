//! How a [`Request`] is stored: its variants in their order, as builds
//! before the later activity timeouts wrote them, plus one variant at the
//! end for an activity call that sets one of them.
//!
//! The stored bytes are read by position (postcard), so a field added to
//! [`ActivityOptions`]'s encoding would make every stored call of an
//! earlier build misread. A call with none of the later timeouts is
//! written as before (an earlier build still reads it); one with any is
//! written as `TimedActivity` (an earlier build refuses it as corrupt,
//! never misreads it).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{ParentClose, Request, SearchValue};
use crate::activity::{ActivityOptions, LaterTimeouts};

/// [`Request`] as stored: borrowed from a request to write it (no copy of
/// its input), owned when read. The variants up to `Promise` must keep
/// their order and fields; new ones go at the end.
#[derive(Serialize, Deserialize)]
pub(super) enum Stored<'a> {
    Activity {
        name: Cow<'a, str>,
        input: Cow<'a, [u8]>,
        options: Cow<'a, ActivityOptions>,
    },
    Now,
    RandomU64,
    Uuid,
    Timer {
        after_ms: u64,
        at_ms: Option<u64>,
    },
    Signal {
        name: Cow<'a, str>,
    },
    Select(Cow<'a, [Request]>),
    All {
        requests: Cow<'a, [Request]>,
        limit: u32,
    },
    Compensate(Cow<'a, [Request]>),
    Child {
        workflow: Cow<'a, str>,
        input: Cow<'a, [u8]>,
        id: Option<Cow<'a, str>>,
        parent_close: ParentClose,
        timeout_ms: Option<u64>,
        run_timeout_ms: Option<u64>,
    },
    ContinueAsNew {
        workflow: Cow<'a, str>,
        input: Cow<'a, [u8]>,
    },
    SetAttributes(Cow<'a, [(String, SearchValue)]>),
    Scheduled,
    Promise,
    /// An activity call with a heartbeat, schedule-to-close or
    /// schedule-to-start timeout.
    TimedActivity {
        name: Cow<'a, str>,
        input: Cow<'a, [u8]>,
        options: Cow<'a, ActivityOptions>,
        later: LaterTimeouts,
    },
    Reply {
        update: Cow<'a, str>,
        reply: Cow<'a, [u8]>,
    },
    StartChild {
        workflow: Cow<'a, str>,
        input: Cow<'a, [u8]>,
        id: Option<Cow<'a, str>>,
        parent_close: ParentClose,
        timeout_ms: Option<u64>,
        run_timeout_ms: Option<u64>,
    },
}

impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Stored::from(self).serialize(serializer)
    }
}

impl<'a> From<&'a Request> for Stored<'a> {
    fn from(request: &'a Request) -> Stored<'a> {
        let b = |s: &'a String| Cow::Borrowed(s.as_str());
        match request {
            Request::Activity {
                name,
                input,
                options,
            } => {
                let later = LaterTimeouts::of(options);
                let (name, input, options) =
                    (b(name), Cow::Borrowed(&input[..]), Cow::Borrowed(options));
                if later.is_none() {
                    Stored::Activity {
                        name,
                        input,
                        options,
                    }
                } else {
                    Stored::TimedActivity {
                        name,
                        input,
                        options,
                        later,
                    }
                }
            }
            Request::Now => Stored::Now,
            Request::RandomU64 => Stored::RandomU64,
            Request::Uuid => Stored::Uuid,
            Request::Timer { after_ms, at_ms } => Stored::Timer {
                after_ms: *after_ms,
                at_ms: *at_ms,
            },
            Request::Signal { name } => Stored::Signal { name: b(name) },
            Request::Select(branches) => Stored::Select(Cow::Borrowed(branches)),
            Request::All { requests, limit } => Stored::All {
                requests: Cow::Borrowed(requests),
                limit: *limit,
            },
            Request::Compensate(requests) => Stored::Compensate(Cow::Borrowed(requests)),
            Request::Child {
                workflow,
                input,
                id,
                parent_close,
                timeout_ms,
                run_timeout_ms,
            } => Stored::Child {
                workflow: b(workflow),
                input: Cow::Borrowed(input),
                id: id.as_ref().map(b),
                parent_close: *parent_close,
                timeout_ms: *timeout_ms,
                run_timeout_ms: *run_timeout_ms,
            },
            Request::ContinueAsNew { workflow, input } => Stored::ContinueAsNew {
                workflow: b(workflow),
                input: Cow::Borrowed(input),
            },
            Request::SetAttributes(attributes) => Stored::SetAttributes(Cow::Borrowed(attributes)),
            Request::Scheduled => Stored::Scheduled,
            Request::Promise => Stored::Promise,
            Request::Reply { update, reply } => Stored::Reply {
                update: b(update),
                reply: Cow::Borrowed(reply),
            },
            Request::StartChild {
                workflow,
                input,
                id,
                parent_close,
                timeout_ms,
                run_timeout_ms,
            } => Stored::StartChild {
                workflow: b(workflow),
                input: Cow::Borrowed(input),
                id: id.as_ref().map(b),
                parent_close: *parent_close,
                timeout_ms: *timeout_ms,
                run_timeout_ms: *run_timeout_ms,
            },
        }
    }
}

impl From<Stored<'static>> for Request {
    fn from(stored: Stored<'static>) -> Request {
        let s = Cow::into_owned;
        match stored {
            Stored::Activity {
                name,
                input,
                options,
            } => Request::Activity {
                name: s(name),
                input: input.into_owned(),
                options: options.into_owned(),
            },
            Stored::TimedActivity {
                name,
                input,
                options,
                later,
            } => {
                let mut options = options.into_owned();
                later.apply(&mut options);
                Request::Activity {
                    name: s(name),
                    input: input.into_owned(),
                    options,
                }
            }
            Stored::Now => Request::Now,
            Stored::RandomU64 => Request::RandomU64,
            Stored::Uuid => Request::Uuid,
            Stored::Timer { after_ms, at_ms } => Request::Timer { after_ms, at_ms },
            Stored::Signal { name } => Request::Signal { name: s(name) },
            Stored::Select(branches) => Request::Select(branches.into_owned()),
            Stored::All { requests, limit } => Request::All {
                requests: requests.into_owned(),
                limit,
            },
            Stored::Compensate(requests) => Request::Compensate(requests.into_owned()),
            Stored::Child {
                workflow,
                input,
                id,
                parent_close,
                timeout_ms,
                run_timeout_ms,
            } => Request::Child {
                workflow: s(workflow),
                input: input.into_owned(),
                id: id.map(s),
                parent_close,
                timeout_ms,
                run_timeout_ms,
            },
            Stored::ContinueAsNew { workflow, input } => Request::ContinueAsNew {
                workflow: s(workflow),
                input: input.into_owned(),
            },
            Stored::SetAttributes(attributes) => Request::SetAttributes(attributes.into_owned()),
            Stored::Scheduled => Request::Scheduled,
            Stored::Promise => Request::Promise,
            Stored::Reply { update, reply } => Request::Reply {
                update: s(update),
                reply: reply.into_owned(),
            },
            Stored::StartChild {
                workflow,
                input,
                id,
                parent_close,
                timeout_ms,
                run_timeout_ms,
            } => Request::StartChild {
                workflow: s(workflow),
                input: input.into_owned(),
                id: id.map(s),
                parent_close,
                timeout_ms,
                run_timeout_ms,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn call(options: ActivityOptions) -> Request {
        Request::Activity {
            name: "charge".into(),
            input: vec![1, 2, 3],
            options,
        }
    }

    /// The request as a build before the later timeouts wrote it (derived
    /// encoding of the same variants in the same order).
    #[derive(Serialize)]
    enum Earlier {
        Activity {
            name: String,
            input: Vec<u8>,
            options: ActivityOptions,
        },
    }

    #[test]
    fn a_call_without_later_timeouts_is_stored_as_an_earlier_build_wrote_it() {
        let options = ActivityOptions {
            start_to_close_timeout: Some(Duration::from_secs(5)),
            ..ActivityOptions::default()
        };
        let earlier = crate::codec::encode(&Earlier::Activity {
            name: "charge".into(),
            input: vec![1, 2, 3],
            options: options.clone(),
        })
        .unwrap();
        assert_eq!(
            crate::codec::encode(&call(options.clone())).unwrap(),
            earlier
        );
        let read: Request = crate::codec::decode(&earlier).unwrap();
        assert_eq!(read, call(options));
    }

    #[test]
    fn later_timeouts_survive_storing_nested_too() {
        let options = ActivityOptions {
            heartbeat_timeout: Some(Duration::from_secs(3)),
            schedule_to_close_timeout: Some(Duration::from_secs(60)),
            schedule_to_start_timeout: Some(Duration::from_millis(1500)),
            ..ActivityOptions::default()
        };
        let request = Request::Select(vec![
            call(options.clone()),
            Request::All {
                requests: vec![call(options), call(ActivityOptions::default())],
                limit: 2,
            },
        ]);
        let bytes = crate::codec::encode(&request).unwrap();
        let read: Request = crate::codec::decode(&bytes).unwrap();
        assert_eq!(read, request);
    }
}
