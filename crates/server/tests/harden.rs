//! `harden_process` turns core dumps off: checked in a child process (this test binary run again
//! with an environment variable), since the settings are process-wide and cannot be undone.

/// Set in the child: which case to run.
const CHILD_ENV: &str = "DCI_HARDEN_TEST_CHILD";
const THIS_TEST: &str = "harden_process_turns_core_dumps_off_unless_asked";

/// `Max core file size` from `/proc/self/limits`: (soft, hard).
#[cfg(target_os = "linux")]
fn core_limits() -> (String, String) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("/proc/self/limits has the core size");
    let mut cols = line["Max core file size".len()..].split_whitespace();
    (
        cols.next().unwrap().to_owned(),
        cols.next().unwrap().to_owned(),
    )
}

#[cfg(target_os = "linux")]
fn child(case: &str) {
    use rustix::process::{DumpableBehavior, Resource, dumpable_behavior, getrlimit};
    let before = core_limits();
    let outcome = dci_server::harden_process().expect("harden_process");
    match case {
        "default" => {
            assert_eq!(outcome, dci_server::CoreDumps::Disabled);
            assert_eq!(
                dumpable_behavior().unwrap(),
                DumpableBehavior::NotDumpable,
                "prctl(PR_GET_DUMPABLE) reports 0"
            );
            assert_eq!(core_limits(), ("0".into(), "0".into()), "RLIMIT_CORE is 0");
            let rl = getrlimit(Resource::Core);
            assert_eq!((rl.current, rl.maximum), (Some(0), Some(0)));
        }
        "allowed" => {
            assert_eq!(outcome, dci_server::CoreDumps::AllowedByRequest);
            assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::Dumpable);
            assert_eq!(core_limits(), before, "nothing changed");
        }
        other => panic!("unknown case {other}"),
    }
    println!("HARDEN-CHILD-OK {case}");
}

#[cfg(target_os = "linux")]
fn run_child(case: &str, allow: Option<&str>) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", THIS_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case);
    match allow {
        Some(v) => cmd.env(dci_server::ALLOW_CORE_DUMPS_ENV, v),
        None => cmd.env_remove(dci_server::ALLOW_CORE_DUMPS_ENV),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("HARDEN-CHILD-OK {case}")),
        "child {case} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn harden_process_turns_core_dumps_off_unless_asked() {
    #[cfg(target_os = "linux")]
    {
        if let Ok(case) = std::env::var(CHILD_ENV) {
            child(&case);
            return;
        }
        run_child("default", None);
        run_child("allowed", Some("1"));
        // The test process itself was left alone.
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::Dumpable
        );
    }
    #[cfg(not(target_os = "linux"))]
    {
        let why = "skipped: the check reads /proc and prctl, which only Linux has";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("{why}");
    }
}
