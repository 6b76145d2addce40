//! How instants are written: [`At`], bound in place of a bare `OffsetDateTime`.
//!
//! PostgreSQL keeps them as `timestamptz`. SQLite has no time type: instants are text, and
//! `ORDER BY created_at`, `created_at < $1` and the like compare that text byte by byte. sqlx's
//! own encoding is RFC 3339 with the fraction trimmed (`…:05Z`, `…:05.1Z`, `…:05.123Z`), whose
//! text order is not time order within a second (`Z` sorts after `.`, `.12Z` after `.123Z`).
//! [`At`] writes every instant at one width, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds,
//! 27 bytes), so text order is time order; migration 0014 rewrote the rows written before.
//! Reading is unchanged: sqlx parses any RFC 3339 text back.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::{Encode, Postgres, Sqlite, Type};
use time::{OffsetDateTime, UtcOffset};

/// An instant as the store keeps it: UTC, truncated to microseconds (PostgreSQL's precision),
/// and in SQLite written at a fixed width (see the module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At(OffsetDateTime);

/// `t` as stored: in UTC, truncated to whole microseconds.
pub(crate) fn ts(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

impl At {
    /// `t` ready to bind: in UTC, truncated to whole microseconds.
    pub(crate) fn of(t: OffsetDateTime) -> At {
        At(ts(t))
    }

    /// The SQLite text: `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Years outside 0000–9999 have no RFC 3339
    /// form and are refused (as sqlx's own encoding refuses them).
    pub(crate) fn text(self) -> Result<String, BoxDynError> {
        let t = self.0;
        if !(0..=9999).contains(&t.year()) {
            return Err(format!("the year {} has no RFC 3339 form", t.year()).into());
        }
        Ok(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond(),
        ))
    }
}

impl Type<Sqlite> for At {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for At {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.text()?, buf)
    }
}

impl Type<Postgres> for At {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for At {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sqlite_text_is_fixed_width_and_sorts_as_time() {
        let second = datetime!(2026-12-03 12:00:05 UTC);
        let instants = [
            second,
            second + time::Duration::microseconds(1),
            second + time::Duration::milliseconds(100),
            second + time::Duration::milliseconds(120),
            second + time::Duration::microseconds(123_456),
            second + time::Duration::milliseconds(500),
            second + time::Duration::seconds(1),
        ];
        let texts: Vec<String> = instants
            .iter()
            .map(|&t| At::of(t).text().unwrap())
            .collect();
        assert_eq!(texts[0], "2026-12-03T12:00:05.000000Z");
        assert_eq!(texts[4], "2026-12-03T12:00:05.123456Z");
        assert!(texts.iter().all(|t| t.len() == 27), "{texts:?}");
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts, "text order is time order");
    }

    #[test]
    fn sqlite_text_is_utc_truncated_to_microseconds_and_reads_back() {
        let t = datetime!(2026-12-03 14:00:05.123456789 +02:00);
        let text = At::of(t).text().unwrap();
        assert_eq!(text, "2026-12-03T12:00:05.123456Z");
        let back =
            OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(back, ts(t));
    }

    #[test]
    fn years_without_an_rfc3339_form_are_refused() {
        let t = datetime!(-0001-12-31 0:00 UTC);
        let err = At::of(t).text().unwrap_err();
        assert!(err.to_string().contains("-1"), "{err}");
    }
}
