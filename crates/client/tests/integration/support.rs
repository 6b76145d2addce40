//! Shared test helpers: data sources, an in-memory `Store` double, token mocks, a TLS server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dci_client::store::{AuditEntry, AuditFilter, CachedToken, RotationReport, SourceFilter};
use dci_client::{
    AuthConfig, CredentialLocation, DataSource, Endpoints, MasterKey, OAuth2Config,
    SignaturePolicy, SourceState, Store, StoreError, TlsSettings,
};
use dci_protocol::RegistryType;
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) fn source(base_url: &str, auth: AuthConfig) -> DataSource {
    let now = OffsetDateTime::now_utc();
    DataSource {
        id: Uuid::new_v4(),
        code: "test_src".into(),
        name: "Test source".into(),
        registry_type: RegistryType::Crvs,
        base_url: base_url.trim_end_matches('/').into(),
        auth,
        sender_id: Some("spmis.example.org".into()),
        receiver_id: None,
        callback_uri: None,
        endpoints: Endpoints::default(),
        tls: TlsSettings::default(),
        timeout_secs: 10,
        signing_key_id: None,
        reply_signature_policy: SignaturePolicy::Off,
        registry_public_keys: Vec::new(),
        registry_jwks_url: None,
        profile: Default::default(),
        callbacks: dci_client::source::CallbackSettings {
            secret: Some(dci_client::source::CallbackSettings::generate_secret()),
            accept_unauthenticated: false,
            http_refusals: false,
        },
        recovery: Default::default(),
        retry: Default::default(),
        limits: Default::default(),
        active: true,
        notes: String::new(),
        state: SourceState::Draft,
        last_test_at: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

pub(crate) fn oauth2(token_url: &str, location: CredentialLocation) -> AuthConfig {
    AuthConfig::OAuth2(OAuth2Config {
        token_url: token_url.into(),
        client_id: "client-1".into(),
        client_secret: SecretString::from("s3cr3t-value".to_owned()),
        scope: Some("registry.search".into()),
        credential_location: location,
    })
}

pub(crate) fn token_body(token: &str, expires_in: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in})
}

/// Mounts a token endpoint at `/token` that always issues `token`.
pub(crate) async fn mount_token(server: &MockServer, token: &str, expires_in: serde_json::Value) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(token, expires_in)))
        .mount(server)
        .await;
}

pub(crate) async fn count(server: &MockServer, p: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == p)
        .count()
}

pub(crate) fn sync_search_envelope() -> serde_json::Value {
    serde_json::json!({
        "header": {"version": "1.0.0", "message_id": "msg-1", "message_ts": "2026-11-29T00:00:00Z",
                   "action": "search", "sender_id": "spmis.example.org", "total_count": 1},
        "message": {"transaction_id": "txn-1", "search_request": [{"reference_id": "r1",
            "timestamp": "2026-11-29T00:00:00Z", "search_criteria": {"query_type": "idtype-value",
            "query": {"type": "UIN", "value": "123"}}}]}
    })
}

pub(crate) fn sync_ok_body() -> serde_json::Value {
    serde_json::json!({
        "header": {"message_id": "m2", "message_ts": "2026-11-29T00:00:01Z", "action": "on-search",
                   "status": "succ"},
        "message": {"transaction_id": "txn-1", "correlation_id": "c1",
                    "search_response": [{"reference_id": "r1", "status": "succ"}]}
    })
}

/// An in-memory `Store` double recording what the client writes.
#[derive(Default)]
pub(crate) struct MemStore {
    pub(crate) sources: Mutex<HashMap<String, DataSource>>,
    pub(crate) tokens: Mutex<HashMap<Uuid, CachedToken>>,
    pub(crate) audit: Mutex<Vec<AuditEntry>>,
    pub(crate) states: Mutex<Vec<(String, SourceState, Option<String>)>>,
}

impl MemStore {
    pub(crate) fn new() -> Arc<MemStore> {
        Arc::new(MemStore::default())
    }

    pub(crate) fn audit(&self) -> Vec<AuditEntry> {
        self.audit.lock().unwrap().clone()
    }
}

