//! The deployment files in `deploy/` keep working: the Dockerfile builds in stages, runs as a
//! user and its HEALTHCHECK passes against the real `dci serve` started with the image's command;
//! the compose file is YAML that runs dci on PostgreSQL with the master key from a secret; the
//! systemd unit is hardened, starts `dci serve` (which really serves with the unit's environment
//! and the key from its credential) and passes `systemd-analyze verify`; the example
//! configuration `dci.toml` loads (`dci config show`), names every setting, and `dci serve` runs
//! from it with its master key and admin token files. Every `DCI_*` variable the files set is
//! one the binary reads. (Docker itself cannot run here.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dci_protocol::test_support::skip;
use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Every `"DCI_…"` string literal in the sources of the crates the binary is built from.
fn env_vars_the_binary_reads() -> BTreeSet<String> {
    fn scan(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("\"DCI_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if text[i + 1 + name.len()..].starts_with('"') {
                        out.insert(name);
                    }
                }
            }
        }
    }
    let mut vars = BTreeSet::new();
    for krate in ["cli", "store", "server", "client"] {
        scan(&root().join("crates").join(krate).join("src"), &mut vars);
    }
    for expected in [
        "DCI_HOME",
        "DCI_DATABASE_URL",
        "DCI_MASTER_KEY_FILE",
        "DCI_LOG",
    ] {
        assert!(vars.contains(expected), "{expected} not found in {vars:?}");
    }
    vars
}

fn assert_known(vars: impl IntoIterator<Item = String>, file: &str) {
    let known = env_vars_the_binary_reads();
    for v in vars.into_iter().filter(|v| v.starts_with("DCI_")) {
        assert!(known.contains(&v), "{file} sets {v}, which dci never reads");
    }
}

// ---- Dockerfile

/// `(INSTRUCTION, arguments)` with continuation lines joined and comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let (instr, args) = pending.split_once(char::is_whitespace).unwrap();
        out.push((instr.to_ascii_uppercase(), args.trim().to_owned()));
        pending.clear();
    }
    out
}

/// The JSON (exec) form of an instruction's arguments.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not a JSON array ({e}): {args}"))
}

/// The HEALTHCHECK's command, in exec form.
fn healthcheck(instructions: &[(String, String)]) -> Vec<String> {
    let (_, args) = instructions
        .iter()
        .find(|(i, _)| i == "HEALTHCHECK")
        .expect("the Dockerfile has a HEALTHCHECK");
    let (_, cmd) = args.split_once("CMD ").expect("HEALTHCHECK … CMD [...]");
    exec_form(cmd)
}

#[test]
fn dockerfile_builds_in_stages_and_runs_as_a_user_with_a_healthcheck() {
    let ins = dockerfile();
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(froms[0].starts_with("rust:") && froms[0].ends_with(" AS build"));
    assert_eq!(froms.last().unwrap().as_str(), "debian:bookworm-slim");

    // The runtime stage: everything after the last FROM.
    let last_from = ins.iter().rposition(|(i, _)| i == "FROM").unwrap();
    let runtime = &ins[last_from..];
    let user = runtime
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.as_str())
        .expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&name), "USER {user} is root");
    let copies: Vec<&String> = runtime
        .iter()
        .filter(|(i, _)| i == "COPY")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        copies,
        ["--from=build /usr/local/bin/dci /usr/local/bin/dci"],
        "the runtime gets the dci binary only"
    );
    for (i, a) in runtime.iter().filter(|(i, _)| i == "RUN") {
        if a.contains("apt-get install") {
            let pkgs = a.split("--no-install-recommends").nth(1).unwrap();
            let pkgs = pkgs.split("&&").next().unwrap().trim();
            assert_eq!(pkgs, "ca-certificates", "{i} {a}");
        }
    }
    let check = healthcheck(&ins);
    assert!(check.iter().any(|a| a.contains("/healthz")), "{check:?}");
    let entry = ins.iter().find(|(i, _)| i == "ENTRYPOINT").unwrap();
    assert_eq!(exec_form(&entry.1), ["/usr/local/bin/dci"]);
    let cmd = ins.iter().find(|(i, _)| i == "CMD").unwrap();
    assert_eq!(exec_form(&cmd.1), ["serve", "--listen", "0.0.0.0:8080"]);
    assert!(ins.iter().any(|(i, a)| i == "EXPOSE" && a == "8080"));
    let env: Vec<String> = ins
        .iter()
        .filter(|(i, _)| i == "ENV")
        .filter_map(|(_, a)| a.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    assert!(env.contains(&"DCI_HOME".to_owned()), "{env:?}");
    assert_known(env, "deploy/Dockerfile");
    assert!(root().join("deploy/Dockerfile.dockerignore").exists());
}

