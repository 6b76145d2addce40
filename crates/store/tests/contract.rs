//! The store contract: one suite, run against SQLite (always) and PostgreSQL (when
//! `DCI_TEST_DATABASE_URL` is set; each test gets its own schema, dropped afterwards).

use std::future::Future;
use std::sync::Arc;

use dci_client::{
    AuditEntry, AuditFilter, AuditOutcome, AuthConfig, CachedToken, DataSource, DataSourceInput,
    MasterKey, SourceChange, SourceFilter, SourceState, Store, StoreError,
};
use dci_protocol::RegistryType;
use dci_store::{PgStore, SqliteStore};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

/// Where a test's database lives. Tests open it as often as they like (several pools, other keys).
enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
    Pg {
        url: String,
        schema: String,
    },
}

impl Backend {
    async fn open(&self, key: &MasterKey) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Backend::Sqlite { path, .. } => Arc::new(SqliteStore::open_file(path, key).await?),
            Backend::Pg { url, schema } => {
                Arc::new(PgStore::connect_in_schema(url, schema, key).await?)
            }
        })
    }

    /// Runs one statement directly on the database (outside the store), returning the error text.
    async fn raw_exec(&self, sql: &'static str) -> Result<(), String> {
        use sqlx::Connection;
        match self {
            Backend::Sqlite { path, .. } => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Backend::Pg { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let set = format!("SET search_path TO \"{schema}\"");
                sqlx::query(sqlx::AssertSqlSafe(set))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Everything the database holds, as bytes: the SQLite file and its WAL, or every row of
    /// every table as text for PostgreSQL.
    async fn raw_dump(&self) -> Vec<u8> {
        match self {
            Backend::Sqlite { path, .. } => {
                let mut bytes = std::fs::read(path).unwrap();
                let wal = path.with_extension("sqlite3-wal");
                if let Ok(w) = std::fs::read(&wal) {
                    bytes.extend(w);
                }
                bytes
            }
            Backend::Pg { url, schema } => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let mut out = Vec::new();
                for table in [
                    "store_meta",
                    "data_source",
                    "sealed_secret",
                    "cached_token",
                    "audit_log",
                ] {
                    let sql = format!("SELECT CAST(t AS TEXT) FROM \"{schema}\".{table} t");
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    for r in rows {
                        out.extend(r.into_bytes());
                    }
                }
                out
            }
        }
    }
}

async fn open_err(b: &Backend, key: &MasterKey) -> StoreError {
    match b.open(key).await {
        Err(e) => e,
        Ok(_) => panic!("the store opened with a wrong key"),
    }
}

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes([b; 32])
}

async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<Backend>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dci.sqlite3");
    test(Arc::new(Backend::Sqlite { _dir: dir, path })).await;
}

async fn run_pg<F, Fut>(test: F)
where
    F: FnOnce(Arc<Backend>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = dci_protocol::test_support::postgres_url() else {
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let backend = Arc::new(Backend::Pg {
        url: url.clone(),
        schema: schema.clone(),
    });
    // Run in a task so that a failing test still drops its schema.
    let outcome = tokio::spawn(test(backend)).await;
    PgStore::drop_schema(&url, &schema).await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::run_sqlite(super::$name).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::run_pg(super::$name).await })*
        }
    };
}

contract!(
    create_and_get_round_trip,
    duplicate_code_is_code_taken,
    concurrent_creates_of_one_code_yield_one_winner,
    list_filters,
    edit_without_new_secret_keeps_secret_state_and_token,
    credential_change_resets_state_and_drops_token,
    update_errors,
    delete_removes_secrets_and_token,
    enable_disable_state_and_test_results,
    tokens_are_sealed_per_source,
    audit_log_is_append_only_newest_first,
    audit_log_rejects_update_and_delete,
    audit_batches_are_written_whole_in_order,
    no_plaintext_secret_in_the_database,
    wrong_key_is_refused_and_changes_nothing,
    rotation_reseals_everything,
    rotation_with_stale_key_changes_nothing,
    concurrent_writers,
    apply_writes_every_change_in_one_transaction,
    apply_fails_whole_on_any_change,
    import_is_all_or_nothing,
    callback_secret_is_sealed_kept_and_optional,
);

fn oauth2(code: &str, secret: &str) -> DataSource {
    DataSourceInput {
        code: code.into(),
        name: format!("Source {code}"),
        registry_type: "crvs".into(),
        base_url: "https://crvs.example.org/api/v1".into(),
        auth: Some("oauth2".into()),
        token_url: Some("https://crvs.example.org/oauth2/client/token".into()),
        client_id: Some("spmis".into()),
        client_secret: Some(SecretString::from(secret.to_owned())),
        scope: Some("registry.read".into()),
        credential_location: Some("query".into()),
        sender_id: Some("spmis.example.org".into()),
        receiver_id: Some("crvs.example.org".into()),
        callback_uri: Some("https://spmis.example.org/dci/callback".into()),
        subscribe_path: Some("/registry/v2/subscribe".into()),
        tls_verify: Some(false),
        ca_file: Some("/etc/dci/ca.pem".into()),
        client_cert_file: Some("/etc/dci/client.pem".into()),
        client_key_file: Some("/etc/dci/client.key".into()),
        timeout_secs: Some("12".into()),
        signing_key_id: Some("key-2026".into()),
        reply_signature_policy: Some("if-present".into()),
        registry_jwks_url: Some("https://crvs.example.org/.well-known/jwks.json".into()),
        notes: Some("primary CRVS".into()),
        ..DataSourceInput::default()
    }
    .validate()
    .unwrap()
}

