//! [`DataSourceInput`]: a flat way to fill a [`SourceDocument`] from code and tests.
//!
//! It predates the document and is kept so that callers building a source field by field keep
//! compiling; it converts into the document and validates through it, so the rules and messages
//! are the document's. New code should build a [`SourceDocument`].

use secrecy::SecretString;

use super::document::{
    AuthDocument, CallbacksDocument, EndpointsDocument, LimitsDocument, RecoveryDocument,
    RetryDocument, SourceDocument, TlsDocument,
};
use super::{DataSource, ValidationErrors};

/// A data source as flat fields: strings as typed, secrets as `SecretString`. Empty strings count
/// as "not given"; see [`SourceDocument`] for the meaning of each field.
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)]
pub struct DataSourceInput {
    pub code: String,
    pub name: String,
    pub registry_type: String,
    pub base_url: String,
    pub auth: Option<String>,
    pub bearer_token: Option<SecretString>,
    pub basic_username: Option<String>,
    pub basic_password: Option<SecretString>,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub scope: Option<String>,
    pub credential_location: Option<String>,
    pub sender_id: Option<String>,
    pub receiver_id: Option<String>,
    pub callback_uri: Option<String>,
    pub sync_search_path: Option<String>,
    pub search_path: Option<String>,
    pub subscribe_path: Option<String>,
    pub unsubscribe_path: Option<String>,
    pub txn_status_path: Option<String>,
    pub sync_txn_status_path: Option<String>,
    pub tls_verify: Option<bool>,
    pub ca_file: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    pub timeout_secs: Option<String>,
    pub signing_key_id: Option<String>,
    pub reply_signature_policy: Option<String>,
    pub registry_public_keys: Vec<String>,
    pub registry_jwks_url: Option<String>,
    pub profile: Option<String>,
    /// `callbacks.accept_unauthenticated`.
    pub accept_unauthenticated_callbacks: Option<bool>,
    /// `callbacks.http_refusals`.
    pub http_refusals: Option<bool>,
    /// `recovery.*`.
    pub recovery: RecoveryDocument,
    /// `retry.*`.
    pub retry: RetryDocument,
    /// `limits.*`.
    pub limits: LimitsDocument,
    pub active: Option<bool>,
    pub notes: Option<String>,
}

impl From<DataSourceInput> for SourceDocument {
    fn from(i: DataSourceInput) -> SourceDocument {
        let text = |s: String| Some(s).filter(|s| !s.trim().is_empty());
        SourceDocument {
            code: text(i.code),
            name: text(i.name),
            registry_type: text(i.registry_type),
            base_url: text(i.base_url),
            auth: AuthDocument {
                kind: i.auth,
                bearer_token: i.bearer_token,
                username: i.basic_username,
                password: i.basic_password,
                token_url: i.token_url,
                client_id: i.client_id,
                client_secret: i.client_secret,
                scope: i.scope,
                credential_location: i.credential_location,
            },
            sender_id: i.sender_id,
            receiver_id: i.receiver_id,
            callback_uri: i.callback_uri,
            endpoints: EndpointsDocument {
                sync_search: i.sync_search_path,
                search: i.search_path,
                subscribe: i.subscribe_path,
                unsubscribe: i.unsubscribe_path,
                txn_status: i.txn_status_path,
                sync_txn_status: i.sync_txn_status_path,
            },
            tls: TlsDocument {
                verify: i.tls_verify,
                ca_file: i.ca_file,
                client_cert_file: i.client_cert_file,
                client_key_file: i.client_key_file,
            },
            timeout_secs: i.timeout_secs,
            signing_key_id: i.signing_key_id,
            reply_signature_policy: i.reply_signature_policy,
            registry_public_keys: i.registry_public_keys,
            registry_jwks_url: i.registry_jwks_url,
            profile: i.profile,
            callbacks: CallbacksDocument {
                accept_unauthenticated: i.accept_unauthenticated_callbacks,
                http_refusals: i.http_refusals,
                secret: None,
                url: None,
            },
            recovery: i.recovery,
            retry: i.retry,
            limits: i.limits,
            active: i.active,
            notes: i.notes,
            ..SourceDocument::default()
        }
    }
}

