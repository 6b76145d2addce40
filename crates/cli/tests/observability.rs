//! Traces and JSON logs of the real binary: `dci serve` with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! pointing at an OTLP/HTTP receiver in this test (protobuf, decoded with opentelemetry-proto)
//! and `DCI_LOG_FORMAT=json`. An async search through the gateway API against the sandbox must
//! arrive as a client span carrying its `message_id` and `transaction_id` inside the gateway
//! request's server span, and the callback's span must link to it; every log line must parse as JSON and hold no secret and no
//! identifier of a person.

#[path = "support/sources.rs"]
mod sources;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use dci_client::DataSourceInput;
use dci_protocol::RegistryType;
use dci_sandbox::{DEMO_CLIENT_SECRET, SandboxConfig};
use dci_store::OpenOptions;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "observability-admin-token-0123456789";

type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// `POST /v1/traces`: decodes the export and keeps every span with its service name.
async fn traces(State(got): State<Received>, body: Bytes) -> &'static str {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut got = got.lock().unwrap();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                got.push((service.clone(), span));
            }
        }
    }
    ""
}

fn text(v: &Any) -> Option<String> {
    match v {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_exports_linked_spans_over_otlp_and_logs_json_without_secrets() {
    // At the default log level the spans stay out of the logs and are exported all the same.
    traced_serve(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_logs_in_json_hold_no_secret_nor_identifier() {
    traced_serve(Some("debug")).await;
}

async fn traced_serve(log: Option<&str>) {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let got: Received = Arc::default();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", receiver.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(got.clone());
    tokio::spawn(async move { axum::serve(receiver, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let log_path = dir.path().join("stderr.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_dci"));
    match log {
        Some(filter) => command.env("DCI_LOG", filter),
        None => command.env_remove("DCI_LOG"),
    };
    let mut child = command
        .args(["--json", "serve", "--listen", "127.0.0.1:0"])
        .env("DCI_HOME", &home)
        .env("DCI_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
        .env("OTEL_SERVICE_NAME", "dci-under-test")
        .env("DCI_LOG_FORMAT", "json")
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let banner: Value = serde_json::from_str(line.trim()).unwrap();
    let base = banner["listening"].as_str().unwrap().to_owned();

    let code = "crvs_traced";
    let source = DataSourceInput {
        callback_uri: Some(format!("{base}/callback/{code}")),
        ..sources::verified(&sb, sources::sandbox_input(&sb, RegistryType::Crvs, code))
    }
    .validate()
    .unwrap();
    let opened = dci_store::open(&OpenOptions {
        home: Some(home.clone()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    })
    .await
    .unwrap();
    opened.store.create_data_source(&source).await.unwrap();

    let ex = &sb.examples()[&RegistryType::Crvs].found[0];
    let (id_type, id_value) = (ex.id_type.clone(), ex.id_value.clone());
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/v1/sources/{code}/search"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "query_type": "idtype-value",
            "query": format!("{id_type}:{id_value}"),
            "mode": "async",
            "wait_secs": 30,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ack: Value = resp.json().await.unwrap();
    assert_eq!(ack["transaction"]["state"], "completed", "{ack}");
    let txn = ack["transaction_id"].as_str().unwrap().to_owned();
    let message_id = ack["transaction"]["message_id"].as_str().map(str::to_owned);

    // SIGTERM: the process flushes its last spans before it ends.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "dci serve exited with {status:?}");
    // The receiver has answered every export before the exporter returned; give the last
    // request's handler a moment to finish storing (a bound, not a timing assertion).
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = got.lock().unwrap().clone();
        if spans.iter().any(|(_, s)| {
            s.name == "dci callback" && attr(s, "dci.transaction_id").as_deref() == Some(&txn)
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
    assert!(
        spans.iter().all(|(svc, _)| svc == "dci-under-test"),
        "service.name from OTEL_SERVICE_NAME"
    );

    // The async search: one client span carrying the DCI ids.
    let search = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "dci search" && attr(s, "dci.transaction_id").as_deref() == Some(&txn))
        .unwrap_or_else(|| panic!("no search span for {txn}: {names:?}"));
    assert_eq!(search.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(attr(search, "dci.source").as_deref(), Some(code));
    assert_eq!(attr(search, "dci.action").as_deref(), Some("search"));
    assert_eq!(
        attr(search, "http.response.status_code").as_deref(),
        Some("202"),
        "the registry accepted it"
    );
    let sent_id = attr(search, "dci.message_id").expect("the search span has dci.message_id");
    if let Some(m) = &message_id {
        assert_eq!(&sent_id, m);
    }
    // Its token request.
    assert!(
        spans
            .iter()
            .any(|(_, s)| s.name == "dci token" && attr(s, "dci.source").as_deref() == Some(code)),
        "no token span: {names:?}"
    );

    // The callback: a server span for the same transaction, linked to the search's span.
    let callback = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| {
            s.name == "dci callback" && attr(s, "dci.transaction_id").as_deref() == Some(&txn)
        })
        .unwrap_or_else(|| panic!("no callback span for {txn}: {names:?}"));
    assert_eq!(callback.kind, 1, "SPAN_KIND_INTERNAL");
    // Inside the HTTP server span of the request that brought it, like the search inside the
    // gateway request's.
    let parent = |child: &Span| {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.span_id == child.parent_span_id)
            .cloned()
    };
    let http = parent(callback).expect("the callback's HTTP request span");
    assert_eq!(
        (http.name.as_str(), http.kind),
        ("HTTP POST", 2),
        "SPAN_KIND_SERVER"
    );
    assert_eq!(
        attr(&http, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(
        attr(&http, "path")
            .unwrap_or_default()
            .starts_with(&format!("/callback/{code}")),
        "{http:?}"
    );
    let gateway = parent(search).expect("the gateway request's span");
    assert_eq!(
        attr(&gateway, "path").as_deref(),
        Some(format!("/api/v1/sources/{code}/search").as_str())
    );
    assert_eq!(
        attr(callback, "dci.outcome").as_deref(),
        Some("acknowledged")
    );
    assert_eq!(attr(callback, "dci.action").as_deref(), Some("on-search"));
    assert!(
        callback
            .links
            .iter()
            .any(|l| l.trace_id == search.trace_id && l.span_id == search.span_id),
        "the callback's span links to the search's: {:?}",
        callback.links
    );

    // No span carries a person's identifier or a secret.
    for (_, s) in &spans {
        for kv in &s.attributes {
            let v = kv
                .value
                .as_ref()
                .and_then(|v| text(v.value.as_ref()?))
                .unwrap_or_default();
            for secret in [id_value.as_str(), DEMO_CLIENT_SECRET, ADMIN_TOKEN] {
                assert!(
                    !v.contains(secret),
                    "span {} attribute {} holds {secret:?}",
                    s.name,
                    kv.key
                );
            }
        }
    }

    // JSON logs: every line one JSON object; nothing secret or personal in any.
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let mut n = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        for secret in [id_value.as_str(), DEMO_CLIENT_SECRET, ADMIN_TOKEN] {
            assert!(
                !line.contains(secret),
                "a log line holds {secret:?}: {line}"
            );
        }
        n += 1;
    }
    assert!(n > 0, "dci serve logged nothing");
    if log.is_none() {
        assert!(
            !logs.contains("dci.call") && !logs.contains("dci.callback"),
            "the debug-level spans stay out of info logs: {logs}"
        );
    }
    assert!(
        logs.contains("shutting down"),
        "the shutdown is logged: {logs}"
    );
}
