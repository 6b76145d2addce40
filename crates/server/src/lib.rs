//! # dci-server
//!
//! `dci serve`: the callback receiver, the JSON gateway API and the admin console, over one
//! [`AppState`].
//!
//! Map:
//! - [`router`] merges the sub-routers: `/healthz` (alive), `/readyz` (store reachable, schema
//!   current), `/metrics` (`metrics`: the library's Prometheus series, admin or read-only
//!   token unless [`ServerConfig::metrics_open`]), `/.well-known/jwks.json`, the callback
//!   receiver under `/callback/{code}` ([`callback`]), the gateway API under `/api/v1` (a
//!   token whose role allows the route; OpenAPI at `/api/v1/openapi.json`), and the console
//!   (`console::router()`). Tower
//!   layers add tracing (tower-http), every refusal in its route family's shape (`answer`:
//!   API JSON error, DCI ACK `ERR`, console HTML — axum's own rejections, 404, 405 included),
//!   the brute-force limits' shared [`Throttle`] (per address) and
//!   [`throttle::UserThrottle`] (the per-username limits; the count is the store's), panics answered 500, a request timeout and a
//!   stalled-body timeout (408), a body limit, and `Connection: close` on an answer given before
//!   the request body was read (`keepalive`). [`router_with`] takes explicit limits.
//! - [`admission`]: at most [`ServerConfig::max_in_flight`] gateway requests in flight; one
//!   more is answered 503 with `Retry-After` at once (no queueing).
//! - [`auth`]: who an API request acts as ([`auth::Principal`]: the admin token, the read-only
//!   token or a personal API token) and the role extractors every API handler takes
//!   ([`auth::ApiViewer`], [`auth::ApiOperator`], [`auth::ApiAdmin`]); the console's are
//!   `console::session`'s, over sessions kept in the store.
//! - [`throttle`]: failed token attempts per client address (API and console login) and the
//!   limits on failed console sign-ins per username (counted in the store by the library);
//!   [`extract`]: [`ApiPath`] and [`ApiQuery`], whose rejections are [`ApiError`]s.
//! - [`harden_process`]: core dumps off (`RLIMIT_CORE` 0, not dumpable) unless
//!   `DCI_ALLOW_CORE_DUMPS=1`; `dci serve` calls it first.
//! - [`AppState`] (one reference-counted [`Shared`], so the clone axum makes per extractor
//!   costs one count) holds the [`dci_client::Engine`] (every source's client, token cache, keys
//!   and caches) with its stores (`store`, `ops`), the [`dci_client::ops::IngestContext`] the
//!   callback routes hand bodies to, [`ServerConfig`], the [`AdminToken`] verifier and the
//!   [`Shutdown`] signal; each is a `FromRef` substate. [`AppState::operations`] gives a
//!   source's [`dci_client::Operations`] from the engine, [`AppState::users`] the user
//!   operations over the same store and [`AppState::record_change`] writes the change audit.
//! - `background`: [`serve`] also starts the webhook delivery worker
//!   ([`dci_client::webhooks::WebhookWorker`], settings in [`ServerConfig::webhooks`]), the
//!   engine's recovery loop ([`dci_client::Engine::recover_until`]), with
//!   [`ServerConfig::retention`] the hourly retention purge ([`dci_client::Engine::purge_until`]), and, with a [`ServerConfig::jobs_dir`], resumes
//!   the bulk jobs a restart interrupted and runs the scheduler
//!   ([`dci_client::jobs::Scheduler`]); [`Shared::jobs`] runs the jobs of `/api/v1/jobs` and
//!   the console's Jobs page.
//! - [`serve`] runs the router on a listener until a signal (with each request's TCP peer as
//!   `ConnectInfo`), then drains in-flight requests; [`spawn`] does the same in the background
//!   and returns a [`RunningServer`] (tests, embedding); `serve_with`/`spawn_with` take limits;
//!   [`shutdown_signal`] is SIGINT or SIGTERM.
//! - [`AdminToken::load_or_generate`]: `DCI_ADMIN_TOKEN`, else a generated token stored hashed.
//!
//! Owns: HTTP serving, request/response shapes, the admin token, role checks.
//! Does not own: what the operations do (`dci_client::ops`), storage (`dci-store`), the wire
//! types (`dci-protocol`).

