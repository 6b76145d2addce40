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
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
header.top{background:#243b53;color:#fff;display:flex;align-items:center;gap:1.5rem;padding:.6rem 1.2rem}
header.top a{color:#d9e2ec;text-decoration:none}
header.top a[aria-current=page]{color:#fff;font-weight:600;border-bottom:2px solid #f0b429}
header.top .brand{font-weight:700;color:#fff;margin-right:1rem}
header.top nav{display:flex;gap:1.1rem;flex:1}
header.top form{margin:0}
header.top .who{color:#bcccdc;font-size:.85rem}
main{max-width:1100px;margin:1.2rem auto;padding:0 1.2rem}
.crumbs{color:#627d98;font-size:.9rem;margin-bottom:.3rem}
h1{margin:.2rem 0 1rem;font-size:1.5rem}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{background:#f0f4f8;font-weight:600;font-size:.85rem}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-size:.8rem;font-weight:600}
.b-draft{background:#e4e7eb;color:#3e4c59}.b-testing{background:#fff3c4;color:#8d2b0b}
.b-active,.b-pass,.b-succ,.b-completed,.b-ok{background:#c6f7e2;color:#014d40}
.b-error,.b-fail,.b-rjct,.b-failed,.b-revoked{background:#ffe3e3;color:#8a041a}
.b-warn,.b-timed_out,.b-partial{background:#fff3c4;color:#8d2b0b}
.b-skipped,.b-inactive,.b-pending,.b-acknowledged{background:#e4e7eb;color:#3e4c59}
fieldset{border:1px solid #d9e2ec;background:#fff;margin:0 0 1rem;padding:.8rem 1rem}
legend{font-weight:600;padding:0 .3rem}
.field{margin:.45rem 0;display:grid;grid-template-columns:14rem 1fr;gap:.2rem 1rem;align-items:start}
.field label{font-weight:500;padding-top:.3rem}
.field .hint{grid-column:2;color:#627d98;font-size:.82rem}
.field .err{grid-column:2;color:#ab091e;font-size:.85rem;font-weight:500}
input[type=text],input[type=password],input[type=url],input[type=number],input[type=date],select,textarea{width:100%;padding:.35rem .5rem;border:1px solid #9fb3c8;border-radius:3px;font:inherit;background:#fff}
input[aria-invalid=true],select[aria-invalid=true],textarea[aria-invalid=true]{border-color:#ab091e;outline:1px solid #ab091e}
button,.button{background:#2680c2;color:#fff;border:0;border-radius:3px;padding:.45rem .9rem;font:inherit;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#627d98}button.danger{background:#ab091e}
header.top button{background:transparent;border:1px solid #829ab1;padding:.2rem .6rem}
.actions{display:flex;gap:.6rem;flex-wrap:wrap;margin:1rem 0}
.actions form{margin:0}
.error-summary{background:#ffe3e3;border-left:4px solid #ab091e;padding:.6rem 1rem;margin:0 0 1rem}
.notice{background:#e3f8ff;border-left:4px solid #2680c2;padding:.6rem 1rem;margin:0 0 1rem}
.panel{background:#fff;border:1px solid #d9e2ec;padding:.8rem 1rem;margin:0 0 1rem}
.filters{display:flex;gap:1rem;align-items:end;margin:0 0 1rem;flex-wrap:wrap}
.filters label{display:block;font-size:.85rem;font-weight:500}
.filters select{width:auto}
pre{white-space:pre-wrap;word-break:break-all;font-size:.8rem;background:#f0f4f8;padding:.4rem;margin:0}
dl.record{display:grid;grid-template-columns:12rem 1fr;gap:.1rem 1rem;margin:0}
dl.record dt{font-weight:600;color:#486581}dl.record dd{margin:0}
.muted{color:#829ab1}
.field input[type=checkbox],.field input[type=radio]{justify-self:start;margin-top:.45rem}
"#;

/// The only script: hides the auth fieldsets of the types not chosen. Without it every auth
/// fieldset shows and the server ignores the ones that do not apply.
const SCRIPT: &str = r#"(function(){
  var sel=document.getElementById('f-auth');
  if(!sel)return;
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
    ("log", "/log", "Audit log"),
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
                        span.who { "signed in: " (ctx.role.as_str()) }
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
            div.error-summary role="alert" { (message) }
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
