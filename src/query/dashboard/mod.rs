//! The built-in SOC dashboard: a single page (`GET /`) and its assets, embedded in the
//! binary, and the episode listing (`GET /episodes`) its timeline is drawn from.
//!
//! The page reads the same endpoints as any client (`/health`, `/features`, `/anomalies`,
//! `/episodes`, `/top`, `/devices/{id}`, `/devices/{id}/history`) and polls them about once
//! a second, sending the token (entered in the page) as `Authorization: Bearer`, so it
//! works on every process of a cluster and after a replay while the run keeps serving.
//!
//! Invariants: the assets hold no data (they are served without the token, like
//! `/health`); nothing is fetched from outside the binary at run time (uPlot is vendored
//! under `assets/vendor/uplot/` with its licence); every asset is answered on the event
//! loop from memory. The page never asks for every device: listings are paged or top-k on
//! the server.

pub mod episodes;

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file the page loads, by request path.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../../assets/dashboard/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../assets/dashboard/app.js"),
    },
    Asset {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../assets/dashboard/app.css"),
    },
    Asset {
        path: "/assets/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../assets/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/assets/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../assets/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        path: "/assets/uPlot.LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_str!("../../../assets/vendor/uplot/LICENSE"),
    },
];

/// The asset served at `path` (the path without its query string), for GET and HEAD.
pub fn asset(method: &str, path: &str) -> Option<&'static Asset> {
    if method != "GET" && method != "HEAD" {
        return None;
    }
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_assets() {
        let page = asset("GET", "/").unwrap().body;
        for a in ASSETS
            .iter()
            .filter(|a| a.path.starts_with("/assets/") && !a.path.ends_with(".txt"))
        {
            assert!(
                page.contains(&format!("\"{}\"", a.path)),
                "{} is not loaded by the page",
                a.path
            );
            assert!(!a.body.is_empty());
        }
        // Nothing from outside: no absolute URL in what the page loads.
        for a in ASSETS.iter().filter(|a| !a.path.ends_with(".txt")) {
            for attr in ["src=\"http", "href=\"http", "url(http", "import(\"http"] {
                assert!(!a.body.contains(attr), "{} loads {attr}…", a.path);
            }
        }
        assert!(asset("POST", "/").is_none());
        assert!(asset("GET", "/assets/nope.js").is_none());
        assert_eq!(asset("HEAD", "/index.html").unwrap().path, "/");
    }
}
