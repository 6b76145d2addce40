//! Shared by the server's integration tests: a real SQLite store in a temp dir, an app state
//! with a known admin token, and small HTTP helpers over `oneshot`.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dci_client::{MasterKey, OpsStore, Store};
use dci_server::{AdminToken, AppState};
use dci_store::SqliteStore;
use secrecy::SecretString;
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "test-admin-token-0123456789";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub key: MasterKey,
    pub store: Arc<dyn Store>,
    pub ops: Arc<dyn OpsStore>,
    pub state: AppState,
}

impl Env {
    pub async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::from_bytes([42u8; 32]);
        let (store, ops) = open(&dir.path().join("dci.sqlite3"), &key).await;
        let state = state(store.clone(), ops.clone());
        Env {
            dir,
            key,
            store,
            ops,
            state,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("dci.sqlite3")
    }

    pub async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        call(self.state.clone(), req).await
    }
}

pub async fn open(path: &Path, key: &MasterKey) -> (Arc<dyn Store>, Arc<dyn OpsStore>) {
    let s = Arc::new(SqliteStore::open_file(path, key).await.unwrap());
    (s.clone(), s)
}

pub fn state(store: Arc<dyn Store>, ops: Arc<dyn OpsStore>) -> AppState {
    AppState::new(
        store,
        ops,
        AdminToken::from_secret(&SecretString::from(TOKEN)),
    )
}

/// Calls the router once; returns the status and the body as JSON (`Null` when empty,
/// a string when not JSON).
pub async fn call(state: AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = dci_server::router(state).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

/// An authorised API request (`path` below `/api/v1`).
pub fn api(method: &str, path: &str, body: Option<Value>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(format!("/api/v1{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// A raw POST (callbacks).
pub fn post_raw(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}
