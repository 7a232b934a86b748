//! The dashboard's static files, served at `/` by the `http-N` handlers
//! without a token (they hold no data; every data request the page makes
//! carries the bearer token and goes through the usual checks).
//!
//! Four files, embedded in the binary from `src/http/ui/` with
//! `include_str!`/`include_bytes!`: `index.html`, `dashboard.js`,
//! `dashboard.css` and `favicon.svg`. No build chain, no CDN: the page
//! references them by relative URLs and routes with `#/…` fragments, so it
//! works unchanged behind a reverse proxy under any path prefix.
//!
//! Every reply carries a strict [`CSP`] (scripts, styles and requests only
//! from the page's own origin, no inline script or style, no framing) and
//! the [`ETAG`] computed by `build.rs` over all four files; a request whose
//! `If-None-Match` names it gets `304 Not Modified` and no body.

use super::{Reply, Request};

/// The ETag of the dashboard's files, one for all of them (`build.rs`
/// hashes them at build time), quoted as HTTP wants it.
pub const ETAG: &str = env!("DISTSCHED_UI_ETAG");

/// The Content-Security-Policy of every dashboard file: nothing from
/// another origin, no inline script or style (the page sets sizes through
/// the CSSOM, which the policy allows), no plugins, no framing, no form
/// posts, no `<base>`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("ui/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: INDEX,
    },
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: INDEX,
    },
    Asset {
        path: "/dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/dashboard.js").as_bytes(),
    },
    Asset {
        path: "/dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("ui/dashboard.css").as_bytes(),
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("ui/favicon.svg"),
    },
];

/// True if `path` names a dashboard file.
pub(super) fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// The file at `path` for a `GET`/`HEAD` `request` (the caller checked
/// the method and that the path is an asset).
pub(super) fn serve(path: &str, request: &Request) -> Reply {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return Reply::error(404, &format!("no route for {path}"));
    };
    let fresh = request
        .headers
        .iter()
        .filter(|(n, _)| n == "if-none-match")
        .any(|(_, v)| matches_etag(v));
    let reply = if fresh {
        Reply::bytes(304, asset.content_type, Vec::new())
    } else {
        Reply::bytes(200, asset.content_type, asset.body.to_vec())
    };
    reply
        .with_header("ETag", ETAG)
        // Cached, but checked with the ETag on every load: a new binary
        // shows its own page at once.
        .with_header("Cache-Control", "no-cache")
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("X-Frame-Options", "DENY")
}

/// True if an `If-None-Match` value (`*`, or a list of tags, weak or
/// strong) names [`ETAG`].
fn matches_etag(value: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ETAG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_matching() {
        assert!(ETAG.starts_with('"') && ETAG.ends_with('"') && ETAG.len() == 18);
        assert!(matches_etag(ETAG));
        assert!(matches_etag(&format!("W/{ETAG}")));
        assert!(matches_etag(&format!("\"other\", {ETAG}")));
        assert!(matches_etag("*"));
        assert!(!matches_etag("\"0000000000000000\""));
        assert!(!matches_etag(""));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_relative_urls() {
        let html = std::str::from_utf8(INDEX).unwrap();
        assert!(!html.contains("<style"), "inline style element");
        assert!(!html.contains(" style="), "inline style attribute");
        let lower = html.to_ascii_lowercase();
        for (at, _) in lower.match_indices(" on") {
            let name: String = lower[at + 1..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            assert!(
                !lower[at + 1 + name.len()..].starts_with('='),
                "inline event handler {name}"
            );
        }
        for tag in html.split("<script").skip(1) {
            let head = tag.split('>').next().unwrap();
            assert!(
                head.contains("src=\"dashboard.js\""),
                "inline script: {head}"
            );
        }
        assert!(
            !html.contains("src=\"/") && !html.contains("href=\"/"),
            "absolute URL"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "external URL"
        );
    }
}
