//! Decrypted secrets are wiped after use: a running `dci serve` that fetched 60 OAuth2 tokens
//! holds the client secret as many times as one that fetched 3 — once, in the data source it
//! signs in with — instead of one more copy per token request left in freed heap (the request
//! body, the Basic header). The process's memory is read through `/proc/PID/mem` (the test is
//! its parent; `--allow-core-dumps` keeps it readable), the sandbox runs as a separate `dci
//! sandbox` process so that its own copies of the secret do not count.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const ADMIN_TOKEN: &str = "memory-test-admin-token-0123456789";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dci(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dci"));
    c.args(args)
        .env("DCI_HOME", home)
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY")
        .env_remove("DCI_MASTER_KEY_FILE")
        .env_remove("DCI_SANDBOX_CLIENT_SECRET");
    c
}

/// Starts a `--json` server command and returns it with its banner.
fn start(mut c: Command) -> (Killed, Value) {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let banner = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (Killed(child), banner)
}

/// One HTTP/1.1 request; the status code.
fn http(url: &str, method: &str, bearer: Option<&str>, body: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut sock = TcpStream::connect(host).unwrap();
    let auth = bearer.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        sock,
        "{method} /{path} HTTP/1.1\r\nhost: {host}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// How many times `needle` occurs in the writable memory of process `pid`.
#[cfg(target_os = "linux")]
fn copies_in_memory(pid: u32, needle: &[u8]) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let finder = memchr::memmem::Finder::new(needle);
    let mut count = 0;
    let mut buf = Vec::new();
    for line in maps.lines() {
        let mut cols = line.split_whitespace();
        let (range, perms) = (cols.next().unwrap(), cols.next().unwrap());
        if !perms.starts_with("rw") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        // In chunks that overlap by the needle's length, so none is missed at a boundary.
        let chunk = 16 << 20;
        let mut at = a;
        while at < b {
            let len = usize::try_from((b - at).min(chunk + needle.len() as u64)).unwrap();
            buf.resize(len, 0);
            if mem.seek(SeekFrom::Start(at)).is_err() || mem.read_exact(&mut buf).is_err() {
                break; // an unreadable mapping (a guard page)
            }
            count += finder
                .find_iter(&buf)
                .filter(|&i| (i as u64) < chunk || at + chunk >= b)
                .count();
            at += chunk;
        }
    }
    count
}

#[cfg(target_os = "linux")]
#[test]
fn token_requests_leave_no_copy_of_the_client_secret_behind() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // A secret that occurs nowhere else (not in this binary, not in the sandbox's).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let secret = format!("memtest{nanos:x}{:x}", std::process::id());
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, &secret).unwrap();

    let (_sandbox, sb) = start({
        let mut c = dci(&home, &["--json", "sandbox", "--listen", "127.0.0.1:0"]);
        c.args(["--client-id", "spmis", "--client-secret-file"])
            .arg(&secret_file);
        c
    });
    let base = sb["base_url"].as_str().unwrap().to_owned();
    let crvs = sb["registries"]["crvs"].as_str().unwrap();
    let token_url = sb["token_url"].as_str().unwrap();
    let mut add = dci(
        &home,
        &[
            "source",
            "add",
            "--code",
            "crvs_m",
            "--name",
            "m",
            "--registry-type",
            "crvs",
            "--base-url",
            crvs,
            "--auth",
            "oauth2",
            "--token-url",
            token_url,
            "--client-id",
            "spmis",
            "--scope",
            "crvs.read",
            "--sender-id",
            "spmis.example.org",
            "--secret-stdin",
        ],
    );
    let mut child = add
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());

    let (serve, banner) = start({
        let mut c = dci(
            &home,
            &[
                "--json",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--allow-core-dumps",
                "true",
            ],
        );
        c.env("DCI_ADMIN_TOKEN", ADMIN_TOKEN);
        c
    });
    let gateway = banner["listening"].as_str().unwrap().to_owned();
    let example: Value = {
        let rest = base.strip_prefix("http://").unwrap();
        let mut sock = TcpStream::connect(rest).unwrap();
        write!(
            sock,
            "GET /admin/examples HTTP/1.1\r\nhost: {rest}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).unwrap();
        serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    let found = &example["crvs"]["found"][0];
    let search = format!(
        r#"{{"query_type":"idtype-value","query":"{}:{}"}}"#,
        found["id_type"].as_str().unwrap(),
        found["id_value"].as_str().unwrap()
    );
    // Each round revokes the registry's tokens, so the search fetches a new one.
    let rounds = |n: usize| {
        for _ in 0..n {
            let faults = format!("{base}/admin/faults");
            assert_eq!(
                http(
                    &faults,
                    "POST",
                    None,
                    r#"{"target":"token","revoke_tokens":true}"#
                ),
                200
            );
            let url = format!("{gateway}/api/v1/sources/crvs_m/search");
            assert_eq!(http(&url, "POST", Some(ADMIN_TOKEN), &search), 200);
        }
    };
    let pid = serve.0.id();
    rounds(3);
    let after_3 = copies_in_memory(pid, secret.as_bytes());
    rounds(60);
    let after_63 = copies_in_memory(pid, secret.as_bytes());
    eprintln!("copies of the client secret: {after_3} after 3 token requests, {after_63} after 63");
    assert!(
        after_3 >= 1,
        "the data source holds it (the search is real)"
    );
    assert!(
        after_63 <= after_3,
        "each token request left a copy of the client secret in memory: {after_3} after 3, {after_63} after 63"
    );
}
