//! HTTP fuzzing of a real `dci serve` over TCP: every route of the OpenAPI document
//! (`/api/v1/openapi.json`), the callback routes and the console routes, with random methods,
//! paths with bad UTF-8 and percent-escapes, bad query strings, truncated, byte-flipped,
//! wrong-type, oversized and non-JSON bodies, missing or wrong tokens and content types.
//!
//! Requests are written as raw bytes on their own TCP connection (so malformed requests reach
//! the server as sent, and a dropped connection shows as no answer). Asserted over the whole
//! run: every request gets an HTTP answer; no 5xx but the documented ones (502/503/504: the
//! registry failed, unavailable, timed out); every 4xx/5xx has its family's documented body —
//! `{"error": {"kind", "message"}}` under `/api`, a DCI ACK with `ack_status: ERR` and an error
//! code under `/callback` and the root callback routes `/registry/…`, an HTML page for the
//! console. Callbacks are answered the DCI way: a 200 there is an ACK or an ACK `ERR` with one
//! of the spec's `Error.code` values, and a 4xx is only ever a transport refusal (never a
//! signature, sender or forbidden code, which the fuzzed source answers in a 200 ACK `ERR`).
//!
//! Seeded and bounded: `DCI_FUZZ_SEED` (default 20240612) and `DCI_FUZZ_REQUESTS` (default
//! 3000) reproduce or widen a run.

mod support;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dci_protocol::RegistryType;
use dci_sandbox::{Sandbox, SandboxConfig};
use dci_server::{AdminToken, AppState, RunningServer, ServerConfig, ThrottleConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::TOKEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CODE: &str = "fuzz_crvs";
const BODY_LIMIT: usize = 64 * 1024;
const CONCURRENCY: usize = 12;

/// Where a request goes, for the shape its refusals must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Api,
    Callback,
    Console,
}

fn family_of(path: &str) -> Family {
    let under = |p: &str| {
        path.strip_prefix(p)
            .is_some_and(|r| r.is_empty() || r.starts_with('/') || r.starts_with('?'))
    };
    if under("/callback") || under("/registry") {
        Family::Callback
    } else if under("/api")
        || under("/healthz")
        || under("/readyz")
        || under("/metrics")
        || under("/.well-known")
    {
        Family::Api
    } else {
        Family::Console
    }
}

/// A route template: method and path with `{param}`s; `body` is a valid example body.
#[derive(Debug, Clone)]
struct Route {
    method: String,
    path: String,
    body: Option<Value>,
}

/// What the run learned from the live server (real ids to aim mutations at).
struct Seeds {
    transaction_ids: Vec<String>,
    callbacks: Vec<Value>,
    uin: String,
}

struct Rig {
    _env: support::Env,
    _sandbox: Sandbox,
    server: RunningServer,
    routes: Vec<Route>,
    seeds: Seeds,
}