fn simple(code: &str, registry: &str, auth: &str, secret: &str) -> DataSource {
    let mut input = DataSourceInput {
        code: code.into(),
        name: code.into(),
        registry_type: registry.into(),
        base_url: format!("http://127.0.0.1:9/{code}"),
        auth: Some(auth.into()),
        sender_id: Some("spmis".into()),
        ..DataSourceInput::default()
    };
    match auth {
        "bearer" => input.bearer_token = Some(SecretString::from(secret.to_owned())),
        "basic" => {
            input.basic_username = Some("user".into());
            input.basic_password = Some(SecretString::from(secret.to_owned()));
        }
        _ => {}
    }
    input.validate().unwrap()
}

fn token(value: &str) -> CachedToken {
    CachedToken {
        access_token: SecretString::from(value.to_owned()),
        token_type: "Bearer".into(),
        expires_at: OffsetDateTime::now_utc() + Duration::minutes(10),
        scope: Some("registry.read".into()),
        obtained_at: None,
    }
}

fn audit(code: &str, n: u32) -> AuditEntry {
    AuditEntry {
        at: OffsetDateTime::now_utc(),
        source_code: code.into(),
        endpoint: "https://crvs.example.org/api/v1/registry/sync/search".into(),
        action: "search".into(),
        message_id: Some(format!("msg-{n}")),
        transaction_id: Some(format!("txn-{n}")),
        http_status: Some(200),
        outcome: AuditOutcome::Ok,
        duration_ms: 15,
        attempt: n,
        error: None,
    }
}

fn client_secret(s: &DataSource) -> String {
    match &s.auth {
        AuthConfig::OAuth2(o) => o.client_secret.expose_secret().to_owned(),
        other => panic!("not oauth2: {other:?}"),
    }
}

async fn create_and_get_round_trip(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let src = oauth2("crvs_main", "client-secret-1");
    store.create_data_source(&src).await.unwrap();

    for got in [
        store.get_data_source("crvs_main").await.unwrap().unwrap(),
        store.get_data_source_by_id(src.id).await.unwrap().unwrap(),
    ] {
        assert_eq!(got.id, src.id);
        assert_eq!(got.code, "crvs_main");
        assert_eq!(got.name, src.name);
        assert_eq!(got.registry_type, RegistryType::Crvs);
        assert_eq!(got.base_url, src.base_url);
        assert_eq!(client_secret(&got), "client-secret-1");
        let (AuthConfig::OAuth2(a), AuthConfig::OAuth2(b)) = (&got.auth, &src.auth) else {
            panic!()
        };
        assert_eq!(a.token_url, b.token_url);
        assert_eq!(a.client_id, b.client_id);
        assert_eq!(a.scope, b.scope);
        assert_eq!(a.credential_location, b.credential_location);
        assert_eq!(got.sender_id, src.sender_id);
        assert_eq!(got.receiver_id, src.receiver_id);
        assert_eq!(got.callback_uri, src.callback_uri);
        assert_eq!(got.endpoints, src.endpoints);
        assert_eq!(got.tls, src.tls);
        assert_eq!(got.timeout_secs, 12);
        assert_eq!(got.signing_key_id, src.signing_key_id);
        assert_eq!(got.reply_signature_policy, src.reply_signature_policy);
        assert_eq!(got.registry_jwks_url, src.registry_jwks_url);
        assert_eq!(got.notes, "primary CRVS");
        assert_eq!(got.state, SourceState::Draft);
        assert!(got.active);
        assert_eq!(got.last_test_at, None);
        assert!((got.created_at - src.created_at).abs() < Duration::milliseconds(1));
    }
    assert!(store.get_data_source("nope").await.unwrap().is_none());
    assert!(
        store
            .get_data_source_by_id(uuid::Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );

    // Every auth type round-trips its secret.
    store
        .create_data_source(&simple("bearer_src", "dr", "bearer", "bearer-tok"))
        .await
        .unwrap();
    store
        .create_data_source(&simple("basic_src", "ibr", "basic", "basic-pw"))
        .await
        .unwrap();
    store
        .create_data_source(&simple("open_src", "fr", "none", ""))
        .await
        .unwrap();
    match store
        .get_data_source("bearer_src")
        .await
        .unwrap()
        .unwrap()
        .auth
    {
        AuthConfig::Bearer { token } => assert_eq!(token.expose_secret(), "bearer-tok"),
        other => panic!("{other:?}"),
    }
    match store
        .get_data_source("basic_src")
        .await
        .unwrap()
        .unwrap()
        .auth
    {
        AuthConfig::Basic { username, password } => {
            assert_eq!(username, "user");
            assert_eq!(password.expose_secret(), "basic-pw");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .get_data_source("open_src")
            .await
            .unwrap()
            .unwrap()
            .auth,
        AuthConfig::None
    ));
}

async fn duplicate_code_is_code_taken(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    store.create_data_source(&oauth2("dup", "a")).await.unwrap();
    let err = store
        .create_data_source(&oauth2("dup", "b"))
        .await
        .unwrap_err();
    assert!(err.is_code_taken(), "{err}");
    assert!(err.to_string().contains("\"dup\""), "{err}");
    // The first record is untouched.
    let got = store.get_data_source("dup").await.unwrap().unwrap();
    assert_eq!(client_secret(&got), "a");
}

async fn concurrent_creates_of_one_code_yield_one_winner(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .create_data_source(&oauth2("race", &format!("secret-{i}")))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert!(e.is_code_taken(), "{e}"),
        }
    }
    assert_eq!(ok, 1);
}

