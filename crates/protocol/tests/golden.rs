//! Golden vectors made by Python (`scripts/golden/generate.py`: `json.dumps(sort_keys=True,
//! separators=(",", ":"))` + `cryptography`): the Rust canonical bytes match Python's byte for
//! byte, Python-signed envelopes verify in Rust, Rust reproduces Python's signatures exactly
//! (Ed25519 and RSA PKCS#1 v1.5 are deterministic), and Rust-signed envelopes verify under the
//! Python recipe (`scripts/golden/verify.py`, run as a subprocess).

use std::path::PathBuf;
use std::process::Command;

use dci_protocol::OffsetDateTime;
use dci_protocol::RegistryType;
use dci_protocol::build::{RequestBuilder, SearchItem};
use dci_protocol::canonical::{jcs, python_json};
use dci_protocol::message::Query;
use dci_protocol::signature::{
    self, Algorithm, Signer, SigningKey, VerifyOptions, VerifyingKey, verify_envelope,
};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn vectors() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

#[test]
fn canonical_bytes_match_python() {
    let v = vectors();
    let cases = v["canonical"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let input: Value = serde_json::from_str(case["input"].as_str().unwrap()).unwrap();
        let ours = python_json(&input);
        assert_eq!(ours, case["canonical"].as_str().unwrap(), "case {name}");
        assert_eq!(
            signature::digest_bytes(ours.as_bytes()),
            case["sha256_b64"].as_str().unwrap(),
            "digest of {name}"
        );
    }
}

#[test]
fn jcs_matches_ecmascript() {
    let v = vectors();
    let mut checked = 0;
    for case in v["canonical"].as_array().unwrap() {
        let Some(expected) = case.get("jcs_node").and_then(Value::as_str) else {
            continue;
        };
        let input: Value = serde_json::from_str(case["input"].as_str().unwrap()).unwrap();
        assert_eq!(jcs(&input), expected, "JCS of case {}", case["name"]);
        checked += 1;
    }
    assert!(
        checked >= 8,
        "vectors.json lacks the Node.js JCS outputs; regenerate with node installed"
    );
}

#[test]
fn known_differences_are_pinned() {
    let v = vectors();
    let known = v["known_differences"].as_array().unwrap();
    assert!(!known.is_empty());
    for case in known {
        let input: Value = serde_json::from_str(case["input"].as_str().unwrap()).unwrap();
        let ours = python_json(&input);
        assert_eq!(ours, case["rust"].as_str().unwrap(), "{}", case["why"]);
        assert_ne!(
            ours,
            case["python"].as_str().unwrap(),
            "fixed? update generate.py: {}",
            case["why"]
        );
    }
}

#[test]
fn python_signed_envelopes_verify_in_rust_and_rust_signs_identically() {
    let v = vectors();
    let signed = v["signed"].as_array().unwrap();
    assert_eq!(signed.len(), 6);
    for case in signed {
        let name = case["name"].as_str().unwrap();
        let alg = case["algorithm"].as_str().unwrap();
        let keys = &v["keys"][alg];
        let public =
            VerifyingKey::from_spki_pem(keys["public_spki_pem"].as_str().unwrap()).unwrap();
        let private =
            SigningKey::from_pkcs8_pem(keys["private_pkcs8_pem"].as_str().unwrap()).unwrap();
        assert_eq!(private.verifying_key(), public, "{name}: key pair");
        let created = case["created"].as_i64().unwrap();
        let envelope = &case["envelope"];
        let header = &envelope["header"];
        let message = envelope.get("message").unwrap_or(&Value::Null);

        assert_eq!(
            signature::canonical_payload(header, message, Default::default()),
            case["canonical"].as_str().unwrap(),
            "{name}: canonical payload"
        );
        assert_eq!(
            signature::digest(header, message, Default::default()),
            case["digest"].as_str().unwrap(),
            "{name}: digest"
        );

        let parsed = verify_envelope(
            envelope,
            &public,
            &VerifyOptions::default(),
            at(created + 10),
        )
        .unwrap_or_else(|e| panic!("{name}: Python signature rejected: {e}"));
        assert_eq!(parsed.sender_id, case["sender_id"].as_str().unwrap());
        assert_eq!(parsed.key_id, case["key_id"].as_str().unwrap());
        assert_eq!(parsed.algorithm.as_str(), alg);

        let ours = Signer::new(private, "spmis.example", "key-2025")
            .sign(header, message, at(created))
            .unwrap();
        assert_eq!(
            ours,
            envelope["signature"].as_str().unwrap(),
            "{name}: Rust signature differs from Python's"
        );

        // Changing one character of the message breaks it.
        let mut tampered = envelope.clone();
        tampered["header"]["message_id"] = json!("changed");
        assert!(
            verify_envelope(
                &tampered,
                &public,
                &VerifyOptions::default(),
                at(created + 10)
            )
            .is_err()
        );
    }
}

