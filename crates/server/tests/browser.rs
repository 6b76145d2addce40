//! End-to-end test of the console in a real headless Chromium, driven over WebDriver
//! (chromedriver): sign in, create an OAuth2 data source pointing at the sandbox, save, click
//! Test Connection and see Active, run a search and see a record; then save a wrong secret,
//! test again and see the failing stage with its message.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them; override the paths
//! with `DCI_CHROMIUM` / `DCI_CHROMEDRIVER`). Without a browser the test prints why and passes
//! — unless `CI` is set, where a missing browser fails it. Screenshots go to
//! `$TMPDIR/dci-console-*.png`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dci_client::{MasterKey, OpsStore, SourceState, Store};
use dci_protocol::RegistryType;
use dci_server::{AdminToken, AppState};
use dci_store::SqliteStore;
use fantoccini::{Client, ClientBuilder, Locator};
use secrecy::SecretString;
use serde_json::json;

const ADMIN: &str = "browser-admin-token-0123456789";

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
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap();
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

async fn shot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    let path = std::env::temp_dir().join(format!("dci-console-{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
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
    let state = AppState::new(
        store.clone(),
        ops,
        AdminToken::from_secret(&SecretString::from(ADMIN)),
    );
    let server = dci_server::spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), state)
        .await
        .unwrap();
    let base = server.base_url();

    let driver = start_driver(&driver_path).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, &chromium, profile.path()).await;

    // Sign in.
    c.goto(&format!("{base}/sources")).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path().ends_with("/login"),
        "pages need a login"
    );
    fill(&c, "token", ADMIN).await;
    click(&c, "login").await;
    c.wait()
        .for_element(Locator::Id("new-source"))
        .await
        .unwrap();

    // DCI > Configuration > Data Sources > New: an OAuth2 source pointing at the sandbox.
    click(&c, "new-source").await;
    c.wait()
        .for_element(Locator::Id("source-form"))
        .await
        .unwrap();
    assert!(
        c.source()
            .await
            .unwrap()
            .contains("DCI › Configuration › Data Sources")
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
    let state = c
        .find(Locator::Id("state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let active_shot = shot(&c, "test-active").await;
    assert_eq!(
        state.trim(),
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

    // Search by identifier and see the record.
    let ex = sb.examples()[&RegistryType::Crvs].found[0].clone();
    c.goto(&format!("{base}/search")).await.unwrap();
    c.find(Locator::Id("s-source"))
        .await
        .unwrap()
        .select_by_value("sandbox_crvs")
        .await
        .unwrap();
    fill(&c, "s-id-type", &ex.id_type).await;
    fill(&c, "s-id-value", &ex.id_value).await;
    click(&c, "run-search").await;
    c.wait().for_element(Locator::Id("results")).await.unwrap();
    let count = c
        .find(Locator::Id("record-count"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let search_shot = shot(&c, "search").await;
    assert_eq!(count.trim(), "1", "screenshot: {}", search_shot.display());
    assert!(
        c.find(Locator::Id("results"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains(&ex.id_value)
    );

    // A wrong secret: Test Connection shows the failing stage and its message.
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
    assert!(
        !c.source()
            .await
            .unwrap()
            .contains("definitely-wrong-secret")
    );

    c.close().await.unwrap();
    drop(driver);
    server.shutdown().await.unwrap();
}
