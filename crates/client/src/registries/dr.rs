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

use super::{Core, IdRef, extra_endpoint, first_item, text, unreadable};
use crate::keys::RegistryKeys;
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

/// Support needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisabilitySupport {
    /// `human_assistance`.
    pub human_assistance: Option<bool>,
    /// `assistive_technology`.
    pub assistive_technology: Vec<String>,
    /// `housing_support`.
    pub housing_support: Vec<String>,
    /// `medical_care`.
    pub medical_care: Vec<String>,
    /// `animal_assistance`.
    pub animal_assistance: Vec<String>,
    /// The record as received.
    pub raw: Value,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
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
        let item = first_item(&body, "disabled_response")?;
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
        Ok(item.records.into_iter().next().map(|r| {
            let status = r
                .get("disability_status")
                .filter(|v| !v.is_null())
                .map(DisabilityStatusKind::parse_lenient);
            DisabilityStatus {
                disabled: status == Some(DisabilityStatusKind::Approved),
                status,
                level: text(&r, &["/disability_level"]),
                cached: false,
                raw: r,
            }
        }))
    }

    /// Impairments by `sync/get-disability-details`. `None`: no record.
    pub async fn details(&self, id: &IdRef) -> Result<Option<DisabilityDetails>, OpsError> {
        let body = self.call(WireEndpoint::DrDisabilityDetails, id).await?;
        let item = first_item(&body, "search_response")?;
        Ok(item.records.into_iter().next().map(|r| {
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
        let item = first_item(&body, "search_response")?;
        // The spec types reg_records as an array of arrays of DisabilitySupport.
        let first = item.records.into_iter().next().and_then(|r| match r {
            Value::Array(a) => a.into_iter().next(),
            o @ Value::Object(_) => Some(o),
            _ => None,
        });
        Ok(first.map(|r| DisabilitySupport {
            human_assistance: r.get("human_assistance").and_then(Value::as_bool),
            assistive_technology: strings(r.get("assistive_technology")),
            housing_support: strings(r.get("housing_support")),
            medical_care: strings(r.get("medical_care")),
            animal_assistance: strings(r.get("animal_assistance")),
            raw: r,
        }))
    }
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
