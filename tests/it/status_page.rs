//! The admin status page, rendered in a real headless Chromium.

use http::Method;
use portico_core::config::Overrides;
use portico_tests::*;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take (a cold start on a busy two-core machine included).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// Debian's Chromium, or the first `chromium` on `PATH`. Panics with the install command when
/// there is none: this test never skips.
pub(crate) fn chromium() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.is_file() {
        return debian;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("install chromium: apt-get install -y chromium"))
}

/// A Chromium process that is killed when dropped (a timeout or a failed assertion included).
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Loads `url` in headless Chromium with a fresh profile, lets its scripts run (virtual time,
/// so the page's timers do not slow the test down) and returns the rendered DOM.
pub(crate) fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().expect("tempdir");
    let dom_path = profile.path().join("dom.html");
    let log_path = profile.path().join("chromium.log");
    let mut browser = Browser(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .args(["--virtual-time-budget=5000", "--dump-dom", url])
            .stdin(Stdio::null())
            .stdout(File::create(&dom_path).expect("create dom.html"))
            .stderr(File::create(&log_path).expect("create chromium.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromium.display())),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = browser.0.try_wait().expect("wait for chromium") {
            break status;
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?}; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = std::fs::read_to_string(&dom_path).unwrap_or_default();
    if !status.success() || !dom.contains("</html>") {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("chromium failed ({status}); its log:\n{log}\nits output:\n{dom}");
    }
    dom
}

/// The rendered `<tr>` of `pool/origin`, from its start tag to its `</tr>`.
fn origin_row<'a>(dom: &'a str, pool: &str, origin: &str) -> &'a str {
    let marker = format!(r#"data-pool="{pool}" data-origin="{origin}""#);
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no row for {pool}/{origin} in the page:\n{dom}"));
    let start = dom[..at].rfind("<tr").expect("the row's <tr");
    let end = at + dom[at..].find("</tr>").expect("the row's </tr>");
    &dom[start..end]
}

/// The rendered element with `id`, up to the end of its first child.
fn by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let end = at + dom[at..].find("</div>").unwrap_or(dom.len() - at);
    &dom[at..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_pools_origins_and_health_in_chromium() {
    let chromium = chromium();
    let a = origin("a").await;
    let b = origin("b").await;
    let c = origin("c").await;
    b.set_fault(portico_origin::Fault::Status(503));
    let config = one_pool(
        &[
            origin_json("a", a.addr(), r#", "weight": 10"#),
            origin_json("b", b.addr(), r#", "priority": 2"#),
            origin_json("c", c.addr(), r#", "enabled": false"#),
        ],
        FAST_PROBES,
    );
    let overrides = Overrides {
        region: Some("page-test".into()),
        ..Overrides::default()
    };
    let node = TestNode::start_with(&config, &overrides).await;
    node.wait_latencies("p", &["a"]).await;
    node.wait_health("p", "b", false).await;
    let version = node.version().await;

    // The page itself: one self-contained HTML document, for GET and HEAD.
    let page = node.http.get(&format!("{}/", node.admin)).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(
        html.contains("fetch(\"/status\""),
        "the page refreshes from /status"
    );
    for external in ["src=\"http", "href=\"http", "@import", "//cdn"] {
        assert!(!html.contains(external), "the page loads {external}…");
    }
    let head = Http::no_keepalive()
        .request(Method::HEAD, &format!("{}/", node.admin), &[], "")
        .await
        .expect("HEAD /");
    assert_eq!(
        (head.status, head.header("content-type")),
        (200, Some("text/html; charset=utf-8"))
    );
    let missing = node.http.get(&format!("{}/nope", node.admin)).await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("try /,"), "{}", missing.text());

    // Rendered by a real browser, from a live /status.
    let url = format!("{}/", node.admin);
    let dom = tokio::task::spawn_blocking(move || dump_dom(&chromium, &url))
        .await
        .expect("chromium thread");

    assert_eq!(
        dom.matches(r#"data-origin=""#).count(),
        3,
        "one row per origin:\n{dom}"
    );
    assert!(
        !dom.contains(r#"id="rollout""#),
        "no rollout without a store:\n{dom}"
    );
    let row_a = origin_row(&dom, "p", "a");
    assert!(row_a.contains("<strong>a</strong>"), "{row_a}");
    assert!(row_a.contains(r#"data-healthy="true""#), "{row_a}");
    assert!(
        row_a.contains(r#"<span class="pill healthy">healthy</span>"#),
        "{row_a}"
    );
    assert!(row_a.contains(r#"data-preferred="true""#), "{row_a}");
    assert!(row_a.contains(&a.addr().to_string()), "{row_a}");
    assert!(
        row_a.contains(r#"<td class="num">10</td>"#),
        "weight: {row_a}"
    );

    let row_b = origin_row(&dom, "p", "b");
    assert!(row_b.contains("<strong>b</strong>"), "{row_b}");
    assert!(row_b.contains(r#"data-healthy="false""#), "{row_b}");
    assert!(
        row_b.contains(r#"<span class="pill unhealthy">down</span>"#),
        "a down origin shows unhealthy: {row_b}"
    );
    assert!(row_b.contains(r#"class="bad-text">fail</span>"#), "{row_b}");
    assert!(
        row_b.contains(r#"<td class="num">2</td>"#),
        "priority: {row_b}"
    );

    let row_c = origin_row(&dom, "p", "c");
    assert!(row_c.contains(">disabled</span>"), "{row_c}");
    // A disabled origin is reported as such, never as healthy.
    let oc = node.origin_status("p", "c").await;
    assert_eq!(
        (oc["enabled"].clone(), oc["healthy"].clone()),
        (false.into(), false.into())
    );
    let m = node.metrics().await;
    assert!(
        !m.has("portico_origin_healthy", &[("pool", "p"), ("origin", "c")]),
        "a disabled origin exports no health series"
    );

    assert_eq!(version.len(), 16, "{version}");
    let shown = by_id(&dom, "config-version");
    assert!(
        shown.contains(&format!("<code>{version}</code>")),
        "the config version {version} appears: {shown}"
    );
    assert!(
        by_id(&dom, "config-source").contains("<code>inline</code>"),
        "{dom}"
    );
    assert!(dom.contains(r#"id="region">· page-test<"#), "{dom}");
    assert!(
        dom.contains(r#"<span id="updated" class="">updated "#),
        "the page says it is fresh: {dom}"
    );
    assert!(dom.contains(r#"data-route="r""#), "{dom}");
}