async fn list_filters(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    store
        .create_data_source(&simple("c_crvs", "crvs", "none", ""))
        .await
        .unwrap();
    store
        .create_data_source(&simple("a_dr", "dr", "bearer", "t"))
        .await
        .unwrap();
    store
        .create_data_source(&simple("b_dr", "dr", "none", ""))
        .await
        .unwrap();
    store.set_state("b_dr", SourceState::Active).await.unwrap();
    store.set_active("a_dr", false).await.unwrap();

    let codes = |v: Vec<DataSource>| v.into_iter().map(|s| s.code).collect::<Vec<_>>();
    assert_eq!(
        codes(
            store
                .list_data_sources(&SourceFilter::default())
                .await
                .unwrap()
        ),
        ["a_dr", "b_dr", "c_crvs"]
    );
    let dr = SourceFilter {
        registry_type: Some(RegistryType::Dr),
        ..SourceFilter::default()
    };
    assert_eq!(
        codes(store.list_data_sources(&dr).await.unwrap()),
        ["a_dr", "b_dr"]
    );
    let active_state = SourceFilter {
        state: Some(SourceState::Active),
        ..SourceFilter::default()
    };
    assert_eq!(
        codes(store.list_data_sources(&active_state).await.unwrap()),
        ["b_dr"]
    );
    let enabled = SourceFilter {
        active: Some(true),
        ..SourceFilter::default()
    };
    assert_eq!(
        codes(store.list_data_sources(&enabled).await.unwrap()),
        ["b_dr", "c_crvs"]
    );
    let none = SourceFilter {
        registry_type: Some(RegistryType::Crvs),
        state: Some(SourceState::Error),
        active: None,
    };
    assert!(store.list_data_sources(&none).await.unwrap().is_empty());
}

async fn edit_without_new_secret_keeps_secret_state_and_token(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let src = oauth2("keep", "original-secret");
    store.create_data_source(&src).await.unwrap();
    store
        .record_test_result("keep", SourceState::Active, OffsetDateTime::now_utc(), None)
        .await
        .unwrap();
    store.put_token(src.id, &token("tok-1")).await.unwrap();

    let existing = store.get_data_source("keep").await.unwrap().unwrap();
    let mut edit = DataSourceInput::from_source(&existing);
    edit.name = "Renamed".into();
    edit.timeout_secs = Some("45".into());
    edit.client_secret = Some(SecretString::from(dci_client::MASKED));
    let updated = store
        .update_data_source(&edit.validate_update(&existing).unwrap())
        .await
        .unwrap();
    assert_eq!(updated.state, SourceState::Active);

    let got = store.get_data_source("keep").await.unwrap().unwrap();
    assert_eq!(got.name, "Renamed");
    assert_eq!(got.timeout_secs, 45);
    assert_eq!(got.state, SourceState::Active);
    assert_eq!(client_secret(&got), "original-secret");
    assert!(got.updated_at >= existing.updated_at);
    assert_eq!(got.created_at, existing.created_at);
    assert_eq!(got.last_test_at, existing.last_test_at);
    assert_eq!(
        store
            .get_token(src.id)
            .await
            .unwrap()
            .unwrap()
            .access_token
            .expose_secret(),
        "tok-1"
    );
}

async fn credential_change_resets_state_and_drops_token(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let src = oauth2("creds", "old-secret");
    store.create_data_source(&src).await.unwrap();

    // A new secret.
    store.set_state("creds", SourceState::Active).await.unwrap();
    store.put_token(src.id, &token("tok-old")).await.unwrap();
    let existing = store.get_data_source("creds").await.unwrap().unwrap();
    let mut edit = DataSourceInput::from_source(&existing);
    edit.client_secret = Some(SecretString::from("new-secret"));
    let updated = store
        .update_data_source(&edit.validate_update(&existing).unwrap())
        .await
        .unwrap();
    assert_eq!(updated.state, SourceState::Draft);
    let got = store.get_data_source("creds").await.unwrap().unwrap();
    assert_eq!(got.state, SourceState::Draft);
    assert_eq!(client_secret(&got), "new-secret");
    assert!(store.get_token(src.id).await.unwrap().is_none());

    // A new client id (no new secret) is a credential change too.
    store.set_state("creds", SourceState::Active).await.unwrap();
    store.put_token(src.id, &token("tok-2")).await.unwrap();
    let existing = store.get_data_source("creds").await.unwrap().unwrap();
    let mut edit = DataSourceInput::from_source(&existing);
    edit.client_id = Some("other-client".into());
    store
        .update_data_source(&edit.validate_update(&existing).unwrap())
        .await
        .unwrap();
    let got = store.get_data_source("creds").await.unwrap().unwrap();
    assert_eq!(got.state, SourceState::Draft);
    assert_eq!(client_secret(&got), "new-secret");
    assert!(store.get_token(src.id).await.unwrap().is_none());

    // Switching auth type.
    store.set_state("creds", SourceState::Error).await.unwrap();
    let existing = store.get_data_source("creds").await.unwrap().unwrap();
    let mut edit = DataSourceInput::from_source(&existing);
    edit.clear_auth_fields();
    edit.auth = Some("bearer".into());
    edit.bearer_token = Some(SecretString::from("bearer-now"));
    store
        .update_data_source(&edit.validate_update(&existing).unwrap())
        .await
        .unwrap();
    let got = store.get_data_source("creds").await.unwrap().unwrap();
    assert_eq!(got.state, SourceState::Draft);
    assert!(
        matches!(&got.auth, AuthConfig::Bearer { token } if token.expose_secret() == "bearer-now")
    );
}

