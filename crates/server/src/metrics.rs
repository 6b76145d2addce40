//! `GET /metrics`: the library's Prometheus series ([`dci_client::metrics`]) with the store's
//! backlogs read at each scrape, in the OpenMetrics text format. This module only guards and
//! serves them; what is recorded is the library's.
//!
//! Access: by default a scrape presents `Authorization: Bearer` with the admin token or the
//! console's read-only token (`DCI_CONSOLE_READONLY_TOKEN`, the one meant for watchers); a wrong
//! token counts against the caller's address like any other, and refusals have the API's JSON
//! shape. With
//! [`crate::ServerConfig::metrics_open`] the series are served to anyone who can reach the port
//! (for a scraper on a private network); they carry no secret and no identifier of a person.

use axum::extract::{Extension, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::admin_token::AdminToken;
use crate::error::ApiError;
use crate::state::AppState;
use crate::throttle::{ClientKey, Throttle};

/// Who may read `/metrics`.
#[derive(Clone, Debug)]
pub(crate) struct MetricsAccess {
    open: bool,
    readonly: Option<AdminToken>,
}

impl MetricsAccess {
    /// From the state's settings: open, or the admin and read-only tokens.
    pub(crate) fn of(state: &AppState) -> MetricsAccess {
        let console = state
            .config
            .console
            .clone()
            .unwrap_or_else(crate::console::ConsoleConfig::from_env);
        MetricsAccess {
            open: state.config.metrics_open,
            readonly: console
                .readonly_token
                .as_ref()
                .map(|t| AdminToken::from_secret(&secrecy::SecretString::from(t.expose_secret()))),
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn serve(
    State(st): State<AppState>,
    Extension(access): Extension<MetricsAccess>,
    client: ClientKey,
    req: Request,
) -> Response {
    if !access.open {
        let throttle = req.extensions().get::<Throttle>().cloned();
        if let Some(t) = &throttle
            && let Err(locked) = t.check(client)
        {
            return ApiError::TooManyRequests {
                retry_after_secs: locked.retry_after_secs(),
            }
            .into_response();
        }
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest)
            });
        let allowed = presented.is_some_and(|t| {
            st.admin.verify(t) || access.readonly.as_ref().is_some_and(|r| r.verify(t))
        });
        if !allowed {
            if presented.is_some()
                && let Some(t) = &throttle
            {
                tracing::info!(client = %client, "metrics: wrong token refused");
                t.failed(client);
            }
            return ApiError::Unauthorized.into_response();
        }
    }
    let text = dci_client::metrics::scrape(st.ops.as_ref()).await;
    (
        [(header::CONTENT_TYPE, dci_client::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}
