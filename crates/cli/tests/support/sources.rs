//! The sandbox as a data source, for the tests that store one (included with
//! `#[path = "support/sources.rs"] mod sources;`, which `support/serve.rs` also needs).

use dci_client::DataSourceInput;
use dci_protocol::RegistryType;
use dci_sandbox::Sandbox;

/// `registry` on the sandbox as data source `code`: OAuth2 with the demo client and the
/// registry's read scope, our sender id, the sandbox's registry id. Tests set whatever else
/// they need (a callback URI, limits) before `validate`.
#[allow(dead_code)]
pub(crate) fn sandbox_input(sb: &Sandbox, registry: RegistryType, code: &str) -> DataSourceInput {
    DataSourceInput {
        code: code.into(),
        name: format!("Sandbox {}", registry.as_str().to_ascii_uppercase()),
        registry_type: registry.as_str().into(),
        base_url: sb.registry_url(registry),
        auth: Some("oauth2".into()),
        token_url: Some(sb.token_url()),
        client_id: Some(dci_sandbox::DEMO_CLIENT_ID.into()),
        client_secret: Some(secrecy::SecretString::from(
            dci_sandbox::DEMO_CLIENT_SECRET.to_owned(),
        )),
        scope: Some(dci_sandbox::read_scope(registry)),
        sender_id: Some("spmis.example.org".into()),
        receiver_id: Some(sb.registry_id().to_owned()),
        ..DataSourceInput::default()
    }
}

/// `input` with its replies' signatures required and checked through the sandbox's JWKS.
#[allow(dead_code)]
pub(crate) fn verified(sb: &Sandbox, input: DataSourceInput) -> DataSourceInput {
    DataSourceInput {
        reply_signature_policy: Some("require".into()),
        registry_jwks_url: Some(sb.jwks_url()),
        ..input
    }
}
