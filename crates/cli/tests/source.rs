//! `dci source …` and `dci master-key rotate`, run as the real binary with `DCI_HOME` in a temp
//! dir. Every output and the database file are scanned for the plaintext secrets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dci_client::{AuthConfig, DataSource, SourceState};
use secrecy::ExposeSecret;
use serde_json::Value;

const SECRET: &str = "PLAIN-oauth-secret-4b7e91";
const NEW_SECRET: &str = "PLAIN-rotated-secret-c03d";
const BEARER: &str = "PLAIN-bearer-token-77aa";

/// A `DCI_HOME` plus everything the binary printed in it, for the final scan.
struct Home {
    dir: tempfile::TempDir,
    outputs: Vec<u8>,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            outputs: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run_env(&mut self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dci"));
        cmd.args(args)
            .env("DCI_HOME", self.path())
            .env_remove("DCI_MASTER_KEY")
            .env_remove("DCI_DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            pipe.write_all(s.as_bytes()).unwrap();
        }
        drop(pipe);
        let out = child.wait_with_output().unwrap();
        self.outputs.extend(&out.stdout);
        self.outputs.extend(&out.stderr);
        out
    }

    fn run(&mut self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_env(args, stdin, &[])
    }

    fn ok(&mut self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&mut self, args: &[&str], stdin: Option<&str>) -> Value {
        let mut all = vec!["--json"];
        all.extend(args);
        serde_json::from_str(&self.ok(&all, stdin)).unwrap()
    }

    fn add_oauth2(&mut self, code: &str) {
        self.ok(
            &[
                "source",
                "add",
                "--code",
                code,
                "--name",
                "National CRVS",
                "--registry-type",
                "crvs",
                "--base-url",
                "https://crvs.example.org/api/v1",
                "--auth",
                "oauth2",
                "--token-url",
                "https://crvs.example.org/oauth2/client/token",
                "--client-id",
                "spmis",
                "--scope",
                "registry.read",
                "--credential-location",
                "query",
                "--sender-id",
                "spmis.example.org",
                "--timeout",
                "20",
                "--secret-stdin",
            ],
            Some(&format!("{SECRET}\n")),
        );
    }

    /// Reads a source through the library, with the home's key file.
    fn stored(&self, code: &str) -> DataSource {
        let options = dci_store::OpenOptions {
            home: Some(self.path().to_owned()),
            ..Default::default()
        };
        runtime().block_on(async {
            let opened = dci_store::open(&options).await.unwrap();
            opened.store.get_data_source(code).await.unwrap().unwrap()
        })
    }

    fn db_bytes(&self) -> Vec<u8> {
        let mut bytes = std::fs::read(self.path().join("dci.sqlite3")).unwrap();
        if let Ok(wal) = std::fs::read(self.path().join("dci.sqlite3-wal")) {
            bytes.extend(wal);
        }
        bytes
    }

