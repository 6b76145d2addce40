//! The console's layout and HTML helpers. maud escapes every interpolated value, so data from
//! registries or users cannot inject markup.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::session::{CSRF_FIELD, Ctx};

const CSS: &str = r#"
*{box-sizing:border-box}
html{scroll-padding-bottom:6rem}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
a{color:#1d5f94}
header.top{background:#243b53;color:#fff;display:flex;flex-wrap:wrap;align-items:center;gap:.4rem 1.5rem;padding:.6rem 1.2rem}
header.top a{color:#d9e2ec;text-decoration:none}
header.top a:hover{text-decoration:underline}
header.top a[aria-current=page]{color:#fff;font-weight:600;border-bottom:2px solid #f0b429}
header.top .brand{font-weight:700;color:#fff;margin-right:1rem}
header.top nav{display:flex;flex-wrap:wrap;gap:.3rem 1.1rem;flex:1}
header.top form{margin:0}
header.top .who{color:#bcccdc;font-size:.85rem}
main{max-width:1100px;margin:1.2rem auto;padding:0 1.2rem}
.crumbs{color:#486581;font-size:.9rem;margin-bottom:.3rem}
h1{margin:.2rem 0 1rem;font-size:1.5rem;overflow-wrap:anywhere}
h2{font-size:1.2rem}
.scroll{overflow-x:auto;max-width:100%;margin:0 0 1rem;position:relative}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #e4e7eb;vertical-align:top;overflow-wrap:break-word}
td.wrap{overflow-wrap:anywhere;min-width:8rem}
th{background:#f0f4f8;font-weight:600;font-size:.85rem}
code{overflow-wrap:anywhere}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-size:.8rem;font-weight:600}
.b-draft{background:#e4e7eb;color:#3e4c59}.b-testing{background:#fff3c4;color:#8d2b0b}
.b-active,.b-pass,.b-succ,.b-completed,.b-ok,.b-running{background:#c6f7e2;color:#014d40}
.b-error,.b-fail,.b-rjct,.b-failed,.b-revoked,.b-missed{background:#ffe3e3;color:#8a041a}
.b-warn,.b-timed_out,.b-partial{background:#fff3c4;color:#8d2b0b}
.b-skipped,.b-cancelled,.b-inactive,.b-pending,.b-acknowledged,.b-unknown{background:#e4e7eb;color:#3e4c59}
fieldset{border:1px solid #d9e2ec;background:#fff;margin:0 0 1rem;padding:.8rem 1rem;min-width:0}
legend{font-weight:600;padding:0 .3rem}
.field{margin:.45rem 0;display:grid;grid-template-columns:14rem minmax(0,1fr);gap:.2rem 1rem;align-items:start}
.field label,.field .label{font-weight:500;padding-top:.3rem}
.field .hint{grid-column:2;color:#486581;font-size:.82rem}
.field .err{grid-column:2;color:#ab091e;font-size:.85rem;font-weight:500}
.field .value{padding-top:.3rem;overflow-wrap:anywhere;white-space:pre-wrap}
p,li,dd,.hint,.err,.notice,.error-summary,legend,label{overflow-wrap:anywhere}
.req{color:#ab091e;font-weight:700}
input[type=text],input[type=password],input[type=url],input[type=number],input[type=date],select,textarea{width:100%;padding:.35rem .5rem;border:1px solid #66788a;border-radius:3px;font:inherit;background:#fff;color:#1f2933}
input[aria-invalid=true],select[aria-invalid=true],textarea[aria-invalid=true]{border:2px solid #ab091e}
button,.button{background:#1d5f94;color:#fff;border:0;border-radius:3px;padding:.45rem .9rem;font:inherit;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary,.button.secondary{background:#486581}button.danger,.button.danger{background:#ab091e}
header.top button{background:transparent;border:1px solid #bcccdc;padding:.2rem .6rem}
:focus-visible,input:focus,select:focus,textarea:focus,button:focus{outline:3px solid #0b4f8a;outline-offset:2px}
input[aria-invalid=true]:focus,select[aria-invalid=true]:focus,textarea[aria-invalid=true]:focus{outline:3px solid #0b4f8a;outline-offset:2px}
header.top :focus-visible,header.top button:focus{outline-color:#f0b429}
.error-summary:focus{outline:3px solid #0b4f8a;outline-offset:2px}
.actions{display:flex;gap:.6rem;flex-wrap:wrap;margin:1rem 0;align-items:center}
.actions form{margin:0}
.actions.sticky{position:sticky;bottom:0;z-index:2;background:#fff;border-top:2px solid #d9e2ec;padding:.6rem 1rem;margin:0;box-shadow:0 -2px 6px rgba(0,0,0,.08)}
.error-summary{background:#ffe3e3;border-left:4px solid #ab091e;padding:.6rem 1rem;margin:0 0 1rem}
.error-summary ul{margin:.3rem 0 0;padding-left:1.2rem}
.error-summary a{color:#8a041a;font-weight:600}
.notice{background:#e3f8ff;border-left:4px solid #1d5f94;padding:.6rem 1rem;margin:0 0 1rem}
.panel{background:#fff;border:1px solid #d9e2ec;padding:.8rem 1rem;margin:0 0 1rem}
.filters{display:flex;gap:1rem;align-items:end;margin:0 0 1rem;flex-wrap:wrap}
.filters label{display:block;font-size:.85rem;font-weight:500}
.filters select{width:auto;max-width:100%}
pre{white-space:pre-wrap;word-break:break-all;font-size:.8rem;background:#f0f4f8;padding:.4rem;margin:0}
dl.record{display:grid;grid-template-columns:12rem minmax(0,1fr);gap:.1rem 1rem;margin:0}
dl.record dt{font-weight:600;color:#486581}dl.record dd{margin:0;overflow-wrap:anywhere}
.record h3,.record h4{margin:0 0 .4rem;font-size:1rem}
.muted{color:#52606d}
.visually-hidden{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.field input[type=checkbox],.field input[type=radio]{justify-self:start;margin-top:.45rem}
details summary{cursor:pointer}
@media (max-width:700px){
 main{padding:0 .6rem}
 .field{grid-template-columns:minmax(0,1fr)}
 .field .hint,.field .err{grid-column:1}
 dl.record{grid-template-columns:minmax(0,1fr)}
 dl.record dd{margin-bottom:.3rem}
 header.top{padding:.5rem .6rem}
}
"#;

/// The only script: moves the focus to the error summary after a failed submit (or to the
/// results after a search), and hides the
/// auth fieldsets of the types not chosen. Without it every auth fieldset shows and the server
/// ignores the ones that do not apply.
const SCRIPT: &str = r#"(function(){
  var summary=document.querySelector('.error-summary[tabindex]');
  if(summary){summary.focus();return;}
  var results=document.getElementById('results-h');
  if(results)results.focus();
})();
(function(){
  var sel=document.getElementById('f-auth');
  if(!sel||sel.tagName!=='SELECT')return;
  function sync(){
    document.querySelectorAll('[data-auth]').forEach(function(el){
      el.hidden = el.getAttribute('data-auth')!==sel.value;
    });
  }
  sel.addEventListener('change',sync);sync();
})();"#;

/// htmx, vendored (see `static/README.md`): lets Test Connection update its panel in place.
const HTMX: &str = include_str!("../../static/htmx-2.0.11.min.js");

/// `GET /static/htmx.min.js`.
pub(crate) async fn htmx() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        HTMX,
    )
        .into_response()
}

/// `GET /console.js`.
pub(crate) async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

const NAV: &[(&str, &str, &str)] = &[
    ("sources", "/sources", "Data Sources"),
    ("search", "/search", "Search"),
    ("transactions", "/transactions", "Transactions"),
    ("jobs", "/jobs", "Jobs"),
    ("events", "/events", "Events"),
    ("webhooks", "/webhooks", "Webhooks"),
    ("log", "/log", "Audit log"),
    ("changes", "/changes", "Changes"),
    ("keys", "/keys", "Signing keys"),
];

/// A whole page. `nav` names the active menu entry.
pub(crate) fn page(
    status: StatusCode,
    title: &str,
    ctx: Option<&Ctx>,
    nav: &str,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · DCI console" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.top {
                    span.brand { "DCI" }
                    @if let Some(ctx) = ctx {
                        nav aria-label="Main" {
                            @for (key, href, label) in NAV {
                                a href=(href) aria-current=[(*key == nav).then_some("page")] { (label) }
                            }
                        }
                        span.who { "signed in: " (ctx.label) }
                        form method="post" action="/logout" {
                            input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
                script src="/static/htmx.min.js" defer {}
                script src="/console.js" defer {}
            }
        }
    };
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Pages show configuration and personal data from registries: never cache them.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

/// A page that only says something (errors, refusals).
pub(crate) fn message_page(
    status: StatusCode,
    title: &str,
    ctx: Option<&Ctx>,
    message: &str,
) -> Response {
    page(
        status,
        title,
        ctx,
        "",
        html! {
            h1 { (title) }
            div.error-summary role="alert" id="error-summary" tabindex="-1" { (message) }
            p { a href="/sources" { "Back to data sources" } }
        },
    )
}

/// A coloured badge; `class` picks the colour (`active`, `fail`, …).
pub(crate) fn badge(class: &str, text: &str) -> Markup {
    html! { span class={"badge b-" (class)} { (text) } }
}

/// RFC 3339 without sub-seconds, or `—`.
pub(crate) fn when(t: Option<OffsetDateTime>) -> String {
    match t {
        Some(t) => t
            .replace_nanosecond(0)
            .unwrap_or(t)
            .format(&Rfc3339)
            .unwrap_or_default(),
        None => "—".to_owned(),
    }
}

/// The hidden CSRF input of a form.
pub(crate) fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf); }
}

/// The breadcrumb line `DCI > Configuration > …`.
pub(crate) fn crumbs(parts: &[&str]) -> Markup {
    html! {
        nav.crumbs aria-label="Breadcrumb" {
            @for (i, p) in parts.iter().enumerate() {
                @if i > 0 { " › " }
                (p)
            }
        }
    }
}

/// A table that scrolls sideways inside its own focusable region when it is wider than the
/// screen, so the page itself never does.
pub(crate) fn scroll(label: &str, table: Markup) -> Markup {
    html! { div.scroll role="region" aria-label=(label) tabindex="0" { (table) } }
}

/// The mark of a required field (its label also says so to screen readers).
pub(crate) fn required_mark() -> Markup {
    html! { " " span.req aria-hidden="true" { "*" } span.visually-hidden { " (required)" } }
}

/// The form of a confirmation page's button (and of a button that asks first): the CSRF token
/// and `confirm=yes` when it comes from the confirmation page. One shape for every
/// delete/remove/revoke in the console.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    pub(crate) csrf: String,
    #[serde(default)]
    confirm: String,
}

impl ConfirmForm {
    /// Whether it was sent from the confirmation page.
    pub(crate) fn is_confirmed(&self) -> bool {
        self.confirm == "yes"
    }
}

/// A confirmation page: what will happen, a button that does it, and a way back.
#[allow(clippy::too_many_arguments)]
pub(crate) fn confirm_page(
    ctx: &Ctx,
    nav: &str,
    crumbs_parts: &[&str],
    title: &str,
    what: Markup,
    action: &str,
    button: &str,
    back: &str,
) -> Response {
    page(
        StatusCode::OK,
        title,
        Some(ctx),
        nav,
        html! {
            (crumbs(crumbs_parts))
            h1 { (title) }
            div.panel { (what) }
            div.actions {
                form method="post" action=(action) {
                    (csrf(ctx))
                    input type="hidden" name="confirm" value="yes";
                    button.danger type="submit" id="confirm" { (button) }
                }
                a.button.secondary href=(back) id="cancel" { "Cancel" }
            }
        },
    )
}

/// A page that failed on the server (the store): logs it and says so.
pub(crate) fn failed(ctx: &Ctx, e: &str) -> Response {
    tracing::error!(error = %e, "console page failed");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something failed",
        Some(ctx),
        e,
    )
}