async fn api(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut req = http
        .request(method.parse().unwrap(), format!("{base}/api/v1{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl Rig {
    async fn new() -> Rig {
        let sandbox = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
        let env = support::Env::new().await;
        let config = ServerConfig {
            body_limit: BODY_LIMIT,
            request_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(2),
            console: None,
            ..ServerConfig::default()
        };
        let state = AppState::with_config(
            env.store.clone(),
            env.ops.clone(),
            AdminToken::from_secret(&SecretString::from(TOKEN)),
            config,
        );
        // Wrong tokens are part of the mix; the limits have their own tests.
        let throttle = ThrottleConfig {
            max_failures: NonZeroU32::new(1_000_000).unwrap(),
            period: Duration::from_secs(1),
        };
        let server = dci_server::spawn_with("127.0.0.1:0".parse().unwrap(), state, throttle)
            .await
            .unwrap();
        let base = server.base_url();

        let source = json!({
            "code": CODE,
            "name": "Fuzzed CRVS",
            "registry_type": "crvs",
            "base_url": sandbox.registry_url(RegistryType::Crvs),
            "auth": {
                "type": "oauth2",
                "token_url": sandbox.token_url(),
                "client_id": dci_sandbox::DEMO_CLIENT_ID,
                "client_secret": dci_sandbox::DEMO_CLIENT_SECRET,
                "scope": dci_sandbox::read_scope(RegistryType::Crvs),
            },
            "sender_id": "spmis.example.org",
            "receiver_id": sandbox.registry_id(),
            "callback_uri": format!("{base}/callback/{CODE}"),
            "reply_signature_policy": "off",
        });
        let (status, created) = api(&base, "POST", "/sources", Some(source)).await;
        assert_eq!(status, 201, "{created}");

        let ex = sandbox.examples();
        let found = &ex[&RegistryType::Crvs].found[0];
        let uin = format!("{}:{}", found.id_type, found.id_value);
        let mut transaction_ids = Vec::new();
        for body in [
            json!({"query_type": "idtype-value", "query": uin, "mode": "async", "wait_secs": 4}),
            json!({"event_type": "LiveBirth", "wait_secs": 4}),
        ] {
            let path = if body.get("event_type").is_some() {
                format!("/sources/{CODE}/subscribe")
            } else {
                format!("/sources/{CODE}/search")
            };
            let (status, ack) = api(&base, "POST", &path, Some(body)).await;
            assert_eq!(status, 200, "{ack}");
            transaction_ids.push(ack["transaction_id"].as_str().unwrap().to_owned());
        }
        let mut callbacks = Vec::new();
        for t in &transaction_ids {
            for c in env.ops.callbacks_for(t).await.unwrap() {
                callbacks.push(c.body);
            }
        }
        assert!(
            !callbacks.is_empty(),
            "the sandbox's callbacks seed the fuzzing"
        );

        let (status, doc) = api(&base, "GET", "/openapi.json", None).await;
        assert_eq!(status, 200);
        let routes = routes_of(&doc);
        assert!(routes.len() > 20, "the document lists the routes");
        Rig {
            _env: env,
            _sandbox: sandbox,
            server,
            routes,
            seeds: Seeds {
                transaction_ids,
                callbacks,
                uin,
            },
        }
    }
}

/// Every operation of the OpenAPI document (prefixed with its server URL), the callback routes
/// and the console's routes (from `console::route_roles`).
fn routes_of(doc: &Value) -> Vec<Route> {
    let prefix = doc["servers"][0]["url"].as_str().unwrap_or("/api/v1");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let body = op
                .pointer("/requestBody/content/application~1json/schema")
                .map(|s| example(doc, s, 0));
            out.push(Route {
                method: method.to_ascii_uppercase(),
                path: format!("{prefix}{path}"),
                body,
            });
        }
    }
    for (path, _) in dci_server::callback::CALLBACK_PATHS {
        out.push(Route {
            method: "POST".into(),
            path: format!("/callback/{{code}}{path}"),
            body: None,
        });
        out.push(Route {
            method: "POST".into(),
            path: (*path).to_owned(),
            body: None,
        });
    }
    out.push(Route {
        method: "POST".into(),
        path: "/callback/{code}".into(),
        body: None,
    });
    // The console's routes from its own table (a new page is fuzzed without a list to keep),
    // and the two open endpoints outside the OpenAPI document.
    let console = dci_server::console::route_roles()
        .into_iter()
        .map(|(m, p, _)| (m.as_str().to_owned(), p.to_owned()));
    let open = [("GET", "/healthz"), ("GET", "/.well-known/jwks.json")]
        .map(|(m, p)| (m.to_owned(), p.to_owned()));
    for (method, path) in open.into_iter().chain(console) {
        out.push(Route {
            method,
            path,
            body: None,
        });
    }
    out
}

