//! DCI > Configuration > Data Sources: the list, the grouped form, save, Test Connection,
//! clear token cache, and delete (after a confirmation page).
//!
//! The form is parsed into the data-source document ([`SourceDocument`]), so validation (and its
//! messages) is the same as the CLI's and the API's; each form field knows its document path,
//! and errors on a path show beside that field with its label. The code is an input only on
//! creation; afterwards it is shown read-only, and a POST that changes it is refused with an
//! error on the code. Secrets are write-only: a stored secret shows as `********`, which the
//! document reads as "keep the stored one"; a secret typed into a form that fails validation is
//! never sent back to the browser.
//!
//! Required fields are marked; the error summary names each field by its label (and so do the
//! messages that mention another field). Our signing key is a choice of the keys that may be
//! named ([`KeyManager::choosable`]); the library's check refuses an unknown or revoked one.
//! Read-only users see the values as text, never inputs.

use std::collections::HashMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::{
    DataSource, MASKED, SaveError, SourceDocument, SourceFilter, SourceState, StoreError,
    TestOptions, TestReport, ValidationErrors,
};
use dci_protocol::RegistryType;
use maud::{Markup, html};
use secrecy::SecretString;
use serde::Deserialize;

use dci_client::keys::KeyManager;

use super::session::{ConsoleAdmin, ConsoleOperator, ConsoleViewer};
use super::session::{Ctx, see_other};
use super::view::{self, badge, crumbs, required_mark, scroll, when};
use crate::state::AppState;

const REGISTRY_TYPES: &[(&str, &str)] = &[
    ("crvs", "CRVS (civil registration)"),
    ("dr", "DR (disability registry)"),
    ("ibr", "IBR (integrated beneficiary registry)"),
    ("social", "SR (social registry)"),
    ("fr", "FR (farmer registry)"),
];
const AUTH_TYPES: &[(&str, &str)] = &[
    ("none", "None"),
    ("oauth2", "OAuth2 client credentials"),
    ("bearer", "Static bearer token"),
    ("basic", "HTTP Basic"),
];
const CREDENTIAL_LOCATIONS: &[(&str, &str)] = &[
    ("body", "Form body (spec default)"),
    ("basic", "HTTP Basic header"),
    ("query", "Query string (OpenCRVS)"),
    ("json", "JSON body"),
];
const POLICIES: &[(&str, &str)] = &[
    ("off", "Off: do not check"),
    ("if-present", "If present: check signed replies"),
    ("require", "Require: reject unsigned replies"),
];
const PROFILES: &[(&str, &str)] = &[
    ("standard", "Standard (SPDCI)"),
    ("opencrvs-1.5", "OpenCRVS 1.5"),
    ("opencrvs-1.3", "OpenCRVS 1.3"),
];

/// Query of `GET /sources`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    registry_type: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    notice: String,
}

fn state_badge(s: SourceState) -> Markup {
    badge(s.as_str(), s.as_str())
}

