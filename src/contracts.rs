//! The contracts `ioc contracts` writes and `contracts/` keeps: each stage's OpenAPI document and
//! each Kafka record's JSON Schema, pretty-printed with a final newline so diffs stay readable.

/// `(relative path, file contents)` of every contract.
pub fn all() -> Vec<(String, String)> {
    let pretty = |v: &serde_json::Value| {
        let mut s = serde_json::to_string_pretty(v).expect("JSON serializes");
        s.push('\n');
        s
    };
    let mut out = vec![
        (
            "openapi/ingest.json".to_string(),
            pretty(&ioc_ingest::openapi()),
        ),
        (
            "openapi/dashboard.json".to_string(),
            pretty(&ioc_dashboard::openapi()),
        ),
        (
            "openapi/router.json".to_string(),
            pretty(&ioc_router::pipeline::openapi()),
        ),
    ];
    for r in ioc_schema::openapi::record_schemas() {
        out.push((format!("records/{}.json", r.name), pretty(&r.schema)));
    }
    out
}

#[cfg(test)]
mod tests {
    /// The copy in the repository is what the code generates: a change to a type or an endpoint
    /// shows up in review as a change of the published contract.
    #[test]
    fn the_published_contracts_are_up_to_date() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
        for (path, generated) in super::all() {
            let file = root.join(&path);
            let kept = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                kept == generated,
                "{} is out of date; run `cargo run -- contracts --out contracts` and commit the result",
                file.display()
            );
        }
    }
}
