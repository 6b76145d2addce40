//! # dci-bench
//!
//! Measures the client against the sandbox on loopback, side by side in one run, in
//! alternating rounds (A B C A B C …), and reports ratios of medians (see `bench/README.md`
//! for the method and `bench/RESULTS.md` for the figures):
//!
//! - library sync search (`Engine` → `Operations::search`) vs raw HTTP replay of the same
//!   signed request, at several connection counts;
//! - gateway sync search (`dci serve`'s `POST /api/v1/sources/{code}/search`) vs the same raw
//!   replay;
//! - a one-shot `dci search` process vs `curl` sending the same request;
//! - 1 000 concurrent cold callers → token requests;
//! - CPU time per request of each side.
//!
//! And `dci-bench events` ([`events`]): events/s delivered by webhooks and by RabbitMQ, and the
//! cost per callback of writing its event. And `dci-bench wakeup` ([`wakeup`]): the wake-up
//! of a wait on one `dci serve` by a callback another stores, on PostgreSQL.
//!
//! Map: [`raw`] (the replay baseline), [`procs`] (child processes, CPU time), [`events`] (the
//! events benchmark), this file (the setup, the rounds and the report).

mod bulk;
mod events;
mod procs;
mod raw;
mod wakeup;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use dci_client::ops::{Operation, SearchQuery, SearchSpec};
use dci_client::{DataSourceInput, Engine};
use secrecy::SecretString;

use crate::procs::{ChildProc, Mark, clock_ticks, cpu_time};

/// The same allocator as the `dci` binary (the gateway and the sandbox run in children of
/// this one, so each side measures what `dci serve` / `dci sandbox` would do).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::raw::{RawRequest, replay};

const SOURCE: &str = "bench_crvs";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";

#[derive(Parser)]
#[command(
    name = "dci-bench",
    about = "Benchmarks of the DCI client against the sandbox"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The engine benchmark: library, gateway and CLI against raw HTTP replay.
    Engine(EngineArgs),
    /// Gateway latency under load: p50/p99 at many concurrent clients, with admission
    /// control against the same gateway without it.
    Latency(LatencyArgs),
    /// Bulk search: `dci bulk search` at batch sizes 1/10/100 against the library's
    /// single-item sync search, peak RSS of the `dci` process, resume after kill -9 at 50 %.
    Bulk(crate::bulk::BulkArgs),
    /// The outbox: events/s delivered by webhook and by RabbitMQ, and the cost per callback of
    /// writing its event (ratio to a callback that writes none).
    Events(events::EventsArgs),
    /// Several instances: a wait on one `dci serve` woken by a callback stored by another on
    /// the same PostgreSQL database (median and p95 of the wake-up).
    Wakeup(wakeup::WakeupArgs),
    /// (internal) runs the sandbox and prints its base URL.
    #[command(hide = true)]
    ChildSandbox,
    /// (internal) runs `dci serve` over DCI_HOME and prints its address.
    #[command(hide = true)]
    ChildGateway,
}

