//! CRVS: people by UIN/BRN/DRN/MRN, birth verification, death checks, vital events in a date
//! range (paged to the end), subscriptions and typed notifications. Speaks the standard
//! profile or OpenCRVS's (see [`super::opencrvs`]), as the data source says.

use std::fmt;
use std::str::FromStr;

use dci_protocol::RegistryType;
use dci_protocol::build::SearchItem;
use serde::Serialize;
use serde_json::Value;

use super::opencrvs::Profile;
use super::{Core, IdRef, display_name, identifiers, text};
use crate::keys::RegistryKeys;
use crate::ops::{AsyncSubmission, Operations, OpsError, RawRecord, SearchSpec, SubscribeSpec};

/// Page size used to walk vital events.
pub const EVENTS_PAGE_SIZE: u32 = 50;

/// A vital event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VitalEventKind {
    /// Live birth.
    Birth,
    /// Death.
    Death,
    /// Marriage.
    Marriage,
    /// Divorce.
    Divorce,
}

impl VitalEventKind {
    /// All kinds.
    pub const ALL: [VitalEventKind; 4] = [
        VitalEventKind::Birth,
        VitalEventKind::Death,
        VitalEventKind::Marriage,
        VitalEventKind::Divorce,
    ];

    /// `birth`, `death`, `marriage`, `divorce` (OpenCRVS's form too).
    pub fn as_str(self) -> &'static str {
        match self {
            VitalEventKind::Birth => "birth",
            VitalEventKind::Death => "death",
            VitalEventKind::Marriage => "marriage",
            VitalEventKind::Divorce => "divorce",
        }
    }

    /// The spec's `RegistryEventTypeEnum` value (`LiveBirth`, `Death`, …).
    pub fn spec_event_type(self) -> &'static str {
        match self {
            VitalEventKind::Birth => "LiveBirth",
            VitalEventKind::Death => "Death",
            VitalEventKind::Marriage => "Marriage",
            VitalEventKind::Divorce => "Divorce",
        }
    }

    /// Reads any spelling: `birth`, `LiveBirth`, `live_birth`, `ns:…:Death`.
    pub fn parse_lenient(s: &str) -> Option<VitalEventKind> {
        let last = s
            .rsplit(':')
            .next()
            .unwrap_or(s)
            .to_ascii_lowercase()
            .replace(['_', '-', ' '], "");
        match last.as_str() {
            "birth" | "livebirth" => Some(VitalEventKind::Birth),
            "death" => Some(VitalEventKind::Death),
            "marriage" => Some(VitalEventKind::Marriage),
            "divorce" => Some(VitalEventKind::Divorce),
            _ => None,
        }
    }
}

impl fmt::Display for VitalEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VitalEventKind {
    type Err = OpsError;
    fn from_str(s: &str) -> Result<Self, OpsError> {
        VitalEventKind::parse_lenient(s).ok_or_else(|| {
            OpsError::invalid(
                "type",
                format!("{s:?} is not a vital event: use birth, death, marriage or divorce"),
            )
        })
    }
}

/// A person as CRVS holds them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    /// Every identifier the record carries (UIN, BRN, DRN, MRN…).
    pub identifiers: Vec<IdRef>,
    /// Display name.
    pub name: Option<String>,
    /// `sex`.
    pub sex: Option<String>,
    /// `birth_date`.
    pub birth_date: Option<String>,
    /// `birth_place.name` (or the string).
    pub birth_place: Option<String>,
    /// `death_date`.
    pub death_date: Option<String>,
    /// Whether the record says the person died.
    pub deceased: bool,
    /// `marital_status`.
    pub marital_status: Option<String>,
    /// The record as received.
    pub raw: Value,
}

impl Person {
    /// Reads a record leniently.
    pub fn from_record(raw: &Value) -> Person {
        let mut ids = identifiers(raw.get("identifiers"));
        for i in identifiers(raw.get("identifier")) {
            if !ids.contains(&i) {
                ids.push(i);
            }
        }
        let death_date = text(raw, &["/death_date", "/deathDate"]);
        let deceased = raw
            .get("is_deceased")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || death_date.is_some();
        Person {
            identifiers: ids,
            name: display_name(raw.get("name")),
            sex: text(raw, &["/sex", "/gender"]),
            birth_date: text(raw, &["/birth_date", "/birthdate", "/birthDate"]),
            birth_place: text(raw, &["/birth_place/name", "/birth_place", "/birthplace"]),
            death_date,
            deceased,
            marital_status: text(raw, &["/marital_status"]),
            raw: raw.clone(),
        }
    }

    /// The identifier of this type, if the record carries one.
    pub fn id(&self, id_type: &str) -> Option<&str> {
        self.identifiers
            .iter()
            .find(|i| i.id_type.eq_ignore_ascii_case(id_type))
            .map(|i| i.value.as_str())
    }
}

/// Whether a person died, from the registry's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeathStatus {
    /// Whether the person is recorded as deceased.
    pub deceased: bool,
    /// Date of death, when recorded.
    pub death_date: Option<String>,
    /// Death registration number, when recorded.
    pub drn: Option<String>,
    /// The person record.
    pub person: Person,
}

