//! Tests of rule sets: each condition and action as an exact sequence of what evaluation
//! decides, templates, `stop`, every validation error with its path, and properties.

use super::*;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use std::net::IpAddr;

const POOLS: [&str; 2] = ["api", "canary"];

fn compile(json: &str) -> CompiledRuleSets {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    match parse_rule_sets(&value, "rule_sets", &POOLS) {
        Ok(c) => c,
        Err(e) => panic!("rule sets should be valid:\n{e}"),
    }
}

fn errors(json: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    parse_rule_sets(&value, "rule_sets", &POOLS)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A request to build facts from.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    scheme: Scheme,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    client_ip: Option<IpAddr>,
    request_id: String,
}

/// `GET target` over plain HTTP to `example.com` from 192.0.2.10, request id `rid-1`.
fn req(target: &str) -> Req {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    Req {
        method: "GET".into(),
        scheme: Scheme::Http,
        host: "example.com".into(),
        path,
        query,
        headers: HeaderMap::new(),
        client_ip: Some("192.0.2.10".parse().unwrap()),
        request_id: "rid-1".into(),
    }
}

impl Req {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers
            .append(name, HeaderValue::from_str(value).unwrap());
        self
    }
    fn method(mut self, m: &str) -> Self {
        self.method = m.into();
        self
    }
    fn https(mut self) -> Self {
        self.scheme = Scheme::Https;
        self
    }
    fn host(mut self, h: &str) -> Self {
        self.host = h.into();
        self
    }
    fn ip(mut self, ip: Option<&str>) -> Self {
        self.client_ip = ip.map(|s| s.parse().unwrap());
        self
    }
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &self.method,
            scheme: self.scheme,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client_ip: self.client_ip,
            request_id: &self.request_id,
        }
    }
}

fn value(v: &HeaderValue) -> &str {
    v.to_str().unwrap()
}

fn edit(side: &str, e: &HeaderEdit) -> String {
    match e {
        HeaderEdit::Remove(n) => format!("{side} remove {n}"),
        HeaderEdit::Set(n, v) => format!("{side} set {n}: {}", value(v)),
        HeaderEdit::Add(n, v) => format!("{side} add {n}: {}", value(v)),
    }
}

/// Everything evaluation decided, one line per item, in order, rules by name.
fn describe(sets: &CompiledRuleSets, a: &Actions) -> Vec<String> {
    let name = |id: RuleId| sets.rule(id).unwrap().name;
    let mut out: Vec<String> = a
        .matched
        .iter()
        .map(|&id| {
            let r = sets.rule(id).unwrap();
            format!("match {}/{}", r.set, r.name)
        })
        .collect();
    match &a.ending {
        None => {}
        Some(Ending::Respond {
            rule,
            status,
            body,
            headers,
        }) => {
            let h: Vec<String> = headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", value(v)))
                .collect();
            out.push(format!(
                "respond {status} {:?} [{}] by {}",
                std::str::from_utf8(body).unwrap(),
                h.join(", "),
                name(*rule)
            ));
        }
        Some(Ending::Redirect {
            rule,
            status,
            location,
        }) => out.push(format!(
            "redirect {status} {} by {}",
            value(location),
            name(*rule)
        )),
    }
    for hit in &a.rate_limits {
        let key = match &hit.key {
            RateKey::ClientIp(ip) => format!("client_ip={ip}"),
            RateKey::Header(v) => format!("header={}", value(v)),
            RateKey::Route => "route".to_string(),
        };
        let spec = sets.rate_limit(hit.rule).unwrap();
        assert_eq!(
            (spec.requests_per_second, spec.burst),
            (hit.requests_per_second, hit.burst)
        );
        out.push(format!(
            "rate_limit {} {key} {}/s burst {}",
            name(hit.rule),
            hit.requests_per_second,
            hit.burst
        ));
    }
    if let Some(p) = &a.path {
        out.push(format!("path {p}"));
    }
    if let Some(p) = a.pool {
        out.push(format!("pool {} #{p}", POOLS[p]));
    }
    out.extend(a.request_headers.iter().map(|e| edit("request", e)));
    out.extend(a.response_headers.iter().map(|e| edit("response", e)));
    out
}

/// Evaluates the sets named `names` of `json` against `r`.
fn run(json: &str, names: &[&str], r: &Req) -> Vec<String> {
    let sets = compile(json);
    let ids: Vec<RuleSetId> = names.iter().map(|n| sets.id(n).unwrap()).collect();
    describe(&sets, &sets.evaluate(&ids, &r.facts()))
}

/// One set `s` holding one rule `r` with this `when`, marking matches with a response header.
fn when(cond: &str) -> String {
    format!(
        r#"[{{"name":"s","rules":[{{"name":"r","when":{cond},"then":{{"response_headers":{{"set":{{"x-hit":"1"}}}}}}}}]}}]"#
    )
}

/// Whether the rule with condition `cond` matches `r`.
fn matches(cond: &str, r: &Req) -> bool {
    let got = run(&when(cond), &["s"], r);
    match got.as_slice() {
        [] => false,
        [m, h] if m == "match s/r" && h == "response set x-hit: 1" => true,
        other => panic!("unexpected actions {other:?}"),
    }
}