/// A value of `schema` (following `$ref`s into `components/schemas`).
fn example(doc: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    if let Some(r) = schema["$ref"].as_str() {
        let target = r.trim_start_matches('#');
        return doc
            .pointer(target)
            .map_or(Value::Null, |s| example(doc, s, depth + 1));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema[key].as_array().and_then(|a| a.first()) {
            return example(doc, first, depth + 1);
        }
    }
    if let Some(first) = schema["enum"].as_array().and_then(|a| a.first()) {
        return first.clone();
    }
    let ty = match &schema["type"] {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null")
            .to_owned(),
        _ if schema["properties"].is_object() => "object".into(),
        _ => "string".into(),
    };
    match ty.as_str() {
        "object" => {
            let mut m = serde_json::Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in props {
                    m.insert(k.clone(), example(doc, v, depth + 1));
                }
            }
            Value::Object(m)
        }
        "array" => json!([example(doc, &schema["items"], depth + 1)]),
        "integer" if schema["minimum"].is_number() => schema["minimum"].clone(),
        "integer" => json!(1),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => match schema["format"].as_str() {
            Some("uri") => json!("http://127.0.0.1:9/x"),
            Some("date") => json!("2020-01-01"),
            _ => json!("abc"),
        },
    }
}

/// One raw HTTP/1.1 request.
#[derive(Clone)]
struct RawRequest {
    method: String,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// Bytes hyper itself must refuse (not a route's business): only an answer is required.
    wire_malformed: bool,
    /// `Content-Length` is larger than the body: the server must time out reading it.
    short_body: bool,
}

