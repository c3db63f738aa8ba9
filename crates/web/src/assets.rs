//! Static files compiled into the binary (`include_bytes!`), so the daemon serves them with
//! no files to install and no build step at run time. The OpenAPI document lives here; the
//! queue page's HTML, CSS and JavaScript are meant to be added to [`ASSETS`] the same way.

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
];

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
}