#[test]
fn no_conditions_always_match_and_no_rules_decide_nothing() {
    assert!(matches("{}", &req("/")));
    let sets = compile(r#"[{"name":"empty","rules":[]}]"#);
    let a = sets.evaluate(&[sets.id("empty").unwrap()], &req("/").facts());
    assert!(describe(&sets, &a).is_empty());
    assert_eq!(
        a.matched.capacity(),
        0,
        "no allocation when nothing matched"
    );
}

#[test]
fn methods_are_case_sensitive_tokens() {
    let c = r#"{"methods":["GET","POST"]}"#;
    assert!(matches(c, &req("/")));
    assert!(matches(c, &req("/").method("POST")));
    assert!(!matches(c, &req("/").method("DELETE")));
    assert!(!matches(c, &req("/").method("get")));
}

#[test]
fn schemes() {
    let c = r#"{"schemes":["https"]}"#;
    assert!(!matches(c, &req("/")));
    assert!(matches(c, &req("/").https()));
    let both = r#"{"schemes":["http","https"]}"#;
    assert!(matches(both, &req("/")) && matches(both, &req("/").https()));
}

#[test]
fn paths_are_exact_or_prefix_like_routes_and_ignore_the_query() {
    let c = r#"{"paths":["/health","/api/*"]}"#;
    assert!(matches(c, &req("/health")));
    assert!(matches(c, &req("/health?full=1")));
    assert!(!matches(c, &req("/health/x")));
    assert!(matches(c, &req("/api/")));
    assert!(matches(c, &req("/api/users/1")));
    assert!(!matches(c, &req("/api")));
    assert!(!matches(c, &req("/apix/1")));
}

#[test]
fn path_regex_is_unanchored_unless_anchored() {
    assert!(matches(
        r#"{"path_regex":"\\.php$"}"#,
        &req("/wp/index.php")
    ));
    assert!(!matches(
        r#"{"path_regex":"\\.php$"}"#,
        &req("/wp/index.php5")
    ));
    assert!(matches(r#"{"path_regex":"admin"}"#, &req("/x/admin/y")));
    assert!(!matches(r#"{"path_regex":"^/admin"}"#, &req("/x/admin/y")));
    assert!(
        !matches(r#"{"path_regex":"q=1"}"#, &req("/a?q=1")),
        "query excluded"
    );
}

#[test]
fn headers_by_case_insensitive_name_any_field_line() {
    let eq = r#"{"headers":[{"name":"X-Canary","equals":"yes"}]}"#;
    assert!(matches(eq, &req("/").header("x-canary", "yes")));
    assert!(
        !matches(eq, &req("/").header("x-canary", "YES")),
        "values are case-sensitive"
    );
    assert!(matches(
        eq,
        &req("/").header("x-canary", "no").header("x-canary", "yes")
    ));
    assert!(!matches(eq, &req("/")));
    let re = r#"{"headers":[{"name":"user-agent","regex":"(?i)bot"}]}"#;
    assert!(matches(re, &req("/").header("user-agent", "GoogleBot/2.1")));
    assert!(!matches(re, &req("/").header("user-agent", "curl/8")));
    let present = r#"{"headers":[{"name":"Authorization","present":true}]}"#;
    assert!(matches(present, &req("/").header("authorization", "")));
    assert!(!matches(present, &req("/")));
    let absent = r#"{"headers":[{"name":"Authorization","absent":true}]}"#;
    assert!(!matches(absent, &req("/").header("authorization", "x")));
    assert!(matches(absent, &req("/")));
    let both = r#"{"headers":[{"name":"a","present":true},{"name":"b","equals":"2"}]}"#;
    assert!(matches(both, &req("/").header("a", "1").header("b", "2")));
    assert!(!matches(both, &req("/").header("a", "1").header("b", "3")));
}

#[test]
fn query_parameters_are_matched_raw() {
    let eq = r#"{"query":[{"name":"debug","equals":"1"}]}"#;
    assert!(matches(eq, &req("/?a=2&debug=1")));
    assert!(matches(eq, &req("/?debug=0&debug=1")));
    assert!(!matches(eq, &req("/?debug=10")));
    assert!(!matches(eq, &req("/?xdebug=1")));
    assert!(!matches(eq, &req("/")));
    let raw = r#"{"query":[{"name":"q","equals":"a%20b"}]}"#;
    assert!(matches(raw, &req("/?q=a%20b")));
    let present = r#"{"query":[{"name":"flag","present":true}]}"#;
    assert!(matches(present, &req("/?flag")));
    assert!(matches(present, &req("/?x=1&&flag=")));
    assert!(!matches(present, &req("/?")));
    let empty = r#"{"query":[{"name":"flag","equals":""}]}"#;
    assert!(matches(empty, &req("/?flag")));
    let absent = r#"{"query":[{"name":"flag","absent":true}]}"#;
    assert!(matches(absent, &req("/")) && !matches(absent, &req("/?flag=1")));
    let re = r#"{"query":[{"name":"id","regex":"^[0-9]+$"}]}"#;
    assert!(matches(re, &req("/?id=42")) && !matches(re, &req("/?id=4x")));
}

#[test]
fn cookies_come_from_every_cookie_header() {
    let eq = r#"{"cookies":[{"name":"beta","equals":"on"}]}"#;
    assert!(matches(eq, &req("/").header("cookie", "a=1; beta=on")));
    assert!(matches(
        eq,
        &req("/").header("cookie", "a=1").header("cookie", "beta=on")
    ));
    assert!(
        !matches(eq, &req("/").header("cookie", "Beta=on")),
        "names case-sensitive"
    );
    assert!(!matches(eq, &req("/").header("cookie", "xbeta=on")));
    assert!(!matches(eq, &req("/").header("x-cookie", "beta=on")));
    let present = r#"{"cookies":[{"name":"session","present":true}]}"#;
    assert!(matches(present, &req("/").header("cookie", "session=")));
    assert!(!matches(present, &req("/")));
    let absent = r#"{"cookies":[{"name":"session","absent":true}]}"#;
    assert!(matches(absent, &req("/").header("cookie", "other=1")));
    let re = r#"{"cookies":[{"name":"ab","regex":"^b"}]}"#;
    assert!(matches(re, &req("/").header("cookie", "ab=b2")));
}

#[test]
fn client_ips_and_not_client_ips() {
    let c = r#"{"client_ips":["10.0.0.0/8","2001:db8::/32"]}"#;
    assert!(matches(c, &req("/").ip(Some("10.1.2.3"))));
    assert!(matches(c, &req("/").ip(Some("2001:db8::7"))));
    assert!(
        matches(c, &req("/").ip(Some("::ffff:10.0.0.1"))),
        "IPv4-mapped"
    );
    assert!(!matches(c, &req("/").ip(Some("192.0.2.1"))));
    assert!(
        !matches(c, &req("/").ip(None)),
        "unknown client is in no network"
    );
    let n = r#"{"not_client_ips":["10.0.0.0/8"]}"#;
    assert!(!matches(n, &req("/").ip(Some("10.1.2.3"))));
    assert!(matches(n, &req("/").ip(Some("192.0.2.1"))));
    assert!(
        matches(n, &req("/").ip(None)),
        "unknown client is in no network"
    );
}

#[test]
fn every_condition_must_hold() {
    let c = r#"{"methods":["POST"],"paths":["/api/*"],"headers":[{"name":"x-a","present":true}]}"#;
    let base = req("/api/x").method("POST").header("x-a", "1");
    assert!(matches(c, &base));
    assert!(!matches(c, &base.clone().method("GET")));
    assert!(!matches(c, &req("/api/x").method("POST")));
    assert!(!matches(
        c,
        &req("/other").method("POST").header("x-a", "1")
    ));
}

#[test]
fn respond_renders_its_templates() {
    let json = r#"[{"name":"edge","rules":[{"name":"block","when":{"path_regex":"^/(admin|internal)/(.*)$"},
      "then":{"respond":{"status":403,"body":"{\"error\":\"no {1}\",\"id\":\"{request_id}\"}",
      "headers":{"Content-Type":"application/json","X-Why":"{2} from {client_ip}"}}}}]}]"#;
    assert_eq!(
        run(json, &["edge"], &req("/admin/users")),
        [
            "match edge/block",
            r#"respond 403 "{\"error\":\"no admin\",\"id\":\"rid-1\"}" [content-type: application/json, x-why: users from 192.0.2.10] by block"#
        ]
    );
    let plain = r#"[{"name":"s","rules":[{"name":"gone","then":{"respond":{"status":410}}}]}]"#;
    assert_eq!(
        run(plain, &["s"], &req("/")),
        ["match s/gone", r#"respond 410 "" [] by gone"#]
    );
}

#[test]
fn redirect_renders_host_without_port_path_and_query() {
    let json = r#"[{"name":"s","rules":[{"name":"https","when":{"schemes":["http"]},
      "then":{"redirect":{"status":308,"location":"https://{host}{path}?{query}"}}}]}]"#;
    assert_eq!(
        run(json, &["s"], &req("/a/b?x=1&y").host("Example.com:8080")),
        [
            "match s/https",
            "redirect 308 https://Example.com/a/b?x=1&y by https"
        ]
    );
    assert_eq!(
        run(json, &["s"], &req("/a").host("[2001:db8::1]:8080")),
        [
            "match s/https",
            "redirect 308 https://[2001:db8::1]/a? by https"
        ],
        "{{query}} is empty without a query"
    );
    assert!(run(json, &["s"], &req("/a").https()).is_empty());
}

