//! DR (disability registry): status (`sync/disabled`), details (`sync/get-disability-details`),
//! support needs (`sync/get-disability-support`) and the full record by search, with a status
//! cache whose time-to-live is configurable.
//!
//! A "not found" is cached only for the (short) negative TTL, never as "not disabled" for the
//! full TTL: a person registered a minute later must not stay "not disabled" for a day.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dci_protocol::RegistryType;
use dci_protocol::build::{Endpoint as WireEndpoint, SearchItem};
use dci_protocol::codes::QueryType;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::{Core, IdRef, display_name, extra_endpoint, first_item, text, unreadable};
use crate::keys::RegistryKeys;
use crate::ops::pending_reply;
use crate::ops::{Operations, OpsError};

/// The spec's `DisabilityStatusEnum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabilityStatusKind {
    /// Approved: the person counts as disabled.
    Approved,
    /// Assessment pending.
    Pending,
    /// Approval expired.
    Expired,
    /// Anything else, as sent.
    Other(String),
}

impl DisabilityStatusKind {
    /// Reads `Approved`/`approved`/`0` …, keeping unknown values.
    pub fn parse_lenient(v: &Value) -> DisabilityStatusKind {
        let s = match v {
            Value::String(s) => s.trim().to_ascii_lowercase(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        match s.as_str() {
            "approved" | "0" => DisabilityStatusKind::Approved,
            "pending" | "1" => DisabilityStatusKind::Pending,
            "expired" | "2" => DisabilityStatusKind::Expired,
            _ => DisabilityStatusKind::Other(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    }
}

/// A person's disability status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisabilityStatus {
    /// `disabled_status` (`yes`/`no`): whether the registry counts the person as disabled.
    pub disabled: bool,
    /// Approved / pending / expired, when the registry said.
    pub status: Option<DisabilityStatusKind>,
    /// `disability_level`, when the registry said.
    pub level: Option<String>,
    /// Whether this answer came from the cache.
    pub cached: bool,
    /// The response item (or record) as received.
    pub raw: Value,
}

impl DisabilityStatus {
    /// The status a full DR record states (`disability_status`, `disability_level`): disabled
    /// when approved.
    pub fn from_record(raw: Value) -> DisabilityStatus {
        let status = raw
            .get("disability_status")
            .filter(|v| !v.is_null())
            .map(DisabilityStatusKind::parse_lenient);
        DisabilityStatus {
            disabled: status == Some(DisabilityStatusKind::Approved),
            status,
            level: text(&raw, &["/disability_level"]),
            cached: false,
            raw,
        }
    }
}

/// Impairments and their assessment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisabilityDetails {
    /// `impairment_type` of each entry.
    pub impairment_types: Vec<String>,
    /// `disability_details` entries as sent.
    pub details: Vec<Value>,
    /// Status, when sent with the details.
    pub status: Option<DisabilityStatusKind>,
    /// `disability_level`, when sent.
    pub level: Option<String>,
    /// The record as received.
    pub raw: Value,
}

/// Support needs, as the spec's `DisabilitySupport` (`get-disability-support`, and
/// `disability_support` in a `DisabledPerson`): `human_assistance` is an object
/// `{type, frequency, support_status, caregiver{id, name, identifier}, relationship,
/// registration_date, last_updated}`; the other needs are lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisabilitySupport {
    /// Whether human assistance is needed: from the spec's object (yes unless its
    /// `support_status` says it is not needed), or a boolean as some registries send.
    pub human_assistance: Option<bool>,
    /// The spec's `human_assistance` object, read.
    pub human_assistance_detail: Option<SupportNeed>,
    /// `assistive_technology`: one label per entry (an entry's `type`, or the string sent).
    pub assistive_technology: Vec<String>,
    /// `housing_support`, as labels.
    pub housing_support: Vec<String>,
    /// `medical_care`, as labels.
    pub medical_care: Vec<String>,
    /// `animal_assistance`, as labels.
    pub animal_assistance: Vec<String>,
    /// Every need read (human assistance first, then each list's entries), with its category.
    pub needs: Vec<SupportNeed>,
    /// `registration_date`.
    pub registration_date: Option<String>,
    /// `last_updated`.
    pub last_updated: Option<String>,
    /// The record as received.
    pub raw: Value,
}

/// One support need (the shape of the spec's `human_assistance`; list entries may be the same
/// object or a plain string).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupportNeed {
    /// `human_assistance`, `assistive_technology`, `housing_support`, `medical_care` or
    /// `animal_assistance`.
    pub category: String,
    /// `type` (e.g. `mobility`), or the string sent.
    pub kind: Option<String>,
    /// `frequency` (e.g. `Daily`, `Permanent`).
    pub frequency: Option<String>,
    /// `support_status` (e.g. `Needed`, `Required`).
    pub support_status: Option<String>,
    /// `caregiver`: `{id, name, identifier}`.
    pub caregiver: Option<Caregiver>,
    /// `relationship` of the caregiver.
    pub relationship: Option<String>,
    /// `registration_date`.
    pub registration_date: Option<String>,
    /// `last_updated`.
    pub last_updated: Option<String>,
    /// The entry as received.
    pub raw: Value,
}