/// `python3` with `cryptography`, or `None` (skip) — except under CI, where it must exist.
fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some("python3");
    }
    dci_protocol::test_support::skip(
        "python3 with the `cryptography` package is not available (pip install cryptography)",
    );
    None
}

fn python_verify(
    python: &str,
    dir: &std::path::Path,
    public_pem: &str,
    envelope: &Value,
    now: i64,
) -> (i32, String) {
    let key = dir.join("public.pem");
    let env = dir.join("envelope.json");
    std::fs::write(&key, public_pem).unwrap();
    std::fs::write(&env, serde_json::to_string_pretty(envelope).unwrap()).unwrap();
    let out = Command::new(python)
        .arg(root().join("scripts/golden/verify.py"))
        .args([
            "--public-key",
            key.to_str().unwrap(),
            "--now",
            &now.to_string(),
            env.to_str().unwrap(),
        ])
        .output()
        .expect("run verify.py");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn rust_signed_envelopes_verify_under_the_python_recipe() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let now = 1_780_000_000;
    for alg in [Algorithm::Ed25519, Algorithm::Rs256] {
        let key = SigningKey::generate(alg).unwrap();
        let public = key.verifying_key().to_spki_pem();
        let signer = Signer::new(key, "spmis.example", "rust-key");
        let envelopes = [
            RequestBuilder::new(RegistryType::Social, "spmis.example")
                .sender_uri("https://spmis.example/registry/on-search")
                .at(at(now))
                .search([SearchItem::new(Query::id("UIN", "Zoë-山田-😀"))
                    .page(1, 10)
                    .locale("eng")])
                .unwrap()
                .signed(&signer, at(now))
                .unwrap()
                .to_value(),
            {
                let mut v = json!({
                    "header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z", "action": "on-search",
                               "status": "succ", "sender_id": "registry"},
                    "message": {"floats": [1e16, 0.1, -0.0, 1.5e-7, 1e22, 5e-324, 100.0],
                                "ints": [9223372036854775807i64, -9223372036854775808i64, 18446744073709551615u64],
                                "names": ["Ñandú", "محمد", "\u{2028}", "\"q\" \\ \n"]}
                });
                signer.sign_envelope(&mut v, at(now)).unwrap();
                v
            },
            {
                let mut v = json!({"header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z",
                                              "action": "on-search", "status": "rjct"}});
                signer.sign_envelope(&mut v, at(now)).unwrap();
                v
            },
        ];
        for envelope in &envelopes {
            let (code, out) = python_verify(python, dir.path(), &public, envelope, now + 5);
            assert_eq!(
                code, 0,
                "{alg}: Python rejected a Rust signature: {out}\n{envelope:#}"
            );
            let mut tampered = envelope.clone();
            tampered["header"]["message_id"] = json!("other");
            let (code, out) = python_verify(python, dir.path(), &public, &tampered, now + 5);
            assert_eq!(code, 1, "{alg}: Python accepted a tampered envelope: {out}");
        }
    }
}
