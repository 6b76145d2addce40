//! Embedded migrations, one folder per backend, applied on connect.
//!
//! Listed by hand rather than with `sqlx::migrate!` to keep sqlx's macro crate out of the build;
//! add each new file here with the next version number.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, name, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The SQLite migrations, in order.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "operations",
        include_str!("../migrations/sqlite/0002_operations.sql"),
    ),
    (
        3,
        "tolerated",
        include_str!("../migrations/sqlite/0003_tolerated.sql"),
    ),
    (
        4,
        "events",
        include_str!("../migrations/sqlite/0004_events.sql"),
    ),
    (
        5,
        "transaction_reason",
        include_str!("../migrations/sqlite/0005_transaction_reason.sql"),
    ),
    (
        6,
        "callback_answers",
        include_str!("../migrations/sqlite/0006_callback_answers.sql"),
    ),
    (
        7,
        "bulk_jobs",
        include_str!("../migrations/sqlite/0007_bulk_jobs.sql"),
    ),
    (
        8,
        "users",
        include_str!("../migrations/sqlite/0008_users.sql"),
    ),
    (
        9,
        "event_sinks",
        include_str!("../migrations/sqlite/0009_event_sinks.sql"),
    ),
    (
        12,
        "schedules",
        include_str!("../migrations/sqlite/0012_schedules.sql"),
    ),
    (
        13,
        "job_leases",
        include_str!("../migrations/sqlite/0013_job_leases.sql"),
    ),
    // SQLite only: PostgreSQL keeps instants as `timestamptz`.
    (
        14,
        "fixed_width_instants",
        include_str!("../migrations/sqlite/0014_fixed_width_instants.sql"),
    ),
    (
        15,
        "sign_in_failures",
        include_str!("../migrations/sqlite/0015_sign_in_failures.sql"),
    ),
];

pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL migrations, in order.
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "operations",
        include_str!("../migrations/postgres/0002_operations.sql"),
    ),
    (
        3,
        "tolerated",
        include_str!("../migrations/postgres/0003_tolerated.sql"),
    ),
    (
        4,
        "events",
        include_str!("../migrations/postgres/0004_events.sql"),
    ),
    (
        5,
        "transaction_reason",
        include_str!("../migrations/postgres/0005_transaction_reason.sql"),
    ),
    (
        6,
        "callback_answers",
        include_str!("../migrations/postgres/0006_callback_answers.sql"),
    ),
    (
        7,
        "bulk_jobs",
        include_str!("../migrations/postgres/0007_bulk_jobs.sql"),
    ),
    (
        8,
        "users",
        include_str!("../migrations/postgres/0008_users.sql"),
    ),
    (
        9,
        "event_sinks",
        include_str!("../migrations/postgres/0009_event_sinks.sql"),
    ),
    (
        12,
        "schedules",
        include_str!("../migrations/postgres/0012_schedules.sql"),
    ),
    (
        13,
        "job_leases",
        include_str!("../migrations/postgres/0013_job_leases.sql"),
    ),
    (
        15,
        "sign_in_failures",
        include_str!("../migrations/postgres/0015_sign_in_failures.sql"),
    ),
];

pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqlitePoolOptions;

    /// Rows written before 0014 (sqlx's RFC 3339 with the fraction trimmed) come out of it at
    /// one width, in time order, with their instants unchanged; the audit log is append-only
    /// again afterwards.
    #[tokio::test]
    async fn sqlite_0014_rewrites_trimmed_instants_at_one_width() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("old.sqlite3").display()
        );
        let pool = SqlitePoolOptions::new().connect(&url).await.unwrap();
        let before = SQLITE.iter().position(|m| m.0 == 14).unwrap();
        migrator(&SQLITE[..before]).run(&pool).await.unwrap();

        // As sqlx wrote them: whole seconds without a fraction, trailing zeros trimmed.
        let written = [
            "2026-12-03T12:00:05Z",
            "2026-12-03T12:00:05.1Z",
            "2026-12-03T12:00:05.12Z",
            "2026-12-03T12:00:05.123456Z",
            "2026-12-03T12:00:05.5Z",
            "2026-12-03T12:00:06Z",
        ];
        for (i, at) in written.iter().enumerate() {
            sqlx::query(
                "INSERT INTO op_transaction (transaction_id, source_code, kind, message_id, \
                 reference_ids, request, state, created_at, deadline_ms, updated_at, ack_at) \
                 VALUES ($1, 's', 'search', $1, '[]', '{}', 'pending', $2, 0, $2, NULL)",
            )
            .bind(format!("t{i}"))
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO audit_log (at, source_code, endpoint, action, outcome, duration_ms, \
                 attempt) VALUES ($1, 's', 'e', 'search', 'ok', 1, 1)",
            )
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
        }
        // Out of time order as text: the whole second sorts after its fractions.
        let newest: String = sqlx::query_scalar(
            "SELECT transaction_id FROM op_transaction ORDER BY created_at DESC",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(newest, "t5", "06Z is newest either way");
        let oldest: String =
            sqlx::query_scalar("SELECT created_at FROM op_transaction ORDER BY created_at")
                .fetch_one(&pool)
                .await
                .unwrap();
        // Oldest by time is 05Z; as text, `.123456Z` (`3` sorts before `Z`).
        assert_eq!(
            oldest, "2026-12-03T12:00:05.123456Z",
            "the misorder this migration removes"
        );

        migrator(SQLITE).run(&pool).await.unwrap();

        let expected = [
            "2026-12-03T12:00:05.000000Z",
            "2026-12-03T12:00:05.100000Z",
            "2026-12-03T12:00:05.120000Z",
            "2026-12-03T12:00:05.123456Z",
            "2026-12-03T12:00:05.500000Z",
            "2026-12-03T12:00:06.000000Z",
        ];
        for sql in [
            "SELECT created_at FROM op_transaction ORDER BY created_at",
            "SELECT updated_at FROM op_transaction ORDER BY updated_at",
            "SELECT at FROM audit_log ORDER BY at",
        ] {
            let got: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            assert_eq!(got, expected, "{sql}");
        }
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT transaction_id FROM op_transaction ORDER BY created_at")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(ids, ["t0", "t1", "t2", "t3", "t4", "t5"]);
        // The same instants as before.
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        for (old, new) in written.iter().zip(expected) {
            assert_eq!(
                time::OffsetDateTime::parse(old, rfc3339).unwrap(),
                time::OffsetDateTime::parse(new, rfc3339).unwrap()
            );
        }
        let nulls: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM op_transaction WHERE ack_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(nulls, 6, "absent instants stay absent");
        let refused = sqlx::query("UPDATE audit_log SET outcome = 'changed'")
            .execute(&pool)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");
    }
}
