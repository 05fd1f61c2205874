//! The web console at `/console`: a single-page app (plain JavaScript, SVG charts, no
//! build step and no CDN) compiled into the binary, so it works air-gapped. It signs in
//! with an admin or tenant-admin token and reads everything through the admin API,
//! whose role checks decide what each token sees.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded asset.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_str!("assets/index.html"),
    content_type: "text/html; charset=utf-8",
};

/// The assets under `/console/`, by file name.
fn asset(name: &str) -> Option<Asset> {
    Some(match name {
        "app.js" => Asset {
            body: include_str!("assets/app.js"),
            content_type: "text/javascript; charset=utf-8",
        },
        "charts.js" => Asset {
            body: include_str!("assets/charts.js"),
            content_type: "text/javascript; charset=utf-8",
        },
        "app.css" => Asset {
            body: include_str!("assets/app.css"),
            content_type: "text/css; charset=utf-8",
        },
        "favicon.svg" => Asset {
            body: include_str!("assets/favicon.svg"),
            content_type: "image/svg+xml",
        },
        _ => return None,
    })
}

/// The console's routes (no state: the page talks to the admin API itself).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/console/") }))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { serve(&INDEX) }))
        .route(
            "/console/{file}",
            get(
                |axum::extract::Path(file): axum::extract::Path<String>| async move {
                    match asset(&file) {
                        Some(a) => serve(&a),
                        None => (StatusCode::NOT_FOUND, "no such console file").into_response(),
                    }
                },
            ),
        )
}

fn serve(a: &Asset) -> Response {
    let mut resp = a.body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    // Assets change with the binary: revalidate rather than cache stale code.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}
