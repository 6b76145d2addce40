//! The staged connection test behind `dci source test` and the console's Test Connection.
//!
//! Each stage says pass / warn / fail / skipped, how long it took, and — when it did not pass —
//! what to fix. Later stages are skipped when an earlier one makes them meaningless (no point
//! fetching a token from a host that does not resolve). A registry without `/registry/ping`
//! (404/405) is "reachable, not verified": never a success on its own.

use std::net::SocketAddr;
use std::time::Instant;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, Phase};
use crate::ops::{Operation, Operations, OpsError, SearchQuery, SearchSpec};
use crate::source::{AuthConfig, SourceState};
use crate::transport::{Call, Endpoint};

/// The stages, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Resolve the base URL's host.
    Dns,
    /// TCP connect, and the TLS handshake for https.
    Connect,
    /// OAuth2: fetch a token; bearer/basic: credentials present.
    Token,
    /// `GET {base}/registry/ping` with credentials.
    Ping,
    /// One real sync search that matches no one (optional).
    ProbeSearch,
    /// The async callback URI answers.
    Callback,
}

impl Stage {
    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Dns => "DNS lookup",
            Stage::Connect => "TCP/TLS connection",
            Stage::Token => "credentials / token",
            Stage::Ping => "reachability and authorisation (/registry/ping)",
            Stage::ProbeSearch => "permission check (one real sync search)",
            Stage::Callback => "callback URI reachability",
        }
    }

    /// Stable name (`dns`, `connect`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Token => "token",
            Stage::Ping => "ping",
            Stage::ProbeSearch => "probe_search",
            Stage::Callback => "callback",
        }
    }
}

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// It worked.
    Pass,
    /// It worked only partly (e.g. reachable but not verified, verification off).
    Warn,
    /// It failed; the message says what to fix.
    Fail,
    /// It did not run; the message says why.
    Skipped,
}

impl StageStatus {
    /// `pass`, `warn`, `fail` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Pass => "pass",
            StageStatus::Warn => "warn",
            StageStatus::Fail => "fail",
            StageStatus::Skipped => "skipped",
        }
    }
}

/// One stage's result.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Which stage.
    pub stage: Stage,
    /// Its label.
    pub label: &'static str,
    /// Outcome.
    pub status: StageStatus,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// What happened and, unless it passed, what to fix.
    pub message: String,
    /// The error class (`dns`, `tls`, `auth`, …) when it failed.
    pub error_class: Option<&'static str>,
}

/// The whole test.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Data source code.
    pub source: String,
    /// No stage failed and the credentials were verified (ping or probe search passed).
    pub ok: bool,
    /// The credentials were proven by the registry accepting an authenticated call.
    pub verified: bool,
    /// The state the data source was moved to.
    pub state: SourceState,
    /// When the test started.
    #[serde(with = "time::serde::rfc3339")]
    pub tested_at: OffsetDateTime,
    /// Total wall time in milliseconds.
    pub duration_ms: u64,
    /// One line for the data source's `last_error` and notifications.
    pub summary: String,
    /// The stages in order.
    pub stages: Vec<StageReport>,
}

impl TestReport {
    /// The report of one stage, if it ran.
    pub fn stage(&self, stage: Stage) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.stage == stage)
    }
}

/// Options for [`test_connection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestOptions {
    /// Send one real sync search (an identifier that matches no one) to prove the credentials
    /// may read this registry — the permission check. On by default; turn it off only where a
    /// registry must not see a test search (the test then cannot verify permissions).
    pub probe_search: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions { probe_search: true }
    }
}

/// Records a test that ends without finishing (its future dropped: a client went away) as
/// failed, so the source never stays `testing`. A test whose process dies is recovered by
/// [`crate::Engine::recover_interrupted_tests`].
struct Unfinished {
    store: Option<std::sync::Arc<dyn crate::store::Store>>,
    code: String,
    done: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (Some(store), Ok(rt)) = (self.store.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let code = std::mem::take(&mut self.code);
        rt.spawn(async move {
            let _ = store
                .record_test_result(
                    &code,
                    SourceState::Error,
                    OffsetDateTime::now_utc(),
                    Some("the connection test was interrupted before it finished: test again"),
                )
                .await;
        });
    }
}

