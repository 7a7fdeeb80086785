//! `GET /openapi.json`: the document parses, names every route of `app()`, states
//! this server's limits, and the bodies the server sends match its schemas.

use crate::support::{Options, TestApp};
use axum::http::StatusCode;
use modelwatch_server::openapi::{Health, NotReady, Ready};

/// The paths `app()` routes, read from its source so a new route without a document
/// entry fails here.
fn routes_of_app() -> Vec<String> {
    let source = include_str!("../../src/lib.rs");
    let start = source.find("pub fn app(").expect("app() in lib.rs");
    let end = start + source[start..].find("\n}\n").expect("end of app()");
    source[start..end]
        .split(".route(\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').expect("closing quote")].to_string())
        .collect()
}

#[tokio::test]
async fn the_document_names_every_route_with_its_methods_and_the_limits() {
    let options = Options {
        max_batch_request: 7,
        max_body_bytes: 12_345,
        ..Options::default()
    };
    let app = TestApp::new(options).await;
    let (status, doc) = app.call("GET", "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    let routes = routes_of_app();
    assert!(routes.len() >= 5, "{routes:?}");
    let paths = doc["paths"].as_object().expect("paths");
    for route in &routes {
        assert!(paths.contains_key(route), "{route} is not in the document");
    }
    assert_eq!(paths.len(), routes.len(), "{:?}", paths.keys());
    // Each documented operation exists on the router (it does not answer 404 or 405).
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            let body = if method == "post" { "{}" } else { "" };
            let (status, _) = app.call(&method.to_uppercase(), path, body).await;
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status}"
            );
            let documented = &item[method]["responses"][status.as_str()];
            assert!(
                documented.is_object(),
                "{method} {path} answered an undocumented {status}"
            );
        }
    }
    let batch = &doc["components"]["schemas"]["BatchIn"]["properties"]["transactions"];
    assert_eq!(batch["maxItems"], 7, "{batch}");
    assert_eq!(doc["info"]["x-limits"]["max_body_bytes"], 12_345);
    let predict = &doc["paths"]["/v1/predict"]["post"]["responses"];
    for code in ["200", "400", "413", "429", "503", "504"] {
        assert!(predict[code].is_object(), "/v1/predict lacks {code}");
    }
    let error = &doc["components"]["schemas"]["ErrorDetail"]["properties"];
    assert!(
        error["type"].is_object() && error["message"].is_object(),
        "{error}"
    );
}

#[tokio::test]
async fn health_bodies_match_their_documented_schemas() {
    let app = TestApp::new(Options::default()).await;
    let (_, body) = app.call("GET", "/healthz", "").await;
    let health: Health = serde_json::from_value(body).expect("Health");
    assert_eq!(health.status, "ok");
    let (_, body) = app.call("GET", "/readyz", "").await;
    let ready: Ready = serde_json::from_value(body).expect("Ready");
    assert_eq!(ready.status, "ready");
    app.state
        .accepting
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let (status, body) = app.call("GET", "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let not_ready: NotReady = serde_json::from_value(body).expect("NotReady");
    assert_eq!(not_ready.status, "not_ready");
}