    /// The database's logical content: every row of every table. A wrong key must change
    /// nothing; the bytes on disk may still move from the WAL into the main file when SQLite
    /// checkpoints on close (whether the previous process's pool closed before it exited is a
    /// race), and that is not a change.
    fn db_rows(&self) -> Vec<String> {
        use sqlx::Connection;
        let path = self.path().join("dci.sqlite3");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .read_only(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let mut rows = Vec::new();
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                        .bind(&table)
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                let row = columns
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                // Table and column names come from our own schema (sqlite_master), not input.
                let query = format!("SELECT '{table}:' || {row} FROM \"{table}\" ORDER BY 1");
                rows.extend(
                    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(query.clone()))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap(),
                );
            }
            conn.close().await.unwrap();
            rows
        })
    }

    /// No plaintext secret in anything the binary printed, nor in the database files.
    fn assert_no_plaintext(&self, secrets: &[&str]) {
        let db = self.db_bytes();
        for s in secrets {
            assert!(
                !contains(&self.outputs, s.as_bytes()),
                "{s} appeared in CLI output"
            );
            assert!(
                !contains(&db, s.as_bytes()),
                "{s} appeared in the database file"
            );
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn client_secret(s: &DataSource) -> String {
    match &s.auth {
        AuthConfig::OAuth2(o) => o.client_secret.expose_secret().to_owned(),
        other => panic!("not oauth2: {other:?}"),
    }
}

#[test]
fn add_list_show_and_nothing_leaks() {
    let mut h = Home::new();
    h.add_oauth2("crvs_main");
    h.ok(
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
            "bearer",
            "--sender-id",
            "spmis",
            "--secret-stdin",
        ],
        Some(BEARER),
    );

    // The key file exists, private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let table = h.ok(&["source", "list"], None);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("CODE"), "{table}");
    assert!(
        lines[1].starts_with("crvs_main") && lines[2].starts_with("dr_main"),
        "{table}"
    );
    // Aligned: the STATE column starts at the same offset on every line.
    let col = lines[0].find("STATE").unwrap();
    assert!(
        lines[1..].iter().all(|l| &l[col..col + 5] == "draft"),
        "{table}"
    );

    let list = h.json(&["source", "list"], None);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["auth"]["client_secret"], "********");
    assert_eq!(list[1]["auth"]["bearer_token"], "********");

    let show = h.json(&["source", "show", "crvs_main"], None);
    assert_eq!(show["code"], "crvs_main");
    assert_eq!(show["registry_type"], "crvs");
    assert_eq!(show["state"], "draft");
    assert_eq!(show["timeout_secs"], 20);
    assert_eq!(show["auth"]["credential_location"], "query");
    assert_eq!(show["auth"]["client_secret"], "********");
    let text = h.ok(&["source", "show", "crvs_main"], None);
    assert!(
        text.contains("auth.client_secret") && text.contains("********"),
        "{text}"
    );

    let filtered = h.json(&["source", "list", "--registry-type", "dr"], None);
    assert_eq!(filtered.as_array().unwrap().len(), 1);

    // The secret really is stored (the scan below is not vacuous) ...
    assert_eq!(client_secret(&h.stored("crvs_main")), SECRET);
    // ... yet never printed, nor in the database file.
    h.assert_no_plaintext(&[SECRET, BEARER]);
}