impl RawRequest {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let declared = self.body.len() + if self.short_body { 10 } else { 0 };
        if !self.body.is_empty() || self.method != "GET" {
            out.extend_from_slice(format!("Content-Length: {declared}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(160).collect();
        format!(
            "{} {} (headers {:?}) body {:?}",
            self.method,
            String::from_utf8_lossy(&self.target),
            self.headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
                .collect::<Vec<_>>(),
            body
        )
    }
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO", "get",
];

/// Values for a `{param}`: real ones, unknown ones, and broken encodings.
fn param(rng: &mut StdRng, name: &str, seeds: &Seeds) -> (Vec<u8>, bool) {
    let real = match name {
        "code" => CODE.to_owned(),
        "transaction_id" => {
            seeds.transaction_ids[rng.random_range(0..seeds.transaction_ids.len())].clone()
        }
        _ => "1".to_owned(),
    };
    let long = "a".repeat(rng.random_range(200..3000));
    let choices: [&[u8]; 14] = [
        real.as_bytes(),
        real.as_bytes(),
        real.as_bytes(),
        b"nope",
        b"%FF%FE",
        b"%C3%28",
        b"%00",
        b"..%2F..%2Fetc",
        b"%E2%82%AC",
        b"%",
        b"%zz",
        long.as_bytes(),
        b"UPPER_Case-1",
        b"\xff\xfe",
    ];
    let i = rng.random_range(0..choices.len());
    // Raw bytes above 0x7F in the request line are refused by hyper itself.
    (choices[i].to_vec(), i == 13)
}

fn query(rng: &mut StdRng) -> &'static [u8] {
    const Q: &[&[u8]] = &[
        b"",
        b"",
        b"",
        b"?limit=abc",
        b"?limit=-1",
        b"?limit=99999999999999999999999",
        b"?state=bogus&active=maybe",
        b"?id=",
        b"?id=UIN:1&id=UIN:2",
        b"?%ZZ=1",
        b"?a=%FF%FE",
        b"?kind=LiveBirth&from=notadate&to=2020-13-45",
        b"?&&&==&",
        b"?wait_secs=1e9",
        b"?source=%00",
    ];
    Q[rng.random_range(0..Q.len())]
}

/// A valid body for the route, from the seeds or the document's example.
fn base_body(rng: &mut StdRng, route: &Route, seeds: &Seeds) -> Value {
    if route.path.starts_with("/callback") || route.path.starts_with("/registry") {
        let mut cb = seeds.callbacks[rng.random_range(0..seeds.callbacks.len())].clone();
        if rng.random_bool(0.7) {
            cb["header"]["message_id"] = json!(format!("fuzz-{}", rng.random::<u64>()));
        }
        if rng.random_bool(0.2) {
            cb["header"]["action"] = json!(
                [
                    "on-search",
                    "on-subscribe",
                    "on-unsubscribe",
                    "txn-on-status",
                    "notify",
                    "search"
                ][rng.random_range(0..6)]
            );
        }
        return cb;
    }
    if route.path.ends_with("/search") && route.method == "POST" {
        return json!({"query_type": "idtype-value", "query": seeds.uin,
            "mode": if rng.random_bool(0.5) { "sync" } else { "async" }});
    }
    if route.path.ends_with("/txn-status") {
        return json!({"transaction_id": seeds.transaction_ids[0]});
    }
    route.body.clone().unwrap_or_else(|| json!({}))
}

/// Mutations of a JSON body.
fn mutate(rng: &mut StdRng, body: &Value) -> Vec<u8> {
    let text = body.to_string().into_bytes();
    match rng.random_range(0..12) {
        0..=2 => text,
        3 => {
            let cut = rng.random_range(0..text.len().max(1));
            text[..cut].to_vec()
        }
        4 | 5 => {
            let mut t = text;
            for _ in 0..rng.random_range(1..6) {
                if t.is_empty() {
                    break;
                }
                let i = rng.random_range(0..t.len());
                t[i] ^= 1 << rng.random_range(0..8);
            }
            t
        }
        6 => {
            let wrong = [
                json!([]),
                json!("text"),
                json!(42),
                Value::Null,
                json!({"header": 5, "message": []}),
                json!({"header": {"message_id": [], "action": {}}, "message": "x"}),
                json!({"code": 1, "name": false, "auth": "none", "query": [[[]]]}),
            ];
            wrong[rng.random_range(0..wrong.len())]
                .to_string()
                .into_bytes()
        }
        7 => {
            // Deep nesting.
            let n = rng.random_range(100..5000);
            let mut t = "[".repeat(n).into_bytes();
            t.extend(std::iter::repeat_n(b']', n));
            t
        }
        8 => Vec::new(),
        9 => (0..rng.random_range(1..400))
            .map(|_| rng.random())
            .collect(),
        10 => {
            // Over the body limit.
            let mut t = b"{\"pad\":\"".to_vec();
            t.extend(std::iter::repeat_n(b'x', BODY_LIMIT + 1024));
            t.extend_from_slice(b"\"}");
            t
        }
        _ => {
            // Every string value replaced by something nasty.
            let nasty = [
                json!("\u{0}"),
                json!("é".repeat(500)),
                json!(-1),
                json!(1e308),
                json!(u64::MAX),
                json!({"$gt": []}),
                json!("../../../../etc/passwd"),
            ];
            let mut v = body.clone();
            replace_leaves(&mut v, &mut |_| {
                nasty[rng.random_range(0..nasty.len())].clone()
            });
            v.to_string().into_bytes()
        }
    }
}

fn replace_leaves(v: &mut Value, f: &mut dyn FnMut(&Value) -> Value) {
    match v {
        Value::Object(m) => m.values_mut().for_each(|x| replace_leaves(x, f)),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_leaves(x, f)),
        leaf => *leaf = f(leaf),
    }
}