#[derive(clap::Args)]
struct EngineArgs {
    /// Seconds per round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds per side and connection count (alternating).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Connection counts (concurrent callers).
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    connections: Vec<usize>,
    /// One-shot CLI runs (and as many curl runs), alternating.
    #[arg(long, default_value_t = 15)]
    cli_runs: usize,
    /// Cold concurrent callers for the token single-flight check.
    #[arg(long, default_value_t = 1000)]
    cold_callers: usize,
    /// Distinct signed requests the raw replay sends in turn (fresh message, transaction and
    /// reference ids, prepared before the rounds); 1 repeats one request as `wrk` would. More
    /// than the sandbox's transaction log (10 000) so that no id is still known when it comes
    /// round again.
    #[arg(long, default_value_t = 20_000)]
    replay_pool: usize,
    /// Pins the sandbox to CPU 1 and this process, the gateway and the CLI runs to CPU 0 (the
    /// registry as another machine would be), each before its runtime starts, so each runs one
    /// tokio worker on its one core; without it every process may use every core.
    #[arg(long)]
    pin: bool,
    /// Runs this process and its children (gateway, sandbox, CLI runs) under `SCHED_BATCH`: a
    /// process woken on the core it shares does not preempt the one running there. Pinned, the
    /// gateway and its load generator share CPU 0, and without it each answer the gateway
    /// writes wakes the load generator, which preempts the gateway (about once per request):
    /// a cost of sharing the core, not of the gateway. Every side runs the same way.
    #[arg(long)]
    batch: bool,
    /// Prints each round's window to stderr (`round SIDE CONNECTIONS START END`, seconds since
    /// boot as `/proc/uptime` counts them), so that a profile recorded with `perf record -k
    /// boottime` can be cut to one side with `perf report --time START,END`.
    #[arg(long)]
    marks: bool,
    /// Where to write the results (Markdown).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct LatencyArgs {
    /// Concurrent gateway clients.
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Seconds per round.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Rounds per side (alternating).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The admitted gateway's limit of requests in flight.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Where to write the results (Markdown).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// The child gateway's limit of requests in flight (unset: the server's default).
const MAX_IN_FLIGHT_ENV: &str = "DCI_BENCH_MAX_IN_FLIGHT";

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Pinned, each process takes its CPU before its runtime starts (one core, one worker):
    // this one for `engine --pin`, a child when its parent says so.
    let pin = match (&cli.cmd, std::env::var(procs::PIN_ENV)) {
        (_, Ok(cpu)) => Some(cpu.parse().context("DCI_BENCH_CPU must be a CPU number")?),
        (Cmd::Engine(a), _) if a.pin => Some(0),
        _ => None,
    };
    if let Some(cpu) = pin {
        procs::pin_self(cpu)?;
    }
    if matches!(&cli.cmd, Cmd::Engine(a) if a.batch) {
        procs::batch_self()?; // the children inherit it
    }
    let rt = tokio::runtime::Runtime::new()?;
    match cli.cmd {
        Cmd::ChildSandbox => rt.block_on(child_sandbox()),
        Cmd::ChildGateway => rt.block_on(child_gateway()),
        Cmd::Engine(a) => rt.block_on(engine_bench(a)),
        Cmd::Latency(a) => rt.block_on(latency_bench(a)),
        Cmd::Bulk(a) => rt.block_on(crate::bulk::bulk_bench(a)),
        Cmd::Events(a) => rt.block_on(events::events_bench(a)),
        Cmd::Wakeup(a) => rt.block_on(wakeup::wakeup_bench(a)),
    }
}

async fn child_sandbox() -> Result<()> {
    let mut config = dci_sandbox::SandboxConfig::default();
    if let Some(n) = std::env::var("DCI_BENCH_POPULATION")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config = config.population(n);
    }
    let sb = dci_sandbox::spawn(config).await?;
    println!("{}", sb.base_url());
    wait_for_parent().await;
    Ok(())
}

async fn child_gateway() -> Result<()> {
    let opened = dci_store::open(&dci_store::OpenOptions::from_env()).await?;
    let admin = dci_server::AdminToken::from_secret(&SecretString::from(ADMIN_TOKEN));
    let mut config = dci_server::ServerConfig::default();
    if let Some(n) = std::env::var(MAX_IN_FLIGHT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.max_in_flight = n;
    }
    let state = dci_server::AppState::with_config(opened.store, opened.ops, admin, config);
    let server = dci_server::spawn("127.0.0.1:0".parse()?, state).await?;
    println!("{}", server.addr());
    wait_for_parent().await;
    Ok(())
}

/// Runs until the parent closes our stdin (or kills us).
async fn wait_for_parent() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await;
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One side's rounds: throughput and CPU per request, per round.
#[derive(Default)]
struct Side {
    rps: Vec<f64>,
    cpu_us: Vec<f64>,
    server_cpu_us: Vec<f64>,
    errors: u64,
}

impl Side {
    /// One round that started at `t0` with CPU times `before`: `(ok, errors)` requests, the
    /// client side's CPU read from snapshot slot `client` (0: this process, 2: the gateway).
    fn record(
        &mut self,
        cpu: &Cpu,
        before: [Duration; 3],
        t0: Instant,
        counts: (u64, u64),
        client: usize,
    ) {
        let elapsed = t0.elapsed().as_secs_f64();
        let after = cpu.snapshot();
        let (ok, errors) = counts;
        self.rps.push(ok as f64 / elapsed);
        self.cpu_us
            .push(per_request_us(after[client] - before[client], ok));
        self.server_cpu_us
            .push(per_request_us(after[1] - before[1], ok));
        self.errors += errors;
    }

    fn rps(&self) -> f64 {
        median(self.rps.clone())
    }
    fn cpu(&self) -> f64 {
        median(self.cpu_us.clone())
    }
    fn server_cpu(&self) -> f64 {
        median(self.server_cpu_us.clone())
    }
}

