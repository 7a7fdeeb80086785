//! docs/metrics.md is generated from the schema and must not go stale.

use crate::support::assert_matches_file;
use modelwatch_testkit::workspace_root;

#[test]
fn metrics_doc_is_up_to_date() {
    let path = workspace_root().join("docs/metrics.md");
    assert_matches_file(&path, &modelwatch::schema::metrics_markdown());
}

#[test]
fn metrics_doc_lists_every_family() {
    let doc = modelwatch::schema::metrics_markdown();
    for def in modelwatch::schema::ALL {
        assert!(
            doc.contains(&format!("| `{}` |", def.name)),
            "{} missing",
            def.name
        );
    }
}
