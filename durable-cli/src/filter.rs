//! The instance filter the `list` and `batch` commands share.

use durable_runtime::{ListFilter, Phase};

use crate::failure::Failure;
use crate::show::time_range;

#[derive(clap::Args)]
pub(crate) struct FilterArgs {
    /// Only this status: running, sleeping, waiting_for_signal, completed,
    /// failed, cancelled, terminated or parked.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only this workflow.
    #[arg(long)]
    pub(crate) workflow: Option<String>,
    /// Only ids that start with this.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Only instances with this search attribute: NAME=VALUE (the
    /// value matches as text, and as the number or flag it spells).
    #[arg(long, value_name = "NAME=VALUE")]
    pub(crate) attr: Option<String>,
    /// Only instances started at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub(crate) started_after: Option<String>,
    /// Only instances started at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub(crate) started_before: Option<String>,
    /// Only instances that ended at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub(crate) closed_after: Option<String>,
    /// Only instances that ended at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub(crate) closed_before: Option<String>,
}

impl FilterArgs {
    /// The filter these flags describe (no paging).
    pub(crate) fn filter(&self) -> Result<ListFilter, Failure> {
        let phase = self
            .status
            .as_deref()
            .map(str::parse::<Phase>)
            .transpose()
            .map_err(|e| Failure::usage(e.to_string()))?;
        let search_attribute = match &self.attr {
            Some(text) => {
                let (name, value) = text.split_once('=').ok_or_else(|| {
                    Failure::usage(format!("--attr takes NAME=VALUE, not `{text}`"))
                })?;
                Some((
                    name.to_owned(),
                    durable_runtime::SearchValue::parse_all(value),
                ))
            }
            None => None,
        };
        Ok(ListFilter {
            workflow: self.workflow.clone(),
            phase,
            id_prefix: self.prefix.clone(),
            search_attribute,
            started: time_range(
                self.started_after.as_deref(),
                self.started_before.as_deref(),
            )?,
            closed: time_range(self.closed_after.as_deref(), self.closed_before.as_deref())?,
            ..ListFilter::default()
        })
    }
}
