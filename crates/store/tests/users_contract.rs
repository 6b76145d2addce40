//! The `UserStore` contract (users, personal API tokens, console sessions, the change audit)
//! and the audit log's time range: one suite, run against SQLite (always) and PostgreSQL (when
//! `DCI_TEST_DATABASE_URL` is set; each test gets its own schema, dropped afterwards), like
//! `contract.rs`. User operations go through `dci_client::users::Users`, as the server and the
//! CLI do.

use std::future::Future;
use std::sync::Arc;

use dci_client::users::service::TokenCheck;
use dci_client::users::{
    ApiToken, ChangeFilter, ChangeRecord, ChangeTarget, ConsoleSession, Role, SessionLogin,
    TimeRange, UserError, UserStore, Users,
};
use dci_client::{AuditEntry, AuditFilter, AuditOutcome, MasterKey, OpsStore, Store};
use dci_store::{PgStore, SqliteStore};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

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

struct Opened {
    store: Arc<dyn Store>,
    ops: Arc<dyn OpsStore>,
}

impl Opened {
    fn users(&self) -> Users {
        Users::new(self.ops.clone())
    }

    fn user_store(&self) -> Arc<dyn UserStore> {
        self.ops.clone()
    }
}

impl Backend {
    async fn open(&self) -> Opened {
        let key = MasterKey::from_bytes([3; 32]);
        match self {
            Backend::Sqlite { path, .. } => {
                let s = Arc::new(SqliteStore::open_file(path, &key).await.unwrap());
                Opened {
                    store: s.clone(),
                    ops: s,
                }
            }
            Backend::Pg { url, schema } => {
                let s = Arc::new(PgStore::connect_in_schema(url, schema, &key).await.unwrap());
                Opened {
                    store: s.clone(),
                    ops: s,
                }
            }
        }
    }

    /// Every user-related row the database holds, as text.
    async fn raw_dump(&self) -> String {
        match self {
            Backend::Sqlite { path, .. } => {
                let mut bytes = std::fs::read(path).unwrap();
                if let Ok(w) = std::fs::read(path.with_extension("sqlite3-wal")) {
                    bytes.extend(w);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Backend::Pg { url, schema } => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let mut out = String::new();
                for table in ["app_user", "api_token", "console_session", "change_audit"] {
                    let sql = format!("SELECT CAST(t AS TEXT) FROM \"{schema}\".{table} t");
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    out.extend(rows);
                }
                out
            }
        }
    }
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
    let outcome = tokio::spawn(test(backend)).await;
    PgStore::drop_schema(&url, &schema).await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() { super::run_sqlite(super::$name).await })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() { super::run_pg(super::$name).await })*
        }
    };
}

contract!(
    users_are_unique_hashed_and_authenticate,
    removing_a_user_ends_their_tokens_and_sessions,
    tokens_are_stored_as_digests_and_expire_or_revoke,
    sessions_survive_a_reopen_and_expire,
    the_change_audit_lists_by_range_and_is_append_only,
    the_audit_log_lists_by_time_range,
    failed_sign_ins_are_counted_once_for_every_store_handle,
);

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// Whole milliseconds: what the store keeps.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond()).unwrap()
}

