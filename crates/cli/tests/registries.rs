//! `dci crvs|dr|ibr|social|fr …` run as the real binary against an in-process sandbox: exit 0
//! when found, 3 when the registry answered "not found", 1 on failure (registry down, refused,
//! wrong registry type), 2 on bad input; `--json` output; `--profile` on `dci source add`.

use std::io::Write;
use std::process::{Command, Stdio};

use dci_protocol::RegistryType;
use dci_sandbox::{FaultTarget, Faults, Sandbox, SandboxConfig};
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dci(home: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dci"))
        .args(args)
        .env("DCI_HOME", home)
        .env_remove("DCI_MASTER_KEY")
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

async fn run(home: &std::path::Path, args: &[&str]) -> Run {
    let home = home.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        dci(&home, &a, None)
    })
    .await
    .unwrap()
}

fn add_source(home: &std::path::Path, sb: &Sandbox, r: RegistryType, extra: &[&str]) {
    let code = format!("{}_sb", r.as_str());
    let base = sb.registry_url(r);
    let token = sb.token_url();
    let scope = dci_sandbox::read_scope(r);
    let mut args = vec![
        "source",
        "add",
        "--code",
        &code,
        "--name",
        "sandbox",
        "--registry-type",
        r.as_str(),
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
        "--secret-stdin",
    ];
    args.extend_from_slice(extra);
    let r = dci(home, &args, Some(dci_sandbox::DEMO_CLIENT_SECRET));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

fn id(sb: &Sandbox, r: RegistryType, i: usize) -> String {
    let e = &sb.examples()[&r].found[i];
    format!("{}:{}", e.id_type, e.id_value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_exit_0_found_3_not_found_1_failed() {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    for r in RegistryType::ALL {
        add_source(home, &sb, r, &[]);
    }
    let uin = id(&sb, RegistryType::Crvs, 0);
    let cases: Vec<(Vec<String>, i32)> = vec![
        (vec!["crvs", "person", "crvs_sb", "--id", &uin], 0),
        (
            vec!["crvs", "person", "crvs_sb", "--id", "UIN:0000000000"],
            3,
        ),
        (
            vec![
                "crvs",
                "verify-birth",
                "crvs_sb",
                "--id",
                &id(&sb, RegistryType::Crvs, 1),
            ],
            0,
        ),
        (
            vec![
                "crvs",
                "check-death",
                "crvs_sb",
                "--id",
                &id(&sb, RegistryType::Crvs, 4),
            ],
            0,
        ),
        (
            vec!["crvs", "check-death", "crvs_sb", "--id", "UIN:0000000000"],
            3,
        ),
        (
            vec![
                "crvs",
                "events",
                "crvs_sb",
                "--type",
                "death",
                "--from",
                "2015-01-01",
                "--to",
                "2026-12-31",
            ],
            0,
        ),
        (
            vec![
                "crvs",
                "events",
                "crvs_sb",
                "--type",
                "divorce",
                "--from",
                "1800-01-01",
                "--to",
                "1800-12-31",
            ],
            3,
        ),
        (
            vec![
                "dr",
                "status",
                "dr_sb",
                "--id",
                &id(&sb, RegistryType::Dr, 0),
            ],
            0,
        ),
        (vec!["dr", "status", "dr_sb", "--id", "UIN:0000000000"], 3),
        (
            vec![
                "dr",
                "details",
                "dr_sb",
                "--id",
                &id(&sb, RegistryType::Dr, 0),
            ],
            0,
        ),
        (
            vec![
                "dr",
                "support",
                "dr_sb",
                "--id",
                &id(&sb, RegistryType::Dr, 0),
            ],
            0,
        ),
        (vec!["dr", "support", "dr_sb", "--id", "UIN:0000000000"], 3),
        (
            vec![
                "ibr",
                "enrolled",
                "ibr_sb",
                "--id",
                &id(&sb, RegistryType::Ibr, 0),
            ],
            0,
        ),
        (
            vec!["ibr", "enrolled", "ibr_sb", "--id", "UIN:0000000000"],
            3,
        ),
        (
            vec![
                "ibr",
                "dedupe",
                "ibr_sb",
                "--id",
                &id(&sb, RegistryType::Ibr, 0),
            ],
            0,
        ),
        (vec!["ibr", "dedupe", "ibr_sb", "--id", "UIN:0000000000"], 3),
        (
            vec![
                "social",
                "group",
                "social_sb",
                "--id",
                &id(&sb, RegistryType::Social, 0),
            ],
            0,
        ),
        (
            vec![
                "social",
                "member",
                "social_sb",
                "--id",
                &id(&sb, RegistryType::Social, 1),
            ],
            0,
        ),
        (
            vec![
                "social",
                "group",
                "social_sb",
                "--id",
                "HOUSEHOLD_ID:HOUSEHOLD_ID-000000",
            ],
            3,
        ),
        (
            vec![
                "fr",
                "farmer",
                "fr_sb",
                "--id",
                &id(&sb, RegistryType::Fr, 0),
            ],
            0,
        ),
        (
            vec![
                "fr",
                "farmer",
                "fr_sb",
                "--id",
                "FARMER_ID:FARMER_ID-000000",
            ],
            3,
        ),
        // The wrong registry type is refused with a clear message.
        (vec!["dr", "status", "crvs_sb", "--id", &uin], 1),
        // An unknown data source is "not found" too (its --json error has kind not_found).
        (vec!["crvs", "person", "nope", "--id", &uin], 3),
        (vec!["crvs", "person", "crvs_sb", "--id", "1234"], 2),
        (vec!["crvs", "events", "crvs_sb", "--type", "adoption"], 2),
    ]
    .into_iter()
    .map(|(a, c)| (a.into_iter().map(str::to_owned).collect(), c))
    .collect();
    for (args, want) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(home, &a).await;
        assert_eq!(
            r.code,
            *want,
            "dci {}\n{}{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
    }
    let r = run(home, &["dr", "status", "crvs_sb", "--id", &uin]).await;
    assert!(
        r.stderr.contains("is a crvs registry, not dr"),
        "{}",
        r.stderr
    );

    // --json: the outcome and the typed result with its raw record.
    let r = run(home, &["--json", "crvs", "person", "crvs_sb", "--id", &uin]).await;
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["outcome"], "found");
    assert!(v["result"]["raw"].is_object());
    let r = run(
        home,
        &["--json", "fr", "farmer", "fr_sb", "--id", "FARMER_ID:X"],
    )
    .await;
    assert_eq!(r.code, 3);
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["outcome"], "not_found");

    // Registry down: a failure (1), never "not found" (3); dedupe fails closed.
    let mut f = Faults::new(FaultTarget::All);
    f.down = Some(true);
    sb.set_faults(f).unwrap();
    for args in [
        vec!["crvs", "person", "crvs_sb", "--id", &uin],
        vec!["ibr", "dedupe", "ibr_sb", "--id", "UIN:0000000000"],
        vec!["dr", "status", "dr_sb", "--id", "UIN:0000000000"],
    ] {
        let r = run(home, &args).await;
        assert_eq!(
            r.code,
            1,
            "dci {}\n{}{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_registry_exits_1_and_the_profile_is_kept() {
    let sb = dci_sandbox::spawn(
        SandboxConfig::default().signature_policy(dci_sandbox::SignaturePolicy::Require),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    add_source(home, &sb, RegistryType::Fr, &[]);
    let r = run(
        home,
        &[
            "fr",
            "farmer",
            "fr_sb",
            "--id",
            &id(&sb, RegistryType::Fr, 0),
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("signature"), "{}", r.stderr);

    // --profile is validated and shown.
    let bad = dci(
        home,
        &[
            "source",
            "add",
            "--code",
            "x",
            "--name",
            "x",
            "--registry-type",
            "dr",
            "--base-url",
            "https://dr.example.org",
            "--profile",
            "opencrvs",
        ],
        None,
    );
    assert_eq!(bad.code, 2, "{}{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("profile"), "{}", bad.stderr);
    let ok = dci(
        home,
        &[
            "source",
            "add",
            "--code",
            "ocrvs",
            "--name",
            "OpenCRVS",
            "--registry-type",
            "crvs",
            "--base-url",
            "https://crvs.example.org",
            "--profile",
            "opencrvs-1.3",
            "--sender-id",
            "https://spmis.example.org",
        ],
        None,
    );
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    let show = dci(home, &["--json", "source", "show", "ocrvs"], None);
    let v: Value = serde_json::from_str(show.stdout.trim()).unwrap();
    assert_eq!(v["profile"], "opencrvs-1.3");
}
