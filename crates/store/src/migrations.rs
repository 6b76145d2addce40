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

pub(crate) fn sqlite() -> Migrator {
    migrator(&[
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
    ])
}

pub(crate) fn postgres() -> Migrator {
    migrator(&[
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
    ])
}