impl From<SourceDocument> for DataSourceInput {
    fn from(d: SourceDocument) -> DataSourceInput {
        let (a, e, t) = (d.auth, d.endpoints, d.tls);
        DataSourceInput {
            code: d.code.unwrap_or_default(),
            name: d.name.unwrap_or_default(),
            registry_type: d.registry_type.unwrap_or_default(),
            base_url: d.base_url.unwrap_or_default(),
            auth: a.kind,
            bearer_token: a.bearer_token,
            basic_username: a.username,
            basic_password: a.password,
            token_url: a.token_url,
            client_id: a.client_id,
            client_secret: a.client_secret,
            scope: a.scope,
            credential_location: a.credential_location,
            sender_id: d.sender_id,
            receiver_id: d.receiver_id,
            callback_uri: d.callback_uri,
            sync_search_path: e.sync_search,
            search_path: e.search,
            subscribe_path: e.subscribe,
            unsubscribe_path: e.unsubscribe,
            txn_status_path: e.txn_status,
            sync_txn_status_path: e.sync_txn_status,
            tls_verify: t.verify,
            ca_file: t.ca_file,
            client_cert_file: t.client_cert_file,
            client_key_file: t.client_key_file,
            timeout_secs: d.timeout_secs,
            signing_key_id: d.signing_key_id,
            reply_signature_policy: d.reply_signature_policy,
            registry_public_keys: d.registry_public_keys,
            registry_jwks_url: d.registry_jwks_url,
            profile: d.profile,
            accept_unauthenticated_callbacks: d.callbacks.accept_unauthenticated,
            http_refusals: d.callbacks.http_refusals,
            recovery: d.recovery,
            retry: d.retry,
            limits: d.limits,
            active: d.active,
            notes: d.notes,
        }
    }
}

impl DataSourceInput {
    /// The input that reproduces `source`, every secret masked (so an update keeps them).
    pub fn from_source(source: &DataSource) -> DataSourceInput {
        SourceDocument::from_source(source).into()
    }

    /// Clears the fields that belong to one auth type (used when switching auth types).
    pub fn clear_auth_fields(&mut self) {
        self.bearer_token = None;
        self.basic_username = None;
        self.basic_password = None;
        self.token_url = None;
        self.client_id = None;
        self.client_secret = None;
        self.scope = None;
        self.credential_location = None;
    }

    /// [`SourceDocument::validate`].
    pub fn validate(self) -> Result<DataSource, ValidationErrors> {
        SourceDocument::from(self).validate()
    }

    /// [`SourceDocument::validate_rename`]: an edit of `existing`, the code may change.
    pub fn validate_update(self, existing: &DataSource) -> Result<DataSource, ValidationErrors> {
        SourceDocument::from(self).validate_rename(existing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthConfig;
    use secrecy::ExposeSecret;

    #[test]
    fn flat_input_validates_through_the_document() {
        let input = DataSourceInput {
            code: "crvs_main".into(),
            name: "CRVS".into(),
            registry_type: "crvs".into(),
            base_url: "https://crvs.example.org".into(),
            auth: Some("basic".into()),
            basic_username: Some("u".into()),
            basic_password: Some(SecretString::from("pw-1")),
            sender_id: Some("me".into()),
            sync_search_path: Some("/s".into()),
            timeout_secs: Some("7".into()),
            ..DataSourceInput::default()
        };
        let s = input.validate().unwrap();
        assert_eq!(s.endpoints.sync_search, "/s");
        assert_eq!(s.timeout_secs, 7);
        let mut edit = DataSourceInput::from_source(&s);
        edit.code = "renamed".into();
        let again = edit.validate_update(&s).unwrap();
        assert_eq!(again.code, "renamed");
        let AuthConfig::Basic { password, .. } = &again.auth else {
            panic!()
        };
        assert_eq!(password.expose_secret(), "pw-1");
        let errs = DataSourceInput::default().validate().unwrap_err();
        assert!(errs.has("code") && errs.has("base_url"));
    }
}