struct Cpu {
    ticks: f64,
    sandbox: String,
    gateway: String,
}

impl Cpu {
    fn snapshot(&self) -> [Duration; 3] {
        [
            cpu_time("self", self.ticks),
            cpu_time(&self.sandbox, self.ticks),
            cpu_time(&self.gateway, self.ticks),
        ]
    }
}

fn per_request_us(d: Duration, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        d.as_secs_f64() * 1e6 / n as f64
    }
}

/// What every benchmark runs over: the sandbox in its own process, and a store in a
/// temporary home holding one OAuth2 CRVS source with signed requests.
struct Setup {
    sandbox: ChildProc,
    sb_url: String,
    sb_addr: SocketAddr,
    uin: String,
    home: tempfile::TempDir,
    home_s: String,
    opened: dci_store::Opened,
    engine: Engine,
}

async fn setup(sandbox_env: &[(&str, &str)]) -> Result<Setup> {
    // The sandbox, in its own process.
    let sandbox = ChildProc::start(&["child-sandbox"], sandbox_env)?;
    let sb_url = sandbox.line.clone();
    let sb_addr: SocketAddr = sb_url
        .trim_start_matches("http://")
        .parse()
        .context("the sandbox's address")?;
    let examples: serde_json::Value = get_json(&format!("{sb_url}/admin/examples")).await?;
    let uin = examples["crvs"]["found"][0]["id_value"]
        .as_str()
        .ok_or_else(|| anyhow!("the sandbox lists no CRVS example"))?
        .to_owned();

    // A store with one OAuth2 CRVS source (signed requests) in a temporary home.
    let home = tempfile::tempdir()?;
    let home_s = home.path().display().to_string();
    let opened = dci_store::open(&dci_store::OpenOptions {
        home: Some(home.path().to_owned()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    })
    .await?;
    let engine = Engine::open(opened.store.clone(), opened.ops.clone());
    engine
        .keys()
        .generate(
            "bench-key",
            dci_protocol::signature::Algorithm::Ed25519,
            Default::default(),
        )
        .await?;
    let source = DataSourceInput {
        code: SOURCE.into(),
        name: "Benchmark CRVS".into(),
        registry_type: "crvs".into(),
        base_url: format!("{sb_url}/crvs"),
        auth: Some("oauth2".into()),
        token_url: Some(format!("{sb_url}/oauth2/client/token")),
        client_id: Some(dci_sandbox::DEMO_CLIENT_ID.into()),
        client_secret: Some(SecretString::from(dci_sandbox::DEMO_CLIENT_SECRET)),
        scope: Some("crvs.read".into()),
        sender_id: Some("spmis.example.org".into()),
        signing_key_id: Some("bench-key".into()),
        ..DataSourceInput::default()
    }
    .validate()
    .map_err(|e| anyhow!("the benchmark source is invalid: {e}"))?;
    opened.store.create_data_source(&source).await?;
    Ok(Setup {
        sandbox,
        sb_url,
        sb_addr,
        uin,
        home,
        home_s,
        opened,
        engine,
    })
}

async fn engine_bench(a: EngineArgs) -> Result<()> {
    let round = Duration::from_secs_f64(a.seconds);
    let ticks = clock_ticks();
    // The machine's CPUs, not this process's (pinned, it may use one).
    let cores = procs::online_cpus();

    let Setup {
        sandbox,
        sb_url,
        sb_addr,
        uin,
        home: _home,
        home_s,
        opened: _opened,
        engine,
    } = setup(if a.pin { &[(procs::PIN_ENV, "1")] } else { &[] }).await?;

    // The gateway, in its own process over the same store (pinned: on this process's CPU, which
    // it inherits).
    let gateway = ChildProc::start(&["child-gateway"], &[("DCI_HOME", &home_s)])?;
    let gw_addr: SocketAddr = gateway.line.parse().context("the gateway's address")?;
    let cpu = Cpu {
        ticks,
        sandbox: sandbox.pid().to_string(),
        gateway: gateway.pid().to_string(),
    };

    // The same signed request for the library and the raw replay.
    let ops = engine.operations(SOURCE).await?;
    let query = SearchQuery::one(SearchSpec::by_id(&format!("UIN:{uin}"))?.page(1, 10));
    let token = ops.client().token().await?.access_token;
    let op = Operation::Search(query.clone());
    let mut bodies = Vec::with_capacity(a.replay_pool.max(1));
    for _ in 0..a.replay_pool.max(1) {
        bodies.push(serde_json::to_vec(&ops.prepare(&op).await?.envelope)?);
    }
    let body = bodies[0].clone();
    let raw_registry = RawRequest::post_json_pool(
        sb_addr,
        "/crvs/registry/sync/search",
        token.secret(),
        &bodies,
    );
    drop(bodies);
    let gw_body = serde_json::to_vec(&serde_json::json!({
        "query_type": "idtype-value", "query": format!("UIN:{uin}"), "mode": "sync",
        "page": 1, "page_size": 10,
    }))?;
    let raw_gateway = RawRequest::post_json(
        gw_addr,
        &format!("/api/v1/sources/{SOURCE}/search"),
        ADMIN_TOKEN,
        &gw_body,
    );
    // Warm every path once (connections, token, caches) and check that each answers.
    ops.search(&query).await.context("library warm-up")?;
    for (name, r) in [("raw", &raw_registry), ("gateway", &raw_gateway)] {
        let c = replay(r, 1, Duration::from_millis(300)).await;
        if c.ok == 0 {
            return Err(anyhow!(
                "{name} warm-up got no 2xx reply ({} errors)",
                c.errors
            ));
        }
    }

    let mut report = String::new();
    report.push_str(&format!(
        "Run: {} UTC, {} s rounds, {} rounds per side, alternating raw → library → gateway; \
         `{}` cores; {}{}; raw replay of {}.\n\n",
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        a.seconds,
        a.rounds,
        cores,
        if a.pin {
            "**pinned**: sandbox on CPU 1, load side (bench process, gateway) on CPU 0"
        } else {
            "unpinned (every process on every core)"
        },
        if a.batch {
            "; every process `SCHED_BATCH` (a woken process does not preempt the running one)"
        } else {
            ""
        },
        if a.replay_pool > 1 {
            format!("{} requests with fresh ids, sent in turn", a.replay_pool)
        } else {
            "one request repeated".to_owned()
        },
    ));
    report.push_str("### Sync search throughput (requests/s, median of rounds)\n\n");
    report.push_str(
        "| connections | raw replay | library | library / raw | gateway | gateway / raw | \
         errors (raw/lib/gw) |\n|---|---|---|---|---|---|---|\n",
    );
    let mut cpu_rows = String::new();
    for &conns in &a.connections {
        let (mut rw, mut lib, mut gw) = (Side::default(), Side::default(), Side::default());
        for _ in 0..a.rounds {
            // A: raw replay; B: the library; C: the gateway (load from a raw client). The
            // client-side CPU is this process's for A and B, the gateway process's for C.
            let before = cpu.snapshot();
            let t0 = Instant::now();
            let mark = Mark::start(a.marks);
            let c = replay(&raw_registry, conns, round).await;
            mark.end("raw", conns);
            rw.record(&cpu, before, t0, (c.ok, c.errors), 0);

            let before = cpu.snapshot();
            let t0 = Instant::now();
            let mark = Mark::start(a.marks);
            let counts = library_round(&engine, &query, conns, round).await;
            mark.end("library", conns);
            lib.record(&cpu, before, t0, counts, 0);

            let before = cpu.snapshot();
            let t0 = Instant::now();
            let mark = Mark::start(a.marks);
            let c = replay(&raw_gateway, conns, round).await;
            mark.end("gateway", conns);
            gw.record(&cpu, before, t0, (c.ok, c.errors), 2);
        }
        report.push_str(&format!(
            "| {conns} | {:.0} | {:.0} | **{:.2}×** | {:.0} | **{:.2}×** | {}/{}/{} |\n",
            rw.rps(),
            lib.rps(),
            lib.rps() / rw.rps(),
            gw.rps(),
            gw.rps() / rw.rps(),
            rw.errors,
            lib.errors,
            gw.errors
        ));
        cpu_rows.push_str(&format!(
            "| {conns} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} |\n",
            rw.cpu(),
            lib.cpu(),
            gw.cpu(),
            rw.server_cpu(),
            lib.server_cpu(),
            gw.server_cpu()
        ));
        eprintln!("connections {conns}: done");
    }
    report.push_str(
        "\n### CPU time per request (µs, median of rounds)\n\n| connections | raw replay \
         client | library (client process) | gateway (`dci serve` process) | sandbox during \
         raw / library / gateway |\n|---|---|---|---|---|\n",
    );
    report.push_str(&cpu_rows);

    // The CLI against curl.
    report.push_str(&cli_vs_curl(&a, &home_s, &sb_url, &uin, token.secret(), &body).await);

    // 1 000 cold callers.
    report.push_str(&cold_callers(&engine, &sb_url, a.cold_callers).await?);

    engine.close().await;
    drop(gateway);
    drop(sandbox);
    println!("{report}");
    if let Some(out) = &a.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// `conns` callers each searching in a loop until `round` has passed.
async fn library_round(
    engine: &Engine,
    query: &SearchQuery,
    conns: usize,
    round: Duration,
) -> (u64, u64) {
    let until = Instant::now() + round;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let engine = engine.clone();
        let query = query.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err) = (0u64, 0u64);
            while Instant::now() < until {
                // As a gateway handler would: ask the engine, then search.
                match engine.operations(SOURCE).await {
                    Ok(ops) => match ops.search(&query).await {
                        Ok(_) => ok += 1,
                        Err(_) => err += 1,
                    },
                    Err(_) => err += 1,
                }
            }
            (ok, err)
        }));
    }
    let (mut ok, mut err) = (0, 0);
    for t in tasks {
        if let Ok((o, e)) = t.await {
            ok += o;
            err += e;
        }
    }
    (ok, err)
}