fn generate(rng: &mut StdRng, rig: &Rig) -> RawRequest {
    let route = &rig.routes[rng.random_range(0..rig.routes.len())];
    let mut wire_malformed = false;
    // Method: usually the route's own.
    let method = if rng.random_bool(0.75) {
        route.method.clone()
    } else {
        METHODS[rng.random_range(0..METHODS.len())].to_owned()
    };
    // Path: fill the parameters, sometimes bend the path.
    let mut target = Vec::new();
    let mut rest = route.path.as_str();
    while let Some(open) = rest.find('{') {
        target.extend_from_slice(&rest.as_bytes()[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let (value, raw) = param(rng, &rest[open + 1..close], &rig.seeds);
        wire_malformed |= raw;
        target.extend_from_slice(&value);
        rest = &rest[(close + 1).min(rest.len())..];
    }
    target.extend_from_slice(rest.as_bytes());
    // Never delete or rewrite the seeded source: it is what the other requests aim at.
    let destructive = matches!(method.as_str(), "PUT" | "DELETE");
    if destructive && String::from_utf8_lossy(&target).contains(CODE) {
        let t = String::from_utf8_lossy(&target).replace(CODE, "fuzz_other");
        target = t.into_bytes();
    }
    match rng.random_range(0..20) {
        0 => target.extend_from_slice(b"/extra"),
        1 => target.push(b'/'),
        2 => target = [b"/".as_slice(), &target].concat(),
        3 => target.extend_from_slice(b"/%2e%2e/%2e%2e"),
        _ => {}
    }
    target.extend_from_slice(query(rng));

    let mut headers = Vec::new();
    let family = family_of(&String::from_utf8_lossy(&target));
    match rng.random_range(0..10) {
        0 => {}
        1 => headers.push((
            "Authorization".into(),
            b"Bearer wrong-token-for-fuzzing".to_vec(),
        )),
        2 => headers.push((
            "Authorization".into(),
            format!("Basic {TOKEN}").into_bytes(),
        )),
        3 => headers.push(("Authorization".into(), b"Bearer \xff\xfe".to_vec())),
        _ => headers.push((
            "Authorization".into(),
            format!("Bearer {TOKEN}").into_bytes(),
        )),
    }
    let body = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") || rng.random_bool(0.1) {
        let base = base_body(rng, route, &rig.seeds);
        let content_type: &[u8] = match rng.random_range(0..10) {
            0 => b"",
            1 => b"text/plain",
            2 => b"application/x-www-form-urlencoded",
            3 => b"application/json; charset=utf-8",
            4 => b"multipart/form-data; boundary=x",
            5 => b"\xff",
            _ if family == Family::Console => b"application/x-www-form-urlencoded",
            _ => b"application/json",
        };
        if !content_type.is_empty() {
            headers.push(("Content-Type".into(), content_type.to_vec()));
        }
        if content_type.starts_with(b"application/x-www-form") && rng.random_bool(0.6) {
            let forms: [&[u8]; 5] = [
                b"csrf=x&token=y",
                b"csrf=%FF&token=%FE",
                b"code=a&auth=oauth2&timeout_secs=abc",
                b"===&&&",
                b"csrf",
            ];
            forms[rng.random_range(0..forms.len())].to_vec()
        } else {
            mutate(rng, &base)
        }
    } else {
        Vec::new()
    };
    if rng.random_bool(0.1) {
        headers.push(("Cookie".into(), b"dci_console=forged; other=1".to_vec()));
    }
    if rng.random_bool(0.05) {
        headers.push(("Accept".into(), b"text/html".to_vec()));
    }
    RawRequest {
        method,
        target,
        headers,
        body,
        wire_malformed,
        short_body: false,
    }
}

/// An answer, or why there was none.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    /// Where the client actually sent it, if not the raw target.
    answered_path: Option<String>,
}

async fn exchange(addr: std::net::SocketAddr, req: &RawRequest) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let bytes = req.bytes();
    let (mut rd, mut wr) = stream.split();
    // Write and read at once: an early answer (401, 413) must be readable even when the
    // server stops reading the body.
    let write = async {
        let _ = wr.write_all(&bytes).await;
        let _ = wr.flush().await;
    };
    let read = async {
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut buf)).await;
        (r, buf)
    };
    let ((), (r, buf)) = tokio::join!(write, read);
    match r {
        Err(_) => return Err("no answer within 30 s".into()),
        Ok(Err(e)) if buf.is_empty() => return Err(format!("read: {e}")),
        Ok(_) => {}
    }
    parse(&buf, req.method == "HEAD")
}

