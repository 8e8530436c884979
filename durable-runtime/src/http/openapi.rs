//! The API's OpenAPI 3.1 description (`openapi.json` beside this file,
//! checked in), served at `GET /api/openapi.json` without a token (it holds
//! no data), so other languages can generate a client.

use axum::response::{IntoResponse, Response};

/// The document.
pub(super) const DOCUMENT: &str = include_str!("openapi.json");

pub(super) async fn document() -> Response {
    ([("content-type", "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// (method, path) of every route `router` registers, read from its source.
    fn routes_in_router() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let router = &source[source.find("pub fn router(").expect("the router function")..];
        let mut routes = BTreeSet::new();
        let mut rest = router;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let open = rest.find('"').expect("a path literal");
            let close = open + 1 + rest[open + 1..].find('"').expect("its end");
            let path = rest[open + 1..close].to_owned();
            let end = rest.find(".route(").unwrap_or(rest.len());
            let handlers = &rest[close..end];
            for method in ["get", "post", "put", "delete", "patch"] {
                let called = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0
                        || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && handlers.as_bytes()[i - 1] != b'_'
                });
                if called {
                    routes.insert((method.to_owned(), path.clone()));
                }
            }
        }
        routes
    }

    #[test]
    fn the_openapi_document_describes_every_route_the_router_serves_and_no_other() {
        let doc: serde_json::Value =
            serde_json::from_str(super::DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                if method == "parameters" {
                    continue;
                }
                assert!(
                    operation["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents no response"
                );
                assert!(
                    operation["operationId"].is_string(),
                    "{method} {path} has no operationId"
                );
                documented.insert((method.clone(), path.clone()));
            }
        }
        let served = routes_in_router();
        assert!(
            served.len() > 30,
            "the router's routes were not found: {served:?}"
        );
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes without a description: {undocumented:?}"
        );
        assert!(unserved.is_empty(), "described, not served: {unserved:?}");
    }

    /// Every `$ref` points at a schema the document defines.
    #[test]
    fn every_reference_in_the_openapi_document_resolves() {
        fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, v) in map {
                        match (key.as_str(), v) {
                            ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                            _ => refs(v, out),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} resolves to nothing");
        }
    }
}