#[test]
fn templates_name_groups_of_the_rules_path_regex() {
    let json = r#"[{"name":"s","rules":[{"name":"v","when":{"path_regex":"^/v(\\d+)/(\\w+)(/x)?"},
      "then":{"response_headers":{"set":{"x-version":"{1}","x-thing":"{2}{3}!"}},
              "redirect":{"status":302,"location":"/api/{2}/v{1}"}}}]}]"#;
    assert_eq!(
        run(json, &["s"], &req("/v2/users/1")),
        [
            "match s/v",
            "redirect 302 /api/users/v2 by v",
            "response set x-thing: users!",
            "response set x-version: 2"
        ],
        "a group that took no part is empty"
    );
}

#[test]
fn rate_limits_name_their_key_and_skip_requests_without_one() {
    let json = r#"[{"name":"s","rules":[
      {"name":"per-ip","then":{"rate_limit":{"key":"client_ip","requests_per_second":10,"burst":20}}},
      {"name":"per-key","then":{"rate_limit":{"key":"header:X-Api-Key","requests_per_second":0.5}}},
      {"name":"per-route","then":{"rate_limit":{"key":"route","requests_per_second":100}}}]}]"#;
    assert_eq!(
        run(json, &["s"], &req("/").header("x-api-key", "k1")),
        [
            "match s/per-ip",
            "match s/per-key",
            "match s/per-route",
            "rate_limit per-ip client_ip=192.0.2.10 10/s burst 20",
            "rate_limit per-key header=k1 0.5/s burst 1",
            "rate_limit per-route route 100/s burst 100"
        ]
    );
    assert_eq!(
        run(json, &["s"], &req("/").ip(None)),
        [
            "match s/per-ip",
            "match s/per-key",
            "match s/per-route",
            "rate_limit per-route route 100/s burst 100"
        ],
        "no header, no address: those limits do not apply"
    );
}

#[test]
fn an_ending_comes_before_everything_on_the_way_to_an_origin() {
    let json = r#"[{"name":"s","rules":[
      {"name":"limit","then":{"rate_limit":{"key":"route","requests_per_second":1},"pool":"canary",
        "rewrite":{"path_prefix":{"from":"/","to":"/x/"}},"request_headers":{"add":{"x-a":"1"}}}},
      {"name":"deny","when":{"paths":["/deny"]},"then":{"respond":{"status":403}}},
      {"name":"later","when":{"methods":["GET"]},"then":{"redirect":{"status":301,"location":"/x"},"response_headers":{"add":{"x-later":"1"}}}}]}]"#;
    assert_eq!(
        run(json, &["s"], &req("/deny")),
        [
            "match s/limit",
            "match s/deny",
            "match s/later",
            r#"respond 403 "" [] by deny"#,
            "response add x-later: 1"
        ],
        "first ending wins, what leads to an origin is dropped, later response headers apply"
    );
    assert_eq!(
        run(json, &["s"], &req("/ok")),
        [
            "match s/limit",
            "match s/later",
            "redirect 301 /x by later",
            "response add x-later: 1"
        ]
    );
    assert_eq!(
        run(json, &["s"], &req("/ok").method("POST")),
        [
            "match s/limit",
            "rate_limit limit route 1/s burst 1",
            "path /x/ok",
            "pool canary #1",
            "request add x-a: 1"
        ],
        "without an ending, all of it applies"
    );
}

