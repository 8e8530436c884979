//! The running service's HTTP API (`durable_runtime::http`), for a store that
//! a service has open: the same answers as the local store, over plain HTTP.

use std::time::Duration;

use durable_runtime::history::HistoryEvent;
use durable_runtime::{Description, ListFilter, ListOrder, Phase};
use serde::de::DeserializeOwned;

use crate::failure::{EXIT_TOKEN, EXIT_UNKNOWN, EXIT_UNREACHABLE, Failure};

/// How long one request may take before the command gives up.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The largest snapshot `export` reads from the service.
const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;

/// A client of one service.
pub(crate) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the service at `url` (`http://127.0.0.1:7233`).
    pub(crate) fn new(url: &str, token: Option<String>) -> Result<Client, Failure> {
        let base = url.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(Failure::usage(format!(
                "--url must be an http:// address (such as http://127.0.0.1:7233), not `{url}`; \
                 reach a remote service through an SSH tunnel to its 127.0.0.1 port"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        Ok(Client {
            base: base.to_owned(),
            token,
            agent,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => request.header("Authorization", format!("Bearer {t}")),
            None => request,
        }
    }

    fn unreachable(&self, e: ureq::Error) -> Failure {
        Failure {
            code: EXIT_UNREACHABLE,
            message: format!("cannot reach the service at {}: {e}", self.base),
        }
    }

    /// Reads a response: its body on success, a [`Failure`] with the exit
    /// code that matches the local store's for the same error otherwise.
    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>, Failure> {
        let mut response = response.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_SNAPSHOT_BYTES)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(match status {
            401 => Failure {
                code: EXIT_TOKEN,
                message: format!(
                    "the service at {} refused the token ({message}); pass --token or set DURABLE_TOKEN",
                    self.base
                ),
            },
            403 => Failure {
                code: EXIT_TOKEN,
                message: format!(
                    "the service at {} took the token as read-only ({message}); this command needs its admin token",
                    self.base
                ),
            },
            404 if message.is_empty() => Failure {
                code: 1,
                message: format!("{} has no such route: is it a durable service?", self.base),
            },
            404 => Failure {
                code: EXIT_UNKNOWN,
                message,
            },
            400 => Failure::usage(message),
            _ => Failure {
                code: 1,
                message: format!("{message} (HTTP {status})"),
            },
        })
    }

    fn get(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let request = self.authorize(self.agent.get(self.url(path)));
        self.answer(request.call())
    }

    fn post(&self, path: &str, body: &[u8], content_type: &str) -> Result<Vec<u8>, Failure> {
        let request = self.authorize(self.agent.post(self.url(path)));
        self.answer(request.content_type(content_type).send(body))
    }

    pub(crate) fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        decode(&self.get(path)?)
    }

    /// POSTs `body` as JSON and decodes the JSON answer.
    pub(crate) fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, Failure> {
        decode(&self.post(path, body.to_string().as_bytes(), "application/json")?)
    }

    /// `DELETE path`.
    pub(crate) fn delete(&self, path: &str) -> Result<(), Failure> {
        let request = self.authorize(self.agent.delete(self.url(path)));
        self.answer(request.call()).map(drop)
    }

    fn instance(id: &str, rest: &str) -> String {
        format!("/api/instances/{}{rest}", encode(id))
    }

    /// `GET /api/instances` with the filter as query parameters.
    /// `GET /api/instances` with the filter as query parameters (`attr`
    /// as typed: `NAME=VALUE`).
    pub(crate) fn list(
        &self,
        filter: &ListFilter,
        attr: Option<&str>,
    ) -> Result<Vec<Description>, Failure> {
        let mut query = format!("limit={}", filter.limit);
        for (key, value) in [
            ("status", filter.phase.map(Phase::as_str)),
            ("workflow", filter.workflow.as_deref()),
            ("prefix", filter.id_prefix.as_deref()),
            ("attr", attr),
            (
                "order",
                Some(match filter.order {
                    ListOrder::Id => "id",
                    ListOrder::NewestFirst => "newest",
                }),
            ),
            ("after", filter.after.as_deref()),
        ] {
            if let Some(v) = value {
                query.push_str(&format!("&{key}={}", encode(v)));
            }
        }
        if let Some(ms) = filter.after_started_ms {
            query.push_str(&format!("&after_started={ms}"));
        }
        for (name, range) in [("started", filter.started), ("closed", filter.closed)] {
            if let Some((from, to)) = range {
                query.push_str(&format!("&{name}_from={from}&{name}_to={to}"));
            }
        }
        self.get_json(&format!("/api/instances?{query}"))
    }

    pub(crate) fn describe(&self, id: &str) -> Result<Description, Failure> {
        self.get_json(&Self::instance(id, ""))
    }

    pub(crate) fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, Failure> {
        self.get_json(&Self::instance(id, "/history"))
    }

    pub(crate) fn state(&self, id: &str) -> Result<serde_json::Value, Failure> {
        let mut answer: serde_json::Value = self.get_json(&Self::instance(id, "/state"))?;
        Ok(answer
            .get_mut("state")
            .map(serde_json::Value::take)
            .unwrap_or_default())
    }

    /// Instance `id`, waiting up to `wait` for it to end (in requests of
    /// at most 30 s, under the client's timeout).
    pub(crate) fn result(&self, id: &str, wait: Duration) -> Result<Description, Failure> {
        let until = std::time::Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let chunk = left.min(Duration::from_secs(30)).as_secs();
            let d: Description =
                self.get_json(&Self::instance(id, &format!("/result?wait={chunk}")))?;
            if d.status.is_terminal() || left.is_zero() || chunk == 0 {
                return Ok(d);
            }
        }
    }

    /// Starts `workflow` as `id` with `input` (`POST /api/instances`),
    /// `id_policy` as the API spells it.
    pub(crate) fn start(
        &self,
        id: &str,
        workflow: &str,
        input: &serde_json::Value,
        id_policy: &str,
    ) -> Result<Description, Failure> {
        self.post_json(
            "/api/instances",
            &serde_json::json!({
                "id": id,
                "workflow": workflow,
                "input": input,
                "id_policy": id_policy,
            }),
        )
    }

    pub(crate) fn counts(&self) -> Result<Vec<(Phase, usize)>, Failure> {
        let map: std::collections::HashMap<String, usize> = self.get_json("/api/stats")?;
        Ok(Phase::ALL
            .iter()
            .map(|p| (*p, map.get(p.as_str()).copied().unwrap_or(0)))
            .collect())
    }

    pub(crate) fn signal(
        &self,
        id: &str,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<(), Failure> {
        let body = serde_json::json!({ "name": name, "payload": payload });
        self.post(
            &Self::instance(id, "/signal"),
            body.to_string().as_bytes(),
            "application/json",
        )
        .map(drop)
    }

    /// `POST /api/promises/{token}` with the value.
    pub(crate) fn complete(&self, token: &str, value: &serde_json::Value) -> Result<(), Failure> {
        self.post(
            &format!("/api/promises/{}", encode(token)),
            value.to_string().as_bytes(),
            "application/json",
        )
        .map(drop)
    }

    /// Sends update `name` with `request` (`POST .../updates/{name}`) and
    /// waits at most `wait` for its reply (`GET .../updates/{update id}`
    /// after the first answer): the update id and the reply, if it came.
    pub(crate) fn update(
        &self,
        id: &str,
        name: &str,
        update_id: Option<&str>,
        request: &serde_json::Value,
        wait: Duration,
    ) -> Result<(String, Option<serde_json::Value>), Failure> {
        let until = std::time::Instant::now() + wait;
        let chunk = |until: std::time::Instant| {
            until
                .saturating_duration_since(std::time::Instant::now())
                .min(Duration::from_secs(30))
                .as_secs()
        };
        let mut body = serde_json::json!({ "request": request });
        if let Some(update_id) = update_id {
            body["update_id"] = update_id.into();
        }
        let path = Self::instance(id, &format!("/updates/{}", encode(name)));
        let mut answer: serde_json::Value =
            self.post_json(&format!("{path}?wait={}", chunk(until)), &body)?;
        let update_id = answer["update_id"].as_str().unwrap_or_default().to_owned();
        loop {
            if let Some(reply) = answer.get("reply") {
                return Ok((update_id, Some(reply.clone())));
            }
            let left = chunk(until);
            if left == 0 {
                return Ok((update_id, None));
            }
            let path = Self::instance(id, &format!("/updates/{}?wait={left}", encode(&update_id)));
            answer = self.get_json(&path)?;
        }
    }

    pub(crate) fn cancel(&self, id: &str) -> Result<(), Failure> {
        self.post(&Self::instance(id, "/cancel"), b"", "application/json")
            .map(drop)
    }

    pub(crate) fn terminate(&self, id: &str, reason: &str) -> Result<(), Failure> {
        let body = serde_json::json!({ "reason": reason });
        self.post(
            &Self::instance(id, "/terminate"),
            body.to_string().as_bytes(),
            "application/json",
        )
        .map(drop)
    }

    pub(crate) fn reset(
        &self,
        id: &str,
        to: durable_runtime::reset::ResetTo,
        reason: &str,
    ) -> Result<durable_runtime::reset::Reset, Failure> {
        let mut body = serde_json::json!({ "reason": reason });
        match to {
            durable_runtime::reset::ResetTo::Step(step) => body["step"] = step.into(),
            durable_runtime::reset::ResetTo::Event(event) => body["event"] = event.into(),
        }
        self.post_json(&Self::instance(id, "/reset"), &body)
    }

    /// The snapshot file's bytes.
    pub(crate) fn export(&self, id: &str) -> Result<Vec<u8>, Failure> {
        self.get(&Self::instance(id, "/export"))
    }

    pub(crate) fn import(&self, snapshot: &[u8], replace: bool) -> Result<(), Failure> {
        self.post(
            &format!("/api/import?replace={replace}"),
            snapshot,
            "application/octet-stream",
        )
        .map(drop)
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure {
        code: 1,
        message: format!(
            "the service's answer does not decode ({e}): is it the same durable version?"
        ),
    })
}

/// Percent-encodes everything but unreserved characters, so an id with `/`
/// (a child's `<parent>/<step>`) or `?` stays one path segment.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(encode("order-1"), "order-1");
        assert_eq!(encode("parent/3"), "parent%2F3");
        assert_eq!(encode("a b?é"), "a%20b%3F%C3%A9");
    }

    #[test]
    fn only_plain_http_urls_are_taken() {
        assert!(Client::new("http://127.0.0.1:1/", None).is_ok());
        let refused = Client::new("https://example.com", None)
            .err()
            .map(|f| f.code);
        assert_eq!(refused, Some(2));
    }
}
