//! `dci envelope canonicalize|sign|verify`, run as the real binary with keys in a temp dir.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dci_protocol::signature::{Algorithm, SigningKey};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

fn dci(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dci"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dci");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Keys {
    _dir: tempfile::TempDir,
    private: PathBuf,
    public: PathBuf,
}

fn keys(alg: Algorithm) -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(alg).unwrap();
    let private = dir.path().join("key.pem");
    let public = dir.path().join("key.pub.pem");
    std::fs::write(&private, key.to_pkcs8_pem().unwrap().expose_secret()).unwrap();
    std::fs::write(&public, key.verifying_key().to_spki_pem()).unwrap();
    Keys {
        _dir: dir,
        private,
        public,
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn envelope() -> String {
    json!({
        "header": {"version": "1.0.0", "message_id": "m-1", "message_ts": "2025-01-01T00:00:00Z",
                   "action": "search", "sender_id": "spmis", "total_count": 1},
        "message": {"transaction_id": "t-1", "name": "Zoë Ñúñez 😀", "score": 1e16, "ratio": 0.1}
    })
    .to_string()
}

#[test]
fn canonicalize_prints_python_bytes() {
    let out = dci(&["envelope", "canonicalize"], &envelope());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        r#"{"header":{"action":"search","message_id":"m-1","message_ts":"2025-01-01T00:00:00Z","sender_id":"spmis","total_count":1,"version":"1.0.0"},"message":{"name":"Zo\u00eb \u00d1\u00fa\u00f1ez \ud83d\ude00","ratio":0.1,"score":1e+16,"transaction_id":"t-1"}}"#
    );
    let jcs = dci(
        &["envelope", "canonicalize", "--canonicalization", "jcs"],
        &envelope(),
    );
    assert!(
        text(&jcs.stdout).contains("\"score\":10000000000000000"),
        "{}",
        text(&jcs.stdout)
    );
    let digest = dci(&["envelope", "canonicalize", "--digest"], &envelope());
    assert_eq!(text(&digest.stdout).trim().len(), 44);
}

#[test]
fn sign_then_verify_both_algorithms() {
    for alg in [Algorithm::Ed25519, Algorithm::Rs256] {
        let k = keys(alg);
        let signed = dci(
            &[
                "envelope",
                "sign",
                "--key",
                p(&k.private),
                "--sender-id",
                "spmis",
                "--key-id",
                "k1",
                "--alg",
                alg.as_str(),
            ],
            &envelope(),
        );
        assert_eq!(signed.status.code(), Some(0), "{}", text(&signed.stderr));
        let signed_text = text(&signed.stdout);
        let v: Value = serde_json::from_str(&signed_text).unwrap();
        let sig = v["signature"].as_str().unwrap();
        assert!(
            sig.contains(&format!("kidId=\"spmis|k1|{}\"", alg.as_str())),
            "{sig}"
        );

        let ok = dci(
            &["envelope", "verify", "--public-key", p(&k.public)],
            &signed_text,
        );
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{}{}",
            text(&ok.stdout),
            text(&ok.stderr)
        );
        assert!(text(&ok.stdout).starts_with("valid:"));

        let tampered = signed_text.replace("t-1", "t-2");
        let bad = dci(
            &["envelope", "verify", "--public-key", p(&k.public)],
            &tampered,
        );
        assert_eq!(bad.status.code(), Some(1));
        assert!(
            text(&bad.stdout).contains("does not verify"),
            "{}",
            text(&bad.stdout)
        );
    }
}