/// A caregiver of a [`SupportNeed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caregiver {
    /// `id`.
    pub id: Option<String>,
    /// `name` (a string, or a name object joined).
    pub name: Option<String>,
    /// `identifier`.
    pub identifier: Option<String>,
}

impl SupportNeed {
    /// The label shown for the need: its `type`, else its `support_status`.
    pub fn label(&self) -> Option<&str> {
        self.kind.as_deref().or(self.support_status.as_deref())
    }

    /// Whether the need is stated as not needed (`support_status` `Not needed`, `None`, `No`).
    pub fn is_declined(&self) -> bool {
        self.support_status.as_deref().is_some_and(|s| {
            let s = s.trim().to_ascii_lowercase().replace(['_', '-'], " ");
            matches!(
                s.as_str(),
                "no" | "none" | "not needed" | "not required" | "not applicable" | "n/a"
            )
        })
    }

    fn read(category: &str, v: &Value) -> Option<SupportNeed> {
        let t = |p: &str| text(v, &[p]);
        let blank = |kind: Option<String>| SupportNeed {
            category: category.to_owned(),
            kind,
            frequency: None,
            support_status: None,
            caregiver: None,
            relationship: None,
            registration_date: None,
            last_updated: None,
            raw: v.clone(),
        };
        match v {
            Value::String(s) if !s.trim().is_empty() => Some(blank(Some(s.clone()))),
            Value::Object(_) => Some(SupportNeed {
                frequency: t("/frequency"),
                support_status: t("/support_status"),
                caregiver: v
                    .get("caregiver")
                    .filter(|c| c.is_object())
                    .map(|c| Caregiver {
                        id: text(c, &["/id"]),
                        name: display_name(c.get("name")),
                        identifier: text(c, &["/identifier", "/identifier/identifier_value"]),
                    }),
                relationship: t("/relationship"),
                registration_date: t("/registration_date"),
                last_updated: t("/last_updated"),
                ..blank(text(v, &["/type", "/name", "/description"]))
            }),
            _ => None,
        }
    }
}

/// The need lists of `DisabilitySupport`, in field order.
const NEED_LISTS: [&str; 4] = [
    "assistive_technology",
    "housing_support",
    "medical_care",
    "animal_assistance",
];

impl DisabilitySupport {
    /// Reads a `DisabilitySupport` record, or a list of them (merged: the spec nests them in
    /// an array per person). `None` when there is no object to read.
    pub fn from_record(record: Value) -> Option<DisabilitySupport> {
        let parts: Vec<&Value> = match &record {
            Value::Array(a) => a.iter().filter(|v| v.is_object()).collect(),
            o @ Value::Object(_) => vec![o],
            _ => return None,
        };
        let first = *parts.first()?;
        let mut flag = None;
        let mut human = None;
        for p in &parts {
            match p.get("human_assistance") {
                Some(Value::Bool(b)) if flag.is_none() => flag = Some(*b),
                Some(Value::String(s)) if flag.is_none() => {
                    flag = match s.trim().to_ascii_lowercase().as_str() {
                        "yes" | "true" => Some(true),
                        "no" | "false" => Some(false),
                        _ => None,
                    };
                }
                Some(o @ Value::Object(_)) if human.is_none() => {
                    human = SupportNeed::read("human_assistance", o);
                }
                _ => {}
            }
        }
        let mut needs: Vec<SupportNeed> = human.iter().cloned().collect();
        let [assistive, housing, medical, animal] = NEED_LISTS.map(|key| {
            let mut labels = Vec::new();
            for p in &parts {
                let entries: Vec<&Value> = match p.get(key) {
                    Some(Value::Array(a)) => a.iter().collect(),
                    Some(v @ (Value::Object(_) | Value::String(_))) => vec![v],
                    _ => Vec::new(),
                };
                for n in entries
                    .into_iter()
                    .filter_map(|e| SupportNeed::read(key, e))
                {
                    labels.extend(n.label().map(str::to_owned));
                    needs.push(n);
                }
            }
            labels
        });
        let registration_date = text(first, &["/registration_date"]);
        let last_updated = text(first, &["/last_updated"]);
        Some(DisabilitySupport {
            human_assistance: flag.or_else(|| human.as_ref().map(|h| !h.is_declined())),
            human_assistance_detail: human,
            assistive_technology: assistive,
            housing_support: housing,
            medical_care: medical,
            animal_assistance: animal,
            needs,
            registration_date,
            last_updated,
            raw: record,
        })
    }
}