async fn cli_vs_curl(
    a: &EngineArgs,
    home: &str,
    sb_url: &str,
    uin: &str,
    token: &str,
    body: &[u8],
) -> String {
    let mut out = String::from("\n### One-shot CLI vs curl (wall time, ms, median)\n\n");
    let dci = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("dci")))
        .filter(|p| p.exists());
    let Some(dci) = dci else {
        out.push_str(
            "skipped: no `dci` binary beside `dci-bench` (build both: `cargo build --release \
             --bin dci --bin dci-bench`)\n",
        );
        return out;
    };
    let body_file = std::path::Path::new(home).join("request.json");
    if std::fs::write(&body_file, body).is_err() {
        out.push_str("skipped: cannot write the request body\n");
        return out;
    }
    let run = |cmd: &mut std::process::Command| -> Option<f64> {
        let t0 = Instant::now();
        let st = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| t0.elapsed().as_secs_f64() * 1e3)
    };
    let (mut cli, mut curl, mut failed) = (Vec::new(), Vec::new(), 0);
    for _ in 0..a.cli_runs {
        match run(std::process::Command::new(&dci)
            .args(["search", SOURCE, "--id", &format!("UIN:{uin}")])
            .env("DCI_HOME", home)
            .env_remove("DCI_DATABASE_URL")
            .env_remove("DCI_MASTER_KEY"))
        {
            Some(ms) => cli.push(ms),
            None => failed += 1,
        }
        match run(std::process::Command::new("curl")
            .args(["-sf", "-X", "POST", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", body_file.display()))
            .arg(format!("{sb_url}/crvs/registry/sync/search")))
        {
            Some(ms) => curl.push(ms),
            None => failed += 1,
        }
    }
    let (c, k) = (median(cli), median(curl));
    out.push_str(&format!(
        "| `dci search` | `curl` | dci / curl | failed runs |\n|---|---|---|---|\n| {c:.1} | \
         {k:.1} | **{:.2}×** | {failed} |\n",
        if k > 0.0 { c / k } else { 0.0 }
    ));
    out
}

async fn cold_callers(engine: &Engine, sb_url: &str, n: usize) -> Result<String> {
    let stats = |v: serde_json::Value| v["token_requests"].as_u64().unwrap_or(0);
    let client = engine.client(SOURCE).await?;
    client.clear_token_cache().await?;
    engine.invalidate(SOURCE);
    let client = engine.client(SOURCE).await?;
    let before = stats(get_json(&format!("{sb_url}/admin/stats")).await?);
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, b) = (client.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            c.token().await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap_or(false) {
            ok += 1;
        }
    }
    let after = stats(get_json(&format!("{sb_url}/admin/stats")).await?);
    Ok(format!(
        "\n### Cold token cache\n\n{n} concurrent callers with no cached token: {ok} got a token, \
         **{} token request(s)** reached the token endpoint.\n",
        after - before
    ))
}