#[test]
fn rewrites_by_prefix_and_regex_first_applicable_wins() {
    let json = r#"[{"name":"s","rules":[
      {"name":"old","then":{"rewrite":{"path_prefix":{"from":"/old/","to":"/new/"}}}},
      {"name":"ver","then":{"rewrite":{"path_regex":{"pattern":"^/api/v(\\d+)/","replace":"/v{1}/api/"}}}},
      {"name":"strip","then":{"rewrite":{"path_regex":{"pattern":"/+$","replace":""}}}}]}]"#;
    let all = ["match s/old", "match s/ver", "match s/strip"];
    let with = |p: &str| {
        all.iter()
            .map(ToString::to_string)
            .chain([format!("path {p}")])
            .collect::<Vec<_>>()
    };
    assert_eq!(run(json, &["s"], &req("/old/a?q=1")), with("/new/a"));
    assert_eq!(
        run(json, &["s"], &req("/api/v3/users")),
        with("/v3/api/users")
    );
    assert_eq!(run(json, &["s"], &req("/plain/")), with("/plain"));
    assert_eq!(
        run(json, &["s"], &req("/")),
        with("/"),
        "a result gets its leading '/'"
    );
    assert_eq!(run(json, &["s"], &req("/plain")), all, "no rewrite applies");
}

#[test]
fn pool_first_matching_rule_wins() {
    let json = r#"[{"name":"s","rules":[
      {"name":"canary","when":{"headers":[{"name":"x-canary","equals":"1"}]},"then":{"pool":"canary"}},
      {"name":"back","then":{"pool":"api"}}]}]"#;
    assert_eq!(
        run(json, &["s"], &req("/").header("x-canary", "1")),
        ["match s/canary", "match s/back", "pool canary #1"]
    );
    assert_eq!(
        run(json, &["s"], &req("/")),
        ["match s/back", "pool api #0"]
    );
}

#[test]
fn header_edits_remove_then_set_then_add_in_rule_order() {
    let json = r#"[{"name":"s","rules":[
      {"name":"a","then":{"request_headers":{"add":{"x-b":"2","x-a":"1"},"set":{"x-s":"{host}"},"remove":["Cookie"]},
                          "response_headers":{"set":{"Strict-Transport-Security":"max-age=63072000"},"remove":["Server"]}}},
      {"name":"b","then":{"request_headers":{"set":{"x-a":"3"}}}}]}]"#;
    let r = req("/").host("api.example.com:81");
    assert_eq!(
        run(json, &["s"], &r),
        [
            "match s/a",
            "match s/b",
            "request remove cookie",
            "request set x-s: api.example.com",
            "request add x-a: 1",
            "request add x-b: 2",
            "request set x-a: 3",
            "response remove server",
            "response set strict-transport-security: max-age=63072000"
        ]
    );
    let sets = compile(json);
    let a = sets.evaluate(&[sets.id("s").unwrap()], &r.facts());
    let mut h = HeaderMap::new();
    h.append("cookie", HeaderValue::from_static("c=1"));
    h.append("x-a", HeaderValue::from_static("0"));
    h.append("x-s", HeaderValue::from_static("old"));
    h.append("x-s", HeaderValue::from_static("older"));
    for e in &a.request_headers {
        e.apply(&mut h);
    }
    let mut got: Vec<String> = h
        .iter()
        .map(|(n, v)| format!("{n}: {}", value(v)))
        .collect();
    got.sort();
    assert_eq!(got, ["x-a: 3", "x-b: 2", "x-s: api.example.com"]);
}

#[test]
fn stop_ends_evaluation_within_and_across_sets() {
    let json = r#"[
      {"name":"global","rules":[
        {"name":"health","when":{"paths":["/health"]},"stop":true},
        {"name":"hsts","then":{"response_headers":{"set":{"strict-transport-security":"max-age=1"}}}}]},
      {"name":"api","rules":[
        {"name":"canary","when":{"headers":[{"name":"x-canary","present":true}]},"then":{"pool":"canary"},"stop":true},
        {"name":"tag","then":{"request_headers":{"add":{"x-tag":"api"}}}}]}]"#;
    let both = ["global", "api"];
    assert_eq!(run(json, &both, &req("/health")), ["match global/health"]);
    assert_eq!(
        run(json, &both, &req("/x").header("x-canary", "1")),
        [
            "match global/hsts",
            "match api/canary",
            "pool canary #1",
            "response set strict-transport-security: max-age=1"
        ]
    );
    assert_eq!(
        run(json, &both, &req("/x")),
        [
            "match global/hsts",
            "match api/tag",
            "request add x-tag: api",
            "response set strict-transport-security: max-age=1"
        ]
    );
    assert_eq!(
        run(
            json,
            &["api", "global"],
            &req("/health").header("x-canary", "1")
        ),
        ["match api/canary", "pool canary #1"],
        "sets run in the route's order"
    );
    let non_matching_stop = r#"[{"name":"s","rules":[
      {"name":"a","when":{"methods":["POST"]},"stop":true},
      {"name":"b"}]}]"#;
    assert_eq!(run(non_matching_stop, &["s"], &req("/")), ["match s/b"]);
}