/// Cache settings: how long a found status is trusted, and how long a "not found" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrCacheSettings {
    /// Lifetime of a found status (default 15 minutes; zero disables the cache).
    pub ttl: Duration,
    /// Lifetime of a "not found" (default 30 seconds, never more than `ttl`).
    pub not_found_ttl: Duration,
    /// Most entries kept.
    pub capacity: u64,
}

impl Default for DrCacheSettings {
    fn default() -> Self {
        DrCacheSettings {
            ttl: Duration::from_secs(15 * 60),
            not_found_ttl: Duration::from_secs(30),
            capacity: 10_000,
        }
    }
}

type Cached = Option<DisabilityStatus>;

struct Expiry {
    ttl: Duration,
    not_found: Duration,
}

impl moka::Expiry<String, Arc<Cached>> for Expiry {
    fn expire_after_create(&self, _: &String, v: &Arc<Cached>, _: Instant) -> Option<Duration> {
        Some(match v.as_ref() {
            Some(_) => self.ttl,
            None => self.not_found.min(self.ttl),
        })
    }
}

/// The DR client.
#[derive(Clone)]
pub struct DrClient {
    core: Core,
    cache: Option<moka::future::Cache<String, Arc<Cached>>>,
}

impl std::fmt::Debug for DrClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrClient")
            .field("core", &self.core)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

impl DrClient {
    /// A client for a DR data source (any other type is refused), with the default cache.
    pub fn new(ops: Operations) -> Result<DrClient, OpsError> {
        DrClient::with_cache(ops, DrCacheSettings::default())
    }

