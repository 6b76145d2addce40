//! End-to-end test of the console in a real headless Chromium, driven over WebDriver
//! (chromedriver): sign in, fail a submit (focus on the error summary, focus visible on the
//! invalid field), create an OAuth2 data source pointing at the sandbox, save, click Test
//! Connection and see Active, search every registry type and see its typed record, follow an
//! async search to its transaction page, see a notification's content, delete a source and
//! revoke a key through their confirmation pages, view a source read-only; then save a wrong
//! secret, test again and see the failing stage with its message once.
//!
//! Every page is checked at 1366 px and at 390 px wide: axe-core (vendored in
//! `tests/assets/axe-core/`, see its README) reports no WCAG 2.1 A/AA violation, and the page
//! does not scroll sideways (`scrollWidth <= innerWidth`). A screenshot of each page at each
//! width is written to `target/screenshots/` (the path is printed).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them; override the paths
//! with `DCI_CHROMIUM` / `DCI_CHROMEDRIVER`). Without a browser the test prints why and passes
//! — unless `CI` is set, where a missing browser fails it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dci_client::{MasterKey, OpsStore, SourceDocument, SourceState, Store};
use dci_protocol::RegistryType;
use dci_server::console::{ConsoleConfig, router_with};
use dci_server::{AdminToken, AppState};
use dci_store::SqliteStore;
use fantoccini::{Client, ClientBuilder, Locator};
use secrecy::SecretString;
use serde_json::json;

const ADMIN: &str = "browser-admin-token-0123456789";
const READONLY: &str = "browser-readonly-token-987654";

/// axe-core 4.14.1 (`axe.min.js` of the npm package, MPL-2.0): see `tests/assets/axe-core/README.md`.
const AXE: &str = include_str!("assets/axe-core/axe.min.js");

/// The widths every page must work at: a common laptop and a small phone.
const WIDTHS: [(u32, u32); 2] = [(1366, 900), (390, 844)];

fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    p.exists().then_some(p)
}