#[test]
fn lookups_by_name_and_id() {
    let sets = compile(
        r#"[{"name":"a","rules":[{"name":"x"}]},{"name":"b","rules":[{"name":"y"},{"name":"z"}]}]"#,
    );
    assert_eq!(sets.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(sets.rule_count(), 3);
    assert!(sets.id("c").is_none());
    let a = sets.evaluate(&[sets.id("b").unwrap()], &req("/").facts());
    let z = sets.rule(a.matched[1]).unwrap();
    assert_eq!((z.id, z.set, z.name), (a.matched[1], "b", "z"));
    assert!(sets.rate_limit(z.id).is_none());
}

#[test]
fn a_routes_rule_sets_resolve_by_name_in_order() {
    let sets = compile(r#"[{"name":"a","rules":[]},{"name":"b","rules":[]}]"#);
    let ids = sets.resolve(&["b", "a"], "routes[0].rule_sets").unwrap();
    assert_eq!(ids, [sets.id("b").unwrap(), sets.id("a").unwrap()]);
    let e = sets
        .resolve(&["a", "c", "a"], "routes[1].rule_sets")
        .unwrap_err();
    assert_eq!(
        e.lines(),
        "routes[1].rule_sets[1]: \"c\" is not a rule set (rule sets: a, b)\n\
         routes[1].rule_sets[2]: \"a\" is named twice"
    );
}

#[test]
fn client_ip_is_the_peer_or_the_last_untrusted_forwarded_hop() {
    let trusted = [
        crate::cidr::Cidr::parse("10.0.0.0/8").unwrap(),
        crate::cidr::Cidr::parse("::1").unwrap(),
    ];
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let xff = |lines: &[&str]| {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", HeaderValue::from_str(l).unwrap());
        }
        h
    };
    let untrusted_peer = client_ip(Some(ip("192.0.2.1")), &xff(&["203.0.113.9"]), &trusted);
    assert_eq!(
        untrusted_peer,
        Some(ip("192.0.2.1")),
        "an untrusted peer's header is ignored"
    );
    let h = xff(&["198.51.100.7, 203.0.113.9", "10.0.0.2"]);
    assert_eq!(
        client_ip(Some(ip("10.0.0.1")), &h, &trusted),
        Some(ip("203.0.113.9"))
    );
    let h = xff(&["203.0.113.9:4711 , 10.0.0.3"]);
    assert_eq!(
        client_ip(Some(ip("::1")), &h, &trusted),
        Some(ip("203.0.113.9"))
    );
    let h = xff(&["10.0.0.5, 10.0.0.4"]);
    assert_eq!(
        client_ip(Some(ip("10.0.0.1")), &h, &trusted),
        Some(ip("10.0.0.5")),
        "all trusted: the leftmost"
    );
    let h = xff(&["203.0.113.9, junk, 10.0.0.4"]);
    assert_eq!(
        client_ip(Some(ip("10.0.0.1")), &h, &trusted),
        Some(ip("10.0.0.4")),
        "junk ends the walk"
    );
    assert_eq!(
        client_ip(Some(ip("10.0.0.1")), &HeaderMap::new(), &trusted),
        Some(ip("10.0.0.1"))
    );
    assert_eq!(client_ip(None, &h, &trusted), None);
}

#[test]
fn every_error_is_reported_with_its_path() {
    let json = r#"[
      {"name":"Bad Name","rules":[
        {"name":"r1","when":{"path_regex":"^/(a(b)$","client_ips":["10.1.2.3/8","nope"],
          "headers":[{"name":"x-a","regex":"[z-a]"},{"name":"bad name","present":true},{"name":"x-c"},{"name":"x-d","present":false}],
          "methods":[],"schemes":["ftp"],"paths":["api"],"cookies":[{"name":"a=b","equals":"1"}]},
         "then":{"pool":"nope","unknown":1}},
        {"name":"r1","when":{"path_regex":"^/(v)(\\d)$"},"then":{
          "redirect":{"status":303,"location":"/x/{3}"},"respond":{"status":99,"body":"{hots}"},
          "request_headers":{"set":{"X-Forwarded-For":"1","x-ok":"a\u0001"},"remove":["Via","x-portico-region","Content-Length"]},
          "response_headers":{"add":{"X-Request-Id":"{1}","x-dup":"1","X-Dup":"2"}},
          "rate_limit":{"key":"cookie:a","requests_per_second":0,"burst":0},
          "rewrite":{"path_regex":{"pattern":"^/(x)","replace":"/{2}{host}"}}}},
        {"when":{"query":[{"name":"q","equals":"1","regex":"1"}]},"then":{"rewrite":{},
          "request_headers":{"add":{"x-g":"{1}"}}}}]},
      {"name":"bad name","rules":[{"name":"x","then":{"rewrite":{"path_prefix":{"from":"api/","to":"/a b"}},
          "rate_limit":{"key":"header:bad name"}}}]},
      {"rules":[{"name":"y","then":{"redirect":{"location":""}}}]},
      {"name":"dup","rules":[]},{"name":"dup"}
    ]"#;
    let got = errors(json);
    // Sorted by path, segment by segment, as the configuration's errors are.
    let expected = [
        r#"rule_sets[0].name: "Bad Name" is not a valid name: use lower-case letters, digits, '_' and '-'"#,
        r#"rule_sets[0].rules[0].then.pool: "nope" is not a pool (pools: api, canary)"#,
        "rule_sets[0].rules[0].then.unknown: unknown field `unknown`, expected one of `respond`, `redirect`, `rate_limit`, `rewrite`, `pool`, `request_headers`, `response_headers`",
        r#"rule_sets[0].rules[0].when.client_ips[0]: "10.1.2.3/8" has bits set past its /8 prefix: did you mean 10.0.0.0/8?"#,
        r#"rule_sets[0].rules[0].when.client_ips[1]: "nope" is not an IP network: write ADDR/PREFIX, e.g. 10.0.0.0/8"#,
        r#"rule_sets[0].rules[0].when.cookies[0].name: "a=b" is not a valid cookie name"#,
        "rule_sets[0].rules[0].when.headers[0].regex: not a valid regular expression: invalid character class range, the start must be <= the end",
        r#"rule_sets[0].rules[0].when.headers[1].name: "bad name" is not a valid header name"#,
        r#"rule_sets[0].rules[0].when.headers[2]: give exactly one of "equals", "regex", "present": true, "absent": true"#,
        r#"rule_sets[0].rules[0].when.headers[3].present: must be true (for a name not there, write "absent": true)"#,
        "rule_sets[0].rules[0].when.methods: must hold at least one method (or leave it out)",
        "rule_sets[0].rules[0].when.path_regex: not a valid regular expression: unclosed group",
        r#"rule_sets[0].rules[0].when.paths[0]: "api" is not a path pattern: it must start with '/'"#,
        r#"rule_sets[0].rules[0].when.schemes[0]: "ftp" is not a scheme: use "http" or "https""#,
        r#"rule_sets[0].rules[1].name: "r1" is already the name of rules[0] in this rule set"#,
        "rule_sets[0].rules[1].then.rate_limit.burst: must be between 1 and 1000000, got 0",
        r#"rule_sets[0].rules[1].then.rate_limit.key: "cookie:a" is not a key: use "client_ip", "header:NAME" or "route""#,
        "rule_sets[0].rules[1].then.rate_limit.requests_per_second: must be above 0 and at most 1000000, got 0",
        "rule_sets[0].rules[1].then.redirect: a rule may respond or redirect, not both",
        "rule_sets[0].rules[1].then.redirect.location: {3} names group 3, but the pattern has 2 groups",
        "rule_sets[0].rules[1].then.redirect.status: must be 301, 302, 307 or 308, got 303",
        r#"rule_sets[0].rules[1].then.request_headers.remove[0]: "Via" is a header Portico owns (Via, X-Request-Id, X-Forwarded-*, X-Portico-*): rules cannot set or remove it"#,
        r#"rule_sets[0].rules[1].then.request_headers.remove[1]: "x-portico-region" is a header Portico owns (Via, X-Request-Id, X-Forwarded-*, X-Portico-*): rules cannot set or remove it"#,
        r#"rule_sets[0].rules[1].then.request_headers.remove[2]: "Content-Length" is a framing or hop-by-hop header the proxy manages: rules cannot set or remove it"#,
        r#"rule_sets[0].rules[1].then.request_headers.set.X-Forwarded-For: "X-Forwarded-For" is a header Portico owns (Via, X-Request-Id, X-Forwarded-*, X-Portico-*): rules cannot set or remove it"#,
        "rule_sets[0].rules[1].then.request_headers.set.x-ok: holds a character a header value cannot: control characters and non-ASCII are refused",
        "rule_sets[0].rules[1].then.respond.body: {hots} is not a template variable: use {host}, {path}, {query}, {client_ip}, {request_id} or {1}…{9}",
        "rule_sets[0].rules[1].then.respond.status: must be between 200 and 599, got 99",
        r#"rule_sets[0].rules[1].then.response_headers.add.X-Request-Id: "X-Request-Id" is a header Portico owns (Via, X-Request-Id, X-Forwarded-*, X-Portico-*): rules cannot set or remove it"#,
        r#"rule_sets[0].rules[1].then.response_headers.add.x-dup: "x-dup" is given twice (header names are case-insensitive)"#,
        "rule_sets[0].rules[1].then.rewrite.path_regex.replace: {2} names group 2, but the pattern has 1 group",
        "rule_sets[0].rules[2].name: is required",
        "rule_sets[0].rules[2].then.request_headers.add.x-g: {1} names a group of when.path_regex, but the rule has no path_regex",
        r#"rule_sets[0].rules[2].then.rewrite: give exactly one of "path_prefix" and "path_regex""#,
        r#"rule_sets[0].rules[2].when.query[0]: give exactly one of "equals", "regex", "present": true, "absent": true"#,
        r#"rule_sets[1].name: "bad name" is not a valid name: use lower-case letters, digits, '_' and '-'"#,
        r#"rule_sets[1].rules[0].then.rate_limit.key: "bad name" is not a valid header name"#,
        "rule_sets[1].rules[0].then.rate_limit.requests_per_second: is required: a rate above 0",
        r#"rule_sets[1].rules[0].then.rewrite.path_prefix.from: "api/" must start with '/'"#,
        "rule_sets[1].rules[0].then.rewrite.path_prefix.to: must be visible ASCII without '?' or '#' (percent-encode the rest)",
        "rule_sets[2].name: is required",
        "rule_sets[2].rules[0].then.redirect.location: must not be empty",
        "rule_sets[2].rules[0].then.redirect.status: is required: 301, 302, 307 or 308",
        r#"rule_sets[4].name: "dup" is already the name of rule_sets[3]"#,
        "rule_sets[4].rules: is required: a list of rules",
    ];
    for (i, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
        assert_eq!(g, e, "error {i}");
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

#[test]
fn rules_that_do_nothing_or_are_never_reached_are_warned_about() {
    let sets = compile(
        r#"[{"name":"a","rules":[
          {"name":"noop","when":{"methods":["GET"]}},
          {"name":"health","when":{"paths":["/health"]},"stop":true},
          {"name":"all","then":{"pool":"api"},"stop":true},
          {"name":"late","then":{"pool":"canary"}}]},
          {"name":"b","rules":[{"name":"ok","then":{"respond":{"status":204}}},{"name":"empty"}]}]"#,
    );
    assert_eq!(
        sets.warnings("rule_sets"),
        [
            r#"rule_sets[0].rules[0]: does nothing: give it actions in "then", or "stop": true"#,
            "rule_sets[0].rules[3]: never evaluated: rules[2] matches every request and stops",
            r#"rule_sets[1].rules[1]: does nothing: give it actions in "then", or "stop": true"#,
        ]
    );
    assert!(compile(REALISTIC).warnings("rule_sets").is_empty());
}

