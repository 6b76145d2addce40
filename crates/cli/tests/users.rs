//! `dci user …` and `dci audit export` through the real binary on a real SQLite home:
//! passwords from stdin or a file (never argv), a token printed once and then working against
//! the store, revocation, removal, the change audit with the actor `cli`, and the export.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

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
        .env_remove("DCI_CONFIG")
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

const PW: &str = "alice's long passphrase";

#[test]
fn users_and_tokens_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let r = dci(
        home,
        &[
            "user",
            "add",
            "alice",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some(&format!("{PW}\n")),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("added alice (operator)"), "{}", r.stdout);
    assert!(!r.stdout.contains(PW) && !r.stderr.contains(PW));

    // No password on the command line: there is no such flag.
    let r = dci(
        home,
        &["user", "add", "bob", "--role", "viewer", "--password", PW],
        None,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    // Stdin not a terminal and no source: a clear refusal.
    let r = dci(home, &["user", "add", "bob", "--role", "viewer"], None);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--password-stdin or --password-file"),
        "{}",
        r.stderr
    );
    let r = dci(
        home,
        &["user", "add", "bob", "--role", "viewer", "--password-stdin"],
        Some("short"),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("password: is 5 characters"),
        "{}",
        r.stderr
    );
    let r = dci(
        home,
        &["user", "add", "bob", "--role", "root", "--password-stdin"],
        Some(PW),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("viewer, operator or admin"),
        "{}",
        r.stderr
    );
    let r = dci(
        home,
        &[
            "user",
            "add",
            "alice",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some(PW),
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already taken"), "{}", r.stderr);

    let r = dci(home, &["--json", "user", "list"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["username"], "alice");
    assert_eq!(list[0]["role"], "operator");

    let r = dci(
        home,
        &[
            "--json",
            "user",
            "token",
            "create",
            "alice",
            "--name",
            "laptop",
            "--expires-in-days",
            "7",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let created = r.json();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("dcip_"));
    let r = dci(home, &["user", "token", "list", "alice"], None);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains(&id) && r.stdout.contains("laptop") && r.stdout.contains("expires"));
    assert!(!r.stdout.contains(&token), "never shown again");
    let db = std::fs::read(home.join("dci.sqlite3")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&token),
        "only the token's digest is stored"
    );
    let r = dci(home, &["user", "token", "revoke", &id], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = dci(home, &["user", "token", "list", "alice"], None);
    assert!(r.stdout.contains("revoked"), "{}", r.stdout);
    let r = dci(
        home,
        &[
            "user",
            "token",
            "revoke",
            "0193aaaa-0000-7000-8000-000000000000",
        ],
        None,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);

    let file = home.join("pw.txt");
    std::fs::write(&file, "a brand new passphrase\n").unwrap();
    let r = dci(
        home,
        &[
            "user",
            "passwd",
            "alice",
            "--password-file",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = dci(home, &["user", "remove", "alice"], None);
    assert_eq!(r.code, 2, "asks for --yes off a terminal");
    let r = dci(home, &["user", "remove", "alice", "--yes"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = dci(home, &["user", "remove", "alice", "--yes"], None);
    assert_eq!(r.code, 3);

    // The change audit saw it all, as `cli`, by field name.
    let r = dci(
        home,
        &["audit", "export", "--log", "changes", "--format", "jsonl"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<(String, String)> = rows
        .iter()
        .map(|v| {
            assert_eq!(v["actor"], "cli");
            (
                v["target"].as_str().unwrap().to_owned(),
                v["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let p = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        actions,
        [
            p("user", "create"),
            p("api_token", "create"),
            p("api_token", "revoke"),
            p("user", "update"),
            p("user", "delete"),
        ],
        "oldest first"
    );
    assert!(!r.stdout.contains(PW) && !r.stdout.contains(&token));
}

#[test]
fn key_changes_made_with_the_cli_are_in_the_change_audit() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let r = dci(home, &["key", "generate", "--id", "k-2026"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = dci(home, &["key", "revoke", "k-2026", "--yes"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = dci(
        home,
        &["audit", "export", "--log", "changes", "--format", "csv"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(rows[0], "at,actor,target,target_id,action,fields");
    assert!(
        rows[1].ends_with(",cli,signing_key,k-2026,create,algorithm;status"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].ends_with(",cli,signing_key,k-2026,revoke,status"),
        "{}",
        rows[2]
    );
}

#[test]
fn audit_export_checks_its_range_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let r = dci(home, &["audit", "export", "--format", "csv"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "at,source,endpoint,action,message_id,transaction_id,http_status,outcome,duration_ms,attempt,error\n"
    );
    let r = dci(home, &["audit", "export", "--format", "xml"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("use jsonl or csv"), "{}", r.stderr);
    let r = dci(home, &["audit", "export", "--since", "yesterday"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("RFC 3339"), "{}", r.stderr);
    let r = dci(
        home,
        &[
            "audit",
            "export",
            "--since",
            "2026-11-02T00:00:00Z",
            "--until",
            "2026-11-01T00:00:00Z",
        ],
        None,
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("later than --since"), "{}", r.stderr);
}