/// One vital event, with the person record it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VitalEvent {
    /// The kind.
    pub kind: VitalEventKind,
    /// The event date.
    pub date: Option<String>,
    /// The registration number (BRN, DRN, MRN…).
    pub registration_number: Option<String>,
    /// The person.
    pub person: Person,
}

/// A notification from a subscription, typed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrvsEvent {
    /// The subscription it belongs to.
    pub subscription_code: Option<String>,
    /// The event kind, when recognisable.
    pub kind: Option<VitalEventKind>,
    /// `reg_event_type` as sent.
    pub event_type: Option<String>,
    /// The people in the notification.
    pub people: Vec<Person>,
    /// The notification item as received.
    pub raw: Value,
}

impl CrvsEvent {
    /// Reads the events of a `notify` envelope (or its `message`) leniently.
    pub fn from_notification(body: &Value) -> Vec<CrvsEvent> {
        let message = body.get("message").unwrap_or(body);
        let items: Vec<&Value> = match message.get("notify_event") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(o @ Value::Object(_)) => vec![o],
            _ => Vec::new(),
        };
        items
            .into_iter()
            .map(|i| {
                let data = i.get("data").unwrap_or(&Value::Null);
                let event_type = text(data, &["/reg_event_type"]);
                let people = match data.get("reg_records") {
                    Some(Value::Array(a)) => a.iter().map(Person::from_record).collect(),
                    Some(o @ Value::Object(m)) if !m.is_empty() => vec![Person::from_record(o)],
                    _ => Vec::new(),
                };
                CrvsEvent {
                    subscription_code: text(i, &["/subscription_code"]),
                    kind: event_type
                        .as_deref()
                        .and_then(VitalEventKind::parse_lenient),
                    event_type,
                    people,
                    raw: i.clone(),
                }
            })
            .collect()
    }
}

/// One subscription request's outcome; the others still count when one fails.
#[derive(Debug, Serialize)]
pub struct SubscribeOutcome {
    /// The event kind.
    pub kind: VitalEventKind,
    /// The ACK, or why it failed.
    #[serde(serialize_with = "ser_result")]
    pub result: Result<AsyncSubmission, OpsError>,
}

fn ser_result<S: serde::Serializer>(
    r: &Result<AsyncSubmission, OpsError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match r {
        Ok(a) => a.serialize(s),
        Err(e) => serde_json::json!({"error": e.to_string()}).serialize(s),
    }
}

/// The CRVS client.
#[derive(Debug, Clone)]
pub struct CrvsClient {
    core: Core,
}

impl CrvsClient {
    /// A client for a CRVS data source; any other registry type is refused.
    pub fn new(ops: Operations) -> Result<CrvsClient, OpsError> {
        Ok(CrvsClient {
            core: Core::new(ops, RegistryType::Crvs)?,
        })
    }

    /// Shares a registry-key (JWKS) cache.
    #[must_use]
    pub fn with_registry_keys(mut self, keys: RegistryKeys) -> CrvsClient {
        self.core = self.core.with_keys(keys);
        self
    }

    async fn by_id(
        &self,
        id: &IdRef,
        kind: Option<VitalEventKind>,
    ) -> Result<Vec<Value>, OpsError> {
        let mut item = SearchItem::new(id.query()).record_type("Person");
        // OpenCRVS answers per event type (birth unless asked otherwise).
        let kind = match self.core.profile() {
            Profile::Standard => kind,
            Profile::OpenCrvs(_) => Some(kind.unwrap_or(VitalEventKind::Birth)),
        };
        if let Some(k) = kind {
            item = item.event_type(k.spec_event_type());
        }
        let item = self.core.search_one(item.page(1, 10)).await?;
        Ok(item
            .records
            .into_iter()
            .map(RawRecord::into_value)
            .collect())
    }

    /// The person with this identifier, or `None` when the registry has none.
    pub async fn person(&self, id: &IdRef) -> Result<Option<Person>, OpsError> {
        Ok(self.by_id(id, None).await?.first().map(Person::from_record))
    }

    /// The birth record for this identifier, or `None` when there is none.
    pub async fn verify_birth(&self, id: &IdRef) -> Result<Option<Person>, OpsError> {
        Ok(self
            .by_id(id, Some(VitalEventKind::Birth))
            .await?
            .first()
            .map(Person::from_record))
    }

    /// Whether the person with this identifier died (with the date), or `None` when the
    /// registry does not know the person.
    pub async fn check_death(&self, id: &IdRef) -> Result<Option<DeathStatus>, OpsError> {
        let record = match self.core.profile() {
            Profile::Standard => self.by_id(id, None).await?.into_iter().next(),
            // OpenCRVS answers per event: a death record, else a birth record (alive).
            Profile::OpenCrvs(_) => match self
                .by_id(id, Some(VitalEventKind::Death))
                .await?
                .into_iter()
                .next()
            {
                Some(r) => Some(r),
                None => self
                    .by_id(id, Some(VitalEventKind::Birth))
                    .await?
                    .into_iter()
                    .next(),
            },
        };
        Ok(record.map(|r| {
            let person = Person::from_record(&r);
            let drn = person.id("DRN").map(str::to_owned).or_else(|| {
                vital_events(&r)
                    .into_iter()
                    .find(|(k, _, _)| *k == VitalEventKind::Death)
                    .and_then(|(_, _, n)| n)
            });
            DeathStatus {
                deceased: person.deceased,
                death_date: person.death_date.clone(),
                drn,
                person,
            }
        }))
    }