/// chromedriver, killed (by its own pid) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(path: &PathBuf) -> Driver {
    let port = {
        let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Readiness, not timing: poll /status until it answers (bounded so a broken driver fails).
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
            && r.status().is_success()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

async fn browser(driver: &Driver, chromium: &PathBuf, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1800",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .expect("TLS roots for the WebDriver client")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

async fn fill(c: &Client, id: &str, text: &str) {
    let e = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"));
    c.execute(
        "arguments[0].scrollIntoView({block: 'center'});",
        vec![serde_json::to_value(&e).unwrap()],
    )
    .await
    .unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// Clicks an element after scrolling it to the middle of the window, as a person would
/// (WebDriver only scrolls it barely into view, which may leave it under the sticky actions).
async fn click(c: &Client, id: &str) {
    let e = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"));
    c.execute(
        "arguments[0].scrollIntoView({block: 'center'});",
        vec![serde_json::to_value(&e).unwrap()],
    )
    .await
    .unwrap();
    e.click().await.unwrap();
}

/// htmx is loaded with `defer`: a click before it has run submits the plain form (the
/// no-JavaScript path, which navigates), so wait for it before testing the in-place swap.
async fn wait_for_htmx(c: &Client) {
    for _ in 0..100 {
        let ready = c
            .execute(
                "return document.readyState === 'complete' && typeof window.htmx !== 'undefined';",
                vec![],
            )
            .await
            .unwrap();
        if ready.as_bool() == Some(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("htmx did not load within 10 s");
}

/// Where screenshots go: `target/screenshots/` of the workspace (or `CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the checks of every page found; the test fails at the end listing all of it.
#[derive(Default)]
struct Audit {
    problems: Vec<String>,
    pages: Vec<String>,
}

/// Runs axe-core's WCAG 2.1 A/AA rules on the current page; the violations, one line each.
async fn axe_violations(c: &Client) -> Vec<String> {
    // WebDriver scripts run outside the page's CSP, so the vendored file is evaluated as is.
    c.execute(&format!("{AXE}\n;return typeof window.axe;"), vec![])
        .await
        .expect("axe-core loads");
    let out = c
        .execute_async(
            r#"var done = arguments[arguments.length - 1];
            axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                               resultTypes: ['violations']})
              .then(function (r) {
                done(r.violations.map(function (v) {
                  return v.id + ' (' + v.impact + '): ' + v.help + ' — ' + v.nodes.map(function (n) {
                    return n.target.join(' ') + ' [' + (n.failureSummary || '').replace(/\s+/g, ' ') + ']';
                  }).join('; ');
                }));
              })
              .catch(function (e) { done(['axe failed: ' + e]); });"#,
            vec![],
        )
        .await
        .expect("axe-core runs");
    out.as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the current page at every width (axe-core, no sideways scrolling) and writes a
/// screenshot of it at each width.
async fn check_page(c: &Client, name: &str, audit: &mut Audit) {
    for (w, h) in WIDTHS {
        c.set_window_size(w, h).await.unwrap();
        let dims = c
            .execute(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
                vec![],
            )
            .await
            .unwrap();
        // The viewport without its scrollbar: content wider than it scrolls sideways.
        let scroll = dims[0].as_u64().unwrap_or(u64::MAX);
        let viewport = dims[1].as_u64().unwrap_or(0);
        if scroll > viewport {
            // Name the outermost elements sticking out (not those inside a scrolling region).
            let culprits = c
                .execute(
                    r#"var vw = document.documentElement.clientWidth, out = [];
                    function clipped(e) {
                      for (var p = e.parentElement; p; p = p.parentElement) {
                        var o = getComputedStyle(p).overflowX;
                        if (o === 'auto' || o === 'scroll' || o === 'hidden') return true;
                      }
                      return false;
                    }
                    document.querySelectorAll('body *').forEach(function (e) {
                      var r = e.getBoundingClientRect(), p = e.parentElement;
                      if (r.right > vw + 1 && !clipped(e) && !(p && p.getBoundingClientRect().right > vw + 1))
                        out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '') + ' to ' + Math.round(r.right) + ' px');
                    });
                    return out.slice(0, 5).join(', ');"#,
                    vec![],
                )
                .await
                .unwrap();
            audit.problems.push(format!(
                "{name} at {w} px: the page is {scroll} px wide (viewport {viewport} px): {}",
                culprits.as_str().unwrap_or("")
            ));
        }
        for v in axe_violations(c).await {
            audit.problems.push(format!("{name} at {w} px: {v}"));
        }
        // The whole page in the screenshot: the window as tall as the page (bounded).
        let height = c
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(h)
            .clamp(h, 8000);
        c.set_window_size(w, height).await.unwrap();
        let path = screenshot_dir().join(format!("console-{name}-{w}.png"));
        std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
        audit.pages.push(path.display().to_string());
    }
    c.set_window_size(WIDTHS[0].0, WIDTHS[0].1).await.unwrap();
}

async fn shot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    let path = screenshot_dir().join(format!("console-{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

/// The id of the focused element.
async fn focused_id(c: &Client) -> String {
    c.execute(
        "return document.activeElement ? document.activeElement.id : '';",
        vec![],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or("")
    .to_owned()
}

/// The focused element's outline as `style width` (e.g. `solid 3px`).
async fn focused_outline(c: &Client) -> String {
    c.execute(
        "var s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth;",
        vec![],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or("")
    .to_owned()
}

/// Waits until the page's deferred scripts ran.
async fn wait_loaded(c: &Client) {
    for _ in 0..100 {
        let ready = c
            .execute("return document.readyState === 'complete';", vec![])
            .await
            .unwrap();
        if ready.as_bool() == Some(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page did not finish loading within 5 s");
}

/// An active OAuth2 source of `registry` on the sandbox, stored directly (the form is tested
/// with the CRVS one).
async fn stored_source(
    store: &Arc<dyn Store>,
    sb: &dci_sandbox::Sandbox,
    code: &str,
    registry: RegistryType,
    callback: Option<(String, String)>,
) {
    let mut d = SourceDocument::default();
    let text = [
        ("code", code.to_owned()),
        (
            "name",
            format!("Sandbox {}", registry.as_str().to_uppercase()),
        ),
        ("registry_type", registry.as_str().to_owned()),
        ("base_url", sb.registry_url(registry)),
        ("sender_id", "spmis.example.org".to_owned()),
        ("auth.token_url", sb.token_url()),
        ("auth.client_id", dci_sandbox::DEMO_CLIENT_ID.to_owned()),
    ];
    for (path, v) in text {
        assert!(d.set_text(path, Some(v)), "{path}");
    }
    d.auth.kind = Some("oauth2".into());
    if let Some((uri, receiver)) = callback {
        assert!(d.set_text("callback_uri", Some(uri)));
        assert!(d.set_text("receiver_id", Some(receiver)));
    }
    assert!(d.set_secret_at(
        "auth.client_secret",
        Some(SecretString::from(dci_sandbox::DEMO_CLIENT_SECRET))
    ));
    let s = d.validate().unwrap();
    store.create_data_source(&s).await.unwrap();
    store.set_state(code, SourceState::Active).await.unwrap();
}

/// Runs an identifier search of `source` from the search page and returns the results' text.
async fn search_by_id(
    c: &Client,
    base: &str,
    source: &str,
    id_type: &str,
    id_value: &str,
) -> String {
    c.goto(&format!("{base}/search")).await.unwrap();
    c.find(Locator::Id("s-source"))
        .await
        .unwrap()
        .select_by_value(source)
        .await
        .unwrap();
    c.find(Locator::Id("s-id-type"))
        .await
        .unwrap()
        .select_by_value(id_type)
        .await
        .unwrap();
    fill(c, "s-id-value", id_value).await;
    click(c, "run-search").await;
    c.wait().for_element(Locator::Id("results")).await.unwrap();
    c.find(Locator::Id("results"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let (Some(driver_path), Some(chromium)) = (
        tool("DCI_CHROMEDRIVER", "/usr/bin/chromedriver"),
        tool("DCI_CHROMIUM", "/usr/bin/chromium"),
    ) else {
        dci_protocol::test_support::skip(
            "no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install -y --no-install-recommends chromium chromium-driver)",
        );
        return;
    };

    let sb = dci_sandbox::spawn(dci_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([9u8; 32]);
    let s = Arc::new(
        SqliteStore::open_file(&dir.path().join("dci.sqlite3"), &key)
            .await
            .unwrap(),
    );
    let store: Arc<dyn Store> = s.clone();
    let ops: Arc<dyn OpsStore> = s;
    let state = AppState::with_config(
        store.clone(),
        ops.clone(),
        AdminToken::from_secret(&SecretString::from(ADMIN)),
        dci_server::ServerConfig {
            jobs_dir: Some(dir.path().join("jobs")),
            ..dci_server::ServerConfig::default()
        },
    );
    let server = dci_server::spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), state.clone())
        .await
        .unwrap();
    let base = server.base_url();
    // A second console on the same data that also knows a read-only token.
    let ro_listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let ro_base = format!("http://{}", ro_listener.local_addr().unwrap());
    let ro_app = router_with(ConsoleConfig {
        readonly_token: Some(SecretString::from(READONLY)),
        secure_cookies: false,
    })
    .with_state(state.clone());
    let ro_server = tokio::spawn(async move { axum::serve(ro_listener, ro_app).await });

    let driver = start_driver(&driver_path).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &chromium, profile.path()).await;
    let mut audit = Audit::default();

    // The audit itself works: axe-core sees a known violation (an image without text).
    c.goto("data:text/html,<!doctype html><html lang=en><title>t</title><main><img src=x.png></main></html>")
        .await
        .unwrap();
    let seen = axe_violations(&c).await;
    assert!(
        seen.iter().any(|v| v.starts_with("image-alt")),
        "axe-core reports a missing alt text: {seen:?}"
    );

    // Sign in.
    c.goto(&format!("{base}/sources")).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path().ends_with("/login"),
        "pages need a login"
    );
    check_page(&c, "login", &mut audit).await;
    fill(&c, "token", ADMIN).await;
    click(&c, "login").await;
    c.wait()
        .for_element(Locator::Id("new-source"))
        .await
        .unwrap();
    check_page(&c, "sources-empty", &mut audit).await;

    // DCI > Configuration > Data Sources > New: an OAuth2 source pointing at the sandbox.
    click(&c, "new-source").await;
    c.wait()
        .for_element(Locator::Id("source-form"))
        .await
        .unwrap();
    let form_html = c.source().await.unwrap();
    assert!(form_html.contains("DCI › Configuration › Data Sources"));
    assert!(
        form_html
            .contains(r#"<label for="f-name">Name <span class="req" aria-hidden="true">*</span>"#),
        "required fields are marked"
    );
    check_page(&c, "source-new", &mut audit).await;

    // A failed submit: the focus moves to the error summary, which names fields by label;
    // an invalid field shows its focus.
    fill(&c, "f-code", "Bad Code").await;
    fill(&c, "f-base_url", "crvs.example.org/api/").await;
    click(&c, "save").await;
    c.wait()
        .for_element(Locator::Id("error-summary"))
        .await
        .unwrap();
    wait_loaded(&c).await;
    assert_eq!(
        focused_id(&c).await,
        "error-summary",
        "the focus moves to the error summary"
    );
    let summary = c
        .find(Locator::Id("error-summary"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(summary.contains("Base URL"), "{summary}");
    assert!(!summary.contains("base_url"), "labels, not keys: {summary}");
    assert!(
        summary.contains("use https://crvs.example.org/api"),
        "a valid suggestion: {summary}"
    );
    assert_eq!(
        summary.matches("Base URL").count(),
        1,
        "one message per error: {summary}"
    );
    check_page(&c, "source-new-errors", &mut audit).await;
    click(&c, "f-base_url").await;
    let outline = focused_outline(&c).await;
    assert!(
        outline.starts_with("solid") && !outline.ends_with(" 0px"),
        "focus is visible on an invalid field: {outline}"
    );

    fill(&c, "f-code", "sandbox_crvs").await;
    fill(&c, "f-name", "Sandbox CRVS").await;
    c.find(Locator::Id("f-registry_type"))
        .await
        .unwrap()
        .select_by_value("crvs")
        .await
        .unwrap();
    fill(&c, "f-base_url", &sb.registry_url(RegistryType::Crvs)).await;
    fill(&c, "f-sender_id", "spmis.example.org").await;
    c.find(Locator::Id("f-auth"))
        .await
        .unwrap()
        .select_by_value("oauth2")
        .await
        .unwrap();
    // Only the chosen auth type's fields show (the script hides the others once it has run).
    c.wait()
        .for_element(Locator::Css(r#"fieldset[data-auth="bearer"][hidden]"#))
        .await
        .expect("the script hides the other auth types");
    assert!(
        c.find(Locator::Id("f-client_secret"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    assert!(
        !c.find(Locator::Id("f-bearer_token"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    fill(&c, "f-token_url", &sb.token_url()).await;
    fill(&c, "f-client_id", dci_sandbox::DEMO_CLIENT_ID).await;
    fill(&c, "f-client_secret", dci_sandbox::DEMO_CLIENT_SECRET).await;
    fill(&c, "f-scope", "crvs.read").await;
    // Save is on screen without scrolling (sticky actions), even at the top of a long form.
    c.execute("window.scrollTo(0, 0);", vec![]).await.unwrap();
    let save_visible = c
        .execute(
            "var r = document.getElementById('save').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        save_visible.as_bool(),
        Some(true),
        "Save is reachable without scrolling"
    );
    click(&c, "save").await;
    c.wait()
        .for_element(Locator::Id("test-connection"))
        .await
        .unwrap();
    let page = c.source().await.unwrap();
    assert!(page.contains("Data source created"));
    assert!(
        !page.contains(dci_sandbox::DEMO_CLIENT_SECRET),
        "the secret is write-only"
    );
    check_page(&c, "source-edit", &mut audit).await;

    // Test Connection: every stage shown, state Active.
    wait_for_htmx(&c).await;
    click(&c, "test-connection").await;
    c.wait()
        .for_element(Locator::Id("test-report"))
        .await
        .unwrap();
    // htmx swapped the panel in place: the address is still the form's.
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/sources/sandbox_crvs"
    );
    let state_text = c
        .find(Locator::Id("state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let active_shot = shot(&c, "test-active").await;
    assert_eq!(
        state_text.trim(),
        "active",
        "screenshot: {}",
        active_shot.display()
    );
    let token_stage = c
        .find(Locator::Css(r#"tr[data-stage="token"]"#))
        .await
        .unwrap()
        .attr("data-status")
        .await
        .unwrap();
    assert_eq!(token_stage.as_deref(), Some("pass"));
    assert_eq!(
        store
            .get_data_source("sandbox_crvs")
            .await
            .unwrap()
            .unwrap()
            .state,
        SourceState::Active
    );
    check_page(&c, "source-test-passed", &mut audit).await;

    // The other registries (stored directly), and an async CRVS source whose callbacks reach
    // this server.
    for (code, rt) in [
        ("sandbox_dr", RegistryType::Dr),
        ("sandbox_ibr", RegistryType::Ibr),
        ("sandbox_sr", RegistryType::Social),
        ("sandbox_fr", RegistryType::Fr),
    ] {
        stored_source(&store, &sb, code, rt, None).await;
    }
    stored_source(
        &store,
        &sb,
        "async_crvs",
        RegistryType::Crvs,
        Some((
            format!("{base}/callback/async_crvs"),
            sb.registry_id().to_owned(),
        )),
    )
    .await;
    c.goto(&format!("{base}/sources")).await.unwrap();
    check_page(&c, "sources", &mut audit).await;

    // Search: the page preselects an active source; each registry's record is typed.
    c.goto(&format!("{base}/search")).await.unwrap();
    check_page(&c, "search", &mut audit).await;
    let examples = sb.examples();
    let ex = examples[&RegistryType::Crvs].found[0].clone();
    let text = search_by_id(&c, &base, "sandbox_crvs", &ex.id_type, &ex.id_value).await;
    let count = c
        .find(Locator::Id("record-count"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    wait_loaded(&c).await;
    assert_eq!(
        focused_id(&c).await,
        "results-h",
        "the focus moves to the results"
    );
    let search_shot = shot(&c, "search-crvs-results").await;
    assert_eq!(count.trim(), "1", "screenshot: {}", search_shot.display());
    assert!(text.contains(&ex.id_value));
    assert!(text.contains("Marital status"), "{text}");
    assert!(
        c.find(Locator::Css(r#"article[data-kind="person"]"#))
            .await
            .is_ok(),
        "a CRVS record is shown as a person"
    );
    check_page(&c, "search-crvs", &mut audit).await;
    for (code, rt, kind, label) in [
        (
            "sandbox_dr",
            RegistryType::Dr,
            "disability",
            "Counts as disabled",
        ),
        (
            "sandbox_ibr",
            RegistryType::Ibr,
            "beneficiary",
            "Enrolments",
        ),
        ("sandbox_sr", RegistryType::Social, "group", "Members"),
        ("sandbox_fr", RegistryType::Fr, "farmer", "Farm type"),
    ] {
        let ex = examples[&rt].found[0].clone();
        let text = search_by_id(&c, &base, code, &ex.id_type, &ex.id_value).await;
        assert!(text.contains(label), "{code}: {text}");
        assert!(
            c.find(Locator::Css(&format!(r#"article[data-kind="{kind}"]"#)))
                .await
                .is_ok(),
            "{code}: a {kind} view"
        );
        check_page(&c, &format!("search-{}", rt.as_str()), &mut audit).await;
    }

    // An async search and a subscription with a notification: the transaction page, the
    // notification's content.
    let aops = state.operations("async_crvs").await.unwrap();
    let spec =
        dci_client::ops::SearchSpec::by_id(&format!("{}:{}", ex.id_type, ex.id_value)).unwrap();
    let sub = aops
        .submit_search_async(&dci_client::ops::SearchQuery::one(spec))
        .await
        .unwrap();
    let view = aops
        .await_transaction(&sub.transaction_id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(view.state.as_str(), "completed");
    let crvs = dci_client::CrvsClient::new(aops.clone()).unwrap();
    let subscribed = crvs
        .subscribe(&[dci_client::registries::VitalEventKind::Birth])
        .await;
    assert!(subscribed[0].result.is_ok(), "{:?}", subscribed[0].result);
    let mut sub_code = None;
    for _ in 0..200 {
        sub_code = dci_client::ops::list_subscriptions(ops.as_ref(), Some("async_crvs"))
            .await
            .unwrap()
            .into_iter()
            .next()
            .map(|s| s.code);
        if sub_code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sub_code = sub_code.expect("the subscription code arrives");
    assert_eq!(sb.notify(RegistryType::Crvs, Some(&sub_code)).await, 1);
    for _ in 0..200 {
        let n = dci_client::ops::list_notifications(ops.as_ref(), Some("async_crvs"), 5)
            .await
            .unwrap();
        if !n.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.goto(&format!("{base}/transactions")).await.unwrap();
    c.find(Locator::Css("section.notification details.events summary"))
        .await
        .expect("a notification's events fold open")
        .click()
        .await
        .unwrap();
    let notes = c
        .find(Locator::Css("section.notification"))
        .await
        .expect("a notification is listed")
        .text()
        .await
        .unwrap();
    assert!(notes.contains("Person 1"), "its records are shown: {notes}");
    check_page(&c, "transactions", &mut audit).await;
    c.find(Locator::Css(&format!(
        r#"a[href="/transactions/{}"]"#,
        sub.transaction_id
    )))
    .await
    .expect("transaction ids are links")
    .click()
    .await
    .unwrap();
    c.wait().for_element(Locator::Id("txn")).await.unwrap();
    let detail = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains("Acknowledgement") && detail.contains("on-search"),
        "{detail}"
    );
    assert_eq!(
        c.find(Locator::Id("txn-record-count"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .trim(),
        "1"
    );
    check_page(&c, "transaction", &mut audit).await;

    c.goto(&format!("{base}/log")).await.unwrap();
    check_page(&c, "log", &mut audit).await;

    // The change audit: the source created above, by the admin token, fields by name.
    c.goto(&format!("{base}/changes")).await.unwrap();
    let changes = c
        .find(Locator::Id("changes"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        changes.contains("admin-token") && changes.contains("sandbox_crvs"),
        "{changes}"
    );
    check_page(&c, "changes", &mut audit).await;
    // Jobs: upload a CSV for a background bulk search; it completes; its results download.
    let upload = dir.path().join("caseload.csv");
    let mut csv = String::from("id_type,id_value\n");
    for e in sb.identifiers(RegistryType::Crvs, 0, 5) {
        csv.push_str(&format!("{},{}\n", e.id_type, e.id_value));
    }
    std::fs::write(&upload, csv).unwrap();
    c.goto(&format!("{base}/jobs")).await.unwrap();
    c.find(Locator::Id("j-source"))
        .await
        .expect("the upload form")
        .select_by_value("sandbox_crvs")
        .await
        .unwrap();
    c.find(Locator::Id("j-format"))
        .await
        .unwrap()
        .select_by_value("csv")
        .await
        .unwrap();
    c.find(Locator::Id("j-file"))
        .await
        .unwrap()
        .send_keys(&upload.display().to_string())
        .await
        .unwrap();
    click(&c, "start-job").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    let job = ops.list_bulk_jobs(1).await.unwrap().remove(0);
    let mut table = String::new();
    for _ in 0..400 {
        c.goto(&format!("{base}/jobs")).await.unwrap();
        table = c
            .find(Locator::Id("jobs"))
            .await
            .expect("the job is listed")
            .text()
            .await
            .unwrap();
        if table.contains("completed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        table.contains("completed") && table.contains("found 5"),
        "the job completes with its outcomes: {table}"
    );
    check_page(&c, "jobs", &mut audit).await;
    let href = format!("/jobs/{}/results", job.id);
    c.find(Locator::Css(&format!(r#"a[href="{href}"]"#)))
        .await
        .expect("a download link");
    let downloaded = c
        .execute_async(
            "var done = arguments[arguments.length - 1]; fetch(arguments[0]).then(function (r) { return r.text(); }).then(done);",
            vec![serde_json::Value::String(href)],
        )
        .await
        .unwrap();
    let answers: Vec<&str> = downloaded.as_str().unwrap().lines().collect();
    assert_eq!(answers.len(), 5, "{downloaded}");
    assert!(
        answers.iter().all(|a| a.contains("\"found\"")),
        "{downloaded}"
    );

    // Schedules: the add form refuses a bad cron expression beside its field and keeps what
    // was typed; fixed, the schedule is listed; removed through its confirmation page.
    c.goto(&format!("{base}/jobs")).await.unwrap();
    fill(&c, "s-name", "monthly death check").await;
    c.find(Locator::Id("s-source_code"))
        .await
        .expect("the schedule form")
        .select_by_value("sandbox_crvs")
        .await
        .unwrap();
    fill(&c, "s-cron", "every night").await;
    fill(&c, "s-input", &upload.display().to_string()).await;
    click(&c, "add-schedule").await;
    c.wait()
        .for_element(Locator::Id("s-cron-err"))
        .await
        .unwrap();
    wait_loaded(&c).await;
    assert_eq!(focused_id(&c).await, "error-summary");
    check_page(&c, "schedule-invalid", &mut audit).await;
    assert!(ops.list_schedules().await.unwrap().is_empty());
    fill(&c, "s-cron", "0 2 1 * *").await;
    click(&c, "add-schedule").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    let schedules = ops.list_schedules().await.unwrap();
    assert_eq!(schedules.len(), 1);
    assert_eq!(schedules[0].name, "monthly death check");
    check_page(&c, "jobs-schedules", &mut audit).await;
    c.goto(&format!("{base}/schedules/{}/remove", schedules[0].id))
        .await
        .unwrap();
    check_page(&c, "schedule-remove-confirm", &mut audit).await;
    click(&c, "confirm").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    assert!(ops.list_schedules().await.unwrap().is_empty());

    // Signing keys: generate one; the source form offers it as a choice; revoke it through
    // the confirmation page.
    c.goto(&format!("{base}/keys")).await.unwrap();
    fill(&c, "k-id", "spmis-2026-12").await;
    click(&c, "generate").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    check_page(&c, "keys", &mut audit).await;
    c.goto(&format!("{base}/sources/sandbox_crvs"))
        .await
        .unwrap();
    c.find(Locator::Id("f-signing_key_id"))
        .await
        .expect("the signing key is a choice")
        .select_by_value("spmis-2026-12")
        .await
        .unwrap();
    c.goto(&format!("{base}/keys/spmis-2026-12/revoke"))
        .await
        .unwrap();
    check_page(&c, "key-revoke-confirm", &mut audit).await;
    click(&c, "confirm").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    assert!(c.source().await.unwrap().contains(r#"b-revoked">revoked"#));

    // Events and webhooks: an event in the outbox, a webhook added through the form (its
    // secret shown once), the event's page with its delivery, redelivery, and removal through
    // the confirmation page.
    let event = ops
        .append_event(&dci_client::events::NewEvent::new(
            dci_client::events::EventKind::SourceStateChanged,
            serde_json::json!({ "source_code": "sandbox_crvs", "state": "active" }),
        ))
        .await
        .unwrap();
    c.goto(&format!("{base}/webhooks")).await.unwrap();
    check_page(&c, "webhooks-empty", &mut audit).await;
    fill(&c, "w-url", "http://127.0.0.1:9/dci-events").await;
    fill(&c, "w-description", "SPMIS inbox").await;
    click(&c, "add-webhook").await;
    c.wait()
        .for_element(Locator::Id("webhook-secret"))
        .await
        .unwrap();
    let shown = c
        .find(Locator::Id("webhook-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.trim().starts_with("whsec_"), "{shown}");
    check_page(&c, "webhook-added", &mut audit).await;
    let hooks = ops.list_webhooks().await.unwrap();
    assert_eq!(hooks.len(), 1);
    c.goto(&format!("{base}/webhooks")).await.unwrap();
    assert!(
        !c.source().await.unwrap().contains(shown.trim()),
        "the secret is shown once only"
    );
    check_page(&c, "webhooks", &mut audit).await;
    // An event after the endpoint exists is queued for it.
    let queued = ops
        .append_event(&dci_client::events::NewEvent::new(
            dci_client::events::EventKind::SourceStateChanged,
            serde_json::json!({ "source_code": "sandbox_crvs", "state": "error" }),
        ))
        .await
        .unwrap();
    c.goto(&format!("{base}/events")).await.unwrap();
    assert!(c.source().await.unwrap().contains(&event.id));
    check_page(&c, "events", &mut audit).await;
    c.goto(&format!("{base}/events/{}", queued.id))
        .await
        .unwrap();
    check_page(&c, "event", &mut audit).await;
    assert!(c.source().await.unwrap().contains(&hooks[0].id));
    c.goto(&format!("{base}/webhooks")).await.unwrap();
    fill(&c, "r-event", &event.id).await;
    click(&c, "redeliver").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    assert!(
        c.source()
            .await
            .unwrap()
            .contains("1 deliveries queued again")
    );
    c.goto(&format!("{base}/webhooks/{}/remove", hooks[0].id))
        .await
        .unwrap();
    check_page(&c, "webhook-remove-confirm", &mut audit).await;
    click(&c, "confirm").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    assert!(ops.list_webhooks().await.unwrap().is_empty());

    // Delete a source through its confirmation page.
    c.goto(&format!("{base}/sources/sandbox_fr")).await.unwrap();
    click(&c, "delete-source").await;
    c.wait().for_element(Locator::Id("confirm")).await.unwrap();
    check_page(&c, "source-delete-confirm", &mut audit).await;
    click(&c, "confirm").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    assert!(store.get_data_source("sandbox_fr").await.unwrap().is_none());

    // A wrong secret: Test Connection shows the failing stage and its message, once.
    c.goto(&format!("{base}/sources/sandbox_crvs"))
        .await
        .unwrap();
    fill(&c, "f-client_secret", "definitely-wrong-secret").await;
    click(&c, "save").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    wait_for_htmx(&c).await;
    click(&c, "test-connection").await;
    c.wait()
        .for_element(Locator::Id("test-report"))
        .await
        .unwrap();
    let failing = c
        .find(Locator::Css(
            r#"tr[data-stage="token"][data-status="fail"]"#,
        ))
        .await
        .expect("the token stage failed");
    let message = failing.text().await.unwrap();
    let fail_shot = shot(&c, "test-fail").await;
    assert!(
        message.to_lowercase().contains("client") || message.to_lowercase().contains("credential"),
        "the message says what to fix: {message} (screenshot {})",
        fail_shot.display()
    );
    assert_eq!(
        c.find(Locator::Id("state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .trim(),
        "error"
    );
    let status_text = c
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stage_message = message.lines().last().unwrap_or(&message).trim().to_owned();
    let key_phrase: String = stage_message.chars().take(40).collect();
    assert_eq!(
        status_text.matches(key_phrase.as_str()).count(),
        1,
        "the error shows once: {status_text}"
    );
    assert!(
        !c.source()
            .await
            .unwrap()
            .contains("definitely-wrong-secret")
    );
    check_page(&c, "source-test-failed", &mut audit).await;

    // Read-only: values, not inputs. Sessions live in the store, so the second console knows
    // the admin's session (cookies are per host, not per port): start afresh.
    c.delete_all_cookies().await.unwrap();
    c.goto(&format!("{ro_base}/login")).await.unwrap();
    fill(&c, "token", READONLY).await;
    click(&c, "login").await;
    c.wait().for_element(Locator::Css("table")).await.unwrap();
    c.goto(&format!("{ro_base}/sources/sandbox_crvs"))
        .await
        .unwrap();
    let inputs = c
        .execute(
            "return document.querySelectorAll('#source-form input:not([type=hidden]), #source-form select, #source-form textarea').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        inputs.as_u64(),
        Some(0),
        "a viewer sees no editable-looking inputs"
    );
    assert!(
        c.find(Locator::Id("f-token_url"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "a viewer sees the chosen auth type's settings"
    );
    check_page(&c, "source-readonly", &mut audit).await;
    c.goto(&format!("{ro_base}/search")).await.unwrap();
    c.wait()
        .for_element(Locator::Id("search-readonly"))
        .await
        .unwrap();
    check_page(&c, "search-readonly", &mut audit).await;

    c.close().await.unwrap();
    drop(driver);
    ro_server.abort();
    server.shutdown().await.unwrap();
    println!("screenshots:\n  {}", audit.pages.join("\n  "));
    assert!(
        audit.problems.is_empty(),
        "{} problem(s):\n{}",
        audit.problems.len(),
        audit.problems.join("\n")
    );
}