async fn get_json(url: &str) -> Result<serde_json::Value> {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let path = format!(
        "/{}",
        url.trim_start_matches("http://")
            .split_once('/')
            .map_or("", |p| p.1)
    );
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow!("no body from {url}"))?;
    // Chunked bodies: the JSON starts at the first '{'.
    let start = body
        .find('{')
        .ok_or_else(|| anyhow!("no JSON from {url}"))?;
    let end = body
        .rfind('}')
        .ok_or_else(|| anyhow!("no JSON from {url}"))?;
    Ok(serde_json::from_str(&body[start..=end])?)
}

/// p-th percentile (0–100) of microsecond latencies, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1e3
}

/// One side's latency rounds.
#[derive(Default)]
struct LatencySide {
    p50: Vec<f64>,
    p99: Vec<f64>,
    rps: Vec<f64>,
    unavailable: u64,
    other_errors: u64,
    requests: u64,
}

impl LatencySide {
    fn record(&mut self, mut c: raw::Counts, elapsed: f64) {
        c.latencies_us.sort_unstable();
        self.p50.push(percentile_ms(&c.latencies_us, 50.0));
        self.p99.push(percentile_ms(&c.latencies_us, 99.0));
        self.rps.push(c.ok as f64 / elapsed);
        self.unavailable += c.unavailable;
        self.other_errors += c.errors - c.unavailable;
        self.requests += c.ok + c.errors;
    }

