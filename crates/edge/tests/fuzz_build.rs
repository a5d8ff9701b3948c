//! Whatever validates starts: mutations of the shipped configs that pass validation go through
//! the `--check` path (the config pipeline: resolution, TLS files, the token file; then the
//! summary) and the start-up path (`Node::from_text`, which wires every service without
//! serving) without a panic, and start-up refuses nothing `--check` accepted but a busy
//! listener. Plus a scan that keeps `unwrap`/`expect` off the non-test code.

#[path = "../../core/tests/fuzz_config/mutate.rs"]
mod mutate;

use portico::config::prepare::prepare;
use portico::{Node, NodeOptions};
use portico_core::config::{Config, ConfigErrors, Overrides, parse_with};
use portico_test_support::free_addr;
use proptest::prelude::*;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

fn configs() -> &'static [(String, Value)] {
    static SHIPPED: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    SHIPPED.get_or_init(mutate::shipped)
}

/// A free loopback address for a node to bind, as text.
fn free() -> String {
    free_addr().to_string()
}

/// Whether every origin names this machine by address or as `localhost`: resolving anything
/// else would ask DNS (the tests never use the network).
fn origins_are_local(config: &Config) -> bool {
    config.pools.iter().flat_map(|p| &p.origins).all(|o| {
        let host = o
            .address
            .rsplit_once(':')
            .map_or(o.address.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.parse::<IpAddr>().is_ok() || host.eq_ignore_ascii_case("localhost")
    })
}

/// Paths start-up may refuse after `--check` accepted: listeners (bound only at start-up).
const START_UP_ONLY: &[&str] = &["node.listen", "node.admin_listen", "node.tls_listen"];

/// A runtime for the pipeline's file reads and name lookups.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn assert_paths(errors: &ConfigErrors) {
    for e in &errors.0 {
        assert!(!e.path.is_empty(), "an error without a path: {e:?}");
    }
}