#[test]
fn groups_of_the_when_pattern_are_counted() {
    let with = |re: &str, loc: &str| {
        format!(
            r#"[{{"name":"s","rules":[{{"name":"r","when":{{"path_regex":"{re}"}},"then":{{"redirect":{{"status":301,"location":"{loc}"}}}}}}]}}]"#
        )
    };
    assert_eq!(
        errors(&with("^/(a)/(b)$", "/{3}")),
        [
            "rule_sets[0].rules[0].then.redirect.location: {3} names group 3, but the pattern has 2 groups"
        ]
    );
    assert!(compile(&with("^/(a)/(b)/(?:c)$", "/{2}{1}")).rule_count() == 1);
    assert_eq!(
        errors(&with("^/(a)$", "/{0}")),
        [
            "rule_sets[0].rules[0].then.redirect.location: {0} is not a template variable: use {host}, {path}, {query}, {client_ip}, {request_id} or {1}…{9}"
        ]
    );
}

#[test]
fn type_errors_and_shapes_are_reported_by_path() {
    let value = serde_json::json!({"name": "x"});
    let e = parse_rule_sets(&value, "rule_sets", &POOLS).unwrap_err();
    assert_eq!(e.lines(), "rule_sets: invalid type: map, expected a list");
    assert_eq!(
        errors(r#"[{"name":"s","rules":[{"name":"r","stop":"yes","when":{"methods":"GET"}}]}]"#),
        [
            "rule_sets[0].rules[0].stop: invalid type: string \"yes\", expected a boolean",
            "rule_sets[0].rules[0].when.methods: invalid type: string \"GET\", expected a list"
        ]
    );
    assert!(compile("[]").names().next().is_none());
    assert_eq!(
        errors(r#"[{"name":"s","rules":[{"name":"r","when":"x"}]}, 5]"#),
        [
            r#"rule_sets[0].rules[0].when: invalid type: string "x", expected an object"#,
            "rule_sets[1]: invalid type: integer `5`, expected an object"
        ]
    );
    assert_eq!(
        errors(
            r#"[{"name":"s","rules":[{"name":"r","when":{"query":[{"name":"","present":true}],"cookies":[{"name":"","present":true}]}}]}]"#
        ),
        [
            r#"rule_sets[0].rules[0].when.cookies[0].name: "" is not a valid cookie name"#,
            "rule_sets[0].rules[0].when.query[0].name: must not be empty"
        ]
    );
}

#[test]
fn templates_keep_text_braces_and_parse_variables() {
    use super::template::{Part, Template};
    let t = Template::parse("{\"a\":{}} {host}{ {x-y} {1}").unwrap();
    assert_eq!(
        t.parts(),
        [
            Part::Text("{\"a\":{}} ".into()),
            Part::Host,
            Part::Text("{ {x-y} ".into()),
            Part::Group(1)
        ]
    );
    assert_eq!(Template::parse("plain").unwrap().literal(), Some("plain"));
    assert_eq!(Template::parse("").unwrap().literal(), Some(""));
    assert!(Template::parse("{12}").is_err());
    assert_eq!(super::template::host_without_port("a.b:80"), "a.b");
    assert_eq!(super::template::host_without_port("[::1]"), "[::1]");
    assert_eq!(super::template::host_without_port("::1"), "::1");
    let r = req("/p").ip(Some("2001:db8::1"));
    let mut s = String::new();
    Template::parse("{client_ip}|{query}|{path}|{request_id}|{2}")
        .unwrap()
        .render_into(&r.facts(), |_| None, &mut s);
    assert_eq!(s, "2001:db8::1||/p|rid-1|");
}

#[test]
fn the_raw_types_describe_every_field() {
    let schema = schemars::schema_for!(Vec<raw::RawRuleSet>).to_value();
    let defs = schema["$defs"].as_object().unwrap();
    assert!(defs.len() >= 12, "{defs:?}");
    for (name, def) in defs {
        assert!(def["description"].is_string(), "{name} has no description");
        for (field, prop) in def["properties"].as_object().into_iter().flatten() {
            let described = prop["description"].is_string()
                || prop["$ref"].is_string()
                || prop["anyOf"].is_array();
            assert!(described, "{name}.{field} has no description: {prop}");
        }
    }
}

/// Ten rules of a realistic edge policy.
const REALISTIC: &str = r#"[
  {"name":"global","rules":[
    {"name":"block-net","when":{"client_ips":["198.51.100.0/24","2001:db8:bad::/48"]},"then":{"respond":{"status":403,"body":"forbidden"}},"stop":true},
    {"name":"security-headers","then":{"response_headers":{"set":{"Strict-Transport-Security":"max-age=63072000; includeSubDomains","X-Content-Type-Options":"nosniff","X-Frame-Options":"DENY"}}}},
    {"name":"no-bots","when":{"headers":[{"name":"user-agent","regex":"(?i)(sqlmap|nikto|masscan)"}]},"then":{"respond":{"status":403}},"stop":true},
    {"name":"limit","then":{"rate_limit":{"key":"client_ip","requests_per_second":1000,"burst":2000}}}]},
  {"name":"api","rules":[
    {"name":"old-docs","when":{"paths":["/docs/*"]},"then":{"redirect":{"status":301,"location":"https://docs.example.com{path}"}},"stop":true},
    {"name":"v1","when":{"path_regex":"^/api/v1/(.*)$"},"then":{"rewrite":{"path_regex":{"pattern":"^/api/v1/(.*)$","replace":"/v1/{1}"}},"request_headers":{"set":{"x-api-version":"1"}}}},
    {"name":"canary","when":{"cookies":[{"name":"canary","equals":"1"}]},"then":{"pool":"canary"}},
    {"name":"admin","when":{"paths":["/admin/*"],"not_client_ips":["10.0.0.0/8"]},"then":{"respond":{"status":404}},"stop":true},
    {"name":"cors","when":{"methods":["OPTIONS"],"headers":[{"name":"origin","present":true}]},"then":{"respond":{"status":204,"headers":{"access-control-allow-origin":"*"}}}},
    {"name":"tag","then":{"request_headers":{"add":{"x-edge":"portico"}},"response_headers":{"remove":["server"]}}}]}
]"#;

#[test]
fn the_realistic_set_decides_as_written() {
    let r = req("/api/v1/users?id=7")
        .header("user-agent", "curl/8.5")
        .header("cookie", "canary=1");
    assert_eq!(
        run(REALISTIC, &["global", "api"], &r),
        [
            "match global/security-headers",
            "match global/limit",
            "match api/v1",
            "match api/canary",
            "match api/tag",
            "rate_limit limit client_ip=192.0.2.10 1000/s burst 2000",
            "path /v1/users",
            "pool canary #1",
            "request set x-api-version: 1",
            "request add x-edge: portico",
            "response set strict-transport-security: max-age=63072000; includeSubDomains",
            "response set x-content-type-options: nosniff",
            "response set x-frame-options: DENY",
            "response remove server"
        ]
    );
    assert_eq!(
        run(
            REALISTIC,
            &["global", "api"],
            &req("/x").ip(Some("198.51.100.9"))
        ),
        [
            "match global/block-net",
            r#"respond 403 "forbidden" [] by block-net"#
        ]
    );
}

fn arb_facts() -> impl Strategy<Value = Req> {
    let text = "[ -~]{0,24}";
    (
        prop::sample::select(vec!["GET", "POST", "OPTIONS", "DELETE", "get"]),
        any::<bool>(),
        text,
        prop_oneof!["/[ -~]{0,30}", "/(api/v1|docs|admin|old)/[a-z/]{0,10}"],
        prop::option::of("[ -~&=]{0,20}"),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "user-agent",
                    "cookie",
                    "origin",
                    "x-canary",
                    "x-api-key",
                ]),
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..20),
                    prop::sample::select(vec!["sqlmap/1.0", "canary=1", "a=1; canary=1", "1"])
                        .prop_map(|v| v.as_bytes().to_vec()),
                ],
            ),
            0..5,
        ),
        prop::option::of(prop_oneof![
            any::<IpAddr>(),
            prop::sample::select(vec![
                "198.51.100.7",
                "10.1.1.1",
                "2001:db8:bad::1",
                "192.0.2.1"
            ])
            .prop_map(|s| s.parse::<IpAddr>().unwrap()),
        ]),
        text,
    )
        .prop_map(|(method, https, host, path, query, headers, ip, rid)| {
            let mut h = HeaderMap::new();
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::from_bytes(&value) {
                    h.append(HeaderName::from_static(name), v);
                }
            }
            Req {
                method: method.into(),
                scheme: if https { Scheme::Https } else { Scheme::Http },
                host,
                path,
                query,
                headers: h,
                client_ip: ip,
                request_id: rid,
            }
        })
}

