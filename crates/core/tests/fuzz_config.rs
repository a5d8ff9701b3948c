//! Property-based fuzzing of the config pipeline: arbitrary text and JSON, and mutations of
//! every shipped config (deletions, type swaps, out-of-range numbers, odd strings). Never a
//! panic, and every error names a JSON path in the document.

#[path = "fuzz_config/mutate.rs"]
mod mutate;

use mutate::{apply, arb_json, mutated, shipped};
use portico_core::config::{ConfigErrors, Overrides, parse, parse_with};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;

fn configs() -> &'static [(String, Value)] {
    static SHIPPED: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    SHIPPED.get_or_init(shipped)
}

/// The top-level fields of a document, and the command-line overrides (an error about an
/// override names its flag); an error's path must start with one of them.
const TOP: &[&str] = &[
    "$schema",
    "node",
    "pools",
    "routes",
    "certificates",
    "--region",
    "--listen",
    "--admin-listen",
];

/// Every error of an object document names a path inside it: non-empty, starting at a
/// top-level field the document has or must have.
fn assert_paths(doc: &Value, errors: &ConfigErrors) {
    assert!(!errors.0.is_empty(), "an error result without errors");
    for e in &errors.0 {
        assert!(!e.message.is_empty(), "an error without words: {e:?}");
        if !doc.is_object() {
            // The document itself is wrong: the one error is about the root.
            assert_eq!(errors.0.len(), 1, "{errors}");
            continue;
        }
        assert!(
            !e.path.is_empty(),
            "an error without a path: {e:?}\nin {doc}"
        );
        let first = e.path.split(['.', '[']).next().unwrap_or_default();
        assert!(
            TOP.contains(&first) || doc.get(first).is_some(),
            "an error path outside the document: {e:?}"
        );
    }
}

#[test]
fn every_shipped_config_validates() {
    for (name, doc) in configs() {
        if let Err(e) = parse(&doc.to_string()) {
            panic!("{name} does not validate:\n{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_shipped_configs_never_panic_and_errors_have_paths((which, mutations) in mutated(configs().len())) {
        let mut doc = configs()[which].1.clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        if let Err(errors) = parse(&doc.to_string()) {
            assert_paths(&doc, &errors);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(doc in arb_json()) {
        if let Err(errors) = parse(&doc.to_string()) {
            assert_paths(&doc, &errors);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn odd_overrides_never_panic(
        (which, mutations) in mutated(configs().len()),
        region in proptest::option::of(prop::sample::select(mutate::ODD_STRINGS)),
        listen in proptest::option::of(prop::sample::select(mutate::ODD_STRINGS)),
    ) {
        let mut doc = configs()[which].1.clone();
        for m in mutations.iter().take(1) {
            apply(&mut doc, m);
        }
        let overrides = Overrides {
            region: region.map(str::to_string),
            listen: listen.map(str::to_string),
            admin_listen: None,
            tls_listen: None,
        };
        if let Err(errors) = parse_with(&doc.to_string(), &overrides) {
            assert_paths(&doc, &errors);
        }
    }
}

/// The mutations explore both sides: some documents still validate, most do not, and the
/// refused ones are refused for many different paths.
#[test]
fn mutations_reach_both_outcomes() {
    let (mut valid, mut invalid) = (0, 0);
    let mut paths = std::collections::BTreeSet::new();
    for doc in mutate::mutated_docs(configs(), 2000) {
        match parse(&doc.to_string()) {
            Ok(_) => valid += 1,
            Err(e) => {
                invalid += 1;
                paths.extend(e.0.into_iter().map(|e| e.path));
            }
        }
    }
    println!(
        "2000 mutated configs: {valid} valid, {invalid} refused, {} distinct error paths",
        paths.len()
    );
    assert!(
        valid >= 100 && invalid >= 100,
        "valid {valid}, invalid {invalid}"
    );
    assert!(paths.len() >= 50, "{paths:?}");
}