    fn row(&self, name: &str) -> String {
        let (p50, p99) = (median(self.p50.clone()), median(self.p99.clone()));
        format!(
            "| {name} | {p50:.1} | {p99:.1} | **{:.1}×** | {:.0} | {:.1} % | {} |\n",
            if p50 > 0.0 { p99 / p50 } else { 0.0 },
            median(self.rps.clone()),
            100.0 * self.unavailable as f64 / self.requests.max(1) as f64,
            self.other_errors
        )
    }
}

async fn latency_bench(a: LatencyArgs) -> Result<()> {
    let round = Duration::from_secs_f64(a.seconds);
    let Setup {
        sandbox,
        uin,
        home: _home,
        home_s,
        opened: _opened,
        engine,
        ..
    } = setup(&[]).await?;
    let limit = a.max_in_flight.to_string();
    let unbounded = (1usize << 30).to_string();
    let admitted = ChildProc::start(
        &["child-gateway"],
        &[("DCI_HOME", &home_s), (MAX_IN_FLIGHT_ENV, &limit)],
    )?;
    let queued = ChildProc::start(
        &["child-gateway"],
        &[("DCI_HOME", &home_s), (MAX_IN_FLIGHT_ENV, &unbounded)],
    )?;
    let body = serde_json::to_vec(&serde_json::json!({
        "query_type": "idtype-value", "query": format!("UIN:{uin}"), "mode": "sync",
        "page": 1, "page_size": 10,
    }))?;
    let path = format!("/api/v1/sources/{SOURCE}/search");
    let request = |line: &str| -> Result<RawRequest> {
        let addr: SocketAddr = line.parse().context("a gateway's address")?;
        Ok(RawRequest::post_json(addr, &path, ADMIN_TOKEN, &body))
    };
    let (with, without) = (request(&admitted.line)?, request(&queued.line)?);
    for (name, r) in [("admitted", &with), ("queued", &without)] {
        if replay(r, 1, Duration::from_millis(300)).await.ok == 0 {
            return Err(anyhow!("{name} gateway warm-up got no 2xx reply"));
        }
    }
    let (mut adm, mut que) = (LatencySide::default(), LatencySide::default());
    for r in 0..a.rounds {
        let t0 = Instant::now();
        let c = replay(&without, a.clients, round).await;
        que.record(c, t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let c = replay(&with, a.clients, round).await;
        adm.record(c, t0.elapsed().as_secs_f64());
        eprintln!("round {r}: done");
    }
    let report = format!(
        "Run: {} UTC, {} concurrent gateway clients (keep-alive, raw HTTP), {} s rounds, {} \
         rounds per side, alternating; `{}` cores. A refused client waits 50 ms and tries again.\n\n\
         | gateway | p50 (ms) | p99 (ms) | p99 / p50 | 2xx/s | 503 share | other errors |\n\
         |---|---|---|---|---|---|---|\n{}{}",
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        a.clients,
        a.seconds,
        a.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        que.row("no admission control (queues)"),
        adm.row(&format!(
            "admission control, max_in_flight {}",
            a.max_in_flight
        )),
    );
    engine.close().await;
    drop(admitted);
    drop(queued);
    drop(sandbox);
    println!("{report}");
    if let Some(out) = &a.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
