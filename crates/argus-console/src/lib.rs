//! The supervision console: the pages monitoring staff and enforcement teams use in a browser,
//! served by Argus itself under `/console/` (same origin as the API, so the session cookie of
//! `/api/login` carries over). Server-built shell, a little JavaScript over the JSON API and
//! the live stream, nothing fetched from the internet: every asset is compiled into the binary
//! ([`ASSETS`]), charts by uPlot (MIT, vendored under `assets/vendor/`). Strings come from one
//! catalogue per language (`assets/i18n/zh-CN.json`, the default, and `en.json`).
//!
//! [`router`] answers `/console/` and every page below it with the shell (`index.html`; the
//! script picks the page from the path, so links and reloads work), and `/console/assets/...`
//! with the assets.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Every asset: its path under `/console/assets/`, content type and bytes.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "i18n/zh-CN.json",
        "application/json",
        include_bytes!("../assets/i18n/zh-CN.json"),
    ),
    (
        "i18n/en.json",
        "application/json",
        include_bytes!("../assets/i18n/en.json"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/uPlot.min.css"),
    ),
    (
        "vendor/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/uPlot.LICENSE"),
    ),
];

/// The page shell every console path answers with.
pub const SHELL: &str = include_str!("../assets/index.html");

/// The console's routes: `/` and `/console` lead to `/console/`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(shell))
        .route("/console/assets/{*file}", get(asset))
        .route("/console/{*page}", get(shell))
}

async fn shell() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SHELL,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(path, ..)| *path == file) {
        Some((_, content_type, bytes)) => {
            let mut response = (*bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            // Revalidated on each load: a new Argus serves its own assets at once.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => (StatusCode::NOT_FOUND, format!("error: no asset {file:?}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    fn catalogue(lang: &str) -> serde_json::Map<String, serde_json::Value> {
        let (_, _, bytes) = ASSETS
            .iter()
            .find(|(p, ..)| *p == format!("i18n/{lang}.json"))
            .unwrap();
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn both_catalogues_hold_every_string_the_pages_use() {
        let zh = catalogue("zh-CN");
        let en = catalogue("en");
        let keys = |c: &serde_json::Map<String, serde_json::Value>| -> BTreeSet<String> {
            c.keys().cloned().collect()
        };
        assert_eq!(keys(&zh), keys(&en), "the catalogues name the same strings");
        let script = std::str::from_utf8(include_bytes!("../assets/app.js")).unwrap();
        // Keys written out: t("...") and data-t="..." of the shell.
        let mut used: Vec<String> = script
            .match_indices("t(\"")
            .filter(|(at, _)| {
                // The function t, not get( or set(.
                script[..*at]
                    .chars()
                    .last()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'))
            })
            .filter_map(|(at, _)| script[at + 3..].split('"').next().map(str::to_owned))
            .collect();
        used.extend(
            SHELL
                .split("data-t=\"")
                .skip(1)
                .filter_map(|s| s.split('"').next().map(str::to_owned)),
        );
        // Keys made from a prefix and a value of the API.
        let values: [(&str, &[&str]); 6] = [
            (
                "state.",
                &[
                    "new",
                    "dispatched",
                    "accepted",
                    "inspecting",
                    "rectification_ordered",
                    "closed",
                ],
            ),
            ("severity.", &["blue", "yellow", "orange", "red"]),
            ("status.", &["firing", "resolved"]),
            ("role.", &["admin", "monitor", "dispatcher", "team", "head"]),
            (
                "outcome.",
                &["violation_confirmed", "false_alarm", "equipment_fault"],
            ),
            ("range.", &["6h", "24h", "7d", "30d"]),
        ];
        for (prefix, names) in values {
            assert!(script.contains(&format!("\"{prefix}\" +")), "{prefix}");
            used.extend(names.iter().map(|n| format!("{prefix}{n}")));
        }
        for key in used.iter().filter(|k| !k.is_empty() && !k.ends_with('.')) {
            assert!(zh.contains_key(key), "{key} is not in the catalogues");
        }
        assert!(zh
            .values()
            .all(|v| v.as_str().is_some_and(|s| !s.is_empty())));
    }

    async fn get(uri: &str) -> (StatusCode, String, String) {
        let response = router()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, kind, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn every_page_is_the_shell_and_every_asset_it_names_is_served() {
        for page in [
            "/console/",
            "/console/inbox",
            "/console/tickets/00ab",
            "/console/login",
        ] {
            let (status, kind, body) = get(page).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert!(kind.starts_with("text/html"), "{page}: {kind}");
            assert_eq!(body, SHELL);
        }
        let named: Vec<&str> = SHELL
            .split("/console/assets/")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        assert_eq!(named.len(), 4, "{named:?}");
        for asset in named {
            let (status, kind, _) = get(&format!("/console/assets/{asset}")).await;
            assert_eq!(status, StatusCode::OK, "{asset}");
            assert!(!kind.is_empty());
        }
        let (status, ..) = get("/console/assets/nothing.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, ..) = get("/").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
}