/// `dci serve` as a child, killed (by its own pid) when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary with `args` and exactly `env`, and waits until `healthy()` holds.
fn serve_until_healthy(
    args: &[String],
    env: &[(String, String)],
    healthy: impl Fn() -> bool,
) -> Serve {
    let mut serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_dci"))
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    loop {
        if let Some(status) = serve.0.try_wait().unwrap() {
            panic!("dci {args:?} exited ({status}) before it was healthy");
        }
        if healthy() {
            return serve;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "dci {args:?} was not healthy within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the Dockerfile's HEALTHCHECK command against `port` instead of 8080.
fn run_healthcheck(check: &[String], port: u16) -> bool {
    let check: Vec<String> = check
        .iter()
        .map(|a| a.replace("/8080", &format!("/{port}")))
        .collect();
    Command::new(&check[0])
        .args(&check[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn the_images_command_serves_and_its_healthcheck_passes() {
    let ins = dockerfile();
    let check = healthcheck(&ins);
    if Command::new(&check[0])
        .arg("-c")
        .arg("true")
        .status()
        .is_err()
    {
        skip(&format!(
            "{} is not installed, so the HEALTHCHECK cannot run here",
            check[0]
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The image's CMD, on loopback and a free port; the image's ENV with DCI_HOME in a temp dir.
    let cmd = ins.iter().find(|(i, _)| i == "CMD").unwrap();
    let args: Vec<String> = exec_form(&cmd.1)
        .into_iter()
        .map(|a| a.replace("0.0.0.0:8080", &format!("127.0.0.1:{port}")))
        .collect();
    let env: Vec<(String, String)> = ins
        .iter()
        .filter(|(i, _)| i == "ENV")
        .filter_map(|(_, a)| a.split_once('='))
        .map(|(k, v)| {
            let v = if k == "DCI_HOME" {
                dir.path().join("home").display().to_string()
            } else {
                v.to_owned()
            };
            (k.to_owned(), v)
        })
        .collect();
    let serve = serve_until_healthy(&args, &env, || run_healthcheck(&check, port));
    drop(serve);
    assert!(
        !run_healthcheck(&check, port),
        "the HEALTHCHECK fails once the server is gone"
    );
}

// ---- compose.yaml

#[test]
fn compose_runs_dci_on_postgresql_with_the_master_key_from_a_secret() {
    let compose: Value = serde_yaml::from_str(&read("deploy/compose.yaml")).unwrap();
    let dci = &compose["services"]["dci"];
    assert_eq!(
        dci["build"]["dockerfile"].as_str(),
        Some("deploy/Dockerfile")
    );
    let context = dci["build"]["context"].as_str().unwrap();
    assert!(
        root()
            .join("deploy")
            .join(context)
            .join("deploy/Dockerfile")
            .exists()
    );
    let env = dci["environment"]
        .as_mapping()
        .expect("environment: as a map");
    let get = |k: &str| env.get(k).and_then(Value::as_str);

    let url = get("DCI_DATABASE_URL").expect("DCI_DATABASE_URL");
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (userinfo, host) = rest.split_once('@').unwrap();
    let (_, password) = userinfo.split_once(':').unwrap();
    assert!(password.starts_with("${POSTGRES_PASSWORD"), "{password}");
    let db = &compose["services"]["db"];
    assert!(host.starts_with("db:5432/"), "{host}");
    assert!(db["image"].as_str().unwrap().starts_with("postgres:"));
    assert!(
        db["environment"]["POSTGRES_PASSWORD"]
            .as_str()
            .unwrap()
            .starts_with("${POSTGRES_PASSWORD")
    );

    // The key: never inline, read from a compose secret through DCI_MASTER_KEY_FILE.
    assert!(get("DCI_MASTER_KEY").is_none(), "no inline master key");
    let file = get("DCI_MASTER_KEY_FILE").expect("DCI_MASTER_KEY_FILE");
    let secret = file.strip_prefix("/run/secrets/").unwrap();
    let listed: Vec<&str> = dci["secrets"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(listed.contains(&secret), "{listed:?}");
    assert!(compose["secrets"][secret]["file"].as_str().is_some());
    assert_eq!(get("DCI_HOME"), Some("/var/lib/dci"));

    // No environment value holds a literal secret.
    for service in compose["services"].as_mapping().unwrap().values() {
        let Some(env) = service["environment"].as_mapping() else {
            continue;
        };
        for (k, v) in env {
            let (k, v) = (k.as_str().unwrap(), v.as_str().unwrap_or(""));
            let secretish = ["PASSWORD", "KEY", "TOKEN", "SECRET"]
                .iter()
                .any(|s| k.contains(s));
            if secretish && !k.ends_with("_FILE") {
                assert!(v.starts_with("${"), "{k} is set inline");
            }
        }
    }
    assert_known(
        env.keys().filter_map(|k| k.as_str().map(str::to_owned)),
        "deploy/compose.yaml",
    );
}

// ---- dci.service

/// `(section, key, value)` of a systemd unit: comments dropped, continuations joined.
fn unit() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for (n, line) in read("deploy/dci.service").lines().enumerate() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#') || t.starts_with(';')) {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let (k, v) = pending
            .split_once('=')
            .unwrap_or_else(|| panic!("dci.service line {}: not KEY=VALUE: {line}", n + 1));
        assert!(
            !section.is_empty(),
            "dci.service line {}: outside a section",
            n + 1
        );
        out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
        pending.clear();
    }
    out
}

fn service_values(unit: &[(String, String, String)], key: &str) -> Vec<String> {
    unit.iter()
        .filter(|(s, k, _)| s == "Service" && k == key)
        .map(|(_, _, v)| v.clone())
        .collect()
}

/// The unit's `Environment=` assignments.
fn unit_env(unit: &[(String, String, String)]) -> Vec<(String, String)> {
    service_values(unit, "Environment")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn systemd_unit_is_hardened_and_starts_dci_serve() {
    let unit = unit();
    let sections: BTreeSet<&str> = unit.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(sections, BTreeSet::from(["Install", "Service", "Unit"]));
    let exec = service_values(&unit, "ExecStart");
    assert_eq!(exec.len(), 1);
    let argv: Vec<&str> = exec[0].split_whitespace().collect();
    assert!(
        argv[0].starts_with('/') && argv[0].ends_with("/dci"),
        "{argv:?}"
    );
    assert_eq!(argv[1], "serve", "{argv:?}");

    let one = |key: &str| {
        let v = service_values(&unit, key);
        assert_eq!(v.len(), 1, "{key}: {v:?}");
        v[0].clone()
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "dci"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("LimitCORE", "0"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    let families: BTreeSet<String> = one("RestrictAddressFamilies")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(
        families
            .iter()
            .all(|f| ["AF_INET", "AF_INET6", "AF_UNIX"].contains(&f.as_str()))
    );

    // The master key: a credential, read through DCI_MASTER_KEY_FILE.
    let cred = one("LoadCredential");
    let (name, source) = cred.split_once(':').unwrap();
    assert!(source.starts_with('/'), "{cred}");
    let env = unit_env(&unit);
    let key_file = env
        .iter()
        .find(|(k, _)| k == "DCI_MASTER_KEY_FILE")
        .unwrap();
    assert_eq!(key_file.1, format!("%d/{name}"));
    assert!(
        !env.iter().any(|(k, _)| k == "DCI_MASTER_KEY"),
        "no inline key"
    );
    let home = env.iter().find(|(k, _)| k == "DCI_HOME").unwrap();
    assert_eq!(home.1, format!("%S/{}", one("StateDirectory")));
    assert_known(env.into_iter().map(|(k, _)| k), "deploy/dci.service");
}

#[test]
fn dci_serves_with_the_units_command_environment_and_credential() {
    let unit = unit();
    let dir = tempfile::tempdir().unwrap();
    let (state, creds) = (dir.path().join("state"), dir.path().join("credentials"));
    std::fs::create_dir_all(&creds).unwrap();
    // What systemd does: put the credential in %d, expand %d and %S.
    let cred = service_values(&unit, "LoadCredential").remove(0);
    let (name, _) = cred.split_once(':').unwrap();
    let key = dci_store::master_key::generate();
    std::fs::write(
        creds.join(name),
        dci_store::master_key::encode(&key).as_bytes(),
    )
    .unwrap();
    let env: Vec<(String, String)> = unit_env(&unit)
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .replace("%d", &creds.display().to_string())
                .replace("%S", &state.display().to_string());
            (k, v)
        })
        .collect();
    let port = free_port();
    let exec = service_values(&unit, "ExecStart").remove(0);
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| a.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")))
        .collect();
    assert!(args.contains(&format!("127.0.0.1:{port}")), "{args:?}");
    let healthz = || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.starts_with("HTTP/1.1 200")
    };
    let serve = serve_until_healthy(&args, &env, healthz);
    drop(serve);
    // The key came from the credential: no key file was generated in DCI_HOME.
    let home = state.join("dci");
    assert!(home.join(dci_store::DATABASE_FILE).exists());
    assert!(!home.join(dci_store::MASTER_KEY_FILE).exists());
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        skip("systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    assert!(version.status.success());
    // verify checks that ExecStart's program exists: point it at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dci.service");
    let text = read("deploy/dci.service").replace(
        "ExecStart=/usr/local/bin/dci ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_dci")),
    );
    assert!(text.contains(env!("CARGO_BIN_EXE_dci")));
    std::fs::write(&file, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and bad values, but names the file in a warning.
    let about_ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("dci.service"))
        .collect();
    assert!(
        out.status.success() && about_ours.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

// ---- example configuration

/// `dci config show --json` run with exactly `env`.
fn config_show(args: &[&str], env: &[(&str, String)]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dci"))
        .args(args)
        .args(["config", "show", "--json"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dci {args:?} config show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_example_config_loads_and_every_setting_in_it_is_taken_from_it() {
    let example = root().join("deploy/dci.toml");
    let path = example.display().to_string();
    let shown = config_show(&["--config", &path], &[]);
    let file_keys = [
        ("home", "/var/lib/dci"),
        ("master_key_file", "/etc/dci/master-key"),
        ("log", "info"),
        ("serve.listen", "127.0.0.1:8080"),
        ("serve.body_limit", "2097152"),
        ("serve.request_timeout", "60"),
        ("serve.shutdown_grace", "30"),
        ("serve.admin_token_file", "/etc/dci/admin-token"),
        ("console.secure_cookies", "false"),
    ];
    for (key, value) in file_keys {
        assert_eq!(shown[key]["origin"], "file", "{key}: {shown}");
        assert_eq!(shown[key]["value"], value, "{key}: {shown}");
    }
    // Every setting `dci config show` knows is in the example, set or commented out, except
    // the secrets themselves (never values in a file).
    let text = read("deploy/dci.toml");
    for key in shown.as_object().unwrap().keys() {
        let leaf = key.rsplit('.').next().unwrap();
        if matches!(
            leaf,
            "master_key" | "admin_token" | "readonly_token" | "config"
        ) {
            continue;
        }
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{leaf} ="))),
            "deploy/dci.toml does not mention {key}"
        );
    }
    // The same values from the environment outrank the file; so do flags.
    let shown = config_show(
        &["--config", &path, "--log", "debug"],
        &[("DCI_LISTEN", "0.0.0.0:9000".into())],
    );
    assert_eq!(shown["serve.listen"]["origin"], "env");
    assert_eq!(shown["log"]["origin"], "flag");
    assert_eq!(shown["home"]["origin"], "file");
}

#[test]
fn dci_serves_with_the_example_config_and_its_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = dci_store::master_key::generate();
    std::fs::write(
        dir.path().join("master-key"),
        dci_store::master_key::encode(&key).as_bytes(),
    )
    .unwrap();
    let token = "admin-token-from-a-file-0123456789";
    std::fs::write(dir.path().join("admin-token"), format!("{token}\n")).unwrap();
    let port = free_port();
    // The example with its paths moved into the test's directory (relative: to the file).
    let config = read("deploy/dci.toml")
        .replace("\"/var/lib/dci\"", "\"home\"")
        .replace("\"/etc/dci/master-key\"", "\"master-key\"")
        .replace("\"/etc/dci/admin-token\"", "\"admin-token\"")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("secure_cookies = false", "secure_cookies = true");
    let file = dir.path().join("dci.toml");
    std::fs::write(&file, config).unwrap();
    let healthz = || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.starts_with("HTTP/1.1 200")
    };
    let args = vec![
        "--config".to_owned(),
        file.display().to_string(),
        "serve".to_owned(),
    ];
    let serve = serve_until_healthy(&args, &[], healthz);
    // The admin token is the one in the file.
    let api = |bearer: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.write_all(
            format!(
                "GET /api/v1/sources HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.lines().next().unwrap_or_default().to_owned()
    };
    assert!(api(token).starts_with("HTTP/1.1 200"), "{}", api(token));
    assert!(api("wrong-token-0123456789").starts_with("HTTP/1.1 401"));
    // The console takes its settings from the file too: cookies marked Secure on plain http.
    let login = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp
    };
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no session cookie: {login}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    drop(serve);
    // The key came from the file the config names: none was generated in the home.
    let home = dir.path().join("home");
    assert!(home.join(dci_store::DATABASE_FILE).exists());
    assert!(!home.join(dci_store::MASTER_KEY_FILE).exists());
    assert!(!home.join("admin-token.sha256").exists());
}
