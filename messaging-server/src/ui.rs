//! The web UI at `/ui/`: hand-written HTML, CSS and JavaScript modules (`messaging-server/ui/`)
//! compiled into the binary, so the server needs no files, no Node and no network to serve
//! it. Every page is the same `index.html`; its router reads the path (`/ui/campaigns/ID`),
//! so each page has its own URL, and the pages call `/api/v1` like any other client.
//!
//! Responses carry a strict Content-Security-Policy (no inline script or style, nothing from
//! another origin, no framing), an `ETag` to revalidate against, and `Cache-Control:
//! no-cache` so a new server version is picked up at once.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use poem::http::{StatusCode, header};
use poem::{Request, Response, Route};

/// The policy of every UI response: the page's own scripts, styles and API only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

/// One compiled-in file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $type:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../ui/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the UI, by its path under `/ui/`.
static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/router.js" => JS,
    "js/dom.js" => JS,
    "js/components.js" => JS,
    "js/chart.js" => JS,
    "js/pages/dashboard.js" => JS,
    "js/pages/users.js" => JS,
    "js/pages/user.js" => JS,
    "js/pages/templates.js" => JS,
    "js/pages/segments.js" => JS,
    "js/pages/campaigns.js" => JS,
    "js/pages/campaign.js" => JS,
    "js/pages/events.js" => JS,
    "js/pages/inbound.js" => JS,
    "js/pages/settings.js" => JS,
    "js/pages/not_found.js" => JS,
];

/// Each asset's ETag, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let mut hasher = DefaultHasher::new();
            asset.body.hash(&mut hasher);
            format!("\"{:016x}\"", hasher.finish())
        })
        .collect()
});

/// The routes to nest at `/ui`.
pub fn routes() -> Route {
    Route::new().at("/*path", serve).at("/", serve)
}

/// The asset at the request's path; `index.html` for any other path that is not under an
/// asset folder, so `/ui/users/+94771234567` loads the app, which shows that page.
#[poem::handler]
fn serve(request: &Request) -> Response {
    let path = request.original_uri().path();
    let Some(path) = path.strip_prefix("/ui/") else {
        return Response::builder()
            .status(StatusCode::PERMANENT_REDIRECT)
            .header(header::LOCATION, "/ui/")
            .finish();
    };
    let found = ASSETS.iter().position(|asset| asset.path == path);
    let index = match found {
        Some(index) => index,
        // A missing script or style is an error, not a page.
        None if path.starts_with("js/") || path.contains('.') => {
            return with_policy(Response::builder().status(StatusCode::NOT_FOUND))
                .content_type("text/plain; charset=utf-8")
                .body("no such file in the web UI");
        }
        None => 0,
    };
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let revalidated = request
        .header(header::IF_NONE_MATCH)
        .is_some_and(|given| given.split(',').any(|tag| tag.trim() == etag));
    let response = with_policy(Response::builder())
        .header(header::ETAG, etag.as_str())
        .header(header::CACHE_CONTROL, "no-cache");
    if revalidated {
        return response.status(StatusCode::NOT_MODIFIED).finish();
    }
    response.content_type(asset.content_type).body(asset.body)
}

fn with_policy(response: poem::ResponseBuilder) -> poem::ResponseBuilder {
    response
        .header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "same-origin")
        .header("X-Frame-Options", "DENY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_module_is_served() {
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
        }
        let index = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!index.contains("<script>"), "no inline script");
        assert!(!index.contains("style="), "no inline style");
    }
}
