//! Who a gateway API request acts as ([`Principal`]), and the role check of every API route as
//! an extractor, so the role a handler needs shows in its signature: [`ApiViewer`],
//! [`ApiOperator`], [`ApiAdmin`] (the console's are in `console::session`).
//!
//! A request presents `Authorization: Bearer …` with one of:
//! - the admin token (`DCI_ADMIN_TOKEN`, or the generated one): role admin, actor `admin-token`
//!   — the token-only mode of a single-operator setup;
//! - the read-only token (`DCI_CONSOLE_READONLY_TOKEN`): role viewer, actor `readonly-token`;
//! - a personal API token (`dcip_…`, `dci user token create`): its user's role, actor
//!   `user:NAME`. An expired or revoked one is refused with a message saying so.
//!
//! Any other token counts as a failed attempt against the caller's address
//! ([`crate::throttle`]); a locked-out address is answered 429 without its token being checked.
//! The principal is worked out once per request and kept in its extensions.
//!
//! Owns: authenticating API requests and checking roles. Does not own: users and tokens
//! (`dci_client::users`), the console's sessions (`console::session`).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use dci_client::users::Role;
use dci_client::users::service::TokenCheck;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::throttle::{ClientKey, Throttle};

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What it may do.
    pub role: Role,
    /// What the change audit records: `user:NAME`, `admin-token` or `readonly-token`.
    pub actor: String,
    /// The named user, if it is one.
    pub user_id: Option<Uuid>,
}

impl Principal {
    /// The token-only admin (the admin token).
    pub fn admin_token() -> Principal {
        Principal {
            role: Role::Admin,
            actor: "admin-token".into(),
            user_id: None,
        }
    }

    /// The token-only viewer (the read-only token).
    pub fn readonly_token() -> Principal {
        Principal {
            role: Role::Viewer,
            actor: "readonly-token".into(),
            user_id: None,
        }
    }

    /// A named user.
    pub fn user(u: &dci_client::users::User) -> Principal {
        Principal {
            role: u.role,
            actor: format!("user:{}", u.username),
            user_id: Some(u.id),
        }
    }
}

/// The digest of the read-only token the API accepts as a viewer, if one is configured.
#[derive(Clone, Copy, Default)]
pub(crate) struct ReadonlyDigest(pub(crate) Option<[u8; 32]>);

impl ReadonlyDigest {
    pub(crate) fn of(config: Option<&crate::console::ConsoleConfig>) -> ReadonlyDigest {
        ReadonlyDigest(
            config
                .and_then(|c| c.readonly_token.as_ref())
                .map(|t| digest(t.expose_secret())),
        )
    }

    fn matches(&self, presented: &str) -> bool {
        self.0.is_some_and(|d| ct_eq(&d, &digest(presented)))
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.trim().as_bytes()).into()
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

/// The request's principal (worked out once, then read from the extensions).
async fn principal(parts: &mut Parts, st: &AppState) -> Result<Principal, ApiError> {
    if let Some(p) = parts.extensions.get::<Principal>() {
        return Ok(p.clone());
    }
    let p = authenticate(parts, st).await?;
    parts.extensions.insert(p.clone());
    Ok(p)
}

async fn authenticate(parts: &Parts, st: &AppState) -> Result<Principal, ApiError> {
    let Some(presented) = bearer(parts) else {
        // A missing header is no guess.
        return Err(ApiError::Unauthorized);
    };
    let client = ClientKey::from_extensions(&parts.extensions);
    let throttle = parts.extensions.get::<Throttle>().cloned();
    if let Some(t) = &throttle
        && let Err(locked) = t.check(client)
    {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: locked.retry_after_secs(),
        });
    }
    if st.admin.verify(presented) {
        return Ok(Principal::admin_token());
    }
    let readonly = parts
        .extensions
        .get::<ReadonlyDigest>()
        .copied()
        .unwrap_or_default();
    if readonly.matches(presented) {
        return Ok(Principal::readonly_token());
    }
    match st.users().check_token(presented).await? {
        TokenCheck::Valid(user, _) => Ok(Principal::user(&user)),
        TokenCheck::Expired => Err(ApiError::TokenRejected(
            "this personal API token has expired: make a new one with `dci user token create USERNAME --name NAME`".into(),
        )),
        TokenCheck::Revoked => Err(ApiError::TokenRejected(
            "this personal API token was revoked: make a new one with `dci user token create USERNAME --name NAME`".into(),
        )),
        TokenCheck::Unknown => {
            tracing::info!(client = %client, "gateway API: wrong token refused");
            if let Some(t) = &throttle {
                t.failed(client);
            }
            Err(ApiError::Unauthorized)
        }
    }
}

/// What a role may do, for the 403 message.
pub(crate) fn role_scope(role: Role) -> &'static str {
    match role {
        Role::Viewer => "view only",
        Role::Operator => "view, search and test connections",
        Role::Admin => "everything",
    }
}

fn forbidden(parts: &Parts, p: &Principal, needed: Role) -> ApiError {
    ApiError::Forbidden(format!(
        "{} {} needs the {needed} role; this token's role is {} ({}): ask an admin for a token of a user with that role",
        parts.method,
        parts.uri.path(),
        p.role,
        role_scope(p.role)
    ))
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                st: &AppState,
            ) -> Result<Self, Self::Rejection> {
                let p = principal(parts, st).await?;
                if !p.role.allows($role) {
                    return Err(forbidden(parts, &p, $role));
                }
                Ok($name(p))
            }
        }
    };
}

role_extractor!(
    /// An API caller with at least the viewer role (reads).
    ApiViewer,
    Role::Viewer
);
role_extractor!(
    /// An API caller with at least the operator role (searches, connection tests).
    ApiOperator,
    Role::Operator
);
role_extractor!(
    /// An API caller with the admin role (configuration: sources, webhooks, users).
    ApiAdmin,
    Role::Admin
);