/// `GET /sources`.
pub(crate) async fn list(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let notice = (q.notice == "deleted").then_some("Data source deleted.");
    // Unknown filter values are ignored (the selects offer only valid ones).
    let filter = SourceFilter {
        registry_type: q.registry_type.parse::<RegistryType>().ok(),
        state: q.state.parse::<SourceState>().ok(),
        ..SourceFilter::default()
    };
    let sources = match st.store.list_data_sources(&filter).await {
        Ok(s) => s,
        Err(e) => return store_failed(&ctx, &e),
    };
    let body = html! {
        (crumbs(&["DCI", "Configuration", "Data Sources"]))
        h1 { "Data Sources" }
        @if let Some(n) = notice { div.notice role="status" { (n) } }
        form.filters method="get" action="/sources" {
            div {
                label for="f-registry" { "Registry type" }
                select id="f-registry" name="registry_type" {
                    option value="" { "All" }
                    @for (v, l) in REGISTRY_TYPES {
                        option value=(v) selected[q.registry_type == *v] { (l) }
                    }
                }
            }
            div {
                label for="f-state" { "State" }
                select id="f-state" name="state" {
                    option value="" { "All" }
                    @for s in SourceState::ALL {
                        option value=(s.as_str()) selected[q.state == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            button.secondary type="submit" { "Filter" }
            @if ctx.can_edit() {
                a.button href="/sources/new" id="new-source" { "New data source" }
            }
        }
        @if sources.is_empty() {
            p.panel { "No data sources" @if !q.registry_type.is_empty() || !q.state.is_empty() { " match these filters" } "." }
        } @else {
            (scroll("Data sources", html! {
            table {
                    caption.muted style="text-align:left" { (sources.len()) " data source(s)" }
                    thead { tr { th { "Code" } th { "Name" } th { "Registry" } th { "Base URL" } th { "Auth" } th { "State" } th { "Enabled" } th { "Last test" } } }
                    tbody {
                        @for s in &sources {
                            tr {
                                td { a href={"/sources/" (s.code)} { (s.code) } }
                                td { (s.name) }
                                td { (s.registry_type.as_str()) }
                                td { (s.base_url) }
                                td { (s.auth.kind().as_str()) }
                                td { (state_badge(s.state)) }
                                td { @if s.active { "yes" } @else { "no" } }
                                td { (when(s.last_test_at)) }
                            }
                        }
                    }
                }
            }))
        }
    };
    view::page(StatusCode::OK, "Data Sources", Some(&ctx), "sources", body)
}

fn store_failed(ctx: &Ctx, e: &StoreError) -> Response {
    tracing::error!(error = %e, "console: store failed");
    view::message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Storage error",
        Some(ctx),
        &format!("The database failed: {e}"),
    )
}

/// The values a form shows (never secrets) and which secrets are stored.
struct FormState {
    values: HashMap<String, String>,
    stored_secrets: Vec<&'static str>,
}

impl FormState {
    fn new_source() -> FormState {
        let d = dci_client::Endpoints::default();
        let values = [
            ("auth", "oauth2"),
            ("credential_location", "body"),
            ("timeout_secs", "30"),
            ("tls_verify", "on"),
            ("active", "on"),
            ("reply_signature_policy", "off"),
            ("profile", "standard"),
            ("registry_type", "crvs"),
            ("sync_search_path", d.sync_search.as_str()),
            ("search_path", d.search.as_str()),
            ("subscribe_path", d.subscribe.as_str()),
            ("unsubscribe_path", d.unsubscribe.as_str()),
            ("txn_status_path", d.txn_status.as_str()),
            ("sync_txn_status_path", d.sync_txn_status.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        FormState {
            values,
            stored_secrets: Vec::new(),
        }
    }

    /// The stored source's document, field by field (secrets only as "stored").
    fn from_source(s: &DataSource) -> FormState {
        let doc = SourceDocument::from_source(s);
        let mut values = HashMap::new();
        for spec in all_fields() {
            let value = match spec.kind {
                Kind::Secret => None,
                Kind::Check => doc
                    .switch(spec.path)
                    .flatten()
                    .filter(|b| *b)
                    .map(|_| "on".to_owned()),
                _ if spec.path == "registry_public_keys" => {
                    Some(doc.registry_public_keys.join("\n")).filter(|k| !k.is_empty())
                }
                _ => doc.text(spec.path).flatten().map(str::to_owned),
            };
            if let Some(v) = value {
                values.insert(spec.name.to_owned(), v);
            }
        }
        let stored_secrets = SourceDocument::secret_field(s.auth.kind())
            .and_then(|path| all_fields().find(|f| f.path == path))
            .map(|f| vec![f.name])
            .unwrap_or_default();
        FormState {
            values,
            stored_secrets,
        }
    }

    /// A submission shown again (after a validation error): its values minus the secrets.
    fn from_submission(form: &HashMap<String, String>, existing: Option<&DataSource>) -> FormState {
        let mut values = form.clone();
        for spec in all_fields().filter(|f| matches!(f.kind, Kind::Secret)) {
            values.remove(spec.name);
        }
        values.remove(super::session::CSRF_FIELD);
        if let Some(e) = existing {
            // The code is not an input once created: show the stored one.
            values.insert("code".into(), e.code.clone());
        }
        FormState {
            values,
            stored_secrets: existing
                .map(|e| FormState::from_source(e).stored_secrets)
                .unwrap_or_default(),
        }
    }

    fn get(&self, k: &str) -> &str {
        self.values.get(k).map(String::as_str).unwrap_or("")
    }

    fn checked(&self, k: &str) -> bool {
        matches!(self.get(k), "on" | "true" | "1")
    }
}

/// The submitted form as the data-source document. Only the chosen auth type's fields are read,
/// so the hidden fieldsets of other types (all sent when JavaScript is off) do not interfere.
fn document_of(form: &HashMap<String, String>) -> SourceDocument {
    let text = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut doc = SourceDocument::default();
    doc.auth.kind = Some(text("auth").unwrap_or_else(|| "none".to_owned()));
    let chosen = doc.auth_kind().map_or(&[][..], SourceDocument::auth_fields);
    for spec in all_fields() {
        if spec.path.starts_with("auth.")
            && spec.path != "auth.type"
            && !chosen.contains(&spec.path)
        {
            continue;
        }
        match spec.kind {
            // Checkboxes are absent when unticked; the form always renders them.
            Kind::Check => {
                doc.set_switch(spec.path, Some(form.contains_key(spec.name)));
            }
            Kind::Secret => {
                let secret = form
                    .get(spec.name)
                    .filter(|v| !v.is_empty())
                    .map(|v| SecretString::from(v.clone()));
                doc.set_secret_at(spec.path, secret);
            }
            _ if spec.path == "registry_public_keys" => {
                doc.registry_public_keys =
                    split_pems(form.get(spec.name).map_or("", String::as_str));
            }
            _ if spec.path == "auth.type" => {}
            _ => {
                doc.set_text(spec.path, text(spec.name));
            }
        }
    }
    doc
}

/// Public keys pasted one after another: split after each `-----END …-----` line.
fn split_pems(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if line.starts_with("-----END") {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Field errors as (form field name, message), in the order the validator reported them.
type FieldErrs = Vec<(&'static str, String)>;

/// The document's field paths named the console's way: the form field that holds each.
fn field_errs(errs: &ValidationErrors) -> FieldErrs {
    errs.errors()
        .iter()
        .map(|e| {
            let name = all_fields()
                .find(|f| f.path == e.field)
                .map_or(e.field, |f| f.name);
            (name, labelled(&e.message))
        })
        .collect()
}

/// A library message with the other fields it names (`callback_uri`, `auth.type`) written as
/// their labels.
fn labelled(message: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = message.to_owned();
    for spec in all_fields().filter(|f| f.path.contains(['_', '.'])) {
        let mut rebuilt = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(spec.path) {
            let end = at + spec.path.len();
            let before = rest[..at].chars().next_back();
            // `header.sender_id` is a wire field, not ours: only whole words are replaced.
            let after = rest[end..].chars().next();
            let dotted = before == Some('.')
                || (after == Some('.') && is_word(rest[end + 1..].chars().next()));
            rebuilt.push_str(&rest[..at]);
            if is_word(before) || is_word(after) || dotted {
                rebuilt.push_str(spec.path);
            } else {
                rebuilt.push_str(spec.label);
            }
            rest = &rest[end..];
        }
        rebuilt.push_str(rest);
        out = rebuilt;
    }
    out
}

/// The label of a form field, for the error summary.
fn label_of(name: &str) -> &str {
    all_fields()
        .find(|f| f.name == name)
        .map_or(name, |f| f.label)
}

/// Field errors by form field name.
fn errors_by_field(errs: &FieldErrs) -> HashMap<&'static str, Vec<String>> {
    let mut m: HashMap<&'static str, Vec<String>> = HashMap::new();
    for (f, msg) in errs {
        m.entry(*f).or_default().push(msg.clone());
    }
    m
}

/// One form field: its name in the form, its path in the [`SourceDocument`], its label.
struct FieldSpec {
    name: &'static str,
    path: &'static str,
    label: &'static str,
    kind: Kind,
    hint: Option<&'static str>,
}

enum Kind {
    /// The code: an input on creation, shown read-only afterwards.
    Code,
    Text,
    Url,
    Secret,
    Select(&'static [(&'static str, &'static str)]),
    Check,
    Area,
    /// One of our signing keys (or none).
    KeyChoice,
}

const fn f(
    name: &'static str,
    path: &'static str,
    label: &'static str,
    kind: Kind,
    hint: Option<&'static str>,
) -> FieldSpec {
    FieldSpec {
        name,
        path,
        label,
        kind,
        hint,
    }
}

const SECRET_HINT: Option<&str> =
    Some("Write-only: ******** keeps the stored secret; type a new one to replace it.");

// The form, section by section. Each document field appears once; the form names predate the
// document and stay (the console's own wording), the paths tie them to the document.
const BASIC: &[FieldSpec] = &[
    f("code", "code", "Code", Kind::Code, None),
    f("name", "name", "Name", Kind::Text, None),
    f(
        "registry_type",
        "registry_type",
        "Registry type",
        Kind::Select(REGISTRY_TYPES),
        None,
    ),
    f(
        "active",
        "active",
        "Enabled",
        Kind::Check,
        Some("Disabled sources are never called."),
    ),
];
const CONNECTION: &[FieldSpec] = &[
    f(
        "base_url",
        "base_url",
        "Base URL",
        Kind::Url,
        Some("http(s)://host[:port][/path], no trailing slash; endpoint paths are appended."),
    ),
    f(
        "timeout_secs",
        "timeout_secs",
        "Timeout (seconds)",
        Kind::Text,
        None,
    ),
    f(
        "callback_within_secs",
        "recovery.callback_within_secs",
        "Expected callback time (seconds)",
        Kind::Text,
        Some("After it, a result that has not come is asked for with txn-status (default 30)."),
    ),
    f(
        "poll_interval_secs",
        "recovery.poll_interval_secs",
        "Poll interval (seconds)",
        Kind::Text,
        Some("How often a request still waiting is asked about again (default 30)."),
    ),
    f(
        "give_up_after_secs",
        "recovery.give_up_after_secs",
        "Give up after (seconds)",
        Kind::Text,
        Some(
            "A request without a result this long after sending is marked expired (default 3600).",
        ),
    ),
    f(
        "max_retries",
        "retry.max_retries",
        "Retries of idempotent calls",
        Kind::Text,
        Some("0–10; empty: the server's default (5)."),
    ),
    f(
        "retry_quota",
        "retry.quota",
        "Retry quota",
        Kind::Text,
        Some("Token-bucket size, 0 for none; empty: the server's default (500)."),
    ),
    f(
        "max_concurrency",
        "limits.max_concurrency",
        "Calls in flight at once",
        Kind::Text,
        Some("1–256; empty: 4."),
    ),
    f(
        "rate_per_sec",
        "limits.rate_per_sec",
        "Rate limit (requests/s)",
        Kind::Text,
        Some("1–100000; empty: no rate limit."),
    ),
    f(
        "burst",
        "limits.burst",
        "Rate burst",
        Kind::Text,
        Some("Requests that may go at once after a quiet spell; empty: the rate."),
    ),
    f(
        "max_batch_size",
        "limits.max_batch_size",
        "Identifiers per envelope (bulk)",
        Kind::Text,
        Some("1–1000; empty: 100."),
    ),
    f(
        "breaker_failures",
        "limits.breaker_failures",
        "Circuit breaker: failures to open",
        Kind::Text,
        Some("Consecutive transient failures, 0 for no breaker; empty: 5."),
    ),
    f(
        "breaker_cooldown_secs",
        "limits.breaker_cooldown_secs",
        "Circuit breaker: cool-down (seconds)",
        Kind::Text,
        Some("Open this long before one probe; 1–3600; empty: 30."),
    ),
    f(
        "tls_verify",
        "tls.verify",
        "Verify TLS certificate",
        Kind::Check,
        None,
    ),
    f(
        "ca_file",
        "tls.ca_file",
        "CA bundle (PEM file)",
        Kind::Text,
        None,
    ),
    f(
        "client_cert_file",
        "tls.client_cert_file",
        "mTLS client certificate",
        Kind::Text,
        None,
    ),
    f(
        "client_key_file",
        "tls.client_key_file",
        "mTLS client key",
        Kind::Text,
        None,
    ),
];
const PROTOCOL: &[FieldSpec] = &[
    f(
        "sender_id",
        "sender_id",
        "Our sender id",
        Kind::Text,
        Some("As the registry knows us; required when authenticated."),
    ),
    f(
        "receiver_id",
        "receiver_id",
        "Registry receiver id",
        Kind::Text,
        Some(
            "The registry's id as it sends it in header.sender_id of its callbacks; required with a callback URI (callbacks from another sender are refused).",
        ),
    ),
    f(
        "callback_uri",
        "callback_uri",
        "Callback URI",
        Kind::Url,
        Some(
            "Base of our callback routes for async calls, e.g. https://spmis.example.org/callback/CODE. Requests carry the source's callback secret after it (dci source show CODE --reveal-callback-url).",
        ),
    ),
    f(
        "accept_unauthenticated_callbacks",
        "callbacks.accept_unauthenticated",
        "Accept unauthenticated callbacks (unsafe)",
        Kind::Check,
        Some(
            "Warning: when ticked, callbacks that are neither signed by the registry nor carry the callback secret are accepted, so anyone who can reach this server can forge search results and notifications. Leave it off.",
        ),
    ),
    f(
        "http_refusals",
        "callbacks.http_refusals",
        "Refuse bad callbacks with HTTP error statuses",
        Kind::Check,
        Some(
            "Off (default): a refused callback (bad signature, unknown transaction, wrong sender, malformed message) is answered HTTP 200 with an ACK ERR and the DCI error code, as the specs do. Tick it for registries that expect HTTP 4xx instead.",
        ),
    ),
    f(
        "profile",
        "profile",
        "Registry dialect",
        Kind::Select(PROFILES),
        Some(
            "OpenCRVS profiles are for CRVS sources; their sender id is the URL serving our JWKS.",
        ),
    ),
];
const AUTH: &[FieldSpec] = &[f(
    "auth",
    "auth.type",
    "Auth type",
    Kind::Select(AUTH_TYPES),
    None,
)];
const OAUTH2: &[FieldSpec] = &[
    f("token_url", "auth.token_url", "Token URL", Kind::Url, None),
    f("client_id", "auth.client_id", "Client id", Kind::Text, None),
    f(
        "client_secret",
        "auth.client_secret",
        "Client secret",
        Kind::Secret,
        SECRET_HINT,
    ),
    f(
        "scope",
        "auth.scope",
        "Scope",
        Kind::Text,
        Some("Space-separated, optional, e.g. crvs.read."),
    ),
    f(
        "credential_location",
        "auth.credential_location",
        "Send credentials in",
        Kind::Select(CREDENTIAL_LOCATIONS),
        None,
    ),
];
const BEARER: &[FieldSpec] = &[f(
    "bearer_token",
    "auth.bearer_token",
    "Bearer token",
    Kind::Secret,
    SECRET_HINT,
)];
const BASIC_AUTH: &[FieldSpec] = &[
    f(
        "basic_username",
        "auth.username",
        "User name",
        Kind::Text,
        None,
    ),
    f(
        "basic_password",
        "auth.password",
        "Password",
        Kind::Secret,
        SECRET_HINT,
    ),
];
const SIGNING: &[FieldSpec] = &[
    f(
        "signing_key_id",
        "signing_key_id",
        "Our signing key",
        Kind::KeyChoice,
        Some("One of the keys under Signing keys; none: requests are not signed."),
    ),
    f(
        "reply_signature_policy",
        "reply_signature_policy",
        "Registry signatures",
        Kind::Select(POLICIES),
        None,
    ),
    f(
        "registry_jwks_url",
        "registry_jwks_url",
        "Registry JWKS URL",
        Kind::Url,
        None,
    ),
    f(
        "registry_public_keys",
        "registry_public_keys",
        "Registry public keys (PEM)",
        Kind::Area,
        None,
    ),
];
const ENDPOINTS: &[FieldSpec] = &[
    f(
        "sync_search_path",
        "endpoints.sync_search",
        "Sync search",
        Kind::Text,
        None,
    ),
    f(
        "search_path",
        "endpoints.search",
        "Async search",
        Kind::Text,
        None,
    ),
    f(
        "subscribe_path",
        "endpoints.subscribe",
        "Subscribe",
        Kind::Text,
        None,
    ),
    f(
        "unsubscribe_path",
        "endpoints.unsubscribe",
        "Unsubscribe",
        Kind::Text,
        None,
    ),
    f(
        "txn_status_path",
        "endpoints.txn_status",
        "Txn status",
        Kind::Text,
        None,
    ),
    f(
        "sync_txn_status_path",
        "endpoints.sync_txn_status",
        "Sync txn status",
        Kind::Text,
        None,
    ),
];
const NOTES: &[FieldSpec] = &[f("notes", "notes", "Notes", Kind::Area, None)];

/// Form fields that must be filled (the auth ones when their auth type is chosen).
const REQUIRED: &[&str] = &[
    "code",
    "name",
    "registry_type",
    "base_url",
    "auth",
    "token_url",
    "client_id",
    "client_secret",
    "bearer_token",
    "basic_username",
    "basic_password",
];

fn all_fields() -> impl Iterator<Item = &'static FieldSpec> {
    [
        BASIC, CONNECTION, PROTOCOL, AUTH, OAUTH2, BEARER, BASIC_AUTH, SIGNING, ENDPOINTS, NOTES,
    ]
    .into_iter()
    .flatten()
}

fn field(spec: &FieldSpec, v: &FormView<'_>) -> Markup {
    let fs = v.fs;
    let id = format!("f-{}", spec.name);
    let err_id = format!("{id}-err");
    let hint_id = format!("{id}-hint");
    let e = v.errs.get(spec.name);
    let required = REQUIRED.contains(&spec.name) && !v.readonly;
    let hint = match spec.kind {
        Kind::Code if v.editing => {
            Some("Fixed once created (used in URLs and on the command line).")
        }
        Kind::Code => Some("Lowercase letters, digits and _, e.g. crvs_main."),
        _ if v.readonly => None,
        _ => spec.hint,
    };
    let mut described = Vec::new();
    if hint.is_some() {
        described.push(hint_id.clone());
    }
    if e.is_some() {
        described.push(err_id.clone());
    }
    let described = (!described.is_empty()).then(|| described.join(" "));
    let invalid = e.map(|_| "true");
    let req = required.then_some("true");
    let value = fs.get(spec.name);
    if v.readonly || (matches!(spec.kind, Kind::Code) && v.editing) {
        // Not an input: read-only users see values, and the code is fixed once created (a POST
        // that changes it is refused, never ignored).
        let shown: String = match spec.kind {
            Kind::Secret if fs.stored_secrets.contains(&spec.name) => "stored (hidden)".into(),
            Kind::Secret => "—".into(),
            Kind::Check => if fs.checked(spec.name) { "Yes" } else { "No" }.into(),
            Kind::Select(options) => options
                .iter()
                .find(|(o, _)| *o == value)
                .map_or(value, |(_, l)| l)
                .to_owned(),
            Kind::KeyChoice if value.is_empty() => "None: requests are not signed".into(),
            _ if value.is_empty() => "—".into(),
            _ => value.to_owned(),
        };
        return html! {
            div.field {
                span.label id={(id) "-label"} { (spec.label) }
                div.value id=(id) role="group" aria-labelledby={(id) "-label"} aria-describedby=[described.as_deref()] {
                    @if matches!(spec.kind, Kind::Code) { code { (shown) } } @else { (shown) }
                }
                @if let Some(h) = hint { span.hint id=(hint_id) { (h) } }
                @if let Some(e) = e {
                    span.err id=(err_id) { @for m in e { span.visually-hidden { "Error: " } (spec.label) " " (m) br; } }
                }
            }
        };
    }
    html! {
        div.field {
            label for=(id) { (spec.label) @if required { (required_mark()) } }
            @match spec.kind {
                Kind::Code | Kind::Text => input type="text" id=(id) name=(spec.name) value=(value)
                    aria-required=[req] aria-invalid=[invalid] aria-describedby=[described.as_deref()];,
                Kind::Url => input type="url" id=(id) name=(spec.name) value=(value)
                    aria-required=[req] aria-invalid=[invalid] aria-describedby=[described.as_deref()];,
                Kind::Secret => {
                    // The mask stands for "keep the stored secret"; the real value never leaves.
                    @let shown = if fs.stored_secrets.contains(&spec.name) { MASKED } else { "" };
                    input type="password" id=(id) name=(spec.name) value=(shown) autocomplete="new-password"
                        aria-required=[req] aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                }
                Kind::Select(options) => select id=(id) name=(spec.name)
                    aria-required=[req] aria-invalid=[invalid] aria-describedby=[described.as_deref()] {
                    @for (o, l) in options {
                        option value=(o) selected[value == *o] { (l) }
                    }
                },
                Kind::KeyChoice => select id=(id) name=(spec.name)
                    aria-invalid=[invalid] aria-describedby=[described.as_deref()] {
                    option value="" selected[value.is_empty()] { "None: requests are not signed" }
                    @for (k, l) in v.keys {
                        option value=(k) selected[value == k] { (l) }
                    }
                    // A stored id that is no longer a usable key stays visible (and is refused
                    // on save) rather than silently dropped.
                    @if !value.is_empty() && !v.keys.iter().any(|(k, _)| k == value) {
                        option value=(value) selected { (value) " (not a usable key)" }
                    }
                },
                Kind::Check => input type="checkbox" id=(id) name=(spec.name) checked[fs.checked(spec.name)]
                    aria-describedby=[described.as_deref()];,
                Kind::Area => textarea id=(id) name=(spec.name) rows="4"
                    aria-invalid=[invalid] aria-describedby=[described.as_deref()] { (value) },
            }
            @if let Some(h) = hint { span.hint id=(hint_id) { (h) } }
            @if let Some(e) = e {
                span.err id=(err_id) { @for m in e { span.visually-hidden { "Error: " } (spec.label) " " (m) br; } }
            }
        }
    }
}

/// How a form is drawn: what it shows and whether it can be changed.
struct FormView<'a> {
    fs: &'a FormState,
    errs: &'a HashMap<&'static str, Vec<String>>,
    readonly: bool,
    editing: bool,
    /// The signing keys that may be chosen: (key id, label).
    keys: &'a [(String, String)],
}

fn fieldset(legend: &str, auth: Option<&str>, specs: &[FieldSpec], v: &FormView<'_>) -> Markup {
    html! {
        fieldset data-auth=[auth] {
            legend { (legend) }
            @for s in specs { (field(s, v)) }
        }
    }
}

/// The grouped form, like the seed's: basic, connection, DCI protocol, authentication (one
/// fieldset per type), message signing, endpoints, notes.
fn source_form(
    ctx: &Ctx,
    action: &str,
    fs: &FormState,
    errs: &HashMap<&'static str, Vec<String>>,
    editing: bool,
    keys: &[(String, String)],
) -> Markup {
    let v = FormView {
        fs,
        errs,
        readonly: !ctx.can_edit(),
        editing,
        keys,
    };
    html! {
        form method="post" action=(action) id="source-form" novalidate aria-label=[v.readonly.then_some("Data source settings (read-only)")] {
            (view::csrf(ctx))
            (fieldset("Basic", None, BASIC, &v))
            (fieldset("Network and TLS", None, CONNECTION, &v))
            (fieldset("DCI protocol", None, PROTOCOL, &v))
            fieldset {
                legend { "Authentication" }
                @for s in AUTH { (field(s, &v)) }
                // Read-only: only the chosen type's settings (there is no choice to follow).
                @for (legend, kind, specs) in [
                    ("OAuth2 client credentials", "oauth2", OAUTH2),
                    ("Bearer token", "bearer", BEARER),
                    ("HTTP Basic", "basic", BASIC_AUTH),
                ] {
                    @if !v.readonly || fs.get("auth") == kind {
                        (fieldset(legend, Some(kind), specs, &v))
                    }
                }
            }
            (fieldset("Message signing", None, SIGNING, &v))
            (fieldset("Endpoints", None, ENDPOINTS, &v))
            (fieldset("Notes", None, NOTES, &v))
            @if !v.readonly {
                // Sticky: Save stays on screen however far down the form one is.
                div.actions.sticky {
                    button type="submit" id="save" { "Save" }
                    a.button.secondary href="/sources" { "Cancel" }
                    span.muted { "Fields marked " span.req aria-hidden="true" { "*" } " are required." }
                }
            }
        }
    }
}

fn error_summary(errs: &FieldErrs) -> Markup {
    html! {
        // Focused by the script after a failed submit (tabindex -1: focusable, not in the tab order).
        div.error-summary role="alert" id="error-summary" tabindex="-1" aria-labelledby="error-summary-h" {
            h2 id="error-summary-h" style="font-size:1rem;margin:0" { "The data source was not saved: fix " (errs.len()) " field(s)." }
            ul { @for (f, m) in errs { li { a href={"#f-" (f)} { (label_of(f)) } " " (m) } } }
        }
    }
}

fn notice_text(n: &str) -> Option<&'static str> {
    match n {
        "created" => Some("Data source created. Run Test Connection to activate it."),
        "saved" => Some("Saved."),
        "token-cleared" => Some("Token cache cleared: the next call fetches a new token."),
        _ => None,
    }
}

/// Query of the form pages.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FormQuery {
    #[serde(default)]
    notice: String,
}

/// `GET /sources/new`.
pub(crate) async fn new_form(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
) -> Response {
    let keys = key_choices(&st).await;
    new_page(&ctx, StatusCode::OK, &FormState::new_source(), None, &keys)
}

fn new_page(
    ctx: &Ctx,
    status: StatusCode,
    fs: &FormState,
    errs: Option<&FieldErrs>,
    keys: &[(String, String)],
) -> Response {
    let by_field = errs.map(errors_by_field).unwrap_or_default();
    let body = html! {
        (crumbs(&["DCI", "Configuration", "Data Sources", "New"]))
        h1 { "New data source" }
        @if let Some(e) = errs { (error_summary(e)) }
        (source_form(ctx, "/sources/new", fs, &by_field, false, keys))
    };
    view::page(status, "New data source", Some(ctx), "sources", body)
}

/// The signing keys a source may name, as (key id, label) for the choice.
async fn key_choices(st: &AppState) -> Vec<(String, String)> {
    KeyManager::new(st.ops.clone())
        .choosable()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|k| {
            let state = if k.status.as_str() == "active" {
                "active"
            } else {
                "inactive: activate it to sign"
            };
            let label = format!("{} ({}, {state})", k.key_id, k.algorithm.as_str());
            (k.key_id, label)
        })
        .collect()
}

/// `POST /sources/new`.
pub(crate) async fn create(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form: HashMap<String, String> = form.into_iter().collect();
    if let Err(r) = ctx.check_csrf(form.get("csrf").map_or("", |s| s)) {
        return r;
    }
    let keys = key_choices(&st).await;
    let source = match document_of(&form).validate() {
        Ok(s) => s,
        Err(errs) => {
            return new_page(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &FormState::from_submission(&form, None),
                Some(&field_errs(&errs)),
                &keys,
            );
        }
    };
    match st.engine.create_source(&ctx.who.actor, &source).await {
        Ok(_) => see_other(&format!("/sources/{}?notice=created", source.code)),
        Err(SaveError::Invalid(errs)) => new_page(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            &FormState::from_submission(&form, None),
            Some(&field_errs(&errs)),
            &keys,
        ),
        Err(SaveError::Store(StoreError::CodeTaken(code))) => {
            let errs = vec![(
                "code",
                format!("{code:?} is already taken by another data source: choose another code"),
            )];
            new_page(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &FormState::from_submission(&form, None),
                Some(&errs),
                &keys,
            )
        }
        Err(SaveError::Store(e)) => store_failed(&ctx, &e),
    }
}

async fn load(st: &AppState, ctx: &Ctx, code: &str) -> Result<DataSource, Response> {
    match st.store.get_data_source(code).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(view::message_page(
            StatusCode::NOT_FOUND,
            "No such data source",
            Some(ctx),
            &format!("There is no data source {code:?}. The list shows every code."),
        )),
        Err(e) => Err(store_failed(ctx, &e)),
    }
}

/// `GET /sources/{code}`.
pub(crate) async fn edit_form(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Path(code): Path<String>,
    Query(q): Query<FormQuery>,
) -> Response {
    let source = match load(&st, &ctx, &code).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    edit_page(
        &st,
        &ctx,
        StatusCode::OK,
        &source,
        &FormState::from_source(&source),
        None,
        None,
        notice_text(&q.notice),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn edit_page(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    source: &DataSource,
    fs: &FormState,
    errs: Option<&FieldErrs>,
    report: Option<&TestReport>,
    notice: Option<&str>,
) -> Response {
    let by_field = errs.map(errors_by_field).unwrap_or_default();
    let token = st
        .engine
        .cached_client(&source.code)
        .and_then(|c| c.cached_token_info());
    let code = &source.code;
    let keys = key_choices(st).await;
    let body = html! {
        (crumbs(&["DCI", "Configuration", "Data Sources", code]))
        h1 { (source.name) " " small.muted { "(" (code) ")" } }
        @if let Some(n) = notice { div.notice role="status" { (n) } }
        @if let Some(e) = errs { (error_summary(e)) }
        section.panel aria-labelledby="status-h" id="status" {
            h2 id="status-h" style="font-size:1.1rem;margin:0 0 .5rem" { "Status" }
            p {
                "State: " span id="state" { (state_badge(source.state)) }
                " · last test: " span id="last-test" { (when(source.last_test_at)) }
                @if let Some(t) = &token {
                    " · token cached in this server, expires " (when(Some(t.expires_at)))
                }
            }
            // After a test its report says what failed; the stored error would only repeat it.
            @if let (Some(e), None) = (&source.last_error, report) {
                p id="last-error" { "Last error: " (e) }
            }
            @if ctx.can_operate() {
                div.actions {
                    // With htmx the result replaces only this panel; without it, the page reloads.
                    form method="post" action={"/sources/" (code) "/test"}
                        hx-post={"/sources/" (code) "/test"} hx-target="#status"
                        hx-select="#status" hx-swap="outerHTML" hx-disabled-elt="find button" {
                        (view::csrf(ctx))
                        label { input type="checkbox" name="skip_probe" value="on"; " skip the permission check (no probe search)" }
                        " "
                        button type="submit" id="test-connection" { "Test Connection" }
                        span.htmx-indicator.muted { " testing…" }
                    }
                    @if ctx.can_edit() {
                        form method="post" action={"/sources/" (code) "/clear-token"} {
                            (view::csrf(ctx))
                            button.secondary type="submit" id="clear-token" { "Clear token cache" }
                        }
                        a.button.danger href={"/sources/" (code) "/delete"} id="delete-source" { "Delete…" }
                    }
                }
            }
            @if let Some(r) = report { (report_table(r)) }
        }
        h2 { "Settings" }
        (source_form(ctx, &format!("/sources/{code}"), fs, &by_field, true, &keys))
    };
    view::page(status, &source.name, Some(ctx), "sources", body)
}

fn report_table(r: &TestReport) -> Markup {
    let overall = if r.ok { "pass" } else { "fail" };
    html! {
        div id="test-report" role="status" {
            h3 style="font-size:1rem" {
                "Test result: " (badge(overall, if r.ok { "passed" } else { "failed" }))
                " " span.muted { "(" (r.duration_ms) " ms)" }
            }
            // The failing stage's row carries its message: the summary is shown only when no
            // stage failed (passed, or reachable but not verified), so each error shows once.
            @if !r.stages.iter().any(|s| s.status.as_str() == "fail") {
                p id="test-summary" { (r.summary) }
            }
            (scroll("Test stages", html! {
            table {
                    thead { tr { th { "Stage" } th { "Result" } th { "Time" } th { "Details and what to fix" } } }
                    tbody {
                        @for s in &r.stages {
                            tr data-stage=(s.stage.as_str()) data-status=(s.status.as_str()) {
                                td { (s.label) }
                                td { (badge(s.status.as_str(), s.status.as_str())) }
                                td { (s.duration_ms) " ms" }
                                td.wrap { (s.message) }
                            }
                        }
                    }
                }
            }))
        }
    }
}

/// `POST /sources/{code}`.
pub(crate) async fn update(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(code): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form: HashMap<String, String> = form.into_iter().collect();
    if let Err(r) = ctx.check_csrf(form.get("csrf").map_or("", |s| s)) {
        return r;
    }
    let existing = match load(&st, &ctx, &code).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // The code is fixed once created (URLs and scripts use it): a form that names another code
    // is refused with an error on the code.
    let saved = match document_of(&form).validate_update(&existing) {
        Ok(source) => match st
            .engine
            .update_source(&ctx.who.actor, &existing, &source)
            .await
        {
            Ok(_) => Ok(()),
            Err(SaveError::Invalid(errs)) => Err(field_errs(&errs)),
            Err(SaveError::Store(e)) => return store_failed(&ctx, &e),
        },
        Err(errs) => Err(field_errs(&errs)),
    };
    match saved {
        Ok(()) => see_other(&format!("/sources/{code}?notice=saved")),
        Err(errs) => {
            return edit_page(
                &st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &existing,
                &FormState::from_submission(&form, Some(&existing)),
                Some(&errs),
                None,
                None,
            )
            .await;
        }
    }
}

/// The Test Connection form.
#[derive(Debug, Deserialize)]
pub(crate) struct TestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    skip_probe: Option<String>,
}

/// `POST /sources/{code}/test`: runs the staged test (the same function as `dci source test`)
/// and shows the page with each stage's result.
pub(crate) async fn test(
    State(st): State<AppState>,
    ConsoleOperator(ctx): ConsoleOperator,
    Path(code): Path<String>,
    Form(form): Form<TestForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    let source = match load(&st, &ctx, &code).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let report = match st
        .engine
        .test_connection(
            &source.code,
            TestOptions {
                probe_search: form.skip_probe.is_none(),
            },
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return view::message_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Cannot test",
                Some(&ctx),
                &format!("The data source's settings cannot make a client: {e}"),
            );
        }
    };
    // Show the state the test recorded.
    let source = match load(&st, &ctx, &code).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    edit_page(
        &st,
        &ctx,
        StatusCode::OK,
        &source,
        &FormState::from_source(&source),
        None,
        Some(&report),
        None,
    )
    .await
}

/// `POST /sources/{code}/clear-token`.
pub(crate) async fn clear_token(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(code): Path<String>,
    Form(form): Form<TestForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    let source = match load(&st, &ctx, &code).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = match st.engine.client(&source.code).await {
        Ok(c) => c.clear_token_cache().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => see_other(&format!("/sources/{code}?notice=token-cleared")),
        Err(e) => view::message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Token cache not cleared",
            Some(&ctx),
            &e,
        ),
    }
}

