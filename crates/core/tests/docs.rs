//! The documentation holds together: every relative link and `#anchor` in `README.md`,
//! `docs/*.md` and the recipes' `deploy/*/README.md` resolves (anchors by GitHub's rules), and
//! every `make TARGET` they name in code is a target of the `Makefile`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("the repository root: {e}"))
}

/// `README.md`, every `docs/*.md` and every `deploy/*/README.md`, sorted.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut add = |dir: PathBuf, only_readme: bool| {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if only_readme && path.join("README.md").is_file() {
                    files.push(path.join("README.md"));
                }
            } else if !only_readme && name.ends_with(".md") {
                files.push(path);
            }
        }
    };
    add(root.join("docs"), false);
    add(root.join("deploy"), true);
    files.sort();
    files
}

/// A Markdown file split into prose (inline code removed) and code (fenced blocks and inline
/// code spans), each line with its number.
struct Parts {
    prose: Vec<(usize, String)>,
    code: Vec<(usize, String)>,
}

fn split(text: &str) -> Parts {
    let mut parts = Parts {
        prose: Vec::new(),
        code: Vec::new(),
    };
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        if let Some(open) = fence {
            if trimmed.starts_with(open) {
                fence = None;
            } else {
                parts.code.push((n, line.to_string()));
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
            continue;
        }
        // Indented code (four spaces after a blank line) only holds formulas here: prose.
        let mut prose = String::new();
        let mut rest = line;
        while let Some(start) = rest.find('`') {
            let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
            let marker = &rest[start..start + ticks];
            prose.push_str(&rest[..start]);
            let after = &rest[start + ticks..];
            match after.find(marker) {
                Some(end) => {
                    parts.code.push((n, after[..end].trim().to_string()));
                    // Keep a placeholder so link text like [`x`](y) stays a link.
                    prose.push('x');
                    rest = &after[end + ticks..];
                }
                None => {
                    prose.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        prose.push_str(rest);
        parts.prose.push((n, prose));
    }
    parts
}

/// GitHub's anchor for a heading: lowercase, punctuation but `-` and `_` dropped, spaces to
/// `-`. (Written again here rather than taken from `portico_core`, which uses it for the
/// generated reference: the two are checked against each other through that file's links.)
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings; a repeated heading gets `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        // Link syntax in a heading shows its text only.
        let mut shown = String::new();
        let mut rest = title.trim();
        while let Some(open) = rest.find("](") {
            let close = rest[open..].find(')').map_or(rest.len(), |c| open + c + 1);
            shown.push_str(&rest[..open].replace('[', ""));
            rest = &rest[close..];
        }
        shown.push_str(rest);
        let base = anchor(&shown);
        let count = seen.entry(base.clone()).or_insert(0);
        out.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    out
}

/// The targets of inline links and images, `[text](target)` and `![alt](target)`, in prose.
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find("](") {
        let after = &rest[open + 2..];
        let Some(close) = after.find(')') else { break };
        let target = after[..close].trim();
        // `[text](target "title")`
        let target = target.split_whitespace().next().unwrap_or_default();
        out.push(
            target
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        );
        rest = &after[close..];
    }
    out
}

/// Problems with the links of one file: `file:line: why`.
fn broken_links(root: &Path, file: &Path, text: &str) -> Vec<String> {
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut problems = Vec::new();
    for (n, line) in split(text).prose {
        for target in links(&line) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.to_path_buf()
            } else {
                file.parent().unwrap_or(root).join(path)
            };
            if !resolved.exists() {
                problems.push(format!("{shown}:{n}: {target}: no such file"));
                continue;
            }
            let inside_repo = resolved.canonicalize().is_ok_and(|p| p.starts_with(root));
            if !inside_repo {
                problems.push(format!("{shown}:{n}: {target}: outside the repository"));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if resolved.extension().is_none_or(|e| e != "md") {
                problems.push(format!(
                    "{shown}:{n}: {target}: an anchor into a non-Markdown file"
                ));
                continue;
            }
            let target_text = if path.is_empty() {
                text.to_string()
            } else {
                std::fs::read_to_string(&resolved).unwrap_or_default()
            };
            if !anchors(&target_text).contains(fragment) {
                problems.push(format!(
                    "{shown}:{n}: {target}: no heading with the anchor #{fragment}"
                ));
            }
        }
    }
    problems
}

/// `make` targets named in code (inline spans and fenced blocks, `$ ` prompts allowed).
fn make_targets(text: &str) -> Vec<(usize, String)> {
    split(text)
        .code
        .into_iter()
        .filter_map(|(n, code)| {
            let code = code.trim_start().trim_start_matches("$ ");
            let target = code.strip_prefix("make ")?.split_whitespace().next()?;
            let plain = target
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            plain.then(|| (n, target.to_string()))
        })
        .collect()
}

/// The rules of a Makefile: `name:` at the start of a line (not `.PHONY`, not `:=`).
fn makefile_targets(makefile: &str) -> BTreeSet<String> {
    makefile
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            (plain && !rest.starts_with('=')).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let root = repo();
    let files = markdown_files(&root);
    assert!(
        files.iter().any(|f| f.ends_with("docs/configuration.md")),
        "{files:?}"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        checked += split(&text)
            .prose
            .iter()
            .map(|(_, l)| links(l).len())
            .sum::<usize>();
        problems.extend(broken_links(&root, file, &text));
    }
    println!("{} files, {checked} links", files.len());
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_make_target_the_docs_name_exists() {
    let root = repo();
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap_or_default();
    let targets = makefile_targets(&makefile);
    assert!(
        targets.contains("test") && targets.contains("run"),
        "{targets:?}"
    );
    let mut problems = Vec::new();
    let mut named = BTreeSet::new();
    for file in markdown_files(&root) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (n, target) in make_targets(&text) {
            if !targets.contains(&target) {
                problems.push(format!(
                    "{shown}:{n}: make {target}: no such Makefile target"
                ));
            }
            named.insert(target);
        }
    }
    println!("targets named: {named:?}");
    assert!(named.len() > 5, "only {named:?}: is the parser broken?");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// The checkers themselves, on small documents: each must find what is wrong.

#[test]
fn anchors_follow_githubs_rules() {
    let text = "# Portico\n## TLS and HTTP/2\n### What needs a restart?\n## `pools[].origins[]`\n\
                ## Notes\n## Notes\n```sh\n# not a heading\n```\n## See [the docs](x.md)\n";
    let found = anchors(text);
    let expected: BTreeSet<String> = [
        "portico",
        "tls-and-http2",
        "what-needs-a-restart",
        "poolsorigins",
        "notes",
        "notes-1",
        "see-the-docs",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn a_broken_link_or_anchor_is_reported() {
    let root = repo();
    let file = root.join("docs/configuration.md");
    let text = "# Here\n\nGood: [a](#here), [b](../README.md), [c](tls.md), [d](https://x.test/#y).\n\
                Bad: [e](#nowhere), [f](missing.md), [g](../README.md#no-such-heading).\n\
                In code it is not a link: `[h](#nowhere)`.\n\
                ```\n[i](missing-too.md)\n```\n";
    let problems = broken_links(&root, &file, text);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("#nowhere") && problems[0].contains(":4:"));
    assert!(problems[1].contains("missing.md: no such file"));
    assert!(problems[2].contains("#no-such-heading"));
}

#[test]
fn make_targets_are_read_from_code_only() {
    let text = "Run `make run`, then `make bench ARGS=\"--help\"`; make it yours.\n\
                ```console\n$ make sim-clean\nmake test   # all\n```\n";
    let named: Vec<String> = make_targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(named, ["run", "bench", "sim-clean", "test"]);
    let makefile =
        "CARGO ?= cargo\nSHELL := /bin/bash\n.PHONY: run\nrun: build\n\tx\nbench-tls: build\n";
    let targets: Vec<String> = makefile_targets(makefile).into_iter().collect();
    assert_eq!(targets, ["bench-tls", "run"]);
}