#[async_trait]
impl Store for MemStore {
    async fn create_data_source(&self, source: &DataSource) -> Result<(), StoreError> {
        self.sources
            .lock()
            .unwrap()
            .insert(source.code.clone(), source.clone());
        Ok(())
    }
    async fn get_data_source(&self, code: &str) -> Result<Option<DataSource>, StoreError> {
        Ok(self.sources.lock().unwrap().get(code).cloned())
    }
    async fn get_data_source_by_id(&self, id: Uuid) -> Result<Option<DataSource>, StoreError> {
        Ok(self
            .sources
            .lock()
            .unwrap()
            .values()
            .find(|s| s.id == id)
            .cloned())
    }
    async fn list_data_sources(&self, _f: &SourceFilter) -> Result<Vec<DataSource>, StoreError> {
        Ok(self.sources.lock().unwrap().values().cloned().collect())
    }
    async fn update_data_source(&self, source: &DataSource) -> Result<DataSource, StoreError> {
        self.sources
            .lock()
            .unwrap()
            .insert(source.code.clone(), source.clone());
        Ok(source.clone())
    }
    async fn delete_data_source(&self, code: &str) -> Result<(), StoreError> {
        self.sources.lock().unwrap().remove(code);
        Ok(())
    }
    async fn set_active(&self, _code: &str, _active: bool) -> Result<(), StoreError> {
        Ok(())
    }
    async fn set_state(&self, code: &str, state: SourceState) -> Result<(), StoreError> {
        self.states.lock().unwrap().push((code.into(), state, None));
        Ok(())
    }
    async fn record_test_result(
        &self,
        code: &str,
        state: SourceState,
        _at: OffsetDateTime,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.states
            .lock()
            .unwrap()
            .push((code.into(), state, last_error.map(str::to_owned)));
        Ok(())
    }
    async fn put_token(&self, id: Uuid, token: &CachedToken) -> Result<(), StoreError> {
        self.tokens.lock().unwrap().insert(id, token.clone());
        Ok(())
    }
    async fn get_token(&self, id: Uuid) -> Result<Option<CachedToken>, StoreError> {
        Ok(self.tokens.lock().unwrap().get(&id).cloned())
    }
    async fn delete_token(&self, id: Uuid) -> Result<(), StoreError> {
        self.tokens.lock().unwrap().remove(&id);
        Ok(())
    }
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit.lock().unwrap().push(entry.clone());
        Ok(())
    }
    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let a = self.audit.lock().unwrap();
        Ok(a.iter()
            .rev()
            .filter(|e| f.source_code.as_ref().is_none_or(|c| *c == e.source_code))
            .take(f.limit as usize)
            .cloned()
            .collect())
    }
    async fn rotate_master_key(&self, _k: MasterKey) -> Result<RotationReport, StoreError> {
        Err(StoreError::Corrupt(
            "not supported by the test double".into(),
        ))
    }
}

/// A certificate and key for `localhost`, valid from `not_before` to `not_after`.
pub(crate) struct TestCert {
    pub(crate) cert_pem: String,
    pub(crate) cert_der: rustls_pki_types::CertificateDer<'static>,
    pub(crate) key_der: Vec<u8>,
}

pub(crate) fn self_signed(not_before: OffsetDateTime, not_after: OffsetDateTime) -> TestCert {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = not_before;
    params.not_after = not_after;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    TestCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

/// A TLS server on 127.0.0.1:0 answering every request with `200 {}`. Stops when dropped.
pub(crate) struct TlsServer {
    pub(crate) port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn tls_server(cert: &TestCert) -> TlsServer {
    tls_server_with(cert, None).await
}

/// A small PKI: a CA, a `localhost` server certificate and a client certificate it issued.
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) ca_der: rustls_pki_types::CertificateDer<'static>,
    pub(crate) server: TestCert,
    pub(crate) client_cert_pem: String,
    pub(crate) client_key_pem: String,
}

pub(crate) fn pki() -> Pki {
    let now = OffsetDateTime::now_utc();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(30);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = |names: Vec<String>| {
        let mut p = rcgen::CertificateParams::new(names).unwrap();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(30);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert, key)
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into()]);
    let (client_cert, client_key) = leaf(vec!["spmis.example.org".into()]);
    Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        server: TestCert {
            cert_pem: server_cert.pem(),
            cert_der: server_cert.der().clone(),
            key_der: server_key.serialize_der(),
        },
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// As [`tls_server`]; with `client_ca`, clients must present a certificate issued by it.
pub(crate) async fn tls_server_with(
    cert: &TestCert,
    client_ca: Option<rustls_pki_types::CertificateDer<'static>>,
) -> TlsServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(
            vec![cert.cert_der.clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_der.clone().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                          content-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsServer { port, task }
}

/// Writes `pem` to a temp file kept alive by the returned handle.
pub(crate) fn pem_file(pem: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(pem.as_bytes()).unwrap();
    f
}

/// Operations over `client` with a throwaway SQLite operations store (the staged test runs its
/// probe through them).
pub(crate) async fn ops_for(client: dci_client::DciClient) -> dci_client::Operations {
    let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ops.sqlite3").display()
    );
    let ops = dci_store::SqliteStore::connect(&url, &dci_client::MasterKey::from_bytes([1; 32]))
        .await
        .unwrap();
    dci_client::Operations::new(client, Arc::new(ops))
}
