//! The configuration file and the settings, through the real binary: precedence flag > env >
//! file > default with the origin `dci config show` reports; the file found via `--config`,
//! `DCI_CONFIG` or `DCI_HOME/config.toml`; secrets never shown, never accepted as file values
//! or (a database password) as flags; unknown keys and bad values refused naming the key; the
//! file's `log` honoured; every variable in `dci --help`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dci(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_dci"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DCI_HOME", dir.join("home"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn show(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = args.to_vec();
    all.extend(["config", "show", "--json"]);
    let r = dci(dir, &all, env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn each_setting_comes_from_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("dci.toml"),
        "log = \"warn\"\nmaster_key_file = \"keys/master\"\n[serve]\nlisten = \"127.0.0.1:7001\"\nrequest_timeout = 90\n",
    )
    .unwrap();
    let cfg = ["--config", "dci.toml"];
    let s = show(d, &cfg, &[]);
    assert_eq!(s["config"]["origin"], "flag");
    assert_eq!(
        (&s["serve.listen"]["origin"], &s["serve.listen"]["value"]),
        (&"file".into(), &"127.0.0.1:7001".into())
    );
    assert_eq!(s["serve.request_timeout"]["value"], "90");
    assert_eq!(
        (
            &s["serve.shutdown_grace"]["origin"],
            &s["serve.shutdown_grace"]["value"]
        ),
        (&"default".into(), &"30".into())
    );
    // A relative path in the file is relative to the file.
    assert_eq!(
        s["master_key_file"]["value"],
        d.join("keys/master").display().to_string()
    );
    // The environment outranks the file, the flag the environment.
    let s = show(
        d,
        &cfg,
        &[("DCI_LISTEN", "127.0.0.1:7002"), ("DCI_LOG", "info")],
    );
    assert_eq!(s["serve.listen"]["value"], "127.0.0.1:7002");
    assert_eq!(s["serve.listen"]["from"], "env DCI_LISTEN");
    assert_eq!(s["log"]["origin"], "env");
    let mut flagged = cfg.to_vec();
    flagged.extend(["--log", "debug"]);
    let s = show(d, &flagged, &[("DCI_LOG", "info")]);
    assert_eq!(
        (&s["log"]["origin"], &s["log"]["value"]),
        (&"flag".into(), &"debug".into())
    );
    // DCI_CONFIG finds the file too; so does DCI_HOME/config.toml without either.
    let s = show(d, &[], &[("DCI_CONFIG", "dci.toml")]);
    assert_eq!(s["config"]["from"], "env DCI_CONFIG");
    assert_eq!(s["serve.listen"]["origin"], "file");
    std::fs::create_dir_all(d.join("home")).unwrap();
    std::fs::copy(d.join("dci.toml"), d.join("home/config.toml")).unwrap();
    let s = show(d, &[], &[]);
    assert_eq!(
        s["config"]["value"],
        d.join("home/config.toml").display().to_string()
    );
    assert_eq!(s["serve.request_timeout"]["value"], "90");
    // The text form names the origin of each line.
    let r = dci(d, &["config", "show"], &[("DCI_LISTEN", "127.0.0.1:7003")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("serve.listen")
            && l.contains("127.0.0.1:7003")
            && l.contains("[env DCI_LISTEN]")),
        "{}",
        r.stdout
    );
}