async fn users_are_unique_hashed_and_authenticate(b: Arc<Backend>) {
    let o = b.open().await;
    let users = o.users();
    let alice = users
        .add(
            "admin-token",
            "alice",
            Role::Operator,
            &pw("alice's long passphrase"),
        )
        .await
        .unwrap();
    assert_eq!(alice.role, Role::Operator);
    let taken = users
        .add(
            "admin-token",
            "alice",
            Role::Viewer,
            &pw("another long passphrase"),
        )
        .await
        .unwrap_err();
    assert!(matches!(taken, UserError::Taken(_)), "{taken}");
    let bad = users
        .add(
            "admin-token",
            "Bob",
            Role::Viewer,
            &pw("a long enough passphrase"),
        )
        .await
        .unwrap_err();
    assert!(bad.to_string().starts_with("username:"), "{bad}");
    users
        .add(
            "admin-token",
            "bob",
            Role::Viewer,
            &pw("bob's long passphrase"),
        )
        .await
        .unwrap();
    let names: Vec<String> = users
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    let ok = users
        .authenticate("alice", &pw("alice's long passphrase"))
        .await
        .unwrap();
    assert_eq!(ok.map(|u| u.id), Some(alice.id));
    assert!(
        users
            .authenticate("alice", &pw("bob's long passphrase"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        users
            .authenticate("nobody", &pw("alice's long passphrase"))
            .await
            .unwrap()
            .is_none()
    );
    users
        .set_password("user:alice", "alice", &pw("a brand new passphrase"))
        .await
        .unwrap();
    assert!(
        users
            .authenticate("alice", &pw("alice's long passphrase"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        users
            .authenticate("alice", &pw("a brand new passphrase"))
            .await
            .unwrap()
            .is_some()
    );
    let dump = b.raw_dump().await;
    assert!(dump.contains("$argon2id$"), "the hash is stored");
    for secret in ["alice's long passphrase", "a brand new passphrase"] {
        assert!(!dump.contains(secret), "no password is stored in the clear");
    }
}

async fn removing_a_user_ends_their_tokens_and_sessions(b: Arc<Backend>) {
    let o = b.open().await;
    let users = o.users();
    let store = o.user_store();
    let u = users
        .add("cli", "carol", Role::Admin, &pw("carol's long passphrase"))
        .await
        .unwrap();
    let (_, token) = users
        .create_token("cli", "carol", "ci", Some(30))
        .await
        .unwrap();
    let session = ConsoleSession {
        id_digest: "d".repeat(64),
        csrf: "csrf".into(),
        login: Some(SessionLogin {
            user_id: Some(u.id),
            role: Role::Admin,
            actor: "user:carol".into(),
        }),
        created_at: now(),
        expires_at: now() + Duration::hours(1),
    };
    store.put_session(&session).await.unwrap();
    assert_eq!(
        store.get_session(&session.id_digest, now()).await.unwrap(),
        Some(session.clone())
    );
    // A new password ends the user's sessions.
    users
        .set_password("cli", "carol", &pw("carol's newer passphrase"))
        .await
        .unwrap();
    assert_eq!(
        store.get_session(&session.id_digest, now()).await.unwrap(),
        None
    );
    store.put_session(&session).await.unwrap();
    users.remove("cli", "carol").await.unwrap();
    assert_eq!(
        store.get_session(&session.id_digest, now()).await.unwrap(),
        None
    );
    assert_eq!(
        users.check_token(token.expose_secret()).await.unwrap(),
        TokenCheck::Unknown
    );
    let gone = users.remove("cli", "carol").await.unwrap_err();
    assert!(matches!(gone, UserError::NotFound(_)), "{gone}");
}

async fn tokens_are_stored_as_digests_and_expire_or_revoke(b: Arc<Backend>) {
    let o = b.open().await;
    let users = o.users();
    let u = users
        .add("cli", "dave", Role::Viewer, &pw("dave's long passphrase"))
        .await
        .unwrap();
    let (record, token) = users
        .create_token("cli", "dave", "reporting", None)
        .await
        .unwrap();
    assert!(token.expose_secret().starts_with("dcip_"));
    let days = (record.expires_at - record.created_at).whole_days();
    assert_eq!(days, 90, "the default lifetime");
    match users.check_token(token.expose_secret()).await.unwrap() {
        TokenCheck::Valid(user, t) => {
            assert_eq!(user.id, u.id);
            assert_eq!(t.id, record.id);
        }
        other => panic!("{other:?}"),
    }
    let too_long = users
        .create_token("cli", "dave", "x", Some(1000))
        .await
        .unwrap_err();
    assert!(
        too_long.to_string().starts_with("expires_in_days:"),
        "{too_long}"
    );
    assert!(!b.raw_dump().await.contains(token.expose_secret()));

    // Expired: a record whose expiry has passed.
    let store = o.user_store();
    let old = ApiToken {
        id: uuid::Uuid::now_v7(),
        user_id: u.id,
        name: "old".into(),
        created_at: now() - Duration::days(10),
        expires_at: now() - Duration::seconds(1),
        revoked_at: None,
    };
    store
        .create_api_token(
            &old,
            &dci_client::users::secret::digest_hex("dcip_expired-token"),
        )
        .await
        .unwrap();
    assert_eq!(
        users.check_token("dcip_expired-token").await.unwrap(),
        TokenCheck::Expired
    );

    let revoked = users.revoke_token("cli", record.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        users.check_token(token.expose_secret()).await.unwrap(),
        TokenCheck::Revoked
    );
    assert_eq!(
        users.check_token("dcip_never-issued").await.unwrap(),
        TokenCheck::Unknown
    );
    assert_eq!(
        users.check_token("not-even-ours").await.unwrap(),
        TokenCheck::Unknown
    );
    let listed = users.tokens("dave").await.unwrap();
    assert_eq!(listed.len(), 2);
    let missing = users
        .revoke_token("cli", uuid::Uuid::now_v7())
        .await
        .unwrap_err();
    assert!(matches!(missing, UserError::NotFound(_)), "{missing}");
}

async fn sessions_survive_a_reopen_and_expire(b: Arc<Backend>) {
    let live = ConsoleSession {
        id_digest: "a".repeat(64),
        csrf: "c1".into(),
        login: Some(SessionLogin {
            user_id: None,
            role: Role::Viewer,
            actor: "readonly-token".into(),
        }),
        created_at: now(),
        expires_at: now() + Duration::hours(8),
    };
    let anon = ConsoleSession {
        id_digest: "b".repeat(64),
        csrf: "c2".into(),
        login: None,
        created_at: now(),
        expires_at: now() + Duration::minutes(30),
    };
    let expired = ConsoleSession {
        id_digest: "c".repeat(64),
        expires_at: now() - Duration::seconds(1),
        ..anon.clone()
    };
    {
        let o = b.open().await;
        let s = o.user_store();
        for x in [&live, &anon, &expired] {
            s.put_session(x).await.unwrap();
        }
    }
    let o = b.open().await;
    let s = o.user_store();
    assert_eq!(
        s.get_session(&live.id_digest, now()).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        s.get_session(&anon.id_digest, now()).await.unwrap(),
        Some(anon.clone())
    );
    assert_eq!(
        s.get_session(&expired.id_digest, now()).await.unwrap(),
        None
    );
    let later = now() + Duration::hours(9);
    s.touch_session(&live.id_digest, later + Duration::hours(1))
        .await
        .unwrap();
    assert!(
        s.get_session(&live.id_digest, later)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.purge_sessions(later).await.unwrap(), 2);
    s.delete_session(&live.id_digest).await.unwrap();
    assert_eq!(s.get_session(&live.id_digest, now()).await.unwrap(), None);
}

/// Two handles on one database (two instances of `dci serve`) count into one limiter: failures
/// alternate between them and still add up, concurrent ones all count, a lock-out seen through
/// one is seen through the other, and passed instants are forgotten.
async fn failed_sign_ins_are_counted_once_for_every_store_handle(b: Arc<Backend>) {
    use dci_client::users::SignInLimit;
    use std::num::NonZeroU32;
    let (a, b2) = (b.open().await, b.open().await);
    let (sa, sb) = (a.user_store(), b2.user_store());
    let t0 = now();
    let step = std::time::Duration::from_secs(12);
    let mut until = None;
    for (i, s) in [&sa, &sb, &sa].into_iter().enumerate() {
        until = Some(s.record_sign_in_failure("k1", t0, step).await.unwrap());
        assert_eq!(until, Some(t0 + step * (i as u32 + 1)), "failure {i}");
    }
    assert_eq!(sb.sign_in_failures_until("k1").await.unwrap(), until);
    assert_eq!(sa.sign_in_failures_until("k2").await.unwrap(), None);
    // Ten at once, through both handles: every one counts.
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..10 {
        let s = if i % 2 == 0 { sa.clone() } else { sb.clone() };
        writes.spawn(async move { s.record_sign_in_failure("k2", t0, step).await.unwrap() });
    }
    while let Some(r) = writes.join_next().await {
        r.unwrap();
    }
    assert_eq!(
        sa.sign_in_failures_until("k2").await.unwrap(),
        Some(t0 + step * 10)
    );
    // The limit through the service: 3 per 36 s locks after three, whichever handle counted.
    let limit = SignInLimit {
        max_failures: NonZeroU32::new(3).unwrap(),
        period: std::time::Duration::from_secs(36),
    };
    let (ua, ub) = (a.users(), b2.users());
    assert_eq!(ua.sign_in_locked("Carol", limit).await.unwrap(), None);
    ua.sign_in_failed("carol", limit).await.unwrap();
    ub.sign_in_failed(" CAROL", limit).await.unwrap();
    assert_eq!(ub.sign_in_locked("carol", limit).await.unwrap(), None);
    ua.sign_in_failed("carol", limit).await.unwrap();
    let wait = ub.sign_in_locked("carol", limit).await.unwrap();
    assert!(
        wait.is_some_and(|w| w <= std::time::Duration::from_secs(12)),
        "{wait:?}"
    );
    assert_eq!(ua.sign_in_locked("dave", limit).await.unwrap(), None);
    // A failure recorded later forgets the keys whose instant has passed.
    let later = t0 + Duration::minutes(10);
    sb.record_sign_in_failure("k3", later, step).await.unwrap();
    assert_eq!(sa.sign_in_failures_until("k1").await.unwrap(), None);
    assert_eq!(sa.sign_in_failures_until("k2").await.unwrap(), None);
    assert!(sa.sign_in_failures_until("k3").await.unwrap().is_some());
}

async fn the_change_audit_lists_by_range_and_is_append_only(b: Arc<Backend>) {
    let o = b.open().await;
    let s = o.user_store();
    let t0 = now() - Duration::hours(3);
    for (i, target) in [
        ChangeTarget::DataSource,
        ChangeTarget::Webhook,
        ChangeTarget::DataSource,
    ]
    .into_iter()
    .enumerate()
    {
        s.append_change(&ChangeRecord {
            at: t0 + Duration::hours(i as i64),
            actor: format!("user:u{i}"),
            target,
            target_id: format!("x{i}"),
            action: "update".into(),
            fields: vec!["base_url".into(), "auth.client_secret".into()],
        })
        .await
        .unwrap();
    }
    let all = s.list_changes(&ChangeFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.target_id.as_str()).collect::<Vec<_>>(),
        ["x2", "x1", "x0"],
        "newest first"
    );
    assert_eq!(all[0].fields, ["base_url", "auth.client_secret"]);
    let middle = s
        .list_changes(&ChangeFilter {
            range: TimeRange {
                since: Some(t0 + Duration::hours(1)),
                until: Some(t0 + Duration::hours(2)),
            },
            ..ChangeFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(middle.len(), 1, "since inclusive, until exclusive");
    assert_eq!(middle[0].target_id, "x1");
    let sources = s
        .list_changes(&ChangeFilter {
            target: Some(ChangeTarget::DataSource),
            limit: 1,
            ..ChangeFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].target_id, "x2");
    // Append-only, in the database itself.
    let refused = match &*b {
        Backend::Sqlite { path, .. } => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query("DELETE FROM change_audit")
                .execute(&mut c)
                .await
                .is_err()
        }
        Backend::Pg { url, schema } => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            let sql = format!("UPDATE \"{schema}\".change_audit SET actor = 'someone else'");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .is_err()
        }
    };
    assert!(refused, "the change audit refuses updates and deletes");
}

async fn the_audit_log_lists_by_time_range(b: Arc<Backend>) {
    let o = b.open().await;
    let t0 = now() - Duration::days(2);
    let entries: Vec<AuditEntry> = (0..4)
        .map(|i| AuditEntry {
            // Sub-second parts of different lengths: the range must compare instants.
            at: t0 + Duration::hours(12 * i) + Duration::microseconds(i * 250_000 + 5),
            source_code: "crvs".into(),
            endpoint: "https://r.example/search".into(),
            action: "search".into(),
            message_id: None,
            transaction_id: Some(format!("t{i}")),
            http_status: Some(200),
            outcome: AuditOutcome::Ok,
            duration_ms: 5,
            attempt: 1,
            error: None,
        })
        .collect();
    o.store.append_audit_batch(&entries).await.unwrap();
    let range = TimeRange {
        since: Some(entries[1].at),
        until: Some(entries[3].at),
    };
    let got = o
        .store
        .list_audit(&AuditFilter {
            range,
            limit: 0,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|e| e.transaction_id.as_deref().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["t2", "t1"]
    );
    let since_only = o
        .store
        .list_audit(&AuditFilter {
            range: TimeRange {
                since: Some(t0 + Duration::hours(13)),
                until: None,
            },
            limit: 0,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(since_only.len(), 2);
}