pub mod admin_token;
pub mod admission;
mod answer;
pub mod api;
pub mod auth;
mod background;
pub mod callback;
pub mod console;
mod error;
pub mod extract;
pub mod harden;
mod health;
mod keepalive;
mod metrics;
mod state;
pub mod throttle;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Router, middleware};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

pub use admin_token::{
    ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE, AdminToken, AdminTokenError, TokenOrigin,
};
pub use error::{ApiError, ApiFieldError, ApiJson, ApiResult};
pub use extract::{ApiPath, ApiQuery};
pub use harden::{
    ALLOW_CORE_DUMPS_ENV, CoreDumps, HardenError, harden_process, harden_process_with,
};
pub use state::{AppState, ServerConfig, Shared, Shutdown};
pub use throttle::{Throttle, ThrottleConfig};

/// The whole application: every sub-router merged over `state`, with the tower layers and the
/// default brute-force limits ([`ThrottleConfig::default`]).
pub fn router(state: AppState) -> Router {
    router_with(state, ThrottleConfig::default())
}

/// Longest a request body may stall (no bytes arriving) before it is answered 408, so a body
/// shorter than its `Content-Length` is not held until the whole request timeout (at most half
/// of [`ServerConfig::request_timeout`]).
pub const BODY_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`router`] with explicit brute-force limits on the admin token.
///
/// Layers, outermost first: tracing; `answer::normalize` (every refusal in its route family's
/// shape); the shared [`Throttle`]; panics answered 500; the request timeout (408); a stalled
/// body (408, [`BODY_STALL_TIMEOUT`]); the body limit. Unknown paths get `answer::fallback`.
pub fn router_with(state: AppState, throttle: ThrottleConfig) -> Router {
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/metrics",
            get(metrics::serve).layer(Extension(metrics::MetricsAccess::of(&state))),
        )
        .route("/.well-known/jwks.json", get(health::jwks))
        .merge(callback::router())
        .merge(api::router(&state).layer(middleware::from_fn_with_state(
            admission::Admission::new(state.config.max_in_flight),
            admission::admit,
        )))
        .merge(match &state.config.console {
            Some(c) => console::router_with(c.clone()),
            None => console::router(),
        });
    with_layers(routes, state, throttle)
}

/// `routes` with the fallback and the state, inside the tower layers (see [`router_with`]).
///
/// The layers wrap the finished router once, as one service, rather than through
/// `Router::layer`, which wraps every route in each layer as a boxed service of its own: a
/// request then cloned that chain box by box (about a hundred allocations per API request for
/// these nine layers) and polled through as many boxed futures.
fn with_layers(routes: Router<AppState>, state: AppState, throttle: ThrottleConfig) -> Router {
    let config = &state.config;
    let stack = tower::ServiceBuilder::new()
        .layer(middleware::from_fn(keepalive::close_if_unread))
        // The span names the path with any callback secret masked (it rides in the URL), never
        // the query (identifiers ride there); exported as the server span of the request when
        // traces are (`otel.*` fields), its status recorded when the answer goes out.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::extract::Request| {
                    // Probes and scrapes come every few seconds: no span (nor trace) each.
                    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics") {
                        return tracing::Span::none();
                    }
                    tracing::debug_span!(
                        "request",
                        otel.name = %format_args!("HTTP {}", req.method()),
                        otel.kind = "server",
                        method = %req.method(),
                        path = %callback::redacted_path(req.uri().path()),
                        http.response.status_code = tracing::field::Empty,
                    )
                })
                .on_response(
                    |resp: &axum::response::Response,
                     latency: std::time::Duration,
                     span: &tracing::Span| {
                        span.record("http.response.status_code", resp.status().as_u16());
                        tracing::debug!(
                            status = resp.status().as_u16(),
                            latency_ms = latency.as_millis(),
                            "answered"
                        );
                    },
                ),
        )
        .layer(middleware::from_fn(answer::normalize))
        .layer(Extension(throttle::UserThrottle::new(throttle)))
        .layer(Extension(Throttle::new(throttle)))
        .layer(CatchPanicLayer::custom(answer::panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(RequestBodyTimeoutLayer::new(
            BODY_STALL_TIMEOUT.min(config.request_timeout / 2),
        ))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .service(routes.fallback(answer::fallback).with_state(state.clone()));
    Router::new().fallback_service(stack)
}

/// Serves `state` on `listener` until `signal` resolves, then stops accepting, fires
/// [`Shared::shutdown`] (so long waits end) and lets in-flight requests finish, for at most
/// [`ServerConfig::shutdown_grace`]; within the same grace the background tasks (recovery,
/// purge, webhooks, the scheduler) end the work in hand, and the running bulk jobs then stop
/// at their checkpoint. Nothing this server started goes on once it returns.
///
/// Each request carries its TCP peer as `ConnectInfo<SocketAddr>` (the brute-force limits key on
/// it).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ThrottleConfig::default(), signal).await
}

