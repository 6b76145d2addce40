//! Test harness: a spawned sandbox, a real SQLite store in a temp dir, and a callback receiver
//! on 127.0.0.1:0 that calls `dci_client::ops::ingest` — a minimal HTTP/1.1 server, so the
//! callbacks travel over real HTTP exactly as they would to `dci serve`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dci_client::ops::callbacks::{CallbackCredentials, ingest_with};
use dci_client::ops::{IngestContext, Operations};
use dci_client::{DataSource, DataSourceInput, DciClient, RetryPolicy, SourceState, Store};
use dci_protocol::RegistryType;
use dci_protocol::codes::Action;
use dci_sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, SandboxConfig};
use dci_store::SqliteStore;
use secrecy::SecretString;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub(crate) fn master_key() -> dci_client::MasterKey {
    dci_client::MasterKey::from_bytes([42; 32])
}

/// One received callback as the receiver answered it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// The request path (shown when an assertion fails).
    #[allow(dead_code)]
    pub(crate) path: String,
    pub(crate) status: u16,
    pub(crate) code: Option<String>,
}

/// The callback receiver. Stops when dropped.
pub(crate) struct Receiver {
    pub(crate) base: String,
    pub(crate) log: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub(crate) fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

fn action_of(suffix: &str) -> Option<Action> {
    match suffix {
        "/registry/on-search" => Some(Action::OnSearch),
        "/registry/on-subscribe" => Some(Action::OnSubscribe),
        "/registry/on-unsubscribe" => Some(Action::OnUnsubscribe),
        "/registry/txn/on-status" => Some(Action::TxnOnStatus),
        "/registry/notify" => Some(Action::Notify),
        _ => None,
    }
}

/// Serves `POST /callback/{code}[/{secret}][/registry/…]` by calling `ingest_with`.
pub(crate) async fn receiver(ctx: IngestContext) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = Arc::clone(&log);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let ctx = ctx.clone();
            let log = Arc::clone(&log2);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, content_length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + content_length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let body = &buf[head_end..head_end + content_length];
                let rest = path.strip_prefix("/callback/").unwrap_or_default();
                let (code, suffix) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                };
                // `/callback/{code}/{secret}/registry/…`: the sender_uri carries the secret.
                let (secret, suffix) = match suffix.strip_prefix('/') {
                    Some(s) if !s.is_empty() && !s.starts_with("registry") => {
                        let (secret, tail) = s.split_at(s.find('/').unwrap_or(s.len()));
                        (Some(secret.to_owned()), tail)
                    }
                    _ => (None, suffix),
                };
                let creds = CallbackCredentials {
                    url_secret: secret,
                    bearer: None,
                };
                let (status, json, code_out) =
                    match ingest_with(&ctx, code, body, action_of(suffix), &creds).await {
                        Ok(ack) => (200, serde_json::to_vec(&ack).unwrap(), None),
                        Err(r) => (
                            r.answer_status,
                            serde_json::to_vec(&r.to_ack(OffsetDateTime::now_utc())).unwrap(),
                            Some(r.code.clone()),
                        ),
                    };
                log.lock().unwrap().push(Received {
                    path: path.clone(),
                    status,
                    code: code_out,
                });
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    json.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.write_all(&json).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Receiver { base, log, task }
}

/// Sandbox + store + receiver.
pub(crate) struct Env {
    pub(crate) sb: Sandbox,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store: Arc<SqliteStore>,
    pub(crate) receiver: Receiver,
}

impl Env {
    pub(crate) async fn new(config: SandboxConfig) -> Env {
        let sb = dci_sandbox::spawn(config).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open_file(&dir.path().join("dci.sqlite3"), &master_key())
                .await
                .unwrap(),
        );
        let ctx = IngestContext::new(store.clone(), store.clone());
        let receiver = receiver(ctx).await;
        Env {
            sb,
            dir,
            store,
            receiver,
        }
    }

    pub(crate) async fn default() -> Env {
        Env::new(SandboxConfig::default()).await
    }

    /// A data source for `registry` (code `{registry}_main`), stored, with its callback URI on
    /// the receiver.
    pub(crate) async fn source(&self, registry: RegistryType) -> DataSource {
        let code = format!("{}_main", registry.as_str());
        let s = source_for(&self.sb, registry, &code, &self.receiver.base);
        self.store.create_data_source(&s).await.unwrap();
        s
    }

    pub(crate) fn ops(&self, source: DataSource) -> Operations {
        ops_with(source, self.store.clone())
    }

    /// Every envelope the client sent, checked against the official request schema.
    pub(crate) fn assert_requests_conform(&self) {
        let mut checked = 0;
        for r in self.sb.requests() {
            let Some(body) = r.body else { continue };
            let Some((reg, path)) = r.endpoint.trim_start_matches('/').split_once('/') else {
                continue;
            };
            let Ok(registry) = reg.parse::<RegistryType>() else {
                continue;
            };
            let path = format!("/{path}");
            if let Err(errors) = dci_protocol::conformance::validate_request(registry, &path, &body)
            {
                panic!(
                    "{registry} {path}: the envelope we sent is not valid: {errors:#?}\n{body:#}"
                );
            }
            checked += 1;
        }
        assert!(checked > 0, "no request was recorded");
    }
}

pub(crate) fn ops_with(source: DataSource, store: Arc<SqliteStore>) -> Operations {
    let client = DciClient::builder(source)
        .store(store.clone())
        .retry_policy(RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            budget: Duration::from_secs(2),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    Operations::new(client, store).with_poll_interval(Duration::from_millis(20))
}

pub(crate) fn source_for(
    sb: &Sandbox,
    registry: RegistryType,
    code: &str,
    callback_base: &str,
) -> DataSource {
    // Through validation, so the test follows the model as it grows.
    let mut s = DataSourceInput {
        code: code.into(),
        name: format!("{registry} sandbox"),
        registry_type: registry.as_str().into(),
        base_url: sb.registry_url(registry),
        auth: Some("oauth2".into()),
        token_url: Some(sb.token_url()),
        client_id: Some(DEMO_CLIENT_ID.into()),
        client_secret: Some(SecretString::from(DEMO_CLIENT_SECRET.to_owned())),
        scope: Some(dci_sandbox::read_scope(registry)),
        sender_id: Some("spmis.example.org".into()),
        receiver_id: Some(sb.registry_id().to_owned()),
        callback_uri: Some(format!("{callback_base}/callback/{code}")),
        timeout_secs: Some("10".into()),
        ..DataSourceInput::default()
    }
    .validate()
    .unwrap_or_else(|e| panic!("{e:?}"));
    s.state = SourceState::Active;
    s
}

/// An identifier that exists in the sandbox's `registry`, as `TYPE:VALUE`.
pub(crate) fn found_id(sb: &Sandbox, registry: RegistryType) -> String {
    let ex = &sb.examples()[&registry].found[0];
    format!("{}:{}", ex.id_type, ex.id_value)
}
