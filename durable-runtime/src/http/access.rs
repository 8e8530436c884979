//! Who may call the HTTP API and from where: bearer tokens and their
//! roles ([`Access`]), the `Host` check, the CSRF rule for POSTs and the
//! security headers of every response. The rules are this module's; the
//! middleware that applies them is tower-http's (request validation and
//! response headers).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::validate_request::ValidateRequest;

use super::ApiError;

/// Who may call the API: nobody needs a token ([`Access::open`], served on
/// loopback only), or an admin token for every route, optionally with a
/// read-only token for the `GET` routes (dashboards, metrics scrapers).
/// `Some(token)` converts to an admin token, `None` to open access.
#[derive(Clone, Default)]
pub struct Access {
    admin: Option<String>,
    reader: Option<String>,
    /// The names a request's `Host` must give, when set.
    hosts: Option<Arc<[String]>>,
}

impl Access {
    /// No token: [`serve`](super::serve) then binds loopback addresses only.
    pub fn open() -> Access {
        Access::default()
    }

    /// One token for every route.
    pub fn token(admin: impl Into<String>) -> Access {
        Access {
            admin: Some(admin.into()),
            ..Access::default()
        }
    }

    /// Adds a token that may call the `GET` routes only: lists, details,
    /// histories, states, exports, schedules, stats and `/metrics`. On an
    /// [`open`](Access::open) access it makes the whole API read-only.
    pub fn with_read_token(mut self, reader: impl Into<String>) -> Access {
        self.reader = Some(reader.into());
        self
    }

    /// Answers only requests whose `Host` header names one of `hosts` (a
    /// name or an address, compared without the port and ignoring case),
    /// on any address: what a server behind a DNS name sets, so that a
    /// page elsewhere cannot reach it under another name (DNS rebinding).
    /// Without it, a server on a loopback address answers only requests
    /// for a loopback name, and one elsewhere any name (its token guards
    /// it).
    ///
    /// ```
    /// use durable_runtime::http::Access;
    /// let access = Access::token("admin-secret").allow_hosts(["durable.internal.example"]);
    /// # let _ = access;
    /// ```
    pub fn allow_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Access {
        self.hosts = Some(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// The rule [`check_host`] applies on a server bound to `local`.
    pub(super) fn host_rule(&self, local: std::net::SocketAddr) -> HostRule {
        HostRule {
            local,
            hosts: self.hosts.clone(),
        }
    }

    /// Whether any route needs a token.
    pub(super) fn guarded(&self) -> bool {
        self.admin.is_some() || self.reader.is_some()
    }

    /// What a request bearing `given` may do; `None`: nothing (401).
    fn role(&self, given: Option<&str>) -> Option<Role> {
        let given = given?.as_bytes();
        // both compared, so the time taken says nothing about which matched
        let admin = self
            .admin
            .as_ref()
            .is_some_and(|t| same_token(given, t.as_bytes()));
        let reader = self
            .reader
            .as_ref()
            .is_some_and(|t| same_token(given, t.as_bytes()));
        if admin {
            Some(Role::Admin)
        } else if reader {
            Some(Role::Reader)
        } else {
            None
        }
    }
}

impl From<Option<String>> for Access {
    fn from(token: Option<String>) -> Access {
        Access {
            admin: token,
            ..Access::default()
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the tokens themselves
        f.debug_struct("Access")
            .field("admin_token", &self.admin.is_some())
            .field("read_token", &self.reader.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    Reader,
}

/// Which `Host` a server answers (see [`Access::allow_hosts`]).
#[derive(Clone)]
pub(super) struct HostRule {
    local: std::net::SocketAddr,
    hosts: Option<Arc<[String]>>,
}

/// Refuses (421) a request whose `Host` the server's [`HostRule`] does not
/// allow: one of the allowed names when they are set; otherwise, on a
/// loopback address, a loopback name. Applied by tower-http's
/// request-validation layer (`ValidateRequestHeaderLayer::custom`).
impl ValidateRequest<Body> for HostRule {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request) -> Result<(), Response> {
        let host = request
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let name = host_name(host);
        let refused = match &self.hosts {
            Some(hosts) => (!hosts.iter().any(|h| h.eq_ignore_ascii_case(name)))
                .then(|| format!("one of {}", hosts.join(", "))),
            None => (self.local.ip().is_loopback() && !is_loopback_name(name))
                .then(|| "localhost or a loopback address".to_owned()),
        };
        match refused {
            Some(allowed) => {
                let local = self.local;
                Err(ApiError(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "this service answers on {local} only to requests for {allowed}, not {host:?}"
                    ),
                )
                .into_response())
            }
            None => Ok(()),
        }
    }
}

/// The name or address of a `Host` header, without its port or brackets.
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    }
}

/// Whether `name` is this machine's loopback: `localhost`, `127.x.y.z`,
/// `::1`.
fn is_loopback_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Headers on every response: no framing (clickjacking), scripts, styles
/// and requests from this origin only.
pub(super) fn security_headers(router: axum::Router) -> axum::Router {
    use axum::http::{HeaderName, HeaderValue};
    use tower_http::set_header::SetResponseHeaderLayer;
    router
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
}

/// Compares without an early exit, so the time taken says nothing about
/// how much of a guessed token was right.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether a POST could have been sent by an HTML form or a plain `fetch`
/// on another site, which browsers send without asking (a CSRF): those
/// carry no content type or one of the CORS-safelisted form types. The UI
/// and the CLI send `application/json` (or `application/octet-stream`),
/// which a browser only sends cross-site after a preflight this service
/// never grants.
fn form_like_post(request: &Request) -> bool {
    if request.method() != axum::http::Method::POST {
        return false;
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    !(content_type.starts_with("application/json")
        || content_type.starts_with("application/octet-stream"))
}

/// Who may call a guarded route: refuses a form-like POST (415), a
/// request without a valid token when one is needed (401), and a change
/// made with the read-only token (403). Applied by tower-http's
/// request-validation layer (`ValidateRequestHeaderLayer::custom`).
#[derive(Clone)]
pub(super) struct Guard(pub(super) Access);

impl ValidateRequest<Body> for Guard {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request) -> Result<(), Response> {
        if form_like_post(request) {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a POST needs Content-Type: application/json (application/octet-stream for an import)"
                    .into(),
            )
            .into_response());
        }
        if !self.0.guarded() {
            return Ok(());
        }
        let given = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let reads = matches!(
            *request.method(),
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        match self.0.role(given) {
            None => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required (Authorization: Bearer <token>)".into(),
            )
            .into_response()),
            Some(Role::Reader) if !reads => Err(ApiError(
                StatusCode::FORBIDDEN,
                "this token may only read (GET routes); changing instances or schedules needs the admin token".into(),
            )
            .into_response()),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{host_name, is_loopback_name};

    fn is_loopback_host(host: &str) -> bool {
        is_loopback_name(host_name(host))
    }

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for ok in [
            "localhost",
            "localhost:7233",
            "127.0.0.1:7233",
            "127.1.2.3",
            "[::1]:80",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:7233",
            "localhost.evil.example",
            "10.0.0.1:7233",
            "[::2]:80",
            "127.0.0.1.evil.example",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
