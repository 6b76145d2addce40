//! Skipping a test visibly (feature `test-support`, for the workspace's tests).
//!
//! A test that cannot run here (no PostgreSQL URL, no Chromium, no Python) calls [`skip`] and
//! returns. Under CI (env `CI` set to anything but empty, `0` or `false`) [`skip`] panics
//! instead, so a CI run never passes by skipping. Elsewhere the reason goes to stderr past the
//! test harness's capture (once per reason and test binary), and one file per skipped test is
//! written to `DCI_TEST_SKIPS_DIR` (default `<target>/test-skips/`), which `scripts/test` lists
//! at the end of the run.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Env var naming the folder that collects skip records (`scripts/test` sets it).
pub const SKIPS_DIR_ENV: &str = "DCI_TEST_SKIPS_DIR";

/// Env var naming the PostgreSQL database the tests may use (`.ci/run` sets it).
pub const DATABASE_URL_ENV: &str = "DCI_TEST_DATABASE_URL";

/// The PostgreSQL URL of [`DATABASE_URL_ENV`]; when it is unset or empty, [`skip`]s the calling
/// test (which then returns) and gives `None`.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        skip("DCI_TEST_DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
    }
    url
}

/// Skips the calling test (call it from the test's thread, then return): panics with `reason`
/// when CI is set, else reports it on stderr and records it for `scripts/test`'s summary.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned();
    let binary = test_binary();
    // `std::io::stderr()` is not captured by the harness (`eprintln!` is).
    skip_with(
        ci(),
        &skips_dir(),
        &binary,
        &test,
        reason,
        &mut std::io::stderr(),
    );
}

/// Whether the env var `CI` asks for a strict run.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Where skip records go: `DCI_TEST_SKIPS_DIR`, else `<target>/test-skips` found from the test
/// executable (`<target>/<profile>/deps/<name>-<hash>`).
pub fn skips_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(SKIPS_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_owned()))
        .unwrap_or_else(std::env::temp_dir)
        .join("test-skips")
}

/// The test executable's name without cargo's hash suffix (`contract`, `e2e`, …).
fn test_binary() -> String {
    let stem = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem,
    }
}

fn skip_with(ci: bool, dir: &Path, binary: &str, test: &str, reason: &str, out: &mut dyn Write) {
    if ci {
        panic!("{binary}::{test} would be skipped, and CI is set, so that is a failure: {reason}");
    }
    static SHOWN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SHOWN
        .lock()
        .map(|mut shown| shown.insert(reason.to_owned()))
        .unwrap_or(true);
    if first {
        let _ = writeln!(
            out,
            "SKIPPED {binary}::{test}: {reason} (set CI=1 to make this a failure)"
        );
    }
    let file: String = format!("{binary}.{test}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let line = format!("{binary}::{test}\t{}\n", reason.replace(['\t', '\n'], " "));
    let _ = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(dir.join(file), line));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_recorded_outside_ci() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        skip_with(
            false,
            dir.path(),
            "contract",
            "pg::a",
            "no db here",
            &mut out,
        );
        skip_with(
            false,
            dir.path(),
            "contract",
            "pg::b",
            "no db here",
            &mut out,
        );
        // Shown once per reason, recorded once per test.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SKIPPED contract::pg::a: no db here (set CI=1 to make this a failure)\n"
        );
        let text = std::fs::read_to_string(dir.path().join("contract.pg__b")).unwrap();
        assert_eq!(text, "contract::pg::b\tno db here\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_skip_fails_under_ci() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let reason = "DCI_TEST_DATABASE_URL is not set";
            skip_with(true, dir.path(), "e2e", "pg", reason, &mut out)
        }))
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("CI is set") && msg.contains("DCI_TEST_DATABASE_URL is not set"),
            "{msg}"
        );
        assert!(out.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_binary_name_drops_the_cargo_hash() {
        // This test runs in `dci_protocol-<hash>`.
        assert_eq!(test_binary(), "dci_protocol");
    }
}
