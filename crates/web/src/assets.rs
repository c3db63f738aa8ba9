//! Static files compiled into the binary (`include_bytes!`), so the daemon serves them with
//! no files to install and no build step at run time: the OpenAPI document and the queue
//! page (plain HTML, CSS and JavaScript: no framework, nothing fetched from elsewhere).

/// `(path, content type, bytes)`.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/api/v1/openapi.json",
        "application/json",
        include_bytes!("../assets/openapi.json"),
    ),
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../assets/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
];

/// The Content-Security-Policy of every embedded file: the page's scripts, styles and API
/// calls are the daemon's own; nothing inline runs, nothing else is loaded, no framing.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The embedded file at `path`.
pub fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, kind, bytes)| (*kind, *bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_is_valid_json_for_openapi_3() {
        let (_, bytes) = super::find("/api/v1/openapi.json").unwrap();
        let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert!(doc["paths"]["/api/v1/queue"]["get"].is_object());
    }

    #[test]
    fn the_page_loads_only_embedded_files_and_never_parses_data_as_markup() {
        let text = |path: &str| String::from_utf8(super::find(path).unwrap().1.to_vec()).unwrap();
        let html = text("/");
        for reference in html.split(['"', '\'']).filter(|s| s.starts_with('/')) {
            assert!(
                super::find(reference).is_some() || reference.starts_with("/api/"),
                "{reference}"
            );
        }
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing from elsewhere"
        );
        assert!(
            !html.contains("<script>"),
            "no inline script (the CSP forbids it)"
        );
        let js = text("/app.js");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(
                !js.contains(sink),
                "app.js uses {sink}: queue data must go in as text"
            );
        }
    }
}