async fn update_errors(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    store
        .create_data_source(&oauth2("one", "s1"))
        .await
        .unwrap();
    store
        .create_data_source(&oauth2("two", "s2"))
        .await
        .unwrap();
    let existing = store.get_data_source("two").await.unwrap().unwrap();
    let mut edit = DataSourceInput::from_source(&existing);
    edit.code = "one".into();
    let err = store
        .update_data_source(&edit.validate_update(&existing).unwrap())
        .await
        .unwrap_err();
    assert!(err.is_code_taken(), "{err}");
    assert_eq!(
        store.get_data_source("two").await.unwrap().unwrap().id,
        existing.id
    );

    // Renaming the code works.
    let mut edit = DataSourceInput::from_source(&existing);
    edit.code = "three".into();
    store
        .update_data_source(&edit.validate_update(&existing).unwrap())
        .await
        .unwrap();
    assert!(store.get_data_source("two").await.unwrap().is_none());
    assert_eq!(
        client_secret(&store.get_data_source("three").await.unwrap().unwrap()),
        "s2"
    );

    let ghost = oauth2("ghost", "x");
    assert!(
        store
            .update_data_source(&ghost)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn delete_removes_secrets_and_token(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let src = oauth2("gone", "s");
    store.create_data_source(&src).await.unwrap();
    store.put_token(src.id, &token("t")).await.unwrap();
    store.delete_data_source("gone").await.unwrap();
    assert!(store.get_data_source("gone").await.unwrap().is_none());
    assert!(store.get_token(src.id).await.unwrap().is_none());
    assert!(
        store
            .delete_data_source("gone")
            .await
            .unwrap_err()
            .is_not_found()
    );
    // The code is free again.
    store
        .create_data_source(&oauth2("gone", "s2"))
        .await
        .unwrap();
}

async fn enable_disable_state_and_test_results(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    store.create_data_source(&oauth2("st", "s")).await.unwrap();
    store.set_active("st", false).await.unwrap();
    assert!(!store.get_data_source("st").await.unwrap().unwrap().active);
    store.set_active("st", true).await.unwrap();
    assert!(store.get_data_source("st").await.unwrap().unwrap().active);

    store.set_state("st", SourceState::Testing).await.unwrap();
    assert_eq!(
        store.get_data_source("st").await.unwrap().unwrap().state,
        SourceState::Testing
    );

    let at = OffsetDateTime::now_utc();
    store
        .record_test_result(
            "st",
            SourceState::Error,
            at,
            Some("HTTP 503 from token URL"),
        )
        .await
        .unwrap();
    let got = store.get_data_source("st").await.unwrap().unwrap();
    assert_eq!(got.state, SourceState::Error);
    assert_eq!(got.last_error.as_deref(), Some("HTTP 503 from token URL"));
    let stored_at = got.last_test_at.unwrap();
    assert!((stored_at - at).abs() < Duration::milliseconds(1));

    store
        .record_test_result("st", SourceState::Active, at, None)
        .await
        .unwrap();
    let got = store.get_data_source("st").await.unwrap().unwrap();
    assert_eq!(got.state, SourceState::Active);
    assert_eq!(got.last_error, None);

    for e in [
        store.set_active("nope", true).await.unwrap_err(),
        store
            .set_state("nope", SourceState::Active)
            .await
            .unwrap_err(),
        store
            .record_test_result("nope", SourceState::Active, at, None)
            .await
            .unwrap_err(),
    ] {
        assert!(e.is_not_found(), "{e}");
    }
}

async fn tokens_are_sealed_per_source(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let a = oauth2("tok_a", "s");
    let bb = oauth2("tok_b", "s");
    store.create_data_source(&a).await.unwrap();
    store.create_data_source(&bb).await.unwrap();
    assert!(store.get_token(a.id).await.unwrap().is_none());

    let t = token("access-a-1");
    store.put_token(a.id, &t).await.unwrap();
    store.put_token(bb.id, &token("access-b-1")).await.unwrap();
    let got = store.get_token(a.id).await.unwrap().unwrap();
    assert_eq!(got.access_token.expose_secret(), "access-a-1");
    assert_eq!(got.token_type, "Bearer");
    assert_eq!(got.scope.as_deref(), Some("registry.read"));
    assert!((got.expires_at - t.expires_at).abs() < Duration::milliseconds(1));

    // Replace.
    let mut t2 = token("access-a-2");
    t2.scope = None;
    store.put_token(a.id, &t2).await.unwrap();
    let got = store.get_token(a.id).await.unwrap().unwrap();
    assert_eq!(got.access_token.expose_secret(), "access-a-2");
    assert_eq!(got.scope, None);

    store.delete_token(a.id).await.unwrap();
    store.delete_token(a.id).await.unwrap();
    assert!(store.get_token(a.id).await.unwrap().is_none());
    assert_eq!(
        store
            .get_token(bb.id)
            .await
            .unwrap()
            .unwrap()
            .access_token
            .expose_secret(),
        "access-b-1"
    );
    // The source's own secret is untouched by token operations.
    assert_eq!(
        client_secret(&store.get_data_source("tok_a").await.unwrap().unwrap()),
        "s"
    );

    let err = store
        .put_token(uuid::Uuid::now_v7(), &token("x"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

async fn audit_log_is_append_only_newest_first(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    for n in 1..=3 {
        store.append_audit(&audit("aa", n)).await.unwrap();
    }
    let mut failed = audit("bb", 1);
    failed.http_status = None;
    failed.outcome = AuditOutcome::Timeout;
    failed.error = Some("timed out after 30 s".into());
    failed.message_id = None;
    store.append_audit(&failed).await.unwrap();

    let all = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].source_code, "bb");
    assert_eq!(all[0].outcome, AuditOutcome::Timeout);
    assert_eq!(all[0].http_status, None);
    assert_eq!(all[0].error.as_deref(), Some("timed out after 30 s"));
    assert_eq!(all[1].attempt, 3);

    let aa = store
        .list_audit(&AuditFilter {
            source_code: Some("aa".into()),
            limit: 2,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(aa.iter().map(|e| e.attempt).collect::<Vec<_>>(), [3, 2]);
    let first = audit("aa", 1);
    let stored = &store
        .list_audit(&AuditFilter {
            source_code: Some("aa".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap()[2];
    assert_eq!(stored.endpoint, first.endpoint);
    assert_eq!(stored.message_id, first.message_id);
    assert_eq!(stored.transaction_id, first.transaction_id);
    assert_eq!(stored.http_status, Some(200));
    assert_eq!(stored.duration_ms, 15);
}

async fn audit_batches_are_written_whole_in_order(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let mut batch: Vec<AuditEntry> = (1..=300).map(|n| audit("batch", n)).collect();
    // Every field goes through the batch's one parameter: text that needs escaping, absent
    // values, an instant at microseconds.
    batch[0].error = Some("refused: \"quoted\" \\ back-slashed, non-ASCII ü 名前, tab\t".into());
    batch[0].message_id = None;
    batch[0].http_status = None;
    batch[0].outcome = AuditOutcome::Timeout;
    batch[0].duration_ms = u64::from(u32::MAX) + 7;
    batch[0].at = time::macros::datetime!(2026-12-02 21:07:08.123456789 +02:00);
    store.append_audit_batch(&batch).await.unwrap();
    store.append_audit_batch(&[]).await.unwrap();
    let all = store
        .list_audit(&AuditFilter {
            source_code: Some("batch".into()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 300);
    // Newest first: the batch's last entry on top.
    assert_eq!(all[0].attempt, 300);
    assert_eq!(all[299].attempt, 1);
    let first = &all[299];
    assert_eq!(first.error, batch[0].error);
    assert_eq!(first.message_id, None);
    assert_eq!(first.transaction_id.as_deref(), Some("txn-1"));
    assert_eq!(first.http_status, None);
    assert_eq!(first.outcome, AuditOutcome::Timeout);
    assert_eq!(first.duration_ms, u64::from(u32::MAX) + 7);
    assert_eq!(first.endpoint, batch[0].endpoint);
    assert_eq!(
        first.at,
        time::macros::datetime!(2026-12-02 19:07:08.123456 UTC),
        "stored in UTC at microseconds"
    );
    assert_eq!(all[0].http_status, Some(200));
    // The instant is stored as every other writer stores it: a range filter finds it.
    let around = store
        .list_audit(&AuditFilter {
            source_code: Some("batch".into()),
            limit: 10,
            range: dci_client::TimeRange {
                since: Some(time::macros::datetime!(2026-12-02 19:07:08.123456 UTC)),
                until: Some(time::macros::datetime!(2026-12-02 19:07:08.123457 UTC)),
            },
        })
        .await
        .unwrap();
    assert_eq!(around.len(), 1, "{around:?}");
    assert_eq!(around[0].attempt, 1);
}

async fn audit_log_rejects_update_and_delete(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    store.append_audit(&audit("ro", 1)).await.unwrap();
    for sql in [
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
    ] {
        let err = b.raw_exec(sql).await.expect_err(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let all = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].action, "search");
}

async fn no_plaintext_secret_in_the_database(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let secrets = [
        "PLAINTEXT-client-secret-7f3a",
        "PLAINTEXT-bearer-91c2",
        "PLAINTEXT-basic-55d0",
        "PLAINTEXT-access-token-e4b8",
    ];
    let src = oauth2("scan_oauth", secrets[0]);
    store.create_data_source(&src).await.unwrap();
    store
        .create_data_source(&simple("scan_bearer", "dr", "bearer", secrets[1]))
        .await
        .unwrap();
    store
        .create_data_source(&simple("scan_basic", "ibr", "basic", secrets[2]))
        .await
        .unwrap();
    store.put_token(src.id, &token(secrets[3])).await.unwrap();
    // The secrets are really there (so the scan below is not vacuous).
    assert_eq!(
        client_secret(&store.get_data_source("scan_oauth").await.unwrap().unwrap()),
        secrets[0]
    );
    drop(store);

    let dump = b.raw_dump().await;
    assert!(
        dump.windows(b"scan_oauth".len())
            .any(|w| w == b"scan_oauth"),
        "dump does not contain the data"
    );
    for s in secrets {
        let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
        for needle in [s.as_bytes(), hex.as_bytes()] {
            assert!(
                !dump.windows(needle.len()).any(|w| w == needle),
                "{s} found in the database"
            );
        }
    }
}

/// The callback secret is sealed like the credentials, kept by an edit, and absent (not an
/// error) for a source stored without one; the opt-out and `http_refusals` round-trip.
async fn callback_secret_is_sealed_kept_and_optional(b: Arc<Backend>) {
    use secrecy::ExposeSecret;
    let store = b.open(&key(1)).await.unwrap();
    let mut src = oauth2("cb_sealed", "cb-client-secret");
    let plain = "PLAINTEXT-callback-secret-0123456789abcdefghij";
    src.callbacks.secret = Some(secrecy::SecretString::from(plain));
    store.create_data_source(&src).await.unwrap();
    let got = store.get_data_source("cb_sealed").await.unwrap().unwrap();
    assert_eq!(
        got.callbacks.secret.as_ref().unwrap().expose_secret(),
        plain
    );
    assert!(!got.callbacks.accept_unauthenticated);
    assert!(
        !got.callbacks.http_refusals,
        "refusals the DCI way by default"
    );
    // An edit through the document keeps it (the document only ever shows it masked).
    let mut doc = dci_client::SourceDocument::from_source(&got);
    doc.name = Some("renamed".into());
    doc.callbacks.accept_unauthenticated = Some(true);
    doc.callbacks.http_refusals = Some(true);
    let edited = store
        .update_data_source(&doc.validate_update(&got).unwrap())
        .await
        .unwrap();
    let again = store.get_data_source("cb_sealed").await.unwrap().unwrap();
    assert_eq!(
        again.callbacks.secret.as_ref().unwrap().expose_secret(),
        plain
    );
    assert!(edited.callbacks.accept_unauthenticated && again.callbacks.accept_unauthenticated);
    assert!(edited.callbacks.http_refusals && again.callbacks.http_refusals);
    // A source stored without one (as before callback secrets existed) reads back without one.
    let mut legacy = simple("cb_legacy", "dr", "none", "");
    legacy.callbacks.secret = None;
    store.create_data_source(&legacy).await.unwrap();
    let got = store.get_data_source("cb_legacy").await.unwrap().unwrap();
    assert!(got.callbacks.secret.is_none());
    // Any edit gives it one.
    let edited = dci_client::SourceDocument::from_source(&got)
        .validate_update(&got)
        .unwrap();
    store.update_data_source(&edited).await.unwrap();
    let got = store.get_data_source("cb_legacy").await.unwrap().unwrap();
    assert_eq!(
        got.callbacks.secret.as_ref().unwrap().expose_secret().len(),
        43
    );
    drop(store);
    let dump = b.raw_dump().await;
    assert!(
        !dump.windows(plain.len()).any(|w| w == plain.as_bytes()),
        "the callback secret is stored in plain text"
    );
}

async fn wrong_key_is_refused_and_changes_nothing(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let src = oauth2("wk", "the-secret");
    store.create_data_source(&src).await.unwrap();
    store.put_token(src.id, &token("the-token")).await.unwrap();
    drop(store);
    let before = b.raw_dump().await;

    let err = match b.open(&key(2)).await {
        Err(e) => e,
        Ok(_) => panic!("a wrong key was accepted"),
    };
    assert!(err.is_wrong_master_key(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dci_store::key_id(&key(1))) && msg.contains("DCI_MASTER_KEY"),
        "{msg}"
    );

    // Still readable with the right key, nothing changed.
    let store = b.open(&key(1)).await.unwrap();
    assert_eq!(
        client_secret(&store.get_data_source("wk").await.unwrap().unwrap()),
        "the-secret"
    );
    drop(store);
    if matches!(*b, Backend::Pg { .. }) {
        assert_eq!(before, b.raw_dump().await);
    }
}

async fn rotation_reseals_everything(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    let src = oauth2("rot", "rot-secret");
    store.create_data_source(&src).await.unwrap();
    store
        .create_data_source(&simple("rot_b", "dr", "bearer", "rot-bearer"))
        .await
        .unwrap();
    store
        .create_data_source(&simple("rot_n", "fr", "none", ""))
        .await
        .unwrap();
    store.put_token(src.id, &token("rot-token")).await.unwrap();

    let report = store.rotate_master_key(key(2)).await.unwrap();
    // Client secret, bearer token, cached token, and each source's callback secret.
    assert_eq!(report.resealed, 6);
    assert_eq!(report.old_key_id, dci_store::key_id(&key(1)));
    assert_eq!(report.new_key_id, dci_store::key_id(&key(2)));
    // The same handle keeps working, and new secrets are sealed under the new key.
    assert_eq!(
        client_secret(&store.get_data_source("rot").await.unwrap().unwrap()),
        "rot-secret"
    );
    store
        .create_data_source(&simple("rot_after", "dr", "bearer", "after"))
        .await
        .unwrap();
    drop(store);

    assert!(open_err(&b, &key(1)).await.is_wrong_master_key());
    let store = b.open(&key(2)).await.unwrap();
    assert_eq!(
        client_secret(&store.get_data_source("rot").await.unwrap().unwrap()),
        "rot-secret"
    );
    assert!(matches!(
        store.get_data_source("rot_b").await.unwrap().unwrap().auth,
        AuthConfig::Bearer { token } if token.expose_secret() == "rot-bearer"
    ));
    assert!(matches!(
        store.get_data_source("rot_after").await.unwrap().unwrap().auth,
        AuthConfig::Bearer { token } if token.expose_secret() == "after"
    ));
    assert_eq!(
        store
            .get_token(src.id)
            .await
            .unwrap()
            .unwrap()
            .access_token
            .expose_secret(),
        "rot-token"
    );
}

async fn rotation_with_stale_key_changes_nothing(b: Arc<Backend>) {
    // Two handles with key 1; the first rotates to key 2; the second, still holding key 1, must
    // neither rotate nor write secrets under the old key.
    let first = b.open(&key(1)).await.unwrap();
    let stale = b.open(&key(1)).await.unwrap();
    first
        .create_data_source(&oauth2("stale", "stale-secret"))
        .await
        .unwrap();
    first.rotate_master_key(key(2)).await.unwrap();

    let err = stale.rotate_master_key(key(3)).await.unwrap_err();
    assert!(err.is_wrong_master_key(), "{err}");
    let err = stale
        .create_data_source(&oauth2("stale_2", "x"))
        .await
        .unwrap_err();
    assert!(err.is_wrong_master_key(), "{err}");
    let err = stale.get_data_source("stale").await.unwrap_err();
    assert!(err.is_wrong_master_key(), "{err}");
    drop((first, stale));

    let store = b.open(&key(2)).await.unwrap();
    assert_eq!(
        client_secret(&store.get_data_source("stale").await.unwrap().unwrap()),
        "stale-secret"
    );
    assert!(store.get_data_source("stale_2").await.unwrap().is_none());
    assert!(open_err(&b, &key(3)).await.is_wrong_master_key());
}

async fn concurrent_writers(b: Arc<Backend>) {
    // Separate handles (separate pools, as separate processes would have) write at once.
    b.open(&key(1)).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let b = Arc::clone(&b);
        tasks.push(tokio::spawn(async move {
            let store = b.open(&key(1)).await.unwrap();
            for i in 0..8 {
                let src = simple(
                    &format!("w{w}_{i}"),
                    "dr",
                    "bearer",
                    &format!("tok-{w}-{i}"),
                );
                store.create_data_source(&src).await.unwrap();
                store
                    .put_token(src.id, &token(&format!("access-{w}-{i}")))
                    .await
                    .unwrap();
                store
                    .append_audit(&audit(&format!("w{w}_{i}"), i))
                    .await
                    .unwrap();
                store
                    .set_state(&src.code, SourceState::Active)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = b.open(&key(1)).await.unwrap();
    let all = store
        .list_data_sources(&SourceFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 32);
    assert!(all.iter().all(|s| s.state == SourceState::Active));
    let audit = store
        .list_audit(&AuditFilter {
            source_code: None,
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 32);
    let s = store.get_data_source("w3_7").await.unwrap().unwrap();
    assert_eq!(
        store
            .get_token(s.id)
            .await
            .unwrap()
            .unwrap()
            .access_token
            .expose_secret(),
        "access-3-7"
    );
}

/// Another, empty database on the same backend (dropped by the caller on PostgreSQL).
fn sibling(b: &Backend, name: &str) -> Backend {
    match b {
        Backend::Sqlite { .. } => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("{name}.sqlite3"));
            Backend::Sqlite { _dir: dir, path }
        }
        Backend::Pg { url, schema } => Backend::Pg {
            url: url.clone(),
            schema: format!("{schema}_{name}"),
        },
    }
}

async fn codes(store: &dyn Store) -> Vec<String> {
    store
        .list_data_sources(&SourceFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.code)
        .collect()
}

async fn apply_writes_every_change_in_one_transaction(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    store
        .create_data_source(&oauth2("old", "old-secret"))
        .await
        .unwrap();
    let existing = store.get_data_source("old").await.unwrap().unwrap();
    store
        .put_token(existing.id, &token("tok-old"))
        .await
        .unwrap();
    let mut edit = DataSourceInput::from_source(&existing);
    edit.client_secret = Some(SecretString::from("new-secret"));
    let changes = [
        SourceChange::Create(oauth2("a", "secret-a")),
        SourceChange::Update(edit.validate_update(&existing).unwrap()),
        SourceChange::Create(simple("b", "dr", "bearer", "tok-b")),
    ];
    store.apply_data_sources(&changes).await.unwrap();
    assert_eq!(codes(&*store).await, ["a", "b", "old"]);
    let old = store.get_data_source("old").await.unwrap().unwrap();
    assert_eq!(client_secret(&old), "new-secret");
    // The update follows update_data_source's rules: new credentials drop the token.
    assert!(store.get_token(old.id).await.unwrap().is_none());
    assert_eq!(
        client_secret(&store.get_data_source("a").await.unwrap().unwrap()),
        "secret-a"
    );
}

async fn apply_fails_whole_on_any_change(b: Arc<Backend>) {
    let store = b.open(&key(1)).await.unwrap();
    store
        .create_data_source(&oauth2("taken", "s"))
        .await
        .unwrap();
    let before = b.raw_dump().await;
    let existing = store.get_data_source("taken").await.unwrap().unwrap();
    let mut edit = DataSourceInput::from_source(&existing);
    edit.name = "Renamed".into();
    // The last change fails (code taken): the first two must not stay applied.
    let err = store
        .apply_data_sources(&[
            SourceChange::Create(oauth2("fresh", "s1")),
            SourceChange::Update(edit.validate_update(&existing).unwrap()),
            SourceChange::Create(oauth2("taken", "s2")),
        ])
        .await
        .unwrap_err();
    assert!(err.is_code_taken(), "{err}");
    assert_eq!(codes(&*store).await, ["taken"]);
    assert_eq!(
        store.get_data_source("taken").await.unwrap().unwrap().name,
        "Source taken"
    );
    // An update of a source that is gone fails the batch as well.
    let err = store
        .apply_data_sources(&[
            SourceChange::Create(oauth2("fresh", "s1")),
            SourceChange::Update(oauth2("ghost", "x")),
        ])
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(codes(&*store).await, ["taken"]);
    if matches!(&*b, Backend::Pg { .. }) {
        // Row dumps compare exactly on PostgreSQL (SQLite's file bytes move with checkpoints).
        assert_eq!(b.raw_dump().await, before);
    }
}

async fn import_is_all_or_nothing(b: Arc<Backend>) {
    use dci_store::transfer::{self, ImportOptions, TransferError};
    let store = b.open(&key(1)).await.unwrap();
    store
        .create_data_source(&oauth2("one", "secret-1"))
        .await
        .unwrap();
    store
        .create_data_source(&simple("two", "dr", "bearer", "tok-2"))
        .await
        .unwrap();
    let export_key = key(9);
    let file = transfer::export(&*store, &[], Some(&export_key))
        .await
        .unwrap();
    let text = serde_json::to_string(&file).unwrap();
    assert!(
        !text.contains("secret-1") && !text.contains("tok-2"),
        "{text}"
    );

    // Into another store: one source exists there already, so the import fails and adds none.
    let target = sibling(&b, "b");
    let dest = target.open(&key(2)).await.unwrap();
    dest.create_data_source(&simple("two", "ibr", "none", ""))
        .await
        .unwrap();
    let err = transfer::import(
        &*dest,
        transfer::parse_export(&text).unwrap(),
        ImportOptions {
            secrets_key: Some(&export_key),
            replace: false,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, TransferError::Store(e) if e.is_code_taken()),
        "{err}"
    );
    assert_eq!(codes(&*dest).await, ["two"]);

    // Without the key: refused before anything is read.
    let err = transfer::import(
        &*dest,
        transfer::parse_export(&text).unwrap(),
        ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::KeyNeeded { .. }), "{err}");

    // With replace: both written, secrets opened from the export key and sealed under ours.
    let report = transfer::import(
        &*dest,
        transfer::parse_export(&text).unwrap(),
        ImportOptions {
            secrets_key: Some(&export_key),
            replace: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.created, ["one"]);
    assert_eq!(report.updated, ["two"]);
    assert_eq!(
        client_secret(&dest.get_data_source("one").await.unwrap().unwrap()),
        "secret-1"
    );
    match dest.get_data_source("two").await.unwrap().unwrap().auth {
        AuthConfig::Bearer { token } => assert_eq!(token.expose_secret(), "tok-2"),
        other => panic!("{other:?}"),
    }

    // A plain export (no secrets) reports every entry's missing secret, and imports nothing.
    let plain = transfer::export(&*store, &[], None).await.unwrap();
    let fresh = sibling(&b, "c");
    let third = fresh.open(&key(3)).await.unwrap();
    match transfer::import(&*third, plain, ImportOptions::default()).await {
        Err(TransferError::Invalid(problems)) => {
            assert_eq!(problems.len(), 2);
            assert!(problems[0].errors.has("auth.client_secret"));
            assert!(problems[1].errors.has("auth.bearer_token"));
        }
        other => panic!("{other:?}"),
    }
    assert!(codes(&*third).await.is_empty());
    for extra in [&target, &fresh] {
        if let Backend::Pg { url, schema } = extra {
            PgStore::drop_schema(url, schema).await.unwrap();
        }
    }
}