#[test]
fn secrets_are_masked_and_never_accepted_as_file_values_or_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = "c2VjcmV0LW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZyEh";
    let token = "admin-token-never-printed-0123456789";
    for args in [vec!["config", "show", "--json"], vec!["config", "show"]] {
        let r = dci(
            d,
            &args,
            &[
                ("DCI_MASTER_KEY", key),
                ("DCI_ADMIN_TOKEN", token),
                ("DCI_DATABASE_URL", "postgres://dci:db-password-x@db/dci"),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        for secret in [key, token, "db-password-x"] {
            assert!(!r.stdout.contains(secret), "{secret} shown: {}", r.stdout);
        }
        assert!(r.stdout.contains("********"), "{}", r.stdout);
    }
    // In the file, a secret value is refused, naming the key and the file form to use.
    for (text, k, instead) in [
        (
            format!("master_key = \"{key}\"\n"),
            "master_key",
            "master_key_file",
        ),
        (
            format!("[serve]\nadmin_token = \"{token}\"\n"),
            "serve.admin_token",
            "serve.admin_token_file",
        ),
        (
            format!("[console]\nreadonly_token = \"{token}\"\n"),
            "console.readonly_token",
            "console.readonly_token_file",
        ),
    ] {
        std::fs::write(d.join("s.toml"), text).unwrap();
        let r = dci(d, &["--config", "s.toml", "config", "show"], &[]);
        assert_eq!(r.code, 2, "{}", r.stdout);
        assert!(
            r.stderr.contains(k) && r.stderr.contains(instead),
            "{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains(key) && !r.stderr.contains(token),
            "{}",
            r.stderr
        );
    }
    // A database password on the command line is refused (argv is visible to every user).
    let r = dci(
        d,
        &[
            "--database-url",
            "postgres://dci:pw@db/dci",
            "config",
            "show",
        ],
        &[],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DCI_DATABASE_URL"), "{}", r.stderr);
    // The key given twice (variable and file reference) is refused.
    let r = dci(
        d,
        &["--master-key-file", "k", "config", "show"],
        &[("DCI_MASTER_KEY", key)],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("given twice"), "{}", r.stderr);
}

#[test]
fn bad_files_and_values_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("colour = true\n", "colour"),
        ("[serve]\nlisten = \"nowhere\"\n", "serve.listen"),
        ("[serve]\nbody_limit = 10\n", "body_limit"),
        ("[serve]\nrequest_timeout = \"soon\"\n", "request_timeout"),
    ];
    for (text, named) in cases {
        std::fs::write(d.join("bad.toml"), text).unwrap();
        let r = dci(
            d,
            &["--config", "bad.toml", "config", "show", "--json"],
            &[],
        );
        assert_eq!(r.code, 2, "{text}: {}", r.stdout);
        let err: Value = serde_json::from_str(r.stdout.trim()).unwrap();
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(msg.contains(named), "{text}: {msg}");
    }
    let r = dci(d, &["--config", "missing.toml", "config", "show"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.toml"), "{}", r.stderr);
    let r = dci(d, &["config", "show"], &[("DCI_REQUEST_TIMEOUT", "soon")]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DCI_REQUEST_TIMEOUT"), "{}", r.stderr);
}

#[test]
fn the_files_log_filter_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("dci.toml"), "log = \"debug\"\n").unwrap();
    // `source list` opens the store: at debug, sqlx / dci log on stderr; at the default, not.
    let quiet = dci(d, &["source", "list"], &[]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    let loud = dci(d, &["--config", "dci.toml", "source", "list"], &[]);
    assert_eq!(loud.code, 0, "{}", loud.stderr);
    assert!(
        loud.stderr.contains("DEBUG") && !quiet.stderr.contains("DEBUG"),
        "quiet: {}\nloud: {}",
        quiet.stderr,
        loud.stderr
    );
}

#[test]
fn every_variable_is_in_the_help() {
    let dir = tempfile::tempdir().unwrap();
    let r = dci(dir.path(), &["--help"], &[]);
    assert_eq!(r.code, 0);
    for var in [
        "DCI_CONFIG",
        "DCI_HOME",
        "DCI_DATABASE_URL",
        "DCI_MASTER_KEY",
        "DCI_MASTER_KEY_FILE",
        "DCI_ADMIN_TOKEN",
        "DCI_ADMIN_TOKEN_FILE",
        "DCI_LISTEN",
        "DCI_BODY_LIMIT",
        "DCI_REQUEST_TIMEOUT",
        "DCI_SHUTDOWN_GRACE",
        "DCI_LOG",
        "DCI_CONSOLE_READONLY_TOKEN",
        "DCI_CONSOLE_READONLY_TOKEN_FILE",
        "DCI_CONSOLE_SECURE_COOKIES",
        "DCI_ALLOW_CORE_DUMPS",
        "DCI_LOG_FORMAT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "DCI_METRICS_OPEN",
    ] {
        assert!(r.stdout.contains(var), "{var} missing from dci --help");
    }
    for flag in [
        "--config",
        "--home",
        "--database-url",
        "--master-key-file",
        "--log",
        "--log-format",
        "--otlp-endpoint",
    ] {
        assert!(r.stdout.contains(flag), "{flag} missing from dci --help");
    }
}

#[test]
fn allow_core_dumps_is_a_flag_a_variable_and_a_file_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("dci.toml"), "[serve]\nallow_core_dumps = true\n").unwrap();
    let key = "serve.allow_core_dumps";
    let s = show(d, &[], &[]);
    assert_eq!(
        (&s[key]["origin"], &s[key]["value"]),
        (&"default".into(), &"false".into())
    );
    let s = show(d, &["--config", "dci.toml"], &[]);
    assert_eq!(
        (&s[key]["origin"], &s[key]["value"]),
        (&"file".into(), &"true".into())
    );
    let s = show(
        d,
        &["--config", "dci.toml"],
        &[("DCI_ALLOW_CORE_DUMPS", "0")],
    );
    assert_eq!(s[key]["from"], "env DCI_ALLOW_CORE_DUMPS");
    assert_eq!(s[key]["value"], "false");
    let r = dci(d, &["config", "show"], &[("DCI_ALLOW_CORE_DUMPS", "maybe")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("DCI_ALLOW_CORE_DUMPS=\"maybe\" is not a yes/no value"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_webhook_lease_is_a_variable_and_a_file_key_with_a_floor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("dci.toml"), "[serve]\nwebhook_lease_secs = 300\n").unwrap();
    let key = "serve.webhook_lease_secs";
    let s = show(d, &[], &[]);
    assert_eq!(
        (&s[key]["origin"], &s[key]["value"]),
        (&"default".into(), &"60".into())
    );
    let s = show(d, &["--config", "dci.toml"], &[]);
    assert_eq!(
        (&s[key]["origin"], &s[key]["value"]),
        (&"file".into(), &"300".into())
    );
    let s = show(
        d,
        &["--config", "dci.toml"],
        &[("DCI_WEBHOOK_LEASE_SECS", "25")],
    );
    assert_eq!(s[key]["from"], "env DCI_WEBHOOK_LEASE_SECS");
    assert_eq!(s[key]["value"], "25");
    // Shorter than one attempt's timeout would let a second instance deliver beside the first.
    let r = dci(d, &["config", "show"], &[("DCI_WEBHOOK_LEASE_SECS", "5")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("webhook_lease_secs 5") && r.stderr.contains("20..=86400"),
        "{}",
        r.stderr
    );
    let help = dci(d, &["serve", "--help"], &[]);
    assert!(
        help.stdout.contains("--webhook-lease-secs"),
        "{}",
        help.stdout
    );
    assert!(
        dci(d, &["--help"], &[])
            .stdout
            .contains("DCI_WEBHOOK_LEASE_SECS")
    );
}

/// `Max core file size` of a running process: (soft, hard).
#[cfg(target_os = "linux")]
fn core_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let mut cols = line["Max core file size".len()..].split_whitespace();
    (
        cols.next().unwrap().to_owned(),
        cols.next().unwrap().to_owned(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn serve_turns_core_dumps_off_unless_the_setting_keeps_them() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ours = core_limits(std::process::id());
    let serve = |extra: &[&str]| {
        let mut args = vec!["--json", "serve", "--listen", "127.0.0.1:0"];
        args.extend(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_dci"))
            .args(&args)
            .env_clear()
            .env("DCI_HOME", d.join("home"))
            .env("DCI_ADMIN_TOKEN", "config-test-admin-token-0123456789")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        assert!(banner.contains("listening"), "{banner}");
        let limits = core_limits(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        limits
    };
    assert_eq!(serve(&[]), ("0".into(), "0".into()), "off by default");
    assert_eq!(
        serve(&["--allow-core-dumps", "true"]),
        ours,
        "kept when asked"
    );
}

#[test]
fn log_format_trace_export_and_open_metrics_resolve_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("dci.toml"),
        "log_format = \"json\"\notlp_endpoint = \"http://127.0.0.1:4318\"\n[serve]\nmetrics_open = true\n",
    )
    .unwrap();
    let s = show(d, &[], &[]);
    assert_eq!(s["log_format"]["value"], "text");
    assert_eq!(s["log_format"]["origin"], "default");
    assert_eq!(s["otlp_endpoint"]["value"], Value::Null);
    assert_eq!(s["serve.metrics_open"]["value"], "false");

    let s = show(d, &["--config", "dci.toml"], &[]);
    assert_eq!(s["log_format"]["value"], "json");
    assert_eq!(s["log_format"]["origin"], "file");
    assert_eq!(s["otlp_endpoint"]["value"], "http://127.0.0.1:4318");
    assert_eq!(s["serve.metrics_open"]["value"], "true");

    let s = show(
        d,
        &["--config", "dci.toml", "--log-format", "text"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("DCI_METRICS_OPEN", "0"),
        ],
    );
    assert_eq!(s["log_format"]["origin"], "flag");
    assert_eq!(s["otlp_endpoint"]["value"], "http://collector:4318");
    assert_eq!(s["otlp_endpoint"]["origin"], "env");
    assert_eq!(s["serve.metrics_open"]["value"], "false");

    let r = dci(d, &["config", "show"], &[("DCI_LOG_FORMAT", "xml")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("DCI_LOG_FORMAT") && r.stderr.contains("text or json"),
        "{}",
        r.stderr
    );
    let r = dci(
        d,
        &["config", "show"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("otlp_endpoint") && r.stderr.contains("http://127.0.0.1:4318"),
        "{}",
        r.stderr
    );
    let r = dci(d, &["config", "show"], &[("DCI_METRICS_OPEN", "maybe")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("DCI_METRICS_OPEN"), "{}", r.stderr);
}

#[test]
fn job_lease_and_schedule_takeover_are_settings_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("dci.toml"),
        "[serve]\njob_lease_secs = 12\nschedule_takeover_secs = 0\n",
    )
    .unwrap();
    let (lease, takeover) = ("serve.job_lease_secs", "serve.schedule_takeover_secs");
    let s = show(d, &[], &[]);
    assert_eq!(s[lease]["value"], "30");
    assert_eq!(s[takeover]["value"], "60");
    let s = show(d, &["--config", "dci.toml"], &[]);
    assert_eq!(
        (&s[lease]["origin"], &s[lease]["value"]),
        (&"file".into(), &"12".into())
    );
    assert_eq!(s[takeover]["value"], "0");
    let s = show(d, &[], &[("DCI_SCHEDULE_TAKEOVER_SECS", "300")]);
    assert_eq!(s[takeover]["from"], "env DCI_SCHEDULE_TAKEOVER_SECS");
    assert_eq!(s[takeover]["value"], "300");
    // A lease renewed every third of it needs some seconds to renew in.
    let r = dci(d, &["config", "show"], &[("DCI_JOB_LEASE_SECS", "1")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("job_lease_secs 1") && r.stderr.contains("3..=3600"),
        "{}",
        r.stderr
    );
    let help = dci(d, &["serve", "--help"], &[]);
    assert!(
        help.stdout.contains("--job-lease-secs")
            && help.stdout.contains("--schedule-takeover-secs"),
        "{}",
        help.stdout
    );
}
