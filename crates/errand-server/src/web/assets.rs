//! The stylesheet and the script, embedded in the binary and served under names that carry a
//! hash of their content, so browsers may keep them forever and a new build is fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("../../assets/app.css");
const JS: &str = include_str!("../../assets/app.js");

struct Asset {
    path: String,
    body: &'static str,
    content_type: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static str, content_type: &'static str) -> Asset {
    let digest = Sha256::digest(body.as_bytes());
    let short: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    Asset { path: format!("/assets/{stem}.{short}.{ext}"), body, content_type }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        asset("app", "css", CSS, "text/css; charset=utf-8"),
        asset("app", "js", JS, "text/javascript; charset=utf-8"),
    ]
});

/// Where pages link the stylesheet.
pub fn css_path() -> &'static str {
    &ASSETS[0].path
}

/// Where pages load the script.
pub fn js_path() -> &'static str {
    &ASSETS[1].path
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let wanted = format!("/assets/{name}");
    match ASSETS.iter().find(|asset| asset.path == wanted) {
        Some(asset) => {
            let mut response = asset.body.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            response
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
