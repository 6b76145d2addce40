//! `dci webhook …` and `dci events …` through the real binary, and a delivery by the real
//! `dci serve`: a data source's failed connection test becomes a `source.state_changed` event,
//! which the serve process signs and POSTs to a receiver in this test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dci_client::webhooks::WebhookSecret;
use secrecy::SecretString;
use serde_json::Value;

#[path = "support/serve.rs"]
mod serve_support;
#[path = "support/sources.rs"]
mod sources;

use serve_support::start_serve;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

fn dci(home: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dci"))
        .args(args)
        .env("DCI_HOME", home)
        .env_remove("DCI_MASTER_KEY")
        .env_remove("DCI_MASTER_KEY_FILE")
        .env_remove("DCI_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        pipe.write_all(s.as_bytes()).unwrap();
    }
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

type Got = Arc<Mutex<Vec<(Vec<(String, String)>, String)>>>;

/// A minimal HTTP receiver on a thread: records each POST, answers 204.
fn receiver() -> (String, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Got = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            sink.lock()
                .unwrap()
                .push((headers, String::from_utf8_lossy(&body).into_owned()));
            let _ = stream.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, got)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn wait_for(got: &Got, n: usize) -> Vec<(Vec<(String, String)>, String)> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let g = got.lock().unwrap().clone();
        if g.len() >= n {
            return g;
        }
        assert!(
            Instant::now() < until,
            "gave up waiting for {n} deliveries: {g:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn webhooks_are_managed_from_the_cli_and_delivered_by_dci_serve() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (url, got) = receiver();

    // Add: the secret is generated and shown once.
    let add = dci(
        home,
        &[
            "--json",
            "webhook",
            "add",
            "--url",
            &url,
            "--kind",
            "source.state_changed",
        ],
        None,
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let created = add.json();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let list = dci(home, &["--json", "webhook", "list"], None);
    assert_eq!(list.code, 0);
    assert_eq!(list.json()["webhooks"][0]["id"], id.as_str());
    assert!(!list.stdout.contains(&secret), "never listed");

    // A given secret comes from stdin (never argv) and is not printed.
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let add2 = dci(
        home,
        &[
            "webhook",
            "add",
            "--url",
            "http://127.0.0.1:9/other",
            "--secret-stdin",
            "--disabled",
        ],
        Some(given),
    );
    assert_eq!(add2.code, 0, "{}", add2.stderr);
    assert!(!add2.stdout.contains(given) && !add2.stderr.contains(given));
    let id2 = add2.stdout.split_whitespace().nth(2).unwrap().to_owned();

    // Bad input: exit 2, JSON naming the flag.
    let bad = dci(
        home,
        &["--json", "webhook", "add", "--url", "ftp://x"],
        None,
    );
    assert_eq!(bad.code, 2, "{}", bad.stdout);
    assert!(
        bad.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--url")
    );
    let bad = dci(
        home,
        &[
            "--json",
            "webhook",
            "add",
            "--url",
            &url,
            "--kind",
            "search.done",
        ],
        None,
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stdout.contains("--kind"), "{}", bad.stdout);
    let bad = dci(home, &["--json", "events", "list", "--after", "nope"], None);
    assert_eq!(bad.code, 2, "{}", bad.stdout);

    // A data source whose test fails: a source.state_changed event.
    let src = dci(
        home,
        &[
            "source",
            "add",
            "--code",
            "dr_main",
            "--name",
            "Disability",
            "--registry-type",
            "dr",
            "--base-url",
            "http://127.0.0.1:9/dr",
            "--auth",
            "none",
            "--sender-id",
            "spmis",
        ],
        None,
    );
    assert_eq!(src.code, 0, "{}", src.stderr);
    let test = dci(home, &["source", "test", "dr_main"], None);
    assert_ne!(test.code, 0, "nothing listens on port 9");
    let events = dci(
        home,
        &["--json", "events", "list", "--kind", "source.state_changed"],
        None,
    );
    assert_eq!(events.code, 0, "{}", events.stderr);
    let page = events.json();
    let event = page["events"][0].clone();
    assert_eq!(event["payload"]["state"], "error", "{page}");
    let event_id = event["id"].as_str().unwrap().to_owned();
    assert!(page["next_cursor"].is_string());

    // dci serve delivers it, signed.
    let serve = start_serve(home, "127.0.0.1:0");
    assert!(
        serve.base.starts_with("http://127.0.0.1:"),
        "{}",
        serve.base
    );
    let first = wait_for(&got, 1);
    let (h, body) = &first[0];
    assert_eq!(header(h, "webhook-id"), event_id);
    let ts: i64 = header(h, "webhook-timestamp").parse().unwrap();
    let key = WebhookSecret::parse(&SecretString::from(secret.clone())).unwrap();
    assert!(key.verify(
        &event_id,
        ts,
        header(h, "webhook-signature"),
        body.as_bytes(),
        ts
    ));
    let delivered: Value = serde_json::from_str(body).unwrap();
    assert_eq!(delivered["type"], "source.state_changed");
    assert_eq!(delivered["data"]["source_code"], "dr_main");

    // Its delivery and attempt are visible; redeliver sends it again with the same id.
    let until = Instant::now() + Duration::from_secs(20);
    let d = loop {
        let d = dci(
            home,
            &["--json", "webhook", "deliveries", &id, "--event", &event_id],
            None,
        )
        .json();
        if d["deliveries"][0]["state"] == "delivered" || Instant::now() > until {
            break d;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(d["deliveries"][0]["state"], "delivered", "{d}");
    assert_eq!(d["deliveries"][0]["attempts_made"][0]["status"], 204, "{d}");
    let re = dci(
        home,
        &["--json", "webhook", "redeliver", "--event", &event_id],
        None,
    );
    assert_eq!(
        (re.code, re.json()["queued"].clone()),
        (0, Value::from(1)),
        "{}",
        re.stdout
    );
    let again = wait_for(&got, 2);
    assert_eq!(header(&again[1].0, "webhook-id"), event_id);
    drop(serve);

    // The consumer marks it processed.
    let ack = dci(home, &["--json", "events", "ack", &event_id], None);
    assert_eq!(ack.json()["marked"], 1);
    let open = dci(home, &["--json", "events", "list", "--unprocessed"], None).json();
    assert!(
        open["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"] != event_id.as_str())
    );

    // Remove needs --yes off a terminal.
    let no = dci(home, &["webhook", "remove", &id2], None);
    assert_ne!(no.code, 0);
    let yes = dci(home, &["--json", "webhook", "remove", &id2, "--yes"], None);
    assert_eq!(yes.code, 0, "{}", yes.stderr);
    let gone = dci(home, &["--json", "webhook", "deliveries", &id2], None);
    assert_eq!(gone.code, 3, "not found: {}", gone.stdout);
}

#[test]
fn a_rabbitmq_sink_is_added_from_the_cli_with_its_broker_url_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Credentials never on argv.
    let refused = dci(
        &home,
        &[
            "webhook",
            "add",
            "--sink",
            "amqp",
            "--url",
            "amqp://dci:argv-password@127.0.0.1:5672/%2f",
        ],
        None,
    );
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("--url-stdin"), "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("argv-password"),
        "{}",
        refused.stderr
    );
    let added = dci(
        &home,
        &[
            "--json",
            "webhook",
            "add",
            "--sink",
            "amqp",
            "--url-stdin",
            "--exchange",
            "dci.events",
            "--kind",
            "notification.received",
        ],
        Some("amqp://dci:stdin-password@127.0.0.1:5672/%2f\n"),
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    let v = added.json();
    assert_eq!(v["sink"], "amqp");
    assert_eq!(v["exchange"], "dci.events");
    assert_eq!(v["url"], "amqp://127.0.0.1:5672/%2f");
    assert!(v.get("secret").is_none(), "a sink has no signing secret");
    assert!(!added.stdout.contains("stdin-password"));
    let listed = dci(&home, &["--json", "webhook", "list"], None);
    assert!(
        !listed.stdout.contains("stdin-password"),
        "{}",
        listed.stdout
    );
    assert_eq!(listed.json()["webhooks"][0]["sink"], "amqp");
    // A field error names the flag.
    let bad = dci(
        &home,
        &["webhook", "add", "--sink", "kafka", "--url", "http://h/x"],
        None,
    );
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("--sink"), "{}", bad.stderr);
}