    /// A client with these cache settings (`ttl` zero: no cache).
    pub fn with_cache(ops: Operations, settings: DrCacheSettings) -> Result<DrClient, OpsError> {
        let core = Core::new(ops, RegistryType::Dr)?;
        let cache = (!settings.ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(settings.capacity)
                .expire_after(Expiry {
                    ttl: settings.ttl,
                    not_found: settings.not_found_ttl,
                })
                .build()
        });
        Ok(DrClient { core, cache })
    }

    /// Shares a registry-key (JWKS) cache.
    #[must_use]
    pub fn with_registry_keys(mut self, keys: RegistryKeys) -> DrClient {
        self.core = self.core.with_keys(keys);
        self
    }

    async fn call(&self, e: WireEndpoint, id: &IdRef) -> Result<Value, OpsError> {
        let now = OffsetDateTime::now_utc();
        let b = self.core.builder(now)?;
        let env = match e {
            WireEndpoint::DrDisabled => b.dr_disabled(QueryType::IdTypeValue, id.query_map())?,
            WireEndpoint::DrDisabilitySupport => {
                b.dr_disability_support(QueryType::IdTypeValue, id.query_map())?
            }
            _ => b.dr_disability_details(QueryType::IdTypeValue, id.query_map())?,
        };
        Ok(self
            .core
            .send(env, extra_endpoint(e, true), now)
            .await?
            .body)
    }

    /// Disability status by `sync/disabled`, cached. `None`: the registry does not know the
    /// person (cached only briefly).
    pub async fn status(&self, id: &IdRef) -> Result<Option<DisabilityStatus>, OpsError> {
        let Some(cache) = &self.cache else {
            return self.status_uncached(id).await;
        };
        let key = format!("{}\u{1f}{}", id.id_type, id.value);
        if let Some(hit) = cache.get(&key).await {
            return Ok(hit.as_ref().clone().map(|mut s| {
                s.cached = true;
                s
            }));
        }
        // Errors are never cached: the next call asks again.
        let fresh = self.status_uncached(id).await?;
        cache.insert(key, Arc::new(fresh.clone())).await;
        Ok(fresh)
    }

    /// Forgets cached statuses (all of them, or this person's).
    pub async fn invalidate(&self, id: Option<&IdRef>) {
        if let Some(cache) = &self.cache {
            match id {
                Some(id) => {
                    cache
                        .invalidate(&format!("{}\u{1f}{}", id.id_type, id.value))
                        .await
                }
                None => cache.invalidate_all(),
            }
        }
    }

    /// Disability status by `sync/disabled`, bypassing the cache.
    pub async fn status_uncached(&self, id: &IdRef) -> Result<Option<DisabilityStatus>, OpsError> {
        let body = self.call(WireEndpoint::DrDisabled, id).await?;
        let item = answered_item(&body, "disabled_response")?;
        let raw = item.raw;
        let disabled = match raw.get("disabled_status").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("yes") => true,
            Some(s) if s.eq_ignore_ascii_case("no") => false,
            other => {
                return Err(unreadable(format!(
                    "disabled_status is {other:?}, expected \"yes\" or \"no\""
                )));
            }
        };
        let status = raw
            .get("disability_status")
            .filter(|v| !v.is_null())
            .map(DisabilityStatusKind::parse_lenient);
        // A bare "no" without a status means the registry has no such person.
        if !disabled && status.is_none() {
            return Ok(None);
        }
        Ok(Some(DisabilityStatus {
            disabled,
            status,
            level: text(&raw, &["/disability_level"]),
            cached: false,
            raw,
        }))
    }

    /// Disability status from the full record by search. `None`: no record.
    pub async fn status_by_search(&self, id: &IdRef) -> Result<Option<DisabilityStatus>, OpsError> {
        let item = self
            .core
            .search_one(SearchItem::new(id.query()).page(1, 1))
            .await?;
        Ok(item
            .records
            .into_iter()
            .next()
            .map(|r| DisabilityStatus::from_record(r.into_value())))
    }

    /// Impairments by `sync/get-disability-details`. `None`: no record.
    pub async fn details(&self, id: &IdRef) -> Result<Option<DisabilityDetails>, OpsError> {
        let body = self.call(WireEndpoint::DrDisabilityDetails, id).await?;
        let item = answered_item(&body, "search_response")?;
        Ok(item.records.into_iter().next().map(|r| {
            let r = r.into_value();
            let details = match r.get("disability_details") {
                Some(Value::Array(a)) => a.clone(),
                Some(o @ Value::Object(_)) => vec![o.clone()],
                _ => Vec::new(),
            };
            DisabilityDetails {
                impairment_types: details
                    .iter()
                    .filter_map(|d| text(d, &["/impairment_type"]))
                    .collect(),
                details,
                status: r
                    .get("disability_status")
                    .filter(|v| !v.is_null())
                    .map(DisabilityStatusKind::parse_lenient),
                level: text(&r, &["/disability_level"]),
                raw: r,
            }
        }))
    }

    /// Support needs by `sync/get-disability-support`. `None`: no record.
    pub async fn disability_support(
        &self,
        id: &IdRef,
    ) -> Result<Option<DisabilitySupport>, OpsError> {
        let body = self.call(WireEndpoint::DrDisabilitySupport, id).await?;
        let item = answered_item(&body, "search_response")?;
        // The spec types reg_records as an array of arrays of DisabilitySupport; some send
        // one object per person.
        Ok(item
            .records
            .into_iter()
            .next()
            .and_then(|r| DisabilitySupport::from_record(r.into_value())))
    }
}

/// The first item of a DR sync reply; a header-only `rcvd` / `pdng` reply is "received,
/// pending" (an error), never an empty answer.
fn answered_item(body: &Value, field: &str) -> Result<crate::ops::SearchItemResult, OpsError> {
    if let Some(pending) = pending_reply(body) {
        return Err(pending);
    }
    first_item(body, field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_values_parse_leniently() {
        assert_eq!(
            DisabilityStatusKind::parse_lenient(&json!("APPROVED")),
            DisabilityStatusKind::Approved
        );
        assert_eq!(
            DisabilityStatusKind::parse_lenient(&json!(2)),
            DisabilityStatusKind::Expired
        );
        assert_eq!(
            DisabilityStatusKind::parse_lenient(&json!("Revoked")),
            DisabilityStatusKind::Other("Revoked".into())
        );
    }
}