    /// Every `kind` event dated within `[from, to]` (`YYYY-MM-DD`, either optional), paged to
    /// the end.
    pub async fn events(
        &self,
        kind: VitalEventKind,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<VitalEvent>, OpsError> {
        for (field, d) in [("from", from), ("to", to)] {
            if let Some(d) = d
                && time::Date::parse(
                    d.get(..10).unwrap_or(d),
                    &time::format_description::well_known::Iso8601::DATE,
                )
                .is_err()
            {
                return Err(OpsError::invalid(
                    field,
                    format!("{d:?} is not a date: write it as YYYY-MM-DD"),
                ));
            }
        }
        let query = SearchSpec::date_range("event_date", from, to)?.query;
        let records = self
            .core
            .search_all(
                |page| {
                    SearchItem::new(query.clone())
                        .record_type("Person")
                        .event_type(kind.spec_event_type())
                        .page(page, EVENTS_PAGE_SIZE)
                },
                EVENTS_PAGE_SIZE,
            )
            .await?;
        let in_range = |d: &str| {
            let d = d.get(..10).unwrap_or(d);
            from.is_none_or(|f| d >= f.get(..10).unwrap_or(f))
                && to.is_none_or(|t| d <= t.get(..10).unwrap_or(t))
        };
        let mut out = Vec::new();
        for r in &records {
            let person = Person::from_record(r);
            let events: Vec<_> = vital_events(r)
                .into_iter()
                .filter(|(k, d, _)| *k == kind && d.as_deref().is_none_or(in_range))
                .collect();
            if events.is_empty() {
                // The registry matched the record but lists no vital_events: keep the record.
                out.push(VitalEvent {
                    kind,
                    date: None,
                    registration_number: None,
                    person,
                });
                continue;
            }
            for (_, date, number) in events {
                out.push(VitalEvent {
                    kind,
                    date,
                    registration_number: number,
                    person: person.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Subscribes to each kind (async: the subscription codes arrive with `on-subscribe`).
    /// Every kind is attempted; each outcome is reported, so a failure does not hide the
    /// subscriptions already made.
    pub async fn subscribe(&self, kinds: &[VitalEventKind]) -> Vec<SubscribeOutcome> {
        let mut out = Vec::new();
        for kind in kinds {
            let result = match SubscribeSpec::new(kind.spec_event_type(), None) {
                Ok(spec) => self.core.ops().subscribe(&spec).await,
                Err(e) => Err(e),
            };
            out.push(SubscribeOutcome {
                kind: *kind,
                result,
            });
        }
        out
    }

    /// The CRVS notifications received for this data source, newest first, typed.
    pub async fn notifications(&self, limit: u32) -> Result<Vec<CrvsEvent>, OpsError> {
        let records = crate::ops::list_notifications(
            self.core.store().as_ref(),
            Some(&self.core.source().code),
            limit,
        )
        .await?;
        Ok(records
            .iter()
            .flat_map(|r| CrvsEvent::from_notification(&r.body))
            .collect())
    }
}

/// `(kind, date, registration number)` of each recognisable `vital_events` entry.
fn vital_events(r: &Value) -> Vec<(VitalEventKind, Option<String>, Option<String>)> {
    r.get("vital_events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let kind = VitalEventKind::parse_lenient(e.get("event_type")?.as_str()?)?;
            Some((
                kind,
                text(e, &["/event_date"]),
                text(e, &["/registration_number"]),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_parse_any_spelling() {
        for (s, k) in [
            ("birth", VitalEventKind::Birth),
            ("LiveBirth", VitalEventKind::Birth),
            ("live_birth", VitalEventKind::Birth),
            (
                "spdci-common:RegistryEventType:Death",
                VitalEventKind::Death,
            ),
        ] {
            assert_eq!(s.parse::<VitalEventKind>().unwrap(), k);
        }
        let e = "adoption".parse::<VitalEventKind>().unwrap_err();
        assert!(e.to_string().starts_with("type:"), "{e}");
    }

    #[test]
    fn notifications_are_typed_with_the_raw_item() {
        let body = json!({"message": {"notify_event": [{"subscription_code": "S1",
            "data": {"reg_event_type": "Death", "reg_records": {"identifier": {"identifier_type": "UIN", "identifier_value": "9"}, "death_date": "2020-01-01"}}}]}});
        let ev = CrvsEvent::from_notification(&body);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, Some(VitalEventKind::Death));
        assert!(ev[0].people[0].deceased);
        assert_eq!(ev[0].people[0].id("uin"), Some("9"));
        assert_eq!(ev[0].raw["subscription_code"], "S1");
    }
}