proptest! {
    /// Evaluation never panics, and nothing after a matching `stop` rule contributes: the
    /// actions equal those of the rules up to and including it, with everything after removed.
    #[test]
    fn evaluation_never_panics_and_stop_is_honoured(r in arb_facts(), order in any::<bool>()) {
        let sets = compile(REALISTIC);
        let names: &[&str] = if order { &["global", "api"] } else { &["api", "global"] };
        let ids: Vec<RuleSetId> = names.iter().map(|n| sets.id(n).unwrap()).collect();
        let a = sets.evaluate(&ids, &r.facts());
        let stopped = a.matched.iter().position(|m| {
            let rule = &sets.rules[m.0];
            rule.stop
        });
        if let Some(pos) = stopped {
            prop_assert_eq!(pos, a.matched.len() - 1, "no rule matched after a stop");
        }
        // Every rule after the stop, evaluated alone, is ignored: the ordered list of every
        // rule that would match without stops starts with what matched.
        let mut all = Vec::new();
        for id in &ids {
            for k in sets.sets[id.0].rules.clone() {
                if sets.rules[k].when.holds(&r.facts()) {
                    all.push(k);
                }
            }
        }
        let got: Vec<usize> = a.matched.iter().map(|m| m.0).collect();
        let cut = all.iter().position(|&k| sets.rules[k].stop).map_or(all.len(), |p| p + 1);
        prop_assert_eq!(&got[..], &all[..cut]);
        // The single-valued actions come from the first rules up to the stop, the rate
        // limits from those rules only (none when the request ends).
        let kept = &all[..cut];
        let first_pool = kept.iter().find_map(|&k| sets.rules[k].then.pool.as_ref().map(|p| p.0));
        prop_assert_eq!(a.pool, if a.ending.is_some() { None } else { first_pool });
        let first_ending = kept.iter().find(|&&k| sets.rules[k].then.ending.is_some()).copied();
        let ending_rule = a.ending.as_ref().map(|e| e.rule().0);
        prop_assert_eq!(ending_rule, first_ending);
        for hit in &a.rate_limits {
            prop_assert!(a.ending.is_none() && kept.contains(&hit.rule.0));
        }
    }

    /// Arbitrary rule text never panics the parser: it is accepted or refused with paths.
    #[test]
    fn parsing_never_panics(
        pattern in "[ -~]{0,12}",
        template in "[ -~]{0,16}",
        name in "[ -~]{0,8}",
        r in arb_facts(),
    ) {
        let doc = serde_json::json!([{"name":"s","rules":[{"name":"r",
            "when":{"path_regex": pattern, "headers":[{"name": name, "regex": pattern}]},
            "then":{"redirect":{"status":302,"location": template},
                    "response_headers":{"set":{ name.clone(): template }},
                    "rewrite":{"path_regex":{"pattern": pattern, "replace": template}}}}]}]);
        match parse_rule_sets(&doc, "rule_sets", &POOLS) {
            Err(e) => prop_assert!(e.0.iter().all(|e| e.path.starts_with("rule_sets[0]")), "{}", e),
            Ok(sets) => {
                // Whatever was accepted evaluates without panicking, and a rewritten path
                // always starts with '/'.
                let a = sets.evaluate(&[sets.id("s").unwrap()], &r.facts());
                prop_assert!(a.path.is_none_or(|p| p.starts_with('/')));
            }
        }
    }
}