#[test]
fn verify_reports_window_and_algorithm_problems() {
    let k = keys(Algorithm::Ed25519);
    let signed = dci(
        &[
            "envelope",
            "sign",
            "--key",
            p(&k.private),
            "--sender-id",
            "s",
            "--key-id",
            "k",
            "--at",
            "1700000000",
        ],
        &envelope(),
    );
    let signed = text(&signed.stdout);
    let expired = dci(
        &[
            "envelope",
            "verify",
            "--public-key",
            p(&k.public),
            "--at",
            "1700000400",
        ],
        &signed,
    );
    assert_eq!(expired.status.code(), Some(1));
    assert!(
        text(&expired.stdout).contains("expired"),
        "{}",
        text(&expired.stdout)
    );
    let skewed = dci(
        &[
            "envelope",
            "verify",
            "--public-key",
            p(&k.public),
            "--at",
            "1700000400",
            "--max-skew",
            "120",
        ],
        &signed,
    );
    assert_eq!(skewed.status.code(), Some(0), "{}", text(&skewed.stdout));
    let json_out = dci(
        &[
            "--json",
            "envelope",
            "verify",
            "--public-key",
            p(&k.public),
            "--at",
            "1699999000",
        ],
        &signed,
    );
    assert_eq!(json_out.status.code(), Some(1));
    let v: Value = serde_json::from_str(text(&json_out.stdout).trim()).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["kind"], "not_yet_valid");

    let rsa = keys(Algorithm::Rs256);
    let mismatch = dci(
        &[
            "envelope",
            "verify",
            "--public-key",
            p(&rsa.public),
            "--at",
            "1700000000",
        ],
        &signed,
    );
    assert_eq!(mismatch.status.code(), Some(1));
    assert!(text(&mismatch.stdout).contains("algorithm mismatch"));

    let unsigned = dci(
        &["envelope", "verify", "--public-key", p(&k.public)],
        &envelope(),
    );
    assert_eq!(unsigned.status.code(), Some(1));
    assert!(text(&unsigned.stdout).contains("no `signature`"));
}

#[test]
fn malformed_input_exits_2_with_a_message() {
    let k = keys(Algorithm::Ed25519);
    let pem = std::fs::read_to_string(&k.private).unwrap();
    let secret_line = pem.lines().nth(1).unwrap().to_owned();
    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["envelope", "verify", "--public-key", p(&k.public)],
            "{not json",
            "not valid JSON",
        ),
        (
            &["envelope", "verify", "--public-key", p(&k.public)],
            "{\"message\":{}}",
            "no `header`",
        ),
        (
            &["envelope", "verify", "--public-key", "/nonexistent/k.pem"],
            &envelope(),
            "cannot read public key",
        ),
        (
            &["envelope", "verify", "--public-key", p(&k.private)],
            &envelope(),
            "private key",
        ),
        (
            &[
                "envelope",
                "sign",
                "--key",
                p(&k.private),
                "--sender-id",
                "s",
                "--key-id",
                "k",
                "--alg",
                "rs256",
            ],
            &envelope(),
            "--alg rs256",
        ),
        (&["envelope", "canonicalize"], "", "no input"),
    ];
    for (args, input, expected) in cases {
        let out = dci(args, input);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
        // Key material never reaches the output.
        assert!(
            !text(&out.stderr).contains(&secret_line),
            "{}",
            text(&out.stderr)
        );
    }
    let sender = dci(
        &[
            "envelope",
            "sign",
            "--key",
            p(&k.private),
            "--sender-id",
            "a|b",
            "--key-id",
            "k",
        ],
        &envelope(),
    );
    assert_eq!(sender.status.code(), Some(2));
    assert!(
        text(&sender.stderr).contains("sender_id"),
        "{}",
        text(&sender.stderr)
    );
}

/// The binary (whose dependency graph differs from the protocol crate's tests) parses and
/// canonicalizes exactly like Python on the golden vectors, floats included.
#[test]
fn canonicalize_matches_the_python_golden_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/tests/golden/vectors.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = v["canonical"].as_array().unwrap();
    assert!(cases.iter().any(|c| c["name"] == "float_sweep"));
    for case in cases {
        let out = dci(
            &["envelope", "canonicalize", "--whole"],
            case["input"].as_str().unwrap(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            case["canonical"].as_str().unwrap(),
            "case {}",
            case["name"]
        );
    }
}
