//! `dci-bench wakeup`: how long a wait on one `dci serve` takes to end once another `dci serve`
//! on the same PostgreSQL database stores the callback (see `bench/CLUSTER.md`).
//!
//! Two real `dci serve` processes (the `dci` binary beside this one) on a fresh schema; the
//! sandbox in this process, calling back to instance B only, `--callback-delay-ms` after its
//! ACK so that the wait on instance A has surely started. Each round is one async search on A
//! with `wait_secs`; measured per round: from B's receipt of the callback (`received_at`, B's
//! clock, the same host) to A's answer arriving here (B's checks and store writes, the notify,
//! A's wake-up and read, the HTTP answer), and from the sandbox sending it to A's answer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use dci_client::DataSourceInput;
use dci_protocol::RegistryType;
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TOKEN: &str = "bench-wakeup-admin-token-0123456789";
const CODE: &str = "crvs_wakeup";

#[derive(clap::Args)]
pub(crate) struct WakeupArgs {
    /// Waits measured.
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// Rounds before measuring (connections, token, JWKS).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// The PostgreSQL database (a schema of its own is created and dropped).
    #[arg(
        long,
        env = "DCI_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// The sandbox's delay between its ACK and the callback.
    #[arg(long, default_value_t = 150)]
    callback_delay_ms: u64,
    /// Where to write the results (Markdown).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// A `dci serve` child, killed when dropped.
struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(home: &std::path::Path, env: &[(&str, &str)]) -> Result<Serve> {
    let exe = std::env::current_exe()?
        .parent()
        .ok_or_else(|| anyhow!("the bench binary has no directory"))?
        .join("dci");
    let mut cmd = Command::new(&exe);
    cmd.args(["--json", "serve", "--listen", "127.0.0.1:0"])
        .env("DCI_HOME", home)
        .env("DCI_ADMIN_TOKEN", TOKEN)
        .env("DCI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "starting {} (build it: cargo build --release -p dci-cli)",
            exe.display()
        )
    })?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?)
        .read_line(&mut line)?;
    let banner: Value = serde_json::from_str(line.trim())
        .with_context(|| format!("dci serve printed no banner: {line:?}"))?;
    let base = banner["listening"]
        .as_str()
        .ok_or_else(|| anyhow!("no address in {banner}"))?
        .to_owned();
    Ok(Serve { child, base })
}

fn ms(d: time::Duration) -> f64 {
    d.whole_microseconds() as f64 / 1000.0
}

fn at(v: &Value) -> Result<OffsetDateTime> {
    let s = v.as_str().ok_or_else(|| anyhow!("no time in {v}"))?;
    Ok(OffsetDateTime::parse(s, &Rfc3339)?)
}

/// `(median, p95, max)` of `v` in ms.
fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.95), v[v.len() - 1])
}

pub(crate) async fn wakeup_bench(a: WakeupArgs) -> Result<()> {
    let key_bytes = [0x5a_u8; 32];
    let key = dci_client::MasterKey::from_bytes(key_bytes);
    let schema = format!(
        "bench_wakeup_{}",
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let store = dci_store::PgStore::connect_in_schema(&a.database_url, &schema, &key)
        .await
        .context("connecting to PostgreSQL")?;
    let sep = if a.database_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let db_url = format!("{}{sep}options[search_path]={schema}", a.database_url);
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(key_bytes);
    let homes = tempfile::tempdir()?;
    let env = [
        ("DCI_DATABASE_URL", db_url.as_str()),
        ("DCI_MASTER_KEY", key_b64.as_str()),
    ];
    let inst_a = serve(&homes.path().join("a"), &env)?;
    let inst_b = serve(&homes.path().join("b"), &env)?;
    let sb = dci_sandbox::spawn(
        dci_sandbox::SandboxConfig::default()
            .callback_delay(Duration::from_millis(a.callback_delay_ms)),
    )
    .await?;
    let source = DataSourceInput {
        code: CODE.into(),
        name: "Sandbox CRVS".into(),
        registry_type: "crvs".into(),
        base_url: sb.registry_url(RegistryType::Crvs),
        auth: Some("oauth2".into()),
        token_url: Some(sb.token_url()),
        client_id: Some(dci_sandbox::DEMO_CLIENT_ID.into()),
        client_secret: Some(SecretString::from(
            dci_sandbox::DEMO_CLIENT_SECRET.to_owned(),
        )),
        scope: Some(dci_sandbox::read_scope(RegistryType::Crvs)),
        sender_id: Some("spmis.example.org".into()),
        receiver_id: Some(sb.registry_id().to_owned()),
        callback_uri: Some(format!("{}/callback/{CODE}", inst_b.base)),
        reply_signature_policy: Some("require".into()),
        registry_jwks_url: Some(sb.jwks_url()),
        ..DataSourceInput::default()
    }
    .validate()
    .map_err(|e| anyhow!("{e}"))?;
    dci_client::Store::create_data_source(&store, &source).await?;
    let ex = &sb.examples()[&RegistryType::Crvs].found[0];
    let query = format!("{}:{}", ex.id_type, ex.id_value);
    let http = reqwest::Client::new();

    let (mut from_receipt, mut from_send) = (Vec::new(), Vec::new());
    for round in 0..a.warmup + a.rounds {
        let body =
            json!({"query_type": "idtype-value", "query": query, "mode": "async", "wait_secs": 30});
        let resp = http
            .post(format!("{}/api/v1/sources/{CODE}/search", inst_a.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        let answered = OffsetDateTime::now_utc();
        let status = resp.status();
        let out: Value = resp.json().await?;
        if !status.is_success() || out["transaction"]["state"] != "completed" {
            return Err(anyhow!("round {round}: {status} {out}"));
        }
        let txn = out["transaction_id"].as_str().unwrap_or_default();
        // The sandbox logs a delivery once B's ACK reached it, which may be after A answered.
        let mut sent = None;
        for _ in 0..200 {
            sent = sb.callbacks().into_iter().find(|d| d.transaction_id == txn);
            if sent.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = sent.ok_or_else(|| anyhow!("no callback delivered for {txn}"))?;
        if !sent.url.starts_with(&inst_b.base) {
            return Err(anyhow!("the callback went to {}, not instance B", sent.url));
        }
        if round < a.warmup {
            continue;
        }
        let received = at(&out["transaction"]["callbacks"][0]["received_at"])?;
        from_receipt.push(ms(answered - received));
        from_send.push(ms(answered - OffsetDateTime::parse(&sent.at, &Rfc3339)?));
    }
    drop((inst_a, inst_b));
    store.close().await;
    dci_store::PgStore::drop_schema(&a.database_url, &schema).await?;

    let n = from_receipt.len();
    let (r50, r95, rmax) = summary(from_receipt);
    let (s50, s95, smax) = summary(from_send);
    let report = format!(
        "| measured ({n} waits) | median | p95 | max |\n|---|---|---|---|\n\
         | B received the callback → A's answer here | {r50:.1} ms | {r95:.1} ms | {rmax:.1} ms |\n\
         | the sandbox sent it → A's answer here | {s50:.1} ms | {s95:.1} ms | {smax:.1} ms |\n"
    );
    println!("{report}");
    if let Some(path) = a.out {
        std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
