//! Redelivery of failed callbacks with exponential backoff, logged per attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dci_protocol::RegistryType;
use dci_sandbox::{CallbackFaults, DeliveredCallback, FaultTarget, Faults, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::common::{
    Receiver, envelope, eventually, example, id_criteria, post_json, search_message, start_with,
    token,
};

/// A receiver that misbehaves for its first `bad` requests (answers `status`, or stalls for
/// `stall` when set), then accepts; it forwards the bodies it accepts.
struct Flaky {
    url: String,
    hits: Arc<AtomicU32>,
    rx: mpsc::UnboundedReceiver<Value>,
    _task: tokio::task::JoinHandle<()>,
}

impl Flaky {
    async fn start(bad: u32, status: StatusCode, stall: Option<Duration>) -> Self {
        Self::on(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            bad,
            status,
            stall,
        )
    }

    fn on(
        listener: tokio::net::TcpListener,
        bad: u32,
        status: StatusCode,
        stall: Option<Duration>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let hits = Arc::new(AtomicU32::new(0));
        let url = format!("http://{}/callback", listener.local_addr().unwrap());
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/callback",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (tx, counter) = (tx.clone(), counter.clone());
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    if n <= bad {
                        if let Some(d) = stall {
                            tokio::time::sleep(d).await;
                        } else {
                            return (status, axum::Json(json!({"error": "not now"})));
                        }
                    }
                    let _ = tx.send(body);
                    (
                        StatusCode::OK,
                        axum::Json(json!({"message": {"ack_status": "ACK"}})),
                    )
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Flaky {
            url,
            hits,
            rx,
            _task: task,
        }
    }

    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(15), self.rx.recv())
            .await
            .expect("a callback arrives within 15 s")
            .expect("receiver open")
    }
}

fn fast_retry(attempts: u32) -> SandboxConfig {
    SandboxConfig::default().callback_retry(
        attempts,
        Duration::from_millis(50),
        Duration::from_millis(200),
    )
}

/// Starts an async CRVS search calling back to `url`; returns the ACK's correlation id.
async fn search_to(sb: &Sandbox, url: &str, txn: &str) -> String {
    let t = token(sb).await;
    let (_, uin) = example(sb, RegistryType::Crvs, 0);
    let mut m = search_message(id_criteria("UIN", &uin));
    m["transaction_id"] = json!(txn);
    let (status, ack) = post_json(
        sb,
        "/crvs/registry/search",
        &t,
        &envelope("search", m, Some(url)),
    )
    .await;
    assert_eq!(status, 202, "{ack}");
    ack["message"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn attempts_of(sb: &Sandbox, txn: &str) -> Vec<DeliveredCallback> {
    sb.callbacks()
        .into_iter()
        .filter(|c| c.transaction_id == txn)
        .collect()
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_callback_at_the_third_attempt() {
    let sb = start_with(fast_retry(5)).await;
    let mut rx = Flaky::start(2, StatusCode::SERVICE_UNAVAILABLE, None).await;
    let correlation_id = search_to(&sb, &rx.url, "txn-flaky").await;
    let cb = rx.next().await;
    assert_eq!(cb["message"]["correlation_id"], correlation_id.as_str());
    let log = eventually(|| Some(attempts_of(&sb, "txn-flaky")).filter(|l| l.len() == 3)).await;
    let seen: Vec<_> = log
        .iter()
        .map(|c| (c.attempt, c.status, c.retry_in_ms))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, Some(503), Some(50)),
            (2, Some(503), Some(100)),
            (3, Some(200), None)
        ]
    );
    assert_eq!(rx.hits.load(Ordering::SeqCst), 3);
    let stats = eventually(|| Some(sb.stats()).filter(|s| s.deliveries.pending == 0)).await;
    assert_eq!(stats.deliveries.delivered, 1);
    assert_eq!(stats.deliveries.redeliveries, 2);
    assert_eq!(stats.callbacks.recorded, 3);
    // The admin API shows the attempts too.
    let listed: Value = crate::common::http()
        .get(format!("{}/admin/callbacks?last=2", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed["callbacks"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["attempt"], 3);
    assert_eq!(listed[0]["retry_in_ms"], 100);
}

#[tokio::test]
async fn a_receiver_that_is_down_then_up_gets_the_callback() {
    let sb = start_with(fast_retry(20)).await;
    // A port nobody listens on yet: connection refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/callback");
    search_to(&sb, &url, "txn-down").await;
    let failed = eventually(|| Some(attempts_of(&sb, "txn-down")).filter(|l| l.len() >= 2)).await;
    assert!(
        failed
            .iter()
            .all(|c| c.status.is_none() && c.error.is_some())
    );
    assert_eq!(sb.stats().deliveries.pending, 1);
    // The receiver comes up on that port.
    let mut rx = Flaky::on(
        tokio::net::TcpListener::bind(addr).await.unwrap(),
        0,
        StatusCode::OK,
        None,
    );
    let cb = rx.next().await;
    assert_eq!(cb["message"]["transaction_id"], "txn-down");
    let log = eventually(|| {
        Some(attempts_of(&sb, "txn-down"))
            .filter(|l| l.last().is_some_and(|c| c.status == Some(200)))
    })
    .await;
    let last = log.last().unwrap();
    assert_eq!(last.attempt as usize, log.len());
    assert!(last.attempt >= 3);
    assert_eq!(last.retry_in_ms, None);
}

#[tokio::test]
async fn a_receiver_that_never_comes_back_is_given_up_after_max_attempts() {
    let sb = start_with(SandboxConfig::default().callback_retry(
        3,
        Duration::from_millis(20),
        Duration::from_millis(30),
    ))
    .await;
    let mut rx = Flaky::start(u32::MAX, StatusCode::BAD_GATEWAY, None).await;
    let started = Instant::now();
    search_to(&sb, &rx.url, "txn-gone").await;
    let log = eventually(|| Some(attempts_of(&sb, "txn-gone")).filter(|l| l.len() == 3)).await;
    let seen: Vec<_> = log
        .iter()
        .map(|c| (c.attempt, c.status, c.retry_in_ms))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, Some(502), Some(20)),
            (2, Some(502), Some(30)),
            (3, Some(502), None)
        ]
    );
    // Backoff was waited: 20 ms, then 30 ms (capped from 40).
    assert!(started.elapsed() >= Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(attempts_of(&sb, "txn-gone").len(), 3, "no fourth attempt");
    assert_eq!(rx.hits.load(Ordering::SeqCst), 3);
    assert!(rx.rx.try_recv().is_err());
    let d = sb.stats().deliveries;
    assert_eq!((d.gave_up, d.delivered, d.pending), (1, 0, 0));
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried() {
    let sb = start_with(fast_retry(3).callback_timeout(Duration::from_millis(300))).await;
    let mut rx = Flaky::start(1, StatusCode::OK, Some(Duration::from_secs(3))).await;
    search_to(&sb, &rx.url, "txn-slow").await;
    let cb = rx.next().await;
    assert_eq!(cb["message"]["transaction_id"], "txn-slow");
    let log = eventually(|| Some(attempts_of(&sb, "txn-slow")).filter(|l| l.len() == 2)).await;
    assert_eq!(log[0].status, None);
    assert!(log[0].error.is_some());
    assert_eq!(log[1].status, Some(200));
}

#[tokio::test]
async fn a_refusal_and_a_dropped_callback_are_not_retried() {
    let sb = start_with(fast_retry(5)).await;
    let rx = Flaky::start(u32::MAX, StatusCode::BAD_REQUEST, None).await;
    search_to(&sb, &rx.url, "txn-refused").await;
    eventually(|| Some(attempts_of(&sb, "txn-refused")).filter(|l| !l.is_empty())).await;
    // The `fail` fault drops the callback: no attempt at all, nothing retried.
    let mut ok = Receiver::start().await;
    sb.set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
        fail: Some(true),
        ..CallbackFaults::default()
    }))
    .unwrap();
    search_to(&sb, &ok.url, "txn-dropped").await;
    eventually(|| Some(attempts_of(&sb, "txn-dropped")).filter(|l| !l.is_empty())).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let refused = attempts_of(&sb, "txn-refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, Some(400));
    assert_eq!(refused[0].retry_in_ms, None);
    assert_eq!(rx.hits.load(Ordering::SeqCst), 1);
    let dropped = attempts_of(&sb, "txn-dropped");
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].status, None);
    assert!(!ok.another_within(Duration::from_millis(100)).await);
    let d = sb.stats().deliveries;
    assert_eq!((d.refused, d.dropped, d.redeliveries), (1, 1, 0));
}