fn parse(buf: &[u8], head: bool) -> Result<Answer, String> {
    if buf.is_empty() {
        return Err("connection closed without an answer".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("incomplete response head".into()),
        Err(e) => return Err(format!("unparseable response: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let rest = &buf[n..];
    let body = if head {
        Vec::new()
    } else if let Some(len) = header("content-length") {
        let len: usize = len.trim().parse().map_err(|_| "bad content-length")?;
        if rest.len() < len {
            return Err(format!("body cut short: {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Answer {
        status,
        content_type,
        body,
        answered_path: None,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunked body cut short")?;
        let size_text = String::from_utf8_lossy(&b[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .map_err(|_| "bad chunk size")?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("chunk cut short".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Codes of DCI-level refusals: answered HTTP 200 with ACK `ERR` (the fuzzed source keeps no
/// HTTP-status refusals), never as a 4xx.
const DCI_LEVEL: &[&str] = &[
    "err.signature.missing",
    "err.signature.invalid",
    "err.sender_id.invalid",
    "err.request.forbidden",
];

/// A 200 on a callback route: an ACK, or an ACK `ERR` with one of the spec's codes.
fn callback_ok(json: Option<&Value>, is_json: bool) -> Option<String> {
    let m = json.map(|j| &j["message"]);
    let ok = is_json
        && m.is_some_and(|m| match m["ack_status"].as_str() {
            Some("ACK") => m["error"].is_null() && m["timestamp"].is_string(),
            Some("ERR") => m["error"]["code"]
                .as_str()
                .is_some_and(|c| dci_protocol::codes::ErrorCode::parse_lenient(c).is_known()),
            _ => false,
        });
    (!ok).then(|| "200 on a callback route without an ACK or a spec ERR".to_owned())
}

/// What is wrong with an answer, if anything.
fn judge(req: &RawRequest, a: &Answer) -> Option<String> {
    if req.wire_malformed {
        // hyper refuses it before any route sees it; an answer is all we can ask.
        return None;
    }
    // The path the answer came from: reqwest resolves `%2e%2e` segments and follows redirects.
    let path = a
        .answered_path
        .clone()
        .unwrap_or_else(|| String::from_utf8_lossy(&req.target).into_owned());
    let family = family_of(&path);
    if a.status >= 500 && !matches!(a.status, 502..=504) {
        return Some(format!("undocumented {}", a.status));
    }
    let json: Option<Value> = serde_json::from_slice(&a.body).ok();
    let is_json = a.content_type.starts_with("application/json");
    if family == Family::Callback && req.method == "POST" && a.status == 200 {
        return callback_ok(json.as_ref(), is_json);
    }
    if a.status < 400 || req.method == "HEAD" {
        return None;
    }
    match family {
        Family::Api => {
            let e = json.as_ref().map(|j| &j["error"]);
            let ok =
                is_json && e.is_some_and(|e| e["kind"].is_string() && e["message"].is_string());
            (!ok).then(|| format!("{} without the API error shape", a.status))
        }
        Family::Callback => {
            let m = json.as_ref().map(|j| &j["message"]);
            let ok = is_json
                && m.is_some_and(|m| {
                    m["ack_status"] == "ERR"
                        && m["error"]["code"].is_string()
                        && m["timestamp"].is_string()
                });
            if !ok {
                return Some(format!("{} without the DCI ACK ERR shape", a.status));
            }
            let code = m.and_then(|m| m["error"]["code"].as_str()).unwrap_or("");
            DCI_LEVEL
                .contains(&code)
                .then(|| format!("{} for the DCI-level refusal {code}", a.status))
        }
        Family::Console => {
            let ok = a.content_type.starts_with("text/html") && !a.body.is_empty();
            (!ok).then(|| format!("{} without an HTML page", a.status))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_an_answer_in_its_family_shape() {
    let seed: u64 = std::env::var("DCI_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_240_612);
    let total: usize = std::env::var("DCI_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let rig = Arc::new(Rig::new().await);
    let addr = rig.server.addr();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut requests: Vec<RawRequest> = (0..total).map(|_| generate(&mut rng, &rig)).collect();
    // A few whose body never fully arrives: answered 408 after the request timeout.
    for r in requests.iter_mut().filter(|r| r.method == "POST").take(3) {
        r.short_body = true;
    }

    let started = Instant::now();
    let requests = Arc::new(requests);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let requests = requests.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut problems = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                match exchange(addr, req).await {
                    Err(why) => problems.push(format!("DROPPED ({why}): {}", req.describe())),
                    Ok(a) => {
                        // Wire-level refusals (hyper's, before routing) counted apart.
                        let key = if req.wire_malformed {
                            10_000 + a.status
                        } else {
                            a.status
                        };
                        *statuses.entry(key).or_default() += 1;
                        if let Some(why) = judge(req, &a) {
                            problems.push(format!(
                                "{why}: {} -> {} {:?}",
                                req.describe(),
                                a.content_type,
                                String::from_utf8_lossy(&a.body)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            ));
                        }
                    }
                }
            }
            (problems, statuses)
        }));
    }
    let mut problems = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for w in workers {
        let (p, s) = w.await.unwrap();
        problems.extend(p);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    // Then the same kind of requests over pooled keep-alive connections, as a real client
    // sends them: an early answer (401 before the body is read) must not leave a connection
    // that breaks the next request.
    let pooled = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = rig.server.base_url();
    let mut keepalive_requests = 0;
    for req in requests
        .iter()
        .filter(|r| !r.wire_malformed && !r.short_body)
        .take(total / 4)
    {
        let Ok(method) = reqwest::Method::from_bytes(req.method.as_bytes()) else {
            continue;
        };
        let url = format!("{base}{}", String::from_utf8_lossy(&req.target));
        // The URL as reqwest sends it (dot segments, %2e%2e included, resolved): the answer's
        // family follows the path the server sees.
        let mut sent = req.clone();
        if let Ok(u) = reqwest::Url::parse(&url) {
            let mut target = u.path().to_owned();
            if let Some(q) = u.query() {
                target = format!("{target}?{q}");
            }
            sent.target = target.into_bytes();
        }
        let mut b = pooled.request(method, &url).body(req.body.clone());
        for (name, value) in &req.headers {
            if let Ok(v) = reqwest::header::HeaderValue::from_bytes(value) {
                b = b.header(name.as_str(), v);
            }
        }
        keepalive_requests += 1;
        match b.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let answered_path = Some(resp.url().path().to_owned());
                *statuses.entry(status).or_default() += 1;
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                match resp.bytes().await {
                    Ok(body) => {
                        let a = Answer {
                            status,
                            content_type,
                            body: body.to_vec(),
                            answered_path,
                        };
                        if let Some(why) = judge(&sent, &a) {
                            problems.push(format!("keep-alive: {why}: {}", req.describe()));
                        }
                    }
                    Err(e) => {
                        problems.push(format!("DROPPED keep-alive body ({e}): {}", req.describe()))
                    }
                }
            }
            Err(e) => problems.push(format!("DROPPED keep-alive ({e:?}): {}", req.describe())),
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "fuzz: seed {seed}, {total} raw + {keepalive_requests} keep-alive requests in {elapsed:?}; statuses {statuses:?} (10000+: refused by hyper before routing)"
    );
    // The server still answers after all that.
    let (status, _) = api(&rig.server.base_url(), "GET", "/sources", None).await;
    assert_eq!(status, 200, "the server survived the run");
    let shown: Vec<&String> = problems.iter().take(25).collect();
    assert!(
        problems.is_empty(),
        "{} of {total} requests were answered wrongly (seed {seed}); the first ones:\n{}",
        problems.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        elapsed < Duration::from_secs(90),
        "the run is bounded: {elapsed:?}"
    );
}