struct Recorder {
    stages: Vec<StageReport>,
}

impl Recorder {
    fn push(&mut self, stage: Stage, t0: Instant, status: StageStatus, message: String) {
        self.push_err(stage, t0, status, message, None);
    }

    fn push_err(
        &mut self,
        stage: Stage,
        t0: Instant,
        status: StageStatus,
        message: String,
        error_class: Option<&'static str>,
    ) {
        self.stages.push(StageReport {
            stage,
            label: stage.label(),
            status,
            duration_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
            message,
            error_class,
        });
    }

    fn fail(&mut self, stage: Stage, t0: Instant, e: &Error) {
        self.push_err(stage, t0, StageStatus::Fail, e.to_string(), Some(e.class()));
    }

    fn skip(&mut self, stage: Stage, why: &str) {
        self.push(stage, Instant::now(), StageStatus::Skipped, why.to_owned());
    }
}

/// Runs the staged test over the source's operations (the same path every call takes: its
/// dialect, signing and reply verification) and records its outcome on the data source
/// (through the client's store, if any): state `testing` while it runs, then `active` or
/// `error` with the test time and the first problem. Only a test that verified the
/// credentials' permission (a probe search, or a ping that checks them) makes it `active`.
pub async fn test_connection(ops: &Operations, opts: TestOptions) -> TestReport {
    let client = ops.client();
    let source = client.source();
    let tested_at = OffsetDateTime::now_utc();
    let started = Instant::now();
    let mut guard = Unfinished {
        store: client.store().cloned(),
        code: source.code.clone(),
        done: false,
    };
    if let Some(store) = client.store()
        && let Err(e) = store
            .record_test_result(&source.code, SourceState::Testing, tested_at, None)
            .await
    {
        tracing::warn!(source = %source.code, error = %e, "could not mark the source testing");
    }
    let mut r = Recorder { stages: Vec::new() };
    let base = client.base_url().clone();

    // DNS and TCP: done by hand so that each failure is named on its own.
    let mut reachable = false;
    let t0 = Instant::now();
    let host = base.host_str().unwrap_or_default().to_owned();
    let port = base.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = if client.uses_proxy() {
        r.skip(
            Stage::Dns,
            "a proxy is configured: the proxy resolves the host",
        );
        Vec::new()
    } else {
        let lookup = tokio::time::timeout(
            client.connect_timeout(),
            tokio::net::lookup_host((host.trim_matches(['[', ']']), port)),
        )
        .await;
        match lookup {
            Ok(Ok(a)) => {
                let a: Vec<SocketAddr> = a.collect();
                if a.is_empty() {
                    r.fail(Stage::Dns, t0, &Error::dns(Phase::Registry, &base, None));
                } else {
                    let list: Vec<String> = a.iter().take(3).map(|a| a.ip().to_string()).collect();
                    r.push(
                        Stage::Dns,
                        t0,
                        StageStatus::Pass,
                        format!("{host} → {}", list.join(", ")),
                    );
                }
                a
            }
            Ok(Err(e)) => {
                r.fail(Stage::Dns, t0, &Error::dns(Phase::Registry, &base, Some(e)));
                Vec::new()
            }
            Err(_) => {
                r.fail(Stage::Dns, t0, &Error::dns(Phase::Registry, &base, None));
                Vec::new()
            }
        }
    };
    let dns_ok = client.uses_proxy() || !addrs.is_empty();

    if !dns_ok {
        r.skip(Stage::Connect, "skipped: the host name did not resolve");
    } else {
        let t0 = Instant::now();
        let mut tcp_err = None;
        let mut connected = None;
        for a in &addrs {
            match tokio::time::timeout(client.connect_timeout(), tokio::net::TcpStream::connect(a))
                .await
            {
                Ok(Ok(_)) => {
                    connected = Some(*a);
                    break;
                }
                Ok(Err(e)) => tcp_err = Some(Error::from_io(Phase::Registry, &base, e)),
                Err(_) => {
                    tcp_err = Some(Error::timeout(
                        Phase::Registry,
                        &base,
                        client.connect_timeout(),
                    ))
                }
            }
        }
        match (connected, tcp_err) {
            (None, Some(e)) if !client.uses_proxy() => r.fail(Stage::Connect, t0, &e),
            _ => {
                // An unauthenticated GET of the base URL exercises the TLS handshake with the
                // exact settings (CA bundle, client certificate) real calls use. Any HTTP status
                // means the connection works.
                let call = Call {
                    phase: Phase::Registry,
                    method: Method::GET,
                    url: base.clone(),
                    action: "test_connect",
                    headers: HeaderMap::new(),
                    body: None,
                    authenticate: false,
                    retry: false,
                    any_status: true,
                    ids: (None, None),
                };
                match client.execute(call, |_, _| Ok(())).await {
                    Err(e) => r.fail(Stage::Connect, t0, &e),
                    Ok(_) => {
                        reachable = true;
                        let via = connected.map(|a| format!(" to {a}")).unwrap_or_default();
                        if base.scheme() == "http" {
                            r.push(Stage::Connect, t0, StageStatus::Warn, format!(
                                "connected{via} over plain HTTP: requests and credentials are not \
                                 encrypted. Use an https:// base URL outside local testing."));
                        } else if !source.tls.verify {
                            r.push(Stage::Connect, t0, StageStatus::Warn, format!(
                                "connected{via}; TLS certificate verification is OFF, so anyone \
                                 on the path could impersonate the registry. Turn it on (set a \
                                 CA bundle if the registry uses a private CA)."));
                        } else {
                            r.push(
                                Stage::Connect,
                                t0,
                                StageStatus::Pass,
                                format!("connected{via}; TLS certificate verified"),
                            );
                        }
                    }
                }
            }
        }
    }

    // Credentials.
    let mut creds_ok = false;
    if !reachable {
        r.skip(Stage::Token, "skipped: the registry is not reachable");
    } else {
        let t0 = Instant::now();
        match &source.auth {
            AuthConfig::None => {
                creds_ok = true;
                r.push(
                    Stage::Token,
                    t0,
                    StageStatus::Skipped,
                    "no authentication configured".to_owned(),
                );
            }
            AuthConfig::Bearer { .. } => {
                creds_ok = true;
                r.push(
                    Stage::Token,
                    t0,
                    StageStatus::Pass,
                    "bearer token present (the registry checks it in the next stage)".to_owned(),
                );
            }
            AuthConfig::Basic { username, .. } => {
                creds_ok = true;
                r.push(
                    Stage::Token,
                    t0,
                    StageStatus::Pass,
                    format!(
                        "user name {username:?} and password present (checked in the next stage)"
                    ),
                );
            }
            AuthConfig::OAuth2(o) => match client.force_refresh().await {
                Ok(t) => {
                    creds_ok = true;
                    let secs = (t.info.expires_at - OffsetDateTime::now_utc()).whole_seconds();
                    let scope = t.info.scope.as_deref().unwrap_or("(none)");
                    let lifetime = if t.info.lifetime_from_server {
                        format!("expires in {secs} s")
                    } else {
                        format!("no expires_in from the server: assuming {secs} s")
                    };
                    r.push(
                        Stage::Token,
                        t0,
                        StageStatus::Pass,
                        format!(
                            "token issued to client {:?}; {lifetime}; scope {scope}",
                            o.client_id
                        ),
                    );
                }
                Err(e) => r.fail(Stage::Token, t0, &e),
            },
        }
    }

    // Reachability + authorisation.
    let mut verified = false;
    if !creds_ok {
        r.skip(Stage::Ping, "skipped: no usable credentials");
    } else {
        let t0 = Instant::now();
        match client.url_for("/registry/ping") {
            Err(e) => r.fail(Stage::Ping, t0, &e),
            Ok(url) => {
                let call = Call {
                    phase: Phase::Registry,
                    method: Method::GET,
                    url,
                    action: "ping",
                    headers: HeaderMap::new(),
                    body: None,
                    authenticate: true,
                    retry: false,
                    any_status: false,
                    ids: (None, None),
                };
                match client.execute(call, |_, _| Ok(())).await {
                    Ok((raw, _)) => {
                        verified = true;
                        r.push(
                            Stage::Ping,
                            t0,
                            StageStatus::Pass,
                            format!(
                                "the registry answered HTTP {} and accepted the credentials",
                                raw.status.as_u16()
                            ),
                        );
                    }
                    Err(e) if matches!(e.status().map(|s| s.as_u16()), Some(404 | 405)) => {
                        r.push(
                            Stage::Ping,
                            t0,
                            StageStatus::Warn,
                            format!(
                                "reachable, not verified: the registry has no /registry/ping (HTTP \
                             {}), so the credentials could not be checked here; the probe \
                             search checks them.",
                                e.status().map(|s| s.as_u16()).unwrap_or_default()
                            ),
                        );
                    }
                    Err(e) => r.fail(Stage::Ping, t0, &e),
                }
            }
        }
    }

    // Probe search.
    let ping_failed = r
        .stages
        .last()
        .is_some_and(|s| s.status == StageStatus::Fail);
    if !opts.probe_search {
        r.push(
            Stage::ProbeSearch,
            Instant::now(),
            StageStatus::Warn,
            "turned off: the credentials' permission to search this registry was not checked"
                .to_owned(),
        );
    } else if !creds_ok || ping_failed {
        r.skip(Stage::ProbeSearch, "skipped: an earlier stage failed");
    } else if source.sender_id.as_deref().is_none_or(str::is_empty) {
        r.skip(
            Stage::ProbeSearch,
            "skipped: set the data source's sender_id to send searches",
        );
    } else {
        let t0 = Instant::now();
        match probe(ops).await {
            Ok(()) => {
                verified = true;
                r.push(
                    Stage::ProbeSearch,
                    t0,
                    StageStatus::Pass,
                    "the registry answered the probe search: the credentials may search it"
                        .to_owned(),
                );
            }
            Err(OpsError::Client(e)) if e.is_auth() => {
                let scope = match &source.auth {
                    AuthConfig::OAuth2(o) => match o.scope.as_deref() {
                        Some(s) if !s.is_empty() => format!(
                            "; the token was asked for scope {s:?}: check that the registry \
                             grants it to this client"
                        ),
                        _ => format!(
                            "; set auth.scope to the registry's read scope (e.g. {}.read)",
                            source.registry_type.as_str()
                        ),
                    },
                    _ => String::new(),
                };
                r.push_err(
                    Stage::ProbeSearch,
                    t0,
                    StageStatus::Fail,
                    format!(
                        "the credentials are not permitted to search this registry ({e}){scope}"
                    ),
                    Some("permission"),
                );
            }
            Err(OpsError::Client(e)) => r.fail(Stage::ProbeSearch, t0, &e),
            Err(e) => r.push_err(
                Stage::ProbeSearch,
                t0,
                StageStatus::Fail,
                e.to_string(),
                Some("probe"),
            ),
        }
    }

    // Callback.
    match &source.callback_uri {
        None => r.skip(
            Stage::Callback,
            "no callback URI configured (async operations unavailable)",
        ),
        Some(uri) => {
            let t0 = Instant::now();
            match url::Url::parse(uri) {
                Err(e) => r.fail(
                    Stage::Callback,
                    t0,
                    &Error::config(format!(
                        "callback_uri {uri:?} is not a valid URL ({e}); write it like \
                     https://spmis.example.org/dci/callback"
                    )),
                ),
                Ok(url) => {
                    let call = Call {
                        phase: Phase::Callback,
                        method: Method::GET,
                        url,
                        action: "test_callback",
                        headers: HeaderMap::new(),
                        body: None,
                        authenticate: false,
                        retry: false,
                        any_status: true,
                        ids: (None, None),
                    };
                    match client.execute(call, |_, _| Ok(())).await {
                        Err(e) => r.fail(Stage::Callback, t0, &e),
                        Ok((raw, _)) => {
                            let reach = format!(
                                "answers from here (HTTP {}); the registry must be able to reach \
                                 it too",
                                raw.status.as_u16()
                            );
                            match callback_auth_warning(source) {
                                None => r.push(Stage::Callback, t0, StageStatus::Pass, reach),
                                Some(w) => r.push(
                                    Stage::Callback,
                                    t0,
                                    StageStatus::Warn,
                                    format!("{reach}; but {w}"),
                                ),
                            }
                        }
                    }
                }
            }
        }
    }

    let first_fail = r.stages.iter().find(|s| s.status == StageStatus::Fail);
    let ok = first_fail.is_none() && verified;
    let summary = match first_fail {
        Some(s) => format!("{} failed: {}", s.label, s.message),
        None if !ok => "reachable, but the credentials' permission was not verified: run the \
            test with the probe search"
            .to_owned(),
        None => "connection test passed".to_owned(),
    };
    let state = if ok {
        SourceState::Active
    } else {
        SourceState::Error
    };
    guard.done = true;
    if let Some(store) = client.store() {
        let last_error = (!ok).then_some(summary.as_str());
        if let Err(e) = store
            .record_test_result(&source.code, state, tested_at, last_error)
            .await
        {
            tracing::warn!(source = %source.code, error = %e, "could not record the test result");
        }
    }
    TestReport {
        source: source.code.clone(),
        ok,
        verified,
        state,
        tested_at,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        summary,
        stages: r.stages,
    }
}