#[test]
fn invalid_input_exits_2_naming_every_field() {
    let mut h = Home::new();
    let out = h.run(
        &[
            "source",
            "add",
            "--code",
            "Bad-Code",
            "--registry-type",
            "civil",
            "--base-url",
            "https://crvs.example.org/api/v1/",
            "--auth",
            "oauth2",
            "--timeout",
            "0",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "code must contain only lowercase",
        "name is required",
        "--registry-type \"civil\" is not a registry type",
        "--base-url must not end with '/': use https://crvs.example.org/api/v1",
        "--token-url is required",
        "--client-id is required",
        "the secret (--secret-stdin) is required",
        "--sender-id is required",
        "--timeout must be greater than 0",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    // Nothing was written: no database yet.
    assert!(!h.path().join("dci.sqlite3").exists());

    let out = h.run(&["--json", "source", "add", "--code", "x"], None);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "invalid_input");
    assert!(
        v["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "base_url" && f["label"] == "--base-url")
    );

    // Secrets cannot be passed on the command line.
    let out = h.run(
        &["source", "add", "--code", "x", "--client-secret", SECRET],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn duplicate_code_exits_2_and_unknown_code_exits_3() {
    let mut h = Home::new();
    h.add_oauth2("dup");
    let out = h.run(
        &[
            "--json",
            "source",
            "add",
            "--code",
            "dup",
            "--name",
            "n",
            "--registry-type",
            "dr",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "conflict");

    for args in [
        vec!["source", "show", "nope"],
        vec!["source", "remove", "nope"],
        vec!["source", "enable", "nope"],
        vec!["source", "edit", "nope", "--name", "x"],
    ] {
        let out = h.run(&args, None);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("no data source \"nope\""));
    }
}

#[test]
fn edit_keeps_secret_and_new_credentials_reset_state() {
    let mut h = Home::new();
    h.add_oauth2("crvs_main");
    let id = h.stored("crvs_main").id;
    // Pretend a connection test passed and a token was cached.
    let options = dci_store::OpenOptions {
        home: Some(h.path().to_owned()),
        ..Default::default()
    };
    let mark_active = |options: &dci_store::OpenOptions| {
        runtime().block_on(async {
            let store = dci_store::open(options).await.unwrap().store;
            store
                .record_test_result(
                    "crvs_main",
                    SourceState::Active,
                    time::OffsetDateTime::now_utc(),
                    None,
                )
                .await
                .unwrap();
            store
                .put_token(
                    id,
                    &dci_client::CachedToken {
                        access_token: "PLAIN-access-token-1".to_owned().into(),
                        token_type: "Bearer".into(),
                        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                        scope: None,
                        obtained_at: None,
                    },
                )
                .await
                .unwrap();
        })
    };
    mark_active(&options);

    // A non-credential edit keeps the secret, the state and the token.
    let v = h.json(
        &[
            "source",
            "edit",
            "crvs_main",
            "--name",
            "Renamed",
            "--timeout",
            "9",
        ],
        None,
    );
    assert_eq!(v["credentials_reset"], false);
    let s = h.stored("crvs_main");
    assert_eq!(s.name, "Renamed");
    assert_eq!(s.timeout_secs, 9);
    assert_eq!(s.state, SourceState::Active);
    assert_eq!(client_secret(&s), SECRET);

    // A new secret: back to draft, token dropped.
    let text = h.ok(
        &["source", "edit", "crvs_main", "--secret-stdin"],
        Some(NEW_SECRET),
    );
    assert!(text.contains("state reset to draft"), "{text}");
    let s = h.stored("crvs_main");
    assert_eq!(s.state, SourceState::Draft);
    assert_eq!(client_secret(&s), NEW_SECRET);
    let token = runtime().block_on(async {
        dci_store::open(&options)
            .await
            .unwrap()
            .store
            .get_token(id)
            .await
            .unwrap()
    });
    assert!(token.is_none());

    // An invalid edit changes nothing.
    let out = h.run(
        &["source", "edit", "crvs_main", "--base-url", "ftp://x"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        h.stored("crvs_main").base_url,
        "https://crvs.example.org/api/v1"
    );

    // Switching auth type needs the new type's secret.
    let out = h.run(&["source", "edit", "crvs_main", "--auth", "bearer"], None);
    assert_eq!(out.status.code(), Some(2));
    h.ok(
        &[
            "source",
            "edit",
            "crvs_main",
            "--auth",
            "bearer",
            "--secret-stdin",
        ],
        Some(BEARER),
    );
    assert!(matches!(
        h.stored("crvs_main").auth,
        AuthConfig::Bearer { .. }
    ));

    h.assert_no_plaintext(&[SECRET, NEW_SECRET, BEARER, "PLAIN-access-token-1"]);
}

#[test]
fn enable_disable_remove() {
    let mut h = Home::new();
    h.add_oauth2("crvs_main");
    assert_eq!(
        h.json(&["source", "disable", "crvs_main"], None)["active"],
        false
    );
    assert!(!h.stored("crvs_main").active);
    let disabled = h.json(&["source", "list"], None);
    assert_eq!(disabled[0]["active"], false);
    h.ok(&["source", "enable", "crvs_main"], None);
    assert!(h.stored("crvs_main").active);
    // Not a terminal and no --yes: refused, nothing removed.
    let out = h.run(&["source", "remove", "crvs_main"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--yes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(h.stored("crvs_main").active);
    assert_eq!(
        h.json(&["source", "remove", "crvs_main", "--yes"], None)["removed"],
        "crvs_main"
    );
    assert_eq!(h.json(&["source", "list"], None), Value::Array(vec![]));
}

#[test]
fn export_excludes_secrets_unless_asked_and_then_seals_them() {
    let mut h = Home::new();
    h.add_oauth2("crvs_main");
    let plain = h.ok(&["source", "export"], None);
    let v: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(v["version"], 2);
    // Each entry is the data-source document (the API's shape), without secrets.
    let doc = &v["data_sources"][0]["source"];
    assert_eq!(doc["code"], "crvs_main");
    assert_eq!(doc["auth"]["client_id"], "spmis");
    assert!(doc["auth"].get("client_secret").is_none());
    assert!(doc.get("state").is_none());
    assert!(v["data_sources"][0].get("sealed_secret").is_none());

    let key_file = h.path().join("export.key");
    let key_arg = key_file.to_str().unwrap().to_owned();
    let sealed = h.ok(
        &[
            "source",
            "export",
            "--with-secrets",
            "--secrets-key-file",
            &key_arg,
        ],
        None,
    );
    let sv: Value = serde_json::from_str(&sealed).unwrap();
    assert!(sv["data_sources"][0]["sealed_secret"]["ciphertext"].is_string());
    let export_file = h.path().join("export.json");
    std::fs::write(&export_file, &sealed).unwrap();

    // Import into a fresh home (another master key).
    let mut other = Home::new();
    let export_arg = export_file.to_str().unwrap().to_owned();
    // Without the export key: refused.
    let out = other.run(&["source", "import", &export_arg], None);
    assert_eq!(out.status.code(), Some(2));
    let v = other.json(
        &[
            "source",
            "import",
            &export_arg,
            "--secrets-key-file",
            &key_arg,
        ],
        None,
    );
    assert_eq!(v["created"][0], "crvs_main");
    let s = other.stored("crvs_main");
    assert_eq!(client_secret(&s), SECRET);
    assert_eq!(s.timeout_secs, 20);
    // Importing again conflicts, unless --replace.
    let out = other.run(
        &[
            "source",
            "import",
            &export_arg,
            "--secrets-key-file",
            &key_arg,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let v = other.json(
        &[
            "source",
            "import",
            &export_arg,
            "--secrets-key-file",
            &key_arg,
            "--replace",
        ],
        None,
    );
    assert_eq!(v["updated"][0], "crvs_main");

    // A plain export imports too, but then the secret must be supplied: validation says so.
    let plain_file = h.path().join("plain.json");
    std::fs::write(&plain_file, &plain).unwrap();
    let mut third = Home::new();
    let out = third.run(&["source", "import", plain_file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("crvs_main: auth.client_secret is required")
    );

    h.assert_no_plaintext(&[SECRET]);
    other.assert_no_plaintext(&[SECRET]);
    assert!(!contains(
        &std::fs::read(&export_file).unwrap(),
        SECRET.as_bytes()
    ));
}

#[test]
fn master_key_rotation_and_wrong_or_missing_key() {
    let mut h = Home::new();
    h.add_oauth2("crvs_main");
    let key_path: PathBuf = h.path().join("master.key");
    let old_key = std::fs::read_to_string(&key_path).unwrap();

    // A wrong key: clear error, exit 1, database untouched.
    let before = h.db_rows();
    assert!(!before.is_empty());
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let out = h.run_env(&["source", "list"], None, &[("DCI_MASTER_KEY", wrong)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("wrong master key") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(h.db_rows(), before);
    // A malformed key is bad input.
    let out = h.run_env(&["source", "list"], None, &[("DCI_MASTER_KEY", "short")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("openssl rand -base64 32"));

    // Rotate: a new key file, same secrets.
    // Not a terminal and no --yes: refused, nothing rotated.
    let out = h.run(&["master-key", "rotate"], None);
    assert_eq!(out.status.code(), Some(2));
    let v = h.json(&["master-key", "rotate", "--yes"], None);
    // The client secret and the callback secret.
    assert_eq!(v["resealed"], 2);
    assert_ne!(v["old_key_id"], v["new_key_id"]);
    let new_key = std::fs::read_to_string(&key_path).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!h.path().join("master.key.new").exists());
    assert_eq!(client_secret(&h.stored("crvs_main")), SECRET);
    // The old key no longer opens the store.
    let out = h.run_env(
        &["source", "list"],
        None,
        &[("DCI_MASTER_KEY", old_key.trim())],
    );
    assert_eq!(out.status.code(), Some(1));
    // With the key in the environment, the new key comes from stdin.
    let out = h.run_env(
        &["master-key", "rotate"],
        None,
        &[("DCI_MASTER_KEY", new_key.trim())],
    );
    assert_eq!(out.status.code(), Some(2));
    let third = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let out = h.run_env(
        &["master-key", "rotate", "--new-key-stdin", "--yes"],
        Some(third),
        &[("DCI_MASTER_KEY", new_key.trim())],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = h.run_env(
        &["--json", "source", "show", "crvs_main"],
        None,
        &[("DCI_MASTER_KEY", third)],
    );
    assert_eq!(out.status.code(), Some(0));

    // A missing key: the key file is gone, the database has secrets.
    std::fs::remove_file(&key_path).unwrap();
    let out = h.run(&["source", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("missing master key"), "{err}");
    assert!(!key_path.exists(), "a new key file was left behind");

    h.assert_no_plaintext(&[SECRET, old_key.trim(), new_key.trim(), third]);
}

#[test]
fn concurrent_commands_on_a_fresh_home() {
    // Several processes start at once on an empty DCI_HOME: one key file, one schema, no errors.
    let h = Home::new();
    let children: Vec<_> = (0..6)
        .map(|i| {
            let code = format!("src_{i}");
            let mut child = Command::new(env!("CARGO_BIN_EXE_dci"))
                .args([
                    "source",
                    "add",
                    "--code",
                    &code,
                    "--name",
                    &code,
                    "--registry-type",
                    "dr",
                    "--base-url",
                    "http://127.0.0.1:9",
                    "--auth",
                    "bearer",
                    "--sender-id",
                    "me",
                    "--secret-stdin",
                ])
                .env("DCI_HOME", h.path())
                .env_remove("DCI_MASTER_KEY")
                .env_remove("DCI_DATABASE_URL")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(BEARER.as_bytes())
                .unwrap();
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut h = h;
    let list = h.json(&["source", "list"], None);
    assert_eq!(list.as_array().unwrap().len(), 6);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.path().join("dci.sqlite3"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the database file is readable by others");
    }
    h.assert_no_plaintext(&[BEARER]);
}

/// Sets up a home with several sources, each with a secret and a cached token, through the
/// library; returns each code with its secret.
fn home_with_secrets(h: &Home, n: usize) -> Vec<(String, String)> {
    let options = dci_store::OpenOptions {
        home: Some(h.path().to_owned()),
        ..Default::default()
    };
    runtime().block_on(async {
        let store = dci_store::open(&options).await.unwrap().store;
        let mut out = Vec::new();
        for i in 0..n {
            let code = format!("src_{i}");
            let secret = format!("PLAIN-secret-{i}-9f1c");
            let source = dci_client::DataSourceInput {
                code: code.clone(),
                name: code.clone(),
                registry_type: "crvs".into(),
                base_url: "http://127.0.0.1:9/crvs".into(),
                auth: Some("oauth2".into()),
                token_url: Some("http://127.0.0.1:9/token".into()),
                client_id: Some("spmis".into()),
                client_secret: Some(secret.clone().into()),
                sender_id: Some("spmis.example.org".into()),
                ..Default::default()
            }
            .validate()
            .unwrap();
            store.create_data_source(&source).await.unwrap();
            store
                .put_token(
                    source.id,
                    &dci_client::CachedToken {
                        access_token: format!("PLAIN-token-{i}").into(),
                        token_type: "Bearer".into(),
                        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                        scope: None,
                        obtained_at: None,
                    },
                )
                .await
                .unwrap();
            out.push((code, secret));
        }
        out
    })
}

#[cfg(unix)]
#[test]
fn master_key_rotation_killed_at_any_moment_leaves_a_store_that_opens() {
    // The real `dci master-key rotate`, SIGKILLed after 0, 2, …, 60 ms: whatever stage it was
    // in, the next open must find the key the secrets are sealed under and decrypt all of them.
    let mut kept_old = 0;
    let mut got_new = 0;
    for step in 0..=30u64 {
        let h = Home::new();
        let sources = home_with_secrets(&h, 8);
        let key_path = h.path().join("master.key");
        let old_key = std::fs::read_to_string(&key_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dci"))
            .args(["master-key", "rotate", "--yes"])
            .env("DCI_HOME", h.path())
            .env_remove("DCI_MASTER_KEY")
            .env_remove("DCI_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(step * 2));
        let _ = child.kill(); // SIGKILL; an error only means it had already exited
        child.wait().unwrap();

        let options = dci_store::OpenOptions {
            home: Some(h.path().to_owned()),
            ..Default::default()
        };
        runtime().block_on(async {
            let opened = dci_store::open(&options).await.unwrap_or_else(|e| {
                panic!("killed after {} ms: the store does not open: {e}", step * 2)
            });
            for (code, secret) in &sources {
                let s = opened.store.get_data_source(code).await.unwrap().unwrap();
                assert_eq!(&client_secret(&s), secret, "after {} ms", step * 2);
                let token = opened.store.get_token(s.id).await.unwrap().unwrap();
                assert!(
                    token
                        .access_token
                        .expose_secret()
                        .starts_with("PLAIN-token-")
                );
            }
        });
        assert!(
            !h.path().join("master.key.new").exists(),
            "after {} ms: a staged key is left behind",
            step * 2
        );
        if std::fs::read_to_string(&key_path).unwrap() == old_key {
            kept_old += 1;
        } else {
            got_new += 1;
        }
        // And the CLI agrees.
        let mut h = h;
        let list = h.json(&["source", "list"], None);
        assert_eq!(list.as_array().unwrap().len(), sources.len());
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "rotation killed 31 times: {kept_old} kept the old key, {got_new} had switched"
    );
    assert!(kept_old > 0, "no run was killed before the switch");
}

/// A home with `n` sources exported with their secrets: the home, the export file and the
/// export key's path.
fn exported(n: usize) -> (Home, std::path::PathBuf, String) {
    let mut from = Home::new();
    home_with_secrets(&from, n);
    let key_arg = from.path().join("export.key").to_str().unwrap().to_owned();
    let export = from.ok(
        &[
            "source",
            "export",
            "--with-secrets",
            "--secrets-key-file",
            &key_arg,
        ],
        None,
    );
    let export_file = from.path().join("export.json");
    std::fs::write(&export_file, &export).unwrap();
    (from, export_file, key_arg)
}

#[test]
fn an_import_that_fails_on_one_source_imports_none() {
    let (from, export_file, key_arg) = exported(3);

    // The target already has the last source: the import fails there and adds none of them.
    let mut to = Home::new();
    home_with_secrets(&to, 0);
    let taken = dci_client::DataSourceInput {
        code: "src_2".into(),
        name: "already here".into(),
        registry_type: "dr".into(),
        base_url: "http://127.0.0.1:9/dr".into(),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let options = dci_store::OpenOptions {
        home: Some(to.path().to_owned()),
        ..Default::default()
    };
    runtime().block_on(async {
        let store = dci_store::open(&options).await.unwrap().store;
        store.create_data_source(&taken).await.unwrap();
    });
    let out = to.run(
        &[
            "source",
            "import",
            export_file.to_str().unwrap(),
            "--secrets-key-file",
            &key_arg,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("nothing imported") && err.contains("--replace"),
        "{err}"
    );
    let list = to.json(&["source", "list"], None);
    let codes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["src_2"]);
    from.assert_no_plaintext(&["PLAIN-secret-0-9f1c", "PLAIN-secret-2-9f1c"]);
}

#[test]
fn an_import_is_in_the_change_audit_by_code() {
    let (_from, export_file, key_arg) = exported(2);
    let mut to = Home::new();
    home_with_secrets(&to, 0);
    let file = export_file.to_str().unwrap();
    to.ok(
        &["source", "import", file, "--secrets-key-file", &key_arg],
        None,
    );
    to.ok(
        &[
            "source",
            "import",
            file,
            "--secrets-key-file",
            &key_arg,
            "--replace",
        ],
        None,
    );
    let audit = to.ok(
        &["audit", "export", "--log", "changes", "--format", "csv"],
        None,
    );
    let rows: Vec<&str> = audit.lines().skip(1).collect();
    let tails: Vec<String> = rows
        .iter()
        .map(|r| r.split_once(',').unwrap().1.to_owned())
        .collect();
    assert_eq!(
        tails,
        [
            "cli,data_source,src_0,import (create),",
            "cli,data_source,src_1,import (create),",
            "cli,data_source,src_0,import (replace),",
            "cli,data_source,src_1,import (replace),",
        ],
        "{audit}"
    );
}

#[test]
fn a_signing_key_must_be_one_of_ours() {
    let mut h = Home::new();
    h.add_oauth2("crvs_main");
    let out = h.run(
        &[
            "--json",
            "source",
            "edit",
            "crvs_main",
            "--signing-key",
            "nosuch",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let field = &v["error"]["fields"][0];
    assert_eq!(
        (&field["field"], &field["label"]),
        (&"signing_key_id".into(), &"--signing-key".into()),
        "{v}"
    );
    assert!(
        field["message"].as_str().unwrap().contains(
            "\"nosuch\" is not one of our signing keys: there are no usable signing keys"
        ),
        "{v}"
    );
    assert_eq!(h.stored("crvs_main").signing_key_id, None, "nothing stored");

    h.ok(&["key", "generate", "--id", "k1"], None);
    h.ok(
        &["source", "edit", "crvs_main", "--signing-key", "k1"],
        None,
    );
    assert_eq!(h.stored("crvs_main").signing_key_id.as_deref(), Some("k1"));
    h.ok(&["key", "revoke", "k1", "--yes"], None);
    let out = h.run(
        &["source", "edit", "crvs_main", "--signing-key", "k1"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--signing-key") && err.contains("\"k1\" is revoked"),
        "{err}"
    );
}
