//! The polish of the `dci` binary, run as the real binary: shell completions and man pages from
//! the CLI definition, `--json` usage errors, exit codes (2 bad input, 3 not found), the search
//! query group and identifier-type warning, no spinner or colour off a terminal, `DCI_LOG` for
//! every command, the environment listed in `dci --help`, and `--yes` for `dci key revoke`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dci_protocol::RegistryType;
use dci_protocol::test_support::skip;
use dci_sandbox::{Sandbox, SandboxConfig};
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

fn command(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dci"));
    c.args(args)
        .env("DCI_HOME", home)
        .env_remove("DCI_MASTER_KEY")
        .env_remove("DCI_MASTER_KEY_FILE")
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_LOG")
        .env_remove("NO_COLOR");
    c
}

fn dci_with(home: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut c = command(home, args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
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

fn dci(home: &Path, args: &[&str]) -> Run {
    dci_with(home, args, None, &[])
}

/// `dci` on a blocking thread, for tests whose sandbox runs on this process's runtime.
async fn run(home: &Path, args: &[&str]) -> Run {
    let home = home.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        dci(&home, &a)
    })
    .await
    .unwrap()
}

fn home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("home");
    (dir, path)
}

/// The subcommand paths of `dci`, read from the `Commands:` sections of `--help`.
fn subcommands(path: &[String]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let out = dci(Path::new("/nonexistent"), &args);
    assert_eq!(out.code, 0, "dci {args:?}: {}", out.stderr);
    let mut found = Vec::new();
    let mut in_commands = false;
    for line in out.stdout.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap();
            if name != "help" {
                let mut p = path.to_vec();
                p.push(name.to_owned());
                found.push(p);
            }
        }
    }
    found
}

fn all_subcommands() -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut todo = subcommands(&[]);
    while let Some(p) = todo.pop() {
        todo.extend(subcommands(&p));
        all.push(p);
    }
    all
}