/// The identifier the probe search asks for: it matches no one.
pub const PROBE_ID: &str = "UIN:DCI-CONNECTION-PROBE-0000000000";

/// One real sync search that cannot match a person, through the source's operations (its
/// dialect, signature and reply checks), sent once (no retries).
async fn probe(ops: &Operations) -> Result<(), OpsError> {
    let spec = SearchSpec::by_id(PROBE_ID)?.page(1, 1);
    let spec = match ops.source().registry_type {
        dci_protocol::RegistryType::Crvs => spec.record_type("Person"),
        _ => spec,
    };
    let p = ops
        .prepare(&Operation::Search(SearchQuery::one(spec)))
        .await?;
    ops.exchange(p.envelope, Endpoint::SyncSearch, false)
        .await
        .map(|_| ())
}

/// Why the source's callbacks are not safely authenticated, if they are not: the opt-out is on,
/// or it has no callback secret (stored before secrets existed) and does not require signatures.
fn callback_auth_warning(source: &crate::DataSource) -> Option<String> {
    if source.callbacks.accept_unauthenticated {
        return Some(
            "callbacks.accept_unauthenticated is on, which is unsafe: anyone who can reach the \
             receiver can forge results and notifications; turn it off and let the registry post \
             to the sender_uri we send (it carries the callback secret), or require signatures"
                .to_owned(),
        );
    }
    if source.callbacks.secret.is_none()
        && source.reply_signature_policy != crate::SignaturePolicy::Require
    {
        return Some(
            "this data source has no callback secret and does not require signatures, so its \
             unsigned callbacks are refused: edit the source (any edit generates one) or \
             regenerate its callback secret"
                .to_owned(),
        );
    }
    None
}