/// `GET /sources/{code}/delete`: what deleting removes, and a button that does it.
pub(crate) async fn delete_confirm(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(code): Path<String>,
) -> Response {
    let source = match load(&st, &ctx, &code).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    delete_confirmation(&ctx, &source)
}

fn delete_confirmation(ctx: &Ctx, source: &DataSource) -> Response {
    let code = &source.code;
    view::confirm_page(
        ctx,
        "sources",
        &["DCI", "Configuration", "Data Sources", code, "Delete"],
        &format!("Delete data source {code}?"),
        html! {
            p { (source.name) " (" code { (code) } ", " (source.registry_type.as_str()) ", " (source.base_url) ")" }
            p { "Its settings, stored secrets and cached token are deleted; it can no longer be searched, and callbacks for it are refused. Requests already recorded stay in the transactions and the audit log. This cannot be undone." }
            p { "To stop calling it but keep its settings, untick " strong { "Enabled" } " and save instead." }
        },
        &format!("/sources/{code}/delete"),
        "Delete the data source",
        &format!("/sources/{code}"),
    )
}

/// `POST /sources/{code}/delete`: deletes when confirmed; otherwise shows the confirmation.
pub(crate) async fn delete(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(code): Path<String>,
    Form(form): Form<view::ConfirmForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    let source = match load(&st, &ctx, &code).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !form.is_confirmed() {
        return delete_confirmation(&ctx, &source);
    }
    match st.engine.delete_source(&ctx.who.actor, &code).await {
        Ok(()) => see_other("/sources?notice=deleted"),
        Err(e) => store_failed(&ctx, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_other_fields_by_their_labels() {
        let m = labelled("is required with callback_uri: set the id it sends in header.sender_id");
        assert_eq!(
            m,
            "is required with Callback URI: set the id it sends in header.sender_id"
        );
    }

    #[test]
    fn pems_split_after_each_end_line() {
        let two = "-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----\n\n-----BEGIN PUBLIC KEY-----\nBBB\n-----END PUBLIC KEY-----";
        let v = split_pems(two);
        assert_eq!(v.len(), 2);
        assert!(v[1].contains("BBB"));
        assert!(split_pems("  \n").is_empty());
    }

    #[test]
    fn only_the_chosen_auth_types_fields_are_read() {
        let form: HashMap<String, String> = [
            ("auth", "bearer"),
            ("bearer_token", "tok"),
            ("client_id", "should-be-ignored"),
            ("client_secret", "ignored-too"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let d = document_of(&form);
        assert!(d.auth.bearer_token.is_some());
        assert!(d.auth.client_id.is_none() && d.auth.client_secret.is_none());
    }

    #[test]
    fn every_form_field_has_a_document_path_and_every_path_a_field() {
        for spec in all_fields() {
            assert!(SourceDocument::is_field(spec.path), "{}", spec.path);
        }
        for path in SourceDocument::TEXT_FIELDS
            .iter()
            .chain(SourceDocument::SECRET_FIELDS)
            .chain(SourceDocument::OTHER_FIELDS)
        {
            assert!(
                all_fields().any(|f| f.path == *path),
                "no form field for {path}"
            );
        }
    }
}
