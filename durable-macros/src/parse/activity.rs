//! `#[activity(...)]`: the function and its retry options.

use syn::ItemFn;

use super::attr::{self, Arg};
use super::{Signature, signature};
use crate::ctxt::Ctxt;

/// Retry and timeout settings given in the attribute; `None` keeps the default.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) max_attempts: Option<u64>,
    pub(crate) initial_interval_ms: Option<u64>,
    pub(crate) max_interval_ms: Option<u64>,
    pub(crate) backoff: Option<f64>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) heartbeat_timeout_ms: Option<u64>,
    pub(crate) schedule_to_close_ms: Option<u64>,
    pub(crate) schedule_to_start_ms: Option<u64>,
    pub(crate) non_retryable: Option<Vec<String>>,
    /// The named task queue that runs it (workers sharing PostgreSQL).
    pub(crate) queue: Option<String>,
}

pub(crate) struct ActivityFn {
    pub(crate) item: ItemFn,
    pub(crate) sig: Signature,
    pub(crate) name: String,
    pub(crate) krate: syn::Path,
    pub(crate) options: Options,
}

const ACCEPTED: &[&str] = &[
    "name",
    "max_attempts",
    "initial_interval_ms",
    "max_interval_ms",
    "backoff",
    "timeout_ms",
    "heartbeat_timeout_ms",
    "schedule_to_close_ms",
    "schedule_to_start_ms",
    "non_retryable",
    "queue",
    "crate",
];

pub(crate) fn parse(cx: &Ctxt, args: proc_macro2::TokenStream, item: ItemFn) -> ActivityFn {
    let args: Vec<Arg> = attr::parse_args(cx, args);
    attr::reject_duplicates(cx, &args);
    let mut name = item.sig.ident.to_string();
    let mut krate: syn::Path = syn::parse_quote!(::durable_runtime);
    let mut options = Options::default();
    for arg in &args {
        match arg.key.to_string().as_str() {
            "name" => {
                if let Some((n, _)) = attr::string(cx, arg) {
                    name = n;
                }
            }
            "max_attempts" => options.max_attempts = attr::integer(cx, arg),
            "initial_interval_ms" => options.initial_interval_ms = attr::integer(cx, arg),
            "max_interval_ms" => options.max_interval_ms = attr::integer(cx, arg),
            "timeout_ms" => options.timeout_ms = attr::integer(cx, arg),
            "heartbeat_timeout_ms" => options.heartbeat_timeout_ms = attr::integer(cx, arg),
            "schedule_to_close_ms" => options.schedule_to_close_ms = attr::integer(cx, arg),
            "schedule_to_start_ms" => options.schedule_to_start_ms = attr::integer(cx, arg),
            "backoff" => {
                options.backoff = attr::float(cx, arg);
                if options.backoff.is_some_and(|b| !(1.0..=100.0).contains(&b)) {
                    cx.error_spanned_by(&arg.value, "`backoff` must be between 1.0 and 100.0");
                }
            }
            "non_retryable" => options.non_retryable = attr::string_list(cx, arg),
            "queue" => {
                if let Some((q, _)) = attr::string(cx, arg) {
                    // a key segment and a NOTIFY payload: plain characters only
                    let plain = !q.is_empty()
                        && q.len() <= 64
                        && q.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                    if plain {
                        options.queue = Some(q);
                    } else {
                        cx.error_spanned_by(
                            &arg.value,
                            "`queue` must be 1 to 64 characters among A-Z, a-z, 0-9, `-`, `_` and `.`",
                        );
                    }
                }
            }
            "crate" => {
                if let Some(p) = attr::crate_path(cx, arg) {
                    krate = p;
                }
            }
            _ => attr::unknown(cx, arg, ACCEPTED),
        }
    }
    let sig = signature(cx, &item, "activity");
    ActivityFn {
        item,
        sig,
        name,
        krate,
        options,
    }
}