static BUILT: AtomicUsize = AtomicUsize::new(0);
static CHECK_REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Runs what `portico --check` runs, then what start-up runs, on `doc`.
fn check_then_build(doc: &Value, own_listeners: bool) {
    let text = doc.to_string();
    let overrides = if own_listeners {
        Overrides {
            listen: Some(free()),
            admin_listen: Some(free()),
            ..Overrides::default()
        }
    } else {
        Overrides::default()
    };
    let Ok(config) = parse_with(&text, &overrides) else {
        return;
    };
    if !origins_are_local(&config) {
        return;
    }
    // `--check`: the pipeline (names resolve, TLS and token files load), the summary prints.
    let rt = runtime();
    let checked = match rt.block_on(prepare(&text, &overrides, None)) {
        Ok(prepared) => {
            let _ = portico::config::summary::summary(&prepared.config, &prepared.addrs);
            true
        }
        Err(e) => {
            assert_paths(&e);
            CHECK_REFUSED.fetch_add(1, Ordering::Relaxed);
            false
        }
    };
    // Start-up: the node is built (not run: nothing serves, nothing is left bound).
    let options = NodeOptions {
        overrides,
        ..NodeOptions::default()
    };
    match rt.block_on(Node::from_text(&text, options)) {
        Ok(node) => {
            BUILT.fetch_add(1, Ordering::Relaxed);
            drop(node);
        }
        Err(errors) => {
            assert_paths(&errors);
            if checked {
                for e in &errors.0 {
                    assert!(
                        START_UP_ONLY.contains(&e.path.as_str()),
                        "--check accepted this config but start-up refuses it: {e}\n{text}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_shipped_config_builds_a_node() {
    for (name, doc) in configs() {
        let text = doc.to_string();
        let overrides = Overrides {
            listen: Some(free()),
            admin_listen: Some(free()),
            ..Overrides::default()
        };
        let config = parse_with(&text, &overrides).unwrap_or_else(|e| panic!("{name}: {e}"));
        if !origins_are_local(&config) {
            continue;
        }
        let options = NodeOptions {
            overrides,
            ..NodeOptions::default()
        };
        if let Err(e) = runtime().block_on(Node::from_text(&text, options)) {
            panic!("{name} does not build a node:\n{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(250) })]

    #[test]
    fn validated_mutations_build_without_panicking(
        (which, mutations) in mutate::mutated(configs().len()),
        own_listeners in prop::bool::weighted(0.8),
    ) {
        let mut doc = configs()[which].1.clone();
        for m in &mutations {
            mutate::apply(&mut doc, m);
        }
        check_then_build(&doc, own_listeners);
    }
}

/// The property test above must reach the build: a run where nothing built proves nothing.
#[test]
fn validated_mutations_reach_the_build() {
    let before = BUILT.load(Ordering::Relaxed);
    for doc in mutate::mutated_docs(configs(), 150) {
        check_then_build(&doc, true);
    }
    let built = BUILT.load(Ordering::Relaxed) - before;
    println!(
        "150 mutated configs: {built} built a node, {} refused by --check (running total)",
        CHECK_REFUSED.load(Ordering::Relaxed)
    );
    assert!(built >= 10, "only {built} of 150 mutations built a node");
}

/// Lines of non-test code in `crates/core/src` and `crates/edge/src` allowed to `unwrap` or
/// `expect`, each with why it cannot fail on anything a config, a request or an admin call
/// holds. Matched by file and text, so moving the line does not matter.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "core/src/config/validate.rs",
        "expect(\"default pattern is valid\")",
        "a constant pattern written in the code",
    ),
    (
        "core/src/config/schema.rs",
        "expect(\"the schema is an object\")",
        "the schema is generated from Rust types, not input",
    ),
    (
        "core/src/config/schema.rs",
        "expect(\"a schema serializes\")",
        "the schema is generated from Rust types, not input",
    ),
    (
        "edge/src/metrics.rs",
        "expect(\"valid metric definition\")",
        "metric names and labels are constants in the code",
    ),
    (
        "edge/src/metrics.rs",
        "expect(\"metric registered once\")",
        "each metric is registered once, at start-up, in a registry of its own",
    ),
    (
        "edge/src/node.rs",
        "expect(\"spawn the node thread\")",
        "only fails when the OS cannot make a thread (in tests' RunningNode::spawn)",
    ),
];

/// Strips comments, string and char literals, keeping line breaks, so the scan sees code only.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) && !prev_ident(b, i) {
            let hashes = b[i + 1..].iter().take_while(|&&x| x == b'#').count();
            let open = i + 1 + hashes;
            if b.get(open) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i = open + 1;
            while i < b.len() && !b[i..].starts_with(&close) {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' && char_literal_len(&b[i..]).is_some() {
            i += char_literal_len(&b[i..]).unwrap_or(1);
            out.push_str("' '");
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

fn prev_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// `'x'`, `'\n'`, `'\u{..}'`, `'{'` — not a lifetime (`'a`).
fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        let end = b[2..].iter().position(|&x| x == b'\'')?;
        return (end < 12).then_some(end + 3);
    }
    let ch = std::str::from_utf8(&b[1..b.len().min(6)])
        .ok()
        .or_else(|| std::str::from_utf8(&b[1..b.len().min(5)]).ok())
        .or_else(|| std::str::from_utf8(&b[1..b.len().min(4)]).ok())
        .or_else(|| std::str::from_utf8(&b[1..b.len().min(3)]).ok())?
        .chars()
        .next()?;
    let n = ch.len_utf8();
    (b.get(1 + n) == Some(&b'\'')).then_some(n + 2)
}

/// Non-test lines of `code` (`#[cfg(test)]` items removed), numbered from 1.
fn non_test_lines(code: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            // Skip the item: to its `;` or to the brace that closes it.
            let mut depth = 0i64;
            let mut opened = false;
            i += 1;
            while i < lines.len() {
                let l = lines[i];
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                opened |= l.contains('{');
                i += 1;
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        out.push((i + 1, lines[i]));
        i += 1;
    }
    out
}

#[test]
fn no_unwrap_or_expect_outside_tests() {
    let crates = mutate::root().join("crates");
    let mut files = Vec::new();
    let mut dirs = vec![crates.join("core/src"), crates.join("edge/src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                // `tests.rs` files are `#[cfg(test)] mod tests;` of their parent, and files
                // under a `tests/` folder beside one are its submodules.
                && p.file_name().is_some_and(|n| n != "tests.rs")
                && !p
                    .strip_prefix(&crates)
                    .is_ok_and(|r| r.components().any(|c| c.as_os_str() == "tests"))
            {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 20, "{files:?}");
    let mut found = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap_or_default();
        let name = f
            .strip_prefix(&crates)
            .unwrap_or(f)
            .to_string_lossy()
            .into_owned();
        let code = code_only(&src);
        let src_lines: Vec<&str> = src.lines().collect();
        for (n, line) in non_test_lines(&code) {
            if !(line.contains(".unwrap()") || line.contains(".expect(")) {
                continue;
            }
            // Match the allow-list against the source line (with its string) or, for a
            // chained call, the line after.
            let text = [n - 1, n]
                .iter()
                .filter_map(|&k| src_lines.get(k))
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            match ALLOWED
                .iter()
                .position(|(file, what, _)| name == *file && text.contains(what))
            {
                Some(k) => used[k] = true,
                None => found.push(format!(
                    "{name}:{n}: {}",
                    src_lines.get(n - 1).map_or("", |l| l.trim())
                )),
            }
        }
    }
    assert!(
        found.is_empty(),
        "unwrap/expect in non-test code (return an error, or add the line to ALLOWED with a reason):\n{}",
        found.join("\n")
    );
    let stale: Vec<_> = ALLOWED
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a)
        .collect();
    assert!(stale.is_empty(), "allowed lines no longer there: {stale:?}");
}

/// The scanner sees what it must: a test module is skipped, code is not, strings are not code.
#[test]
fn the_scan_finds_unwraps() {
    let src = "fn a() { x.unwrap(); }\nfn b() { let s = \".unwrap()\"; }\n#[cfg(test)]\nmod tests {\n    fn c() { y.unwrap(); }\n}\nfn d() { z.expect(\"q\"); }\n";
    let code = code_only(src);
    let hits: Vec<usize> = non_test_lines(&code)
        .into_iter()
        .filter(|(_, l)| l.contains(".unwrap()") || l.contains(".expect("))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(hits, vec![1, 7]);
}
