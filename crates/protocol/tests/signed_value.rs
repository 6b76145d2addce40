//! `Envelope::into_signed_value` (the engine's one-serialisation signing path) gives exactly
//! what signing in place and then `to_value` gives: the same JSON, the same bytes on the wire,
//! the same key order, and a signature that verifies.

use dci_protocol::OffsetDateTime;
use dci_protocol::RegistryType;
use dci_protocol::build::{RequestBuilder, SearchItem};
use dci_protocol::message::Query;
use dci_protocol::signature::{Algorithm, Signer, SigningKey, VerifyOptions, verify_envelope};
use serde_json::json;

#[test]
fn signed_value_is_sign_then_to_value() {
    let now = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
    for alg in [Algorithm::Ed25519, Algorithm::Rs256] {
        let mut env = RequestBuilder::new(RegistryType::Crvs, "spmis.example")
            .receiver_id("crvs.example")
            .at(now)
            .sync_search([SearchItem::new(Query::id("UIN", "Zoë-1234")).page(1, 10)])
            .unwrap();
        env.extra.insert(
            "x_extra".into(),
            json!({"b": 1, "a": [true, null, "\u{7f}"]}),
        );
        let key = SigningKey::generate(alg).unwrap();
        let signer = Signer::new(key.clone(), "spmis.example", "k1");
        // Ed25519 and RSA PKCS#1 v1.5 are deterministic: both paths sign the same bytes.
        let once = env.clone().into_signed_value(&signer, now).unwrap();
        let twice = env.signed(&signer, now).unwrap().to_value();
        assert_eq!(once, twice, "{alg:?}");
        assert_eq!(
            serde_json::to_vec(&once).unwrap(),
            serde_json::to_vec(&twice).unwrap(),
            "{alg:?}"
        );
        let keys: Vec<&str> = once
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["signature", "header", "message", "x_extra"]);
        verify_envelope(&once, &key.verifying_key(), &VerifyOptions::default(), now).unwrap();
    }
}