#[tokio::test]
async fn redeliveries_pending_at_once_are_bounded() {
    // Room for two waiting callbacks; the first redelivery would come only in 10 s.
    let sb = start_with(SandboxConfig::default().log_capacity(2).callback_retry(
        8,
        Duration::from_secs(10),
        Duration::from_secs(10),
    ))
    .await;
    let rx = Flaky::start(u32::MAX, StatusCode::SERVICE_UNAVAILABLE, None).await;
    for txn in ["txn-p1", "txn-p2", "txn-p3"] {
        search_to(&sb, &rx.url, txn).await;
        eventually(|| Some(attempts_of(&sb, txn)).filter(|l| !l.is_empty())).await;
    }
    let d = sb.stats().deliveries;
    assert_eq!((d.pending, d.gave_up), (2, 1));
    let third = attempts_of(&sb, "txn-p3");
    assert_eq!(third[0].status, Some(503));
    assert_eq!(third[0].retry_in_ms, None);
    assert!(
        third[0]
            .error
            .as_deref()
            .unwrap()
            .contains("not redelivered"),
        "{third:?}"
    );
    assert_eq!(attempts_of(&sb, "txn-p2")[0].retry_in_ms, Some(10_000));
}

#[tokio::test]
async fn pending_redeliveries_stop_with_the_sandbox() {
    let sb = start_with(SandboxConfig::default().callback_retry(
        50,
        Duration::from_millis(100),
        Duration::from_millis(100),
    ))
    .await;
    let rx = Flaky::start(u32::MAX, StatusCode::SERVICE_UNAVAILABLE, None).await;
    search_to(&sb, &rx.url, "txn-stop").await;
    eventually(|| Some(attempts_of(&sb, "txn-stop")).filter(|l| l.len() >= 2)).await;
    sb.shutdown().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let after = rx.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.hits.load(Ordering::SeqCst), after, "still redelivering");
}

#[tokio::test]
async fn invalid_retry_settings_are_refused_by_name() {
    let err = dci_sandbox::spawn(SandboxConfig::default().callback_retry(
        0,
        Duration::from_millis(1),
        Duration::from_millis(1),
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("max_attempts"), "{err}");
    let err = dci_sandbox::spawn(SandboxConfig::default().callback_timeout(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("callback_timeout"), "{err}");
}