#[test]
fn completions_name_the_subcommands() {
    let (_d, h) = home();
    let bash = dci(&h, &["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert!(bash.stdout.contains("complete -F _dci"), "{}", bash.stdout);
    for sub in [
        "search",
        "source",
        "txn-status",
        "master-key",
        "completions",
        "man",
    ] {
        assert!(bash.stdout.contains(sub), "bash completion lacks {sub}");
    }
    // The nested ones too, with their flags.
    assert!(
        bash.stdout.contains("dci__subcmd__source,add") && bash.stdout.contains("--registry-type"),
        "{}",
        bash.stdout
    );
    for shell in ["zsh", "fish", "powershell"] {
        let out = dci(&h, &["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(
            out.stdout.contains("txn-status") && out.stdout.contains("dci"),
            "{shell}: {}",
            out.stdout
        );
    }
    let bad = dci(&h, &["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("bash"), "{}", bad.stderr);
}

#[test]
fn man_writes_one_roff_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = dci(
        dir.path(),
        &["--json", "man", "--out", out_dir.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let listed: BTreeSet<String> = out.json()["written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            Path::new(f.as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, on_disk);

    let mut expected: BTreeSet<String> = all_subcommands()
        .iter()
        .map(|p| format!("dci-{}.1", p.join("-")))
        .collect();
    expected.insert("dci.1".into());
    assert!(expected.contains("dci-source-add.1") && expected.contains("dci-crvs-person.1"));
    assert_eq!(on_disk, expected, "one page per command");

    for name in &on_disk {
        let text = std::fs::read_to_string(out_dir.join(name)).unwrap();
        let title = name.trim_end_matches(".1");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!(".TH {title} 1 "))),
            "{name} has no .TH line: {text}"
        );
        assert!(
            text.contains(".SH NAME") && text.contains(".SH SYNOPSIS"),
            "{name}"
        );
        // roff: every line is a request, a comment or text; none starts with a stray quote.
        assert!(text.lines().all(|l| !l.starts_with('\'')), "{name}");
    }
    let search = std::fs::read_to_string(out_dir.join("dci-search.1")).unwrap();
    assert!(search.contains("expression") && search.contains("Examples"));
}

#[test]
fn man_pages_render_without_groff_warnings() {
    if Command::new("groff").arg("--version").output().is_err() {
        skip("groff is not installed: cannot render the man pages");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dci(dir.path(), &["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for page in [
        "dci.1",
        "dci-search.1",
        "dci-source-add.1",
        "dci-key-revoke.1",
    ] {
        let r = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.path().join(page))
            .output()
            .unwrap();
        assert!(r.status.success(), "{page}");
        assert_eq!(String::from_utf8_lossy(&r.stderr), "", "{page}");
    }
}

#[test]
fn json_usage_errors_go_to_stdout_with_exit_2() {
    let (_d, h) = home();
    // An unknown flag, --json before or after the subcommand.
    for args in [
        vec!["--json", "search", "crvs", "--id", "UIN:1", "--bogus"],
        vec!["search", "crvs", "--id", "UIN:1", "--bogus", "--json"],
    ] {
        let out = dci(&h, &args);
        assert_eq!(out.code, 2, "{args:?}");
        let v = out.json();
        assert_eq!(v["error"]["kind"], "usage", "{v}");
        assert_eq!(v["error"]["reason"], "unknown_argument", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("--bogus"),
            "{v}"
        );
        assert_eq!(out.stderr, "", "nothing else is printed");
    }
    // A missing argument names it, and the fix shows the usage.
    let v = dci(&h, &["--json", "txn-status", "crvs"]).json();
    assert_eq!(v["error"]["kind"], "usage");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--transaction-id"),
        "{v}"
    );
    assert!(
        v["error"]["fix"]
            .as_str()
            .unwrap()
            .starts_with("usage: dci txn-status"),
        "{v}"
    );
    // A close misspelling gets clap's suggestion as the fix.
    let v = dci(&h, &["--json", "serch"]).json();
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("search"),
        "{v}"
    );
    // Without --json: clap's text on stderr, nothing on stdout.
    let out = dci(&h, &["search", "crvs", "--id", "UIN:1", "--bogus"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with("error: unexpected argument '--bogus'")
    );
    // --help and --version are not errors, --json or not.
    let help = dci(&h, &["--json", "search", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Usage: dci search"), "{}", help.stdout);
    let version = dci(&h, &["--json", "--version"]);
    assert_eq!(version.code, 0);
    assert!(version.stdout.starts_with("dci "), "{}", version.stdout);
    // Bad input found after parsing is JSON too (here `dci sandbox`'s own check).
    let out = dci(&h, &["--json", "sandbox", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.code, 2);
    let v = out.json();
    assert_eq!(v["error"]["kind"], "invalid_input");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-remote"),
        "{v}"
    );
    // After `--` a "--json" is a value, not the flag.
    let out = dci(&h, &["envelope", "bogus", "--", "--json"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
}

#[test]
fn unknown_names_exit_3_everywhere() {
    let (_d, h) = home();
    for args in [
        vec!["log", "--source", "nosuch"],
        vec!["token", "nosuch"],
        vec!["source", "test", "nosuch"],
        vec!["search", "nosuch", "--id", "UIN:1"],
        vec!["subscribe", "nosuch", "--event-type", "LiveBirth"],
        vec!["unsubscribe", "nosuch", "--code", "S-1"],
        vec!["txn-status", "nosuch", "--transaction-id", "T-1"],
        vec!["crvs", "person", "nosuch", "--id", "UIN:1"],
    ] {
        let out = dci(&h, &args);
        assert_eq!(out.code, 3, "dci {args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("no data source \"nosuch\"")
                && out.stderr.contains("dci source list"),
            "dci {args:?}: {}",
            out.stderr
        );
        let mut json_args = vec!["--json"];
        json_args.extend_from_slice(&args);
        let v = dci(&h, &json_args).json();
        assert_eq!(v["error"]["kind"], "not_found", "dci {args:?}: {v}");
    }
    let out = dci(&h, &["key", "revoke", "nosuch", "--yes"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("nosuch"));
    // An empty log is not an error; neither is --source of a known code without entries.
    assert_eq!(dci(&h, &["log"]).code, 0);
}

#[test]
fn search_names_every_query_flag() {
    let (_d, h) = home();
    let out = dci(&h, &["search", "crvs"]);
    assert_eq!(out.code, 2);
    for flag in ["--id", "--expression", "--predicate"] {
        assert!(out.stderr.contains(flag), "{flag}: {}", out.stderr);
    }
    let out = dci(
        &h,
        &["search", "crvs", "--id", "UIN:1", "--predicate", "[]"],
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

/// Every `"DCI_…"` literal in the sources of the crates the binary is built from.
fn env_vars_in_sources() -> BTreeSet<String> {
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut vars = BTreeSet::new();
    for krate in ["cli", "store", "server", "client", "protocol", "sandbox"] {
        scan(&root.join("crates").join(krate).join("src"), &mut vars);
    }
    // The protocol crate's test-only variables are not read by the binary.
    vars.retain(|v| !v.starts_with("DCI_TEST_") && v != "DCI_SPEC_DIR");
    vars
}

#[test]
fn help_lists_the_environment_and_exit_codes() {
    let (_d, h) = home();
    let help = dci(&h, &["--help"]);
    assert_eq!(help.code, 0);
    let env = help
        .stdout
        .split_once("Environment:")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no Environment section: {}", help.stdout));
    let mut vars = env_vars_in_sources();
    for v in [
        "DCI_HOME",
        "DCI_DATABASE_URL",
        "DCI_MASTER_KEY",
        "DCI_MASTER_KEY_FILE",
        "DCI_ADMIN_TOKEN",
        "DCI_CONSOLE_READONLY_TOKEN",
        "DCI_CONSOLE_SECURE_COOKIES",
        "DCI_LOG",
        "DCI_ALLOW_CORE_DUMPS",
        "DCI_SANDBOX_CLIENT_SECRET",
        "NO_COLOR",
    ] {
        vars.insert(v.to_owned());
    }
    for v in &vars {
        assert!(
            env.lines().any(|l| l.trim_start().starts_with(v.as_str())),
            "{v} is not in the Environment section of dci --help"
        );
    }
    assert!(env.contains("3 not found"), "{env}");
    assert!(!help.stdout.contains('\x1b'), "no colour when piped");

    // Sections, required flags and examples in a subcommand's help.
    let search = dci(&h, &["search", "--help"]).stdout;
    for part in [
        "Query:",
        "Pages:",
        "Asynchronous:",
        "Examples:",
        "[required: one of --id",
    ] {
        assert!(search.contains(part), "{part}: {search}");
    }
    for (args, part) in [
        (vec!["txn-status", "--help"], "[required]"),
        (vec!["subscribe", "--help"], "Examples:"),
        (vec!["crvs", "--help"], "dci crvs person"),
        (vec!["crvs", "person", "--help"], "Lookup:"),
        (vec!["key", "--help"], "dci key revoke"),
        (vec!["sandbox", "--help"], "Signatures:"),
        (vec!["serve", "--help"], "Limits:"),
        (vec!["log", "--help"], "Examples:"),
    ] {
        let out = dci(&h, &args).stdout;
        assert!(out.contains(part), "dci {args:?} lacks {part}: {out}");
    }
}

#[test]
fn key_revoke_needs_yes_off_a_terminal() {
    let (_d, h) = home();
    let out = dci(&h, &["key", "generate", "--id", "k1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = dci_with(&h, &["key", "revoke", "k1"], Some("y\n"), &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--yes") && out.stderr.contains("revoke key k1"),
        "{}",
        out.stderr
    );
    let v = dci(&h, &["--json", "key", "list"]).json();
    assert_eq!(v[0]["status"], "active", "nothing was revoked: {v}");
    let v = dci(&h, &["--json", "key", "revoke", "k1", "--yes"]).json();
    assert_eq!(v["status"], "revoked");
}

/// Runs `shell_command` on a pseudo-terminal (util-linux `script`); `None` without `script`.
fn on_terminal(shell_command: &str, stdin: &str) -> Option<(i32, String)> {
    if Command::new("script").arg("--version").output().is_err() {
        return None;
    }
    let mut child = Command::new("script")
        .args(["-qec", shell_command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn key_revoke_asks_on_a_terminal_and_logs_are_coloured_only_there() {
    let (_d, h) = home();
    assert_eq!(dci(&h, &["key", "generate", "--id", "k1"]).code, 0);
    let bin = sh_quote(env!("CARGO_BIN_EXE_dci"));
    let env = format!(
        "env -u NO_COLOR -u DCI_LOG -u DCI_MASTER_KEY -u DCI_MASTER_KEY_FILE -u DCI_DATABASE_URL DCI_HOME={}",
        sh_quote(h.to_str().unwrap())
    );
    let Some((code, out)) = on_terminal(&format!("{env} {bin} key revoke k1"), "n\n") else {
        skip("util-linux `script` is not installed: no pseudo-terminal to test on");
        return;
    };
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("revoke key k1? [y/N]"), "{out}");
    assert!(out.contains("cancelled"), "{out}");
    let (code, out) = on_terminal(&format!("{env} {bin} key revoke k1"), "y\n").unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("revoked"), "{out}");

    // Logs on a terminal are coloured, unless NO_COLOR is set; piped, never.
    let logs = |extra: &str| {
        on_terminal(
            &format!("{env} DCI_LOG=debug {extra} {bin} key list >/dev/null"),
            "",
        )
        .unwrap()
        .1
    };
    let coloured = logs("");
    assert!(
        coloured.contains("DEBUG") && coloured.contains('\x1b'),
        "{coloured}"
    );
    let plain = logs("NO_COLOR=1");
    assert!(
        plain.contains("DEBUG") && !plain.contains('\x1b'),
        "{plain}"
    );
    let piped = dci_with(&h, &["key", "list"], None, &[("DCI_LOG", "debug")]);
    assert!(piped.stderr.contains("DEBUG") && !piped.stderr.contains('\x1b'));
}

#[test]
fn sandbox_reads_dci_log_not_rust_log() {
    let (_d, h) = home();
    let start = |env: &[(&str, &str)]| {
        let mut c = command(&h, &["--json", "sandbox", "--listen", "127.0.0.1:0"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        assert!(banner.contains("token_url"), "{banner}");
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let logged = start(&[("DCI_LOG", "info"), ("RUST_LOG", "off")]);
    assert!(logged.contains("DCI sandbox listening"), "{logged}");
    assert!(
        !logged.contains('\x1b'),
        "no colour off a terminal: {logged}"
    );
    let quiet = start(&[("DCI_LOG", "off"), ("RUST_LOG", "info")]);
    assert!(!quiet.contains("listening"), "{quiet}");
}

async fn crvs_source(home: &Path, sb: &Sandbox) {
    let base = sb.registry_url(RegistryType::Crvs);
    let token = sb.token_url();
    let scope = dci_sandbox::read_scope(RegistryType::Crvs);
    let args: Vec<String> = [
        "source",
        "add",
        "--code",
        "crvs_sb",
        "--name",
        "sandbox",
        "--registry-type",
        "crvs",
        "--base-url",
        &base,
        "--auth",
        "oauth2",
        "--token-url",
        &token,
        "--client-id",
        dci_sandbox::DEMO_CLIENT_ID,
        "--scope",
        &scope,
        "--sender-id",
        "spmis.example.org",
        "--receiver-id",
        "dci-sandbox",
        // Nobody listens here: --wait ends through the registry's txn status.
        "--callback-uri",
        "http://127.0.0.1:9/callback/crvs_sb",
        "--secret-stdin",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let home = home.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        dci_with(&home, &a, Some(dci_sandbox::DEMO_CLIENT_SECRET), &[])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_identifier_types_warn_and_waits_print_nothing_extra_off_a_terminal() {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let (_d, h) = home();
    crvs_source(&h, &sb).await;
    let known = {
        let e = &sb.examples()[&RegistryType::Crvs].found[0];
        format!("{}:{}", e.id_type, e.id_value)
    };

    let out = run(&h, &["search", "crvs_sb", "--id", "FOO:12345"]).await;
    assert_eq!(out.code, 0, "lenient: sent as given: {}", out.stderr);
    assert!(
        out.stderr.contains("\"FOO\"") && out.stderr.contains("UIN, BRN, MRN, DRN"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("12345"), "the value is never echoed");
    let out = run(&h, &["crvs", "person", "crvs_sb", "--id", "FOO:12345"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("warning: identifier type \"FOO\""));
    let out = run(&h, &["search", "crvs_sb", "--id", &known]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "", "a CRVS type warns of nothing");

    // --wait with stderr not a terminal: no spinner, nothing on stderr at all.
    let out = run(
        &h,
        &[
            "search", "crvs_sb", "--id", &known, "--async", "--wait", "1",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("completed"), "{}", out.stdout);
    assert_eq!(out.stderr, "", "nothing extra off a terminal");

    // On a terminal: the spinner says what it waits for (and not with --json).
    let bin = sh_quote(env!("CARGO_BIN_EXE_dci"));
    let env = format!(
        "env -u NO_COLOR -u DCI_LOG -u DCI_MASTER_KEY -u DCI_MASTER_KEY_FILE -u DCI_DATABASE_URL DCI_HOME={}",
        sh_quote(h.to_str().unwrap())
    );
    let wait = |json: &'static str| {
        let cmd = format!("{env} {bin} {json} search crvs_sb --id {known} --async --wait 1");
        tokio::task::spawn_blocking(move || on_terminal(&cmd, ""))
    };
    let Some((code, shown)) = wait("").await.unwrap() else {
        skip("util-linux `script` is not installed: no pseudo-terminal to test on");
        return;
    };
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("waiting up to 1 s for the answer to transaction"),
        "{shown}"
    );
    let (code, quiet) = wait("--json").await.unwrap().unwrap();
    assert_eq!(code, 0, "{quiet}");
    assert!(!quiet.contains("waiting"), "{quiet}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_show_a_spinner_on_a_terminal_naming_the_call_and_attempt() {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let (_d, h) = home();
    crvs_source(&h, &sb).await;
    let known = {
        let e = &sb.examples()[&RegistryType::Crvs].found[0];
        format!("{}:{}", e.id_type, e.id_value)
    };
    // The registry answers 503 (Retry-After 1 s) to everything: the search is retried, then fails.
    sb.set_faults(dci_sandbox::Faults::new(dci_sandbox::FaultTarget::Crvs).down(true))
        .unwrap();
    let bin = sh_quote(env!("CARGO_BIN_EXE_dci"));
    let env = format!(
        "env -u NO_COLOR -u DCI_LOG -u DCI_MASTER_KEY -u DCI_MASTER_KEY_FILE -u DCI_DATABASE_URL DCI_HOME={}",
        sh_quote(h.to_str().unwrap())
    );
    let search = |json: &'static str| {
        let cmd = format!("{env} {bin} {json} search crvs_sb --id {known}");
        tokio::task::spawn_blocking(move || on_terminal(&cmd, ""))
    };
    let Some((code, shown)) = search("").await.unwrap() else {
        skip("util-linux `script` is not installed: no pseudo-terminal to test on");
        return;
    };
    assert_ne!(code, 0, "the registry stayed down: {shown}");
    assert!(
        shown.contains("retrying sync_search at crvs_sb (attempt 2, next in"),
        "{shown}"
    );
    assert!(shown.contains("): HTTP 503"), "{shown}");
    assert!(
        !shown.contains("HTTP 503 — retrying"),
        "each retry replaces the last: {shown}"
    );
    // Piped or --json: nothing but the error.
    let (code, quiet) = search("--json").await.unwrap().unwrap();
    assert_ne!(code, 0, "{quiet}");
    assert!(!quiet.contains("retrying"), "{quiet}");
    let out = run(&h, &["search", "crvs_sb", "--id", &known]).await;
    assert_ne!(out.code, 0);
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
}

/// Status code of a client-credentials token request to `token_url`, over plain HTTP/1.1.
fn token_status(token_url: &str, client_id: &str, secret: &str) -> u16 {
    use std::io::Read as _;
    let rest = token_url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let body =
        format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}");
    let mut sock = std::net::TcpStream::connect(host).unwrap();
    write!(
        sock,
        "POST /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_sandbox_reads_its_client_secret_from_a_file() {
    let (d, h) = home();
    let file = d.path().join("sandbox-secret");
    std::fs::write(&file, "file-secret-0123456789\n").unwrap();
    let file = file.to_str().unwrap().to_owned();
    let args = [
        "--json",
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--client-id",
        "spmis",
        "--client-secret-file",
        &file,
    ];
    let mut child = command(&h, &args)
        .env_remove("DCI_SANDBOX_CLIENT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let v: Value = serde_json::from_str(&banner).unwrap();
    assert_eq!(v["demo_credentials"], false, "{v}");
    assert!(!banner.contains("file-secret"), "never shown: {banner}");
    let url = v["token_url"].as_str().unwrap();
    assert_eq!(token_status(url, "spmis", "file-secret-0123456789"), 200);
    assert_eq!(
        token_status(url, "spmis", dci_sandbox::DEMO_CLIENT_SECRET),
        401
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Both sources at once is refused; so is an empty file.
    let out = dci_with(&h, &args, None, &[("DCI_SANDBOX_CLIENT_SECRET", "x")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.contains("given twice"), "{}", out.stdout);
    std::fs::write(&file, "\n").unwrap();
    let out = dci_with(&h, &args, None, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.contains("is empty"), "{}", out.stdout);
}
