//! `dci schedule` as a user runs it: bad flags are named (exit 2), a schedule is added, listed
//! and shown, `dci serve` over the same home runs its occurrence against the sandbox, and
//! `dci schedule runs` shows the run with its outcome and job; `remove` deletes it.

#[path = "support/sources.rs"]
mod sources;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dci_protocol::RegistryType;
use dci_sandbox::SandboxConfig;
use dci_store::OpenOptions;
use serde_json::Value;

fn dci(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dci"));
    c.env("DCI_HOME", home)
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY")
        .env_remove("DCI_CONFIG");
    c
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_added_with_the_cli_is_run_by_dci_serve_and_its_runs_are_shown() {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(50))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let opened = dci_store::open(&OpenOptions {
        home: Some(home.clone()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    })
    .await
    .unwrap();
    let source = sources::sandbox_input(&sb, RegistryType::Crvs, "crvs_main")
        .validate()
        .unwrap();
    opened.store.create_data_source(&source).await.unwrap();
    drop(opened);
    let input = dir.path().join("ids.txt");
    let ids: String = sb
        .identifiers(RegistryType::Crvs, 0, 6)
        .iter()
        .map(|e| format!("{}:{}\n", e.id_type, e.id_value))
        .collect();
    std::fs::write(&input, ids).unwrap();

    let bad = dci(&home)
        .args([
            "schedule", "add", "--name", "n", "--source", "nope", "--cron", "daily", "--input",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--cron"), "the flag is named: {err}");

    let added = json_of(
        &dci(&home)
            .args([
                "--json",
                "schedule",
                "add",
                "--name",
                "every second",
                "--source",
                "crvs_main",
                "--cron",
                "* * * * * *",
                "--input",
            ])
            .arg(&input)
            .output()
            .unwrap(),
    );
    let id = added["schedule"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        added["schedule"]["input_format"], "lines",
        "from the extension"
    );
    assert_eq!(added["schedule"]["catch_up"], "latest", "the default");
    let list = json_of(
        &dci(&home)
            .args(["--json", "schedule", "list"])
            .output()
            .unwrap(),
    );
    assert_eq!(list["schedules"][0]["id"], id.as_str());
    let runs = json_of(
        &dci(&home)
            .args(["--json", "schedule", "runs", &id])
            .output()
            .unwrap(),
    );
    assert_eq!(runs["runs"], Value::Array(vec![]), "nothing ran yet");

    let _serve = Child(
        dci(&home)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DCI_ADMIN_TOKEN", "test-admin-token-0123456789")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let until = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let runs = json_of(
            &dci(&home)
                .args(["--json", "schedule", "runs", &id])
                .output()
                .unwrap(),
        );
        if let Some(r) = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["state"] == "completed")
        {
            break r.clone();
        }
        assert!(Instant::now() < until, "no completed run: {runs}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let job_id = run["job_id"].as_str().unwrap();
    let job = json_of(
        &dci(&home)
            .args(["--json", "bulk", "show", job_id])
            .output()
            .unwrap(),
    );
    assert_eq!(job["job"]["checkpoint"]["found"], 6, "{job}");
    let shown = dci(&home).args(["schedule", "show", &id]).output().unwrap();
    assert!(shown.status.success());
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("last run:"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );

    let removed = dci(&home)
        .args(["schedule", "remove", &id])
        .output()
        .unwrap();
    assert!(removed.status.success());
    let gone = dci(&home).args(["schedule", "show", &id]).output().unwrap();
    assert_eq!(gone.status.code(), Some(3), "no such schedule");
}