/// [`serve`] with explicit brute-force limits.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    throttle: ThrottleConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let stopped = state.shutdown.clone();
    let grace = state.config.shutdown_grace;
    let background = background::Background::start(&state);
    let app = router_with(state, throttle).into_make_service_with_connect_info::<SocketAddr>();
    let drained = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        drained.wait().await;
    });
    let trigger = async move {
        signal.await;
        tracing::info!("shutting down: draining in-flight requests");
        shutdown.trigger();
        tokio::time::sleep(grace).await;
    };
    let serving = async move {
        let r = tokio::select! {
            r = server => r,
            () = trigger => {
                tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; stopping anyway");
                Ok(())
            }
        };
        stopped.trigger(); // also when serving failed: the background work stops too
        r
    };
    // The background work ends within the same grace as the requests, beside them.
    let (result, ()) = tokio::join!(serving, background.finish(grace));
    result
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let _ = stop_signal().await;
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM with the signal's name (`"SIGINT"`, `"SIGTERM"`).
pub async fn stop_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = term => "SIGTERM",
    }
}

/// A server running in the background (see [`spawn`]).
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it the way a signal does (draining in-flight requests) and waits.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.shutdown.trigger();
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| std::io::Error::other(format!("server task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Binds `addr` (use `127.0.0.1:0` for a free port) and serves `state` in the background until
/// [`RunningServer::shutdown`] or drop.
pub async fn spawn(addr: SocketAddr, state: AppState) -> std::io::Result<RunningServer> {
    spawn_with(addr, state, ThrottleConfig::default()).await
}

/// [`spawn`] with explicit brute-force limits.
pub async fn spawn_with(
    addr: SocketAddr,
    state: AppState,
    throttle: ThrottleConfig,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shutdown = state.shutdown.clone();
    let wait = shutdown.clone();
    let task = tokio::spawn(serve_with(listener, state, throttle, async move {
        wait.wait().await
    }));
    Ok(RunningServer {
        addr,
        shutdown,
        task: Some(task),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn state() -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let key = dci_client::MasterKey::from_bytes([7u8; 32]);
        let store = std::sync::Arc::new(
            dci_store::SqliteStore::open_file(&dir.path().join("db.sqlite3"), &key)
                .await
                .unwrap(),
        );
        let admin = AdminToken::from_secret(&secrecy::SecretString::from("x".repeat(20)));
        (dir, AppState::new(store.clone(), store, admin))
    }

    async fn panics() -> &'static str {
        panic!("index out of bounds: a detail for the log only")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_in_its_family_shape() {
        let (_dir, state) = state().await;
        let routes = Router::new()
            .route("/api/v1/boom", get(panics))
            .route("/callback/x/boom", get(panics))
            .route("/boom", get(panics));
        let app = with_layers(routes, state, ThrottleConfig::default());
        for (path, shape) in [
            ("/api/v1/boom", "api"),
            ("/callback/x/boom", "callback"),
            ("/boom", "console"),
        ] {
            let resp = app
                .clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("index out of bounds"),
                "{path}: the panic is not shown"
            );
            match shape {
                "api" => {
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(v["error"]["kind"], "internal", "{v}");
                }
                "callback" => {
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(v["message"]["ack_status"], "ERR", "{v}");
                    assert_eq!(v["message"]["error"]["code"], "err.service.unavailable");
                }
                _ => assert!(text.contains("Server error"), "{text}"),
            }
        }
    }
}
