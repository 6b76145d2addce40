//! Typed registry clients on top of the generic operations: [`CrvsClient`], [`DrClient`],
//! [`IbrClient`], [`SocialClient`] and [`FarmerClient`], plus the OpenCRVS compatibility
//! profile ([`Profile`]).
//!
//! Each client is built from [`Operations`] on a data source of its own registry type and
//! refuses any other type. Calls answer `Ok(None)` (or an empty list) when the registry said
//! "not found", and `Err` when the call failed or the registry refused it, so "not found" is
//! never confused with "failed". Every typed result keeps the raw record it was read from.
//!
//! Requests are built by `dci_protocol::build` (strict), signed with the source's signing key
//! when it names one, and the reply's signature is checked under the source's policy. A source
//! with the OpenCRVS profile sends OpenCRVS's envelope variant instead (see [`opencrvs`]).

pub mod crvs;
pub mod dr;
pub mod fr;
pub mod ibr;
pub mod opencrvs;
pub mod record;
pub mod social;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use dci_protocol::RegistryType;
use dci_protocol::build::{RequestBuilder, SearchItem};
use dci_protocol::envelope::Envelope;
use dci_protocol::message::Query;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

pub use crvs::{CrvsClient, CrvsEvent, DeathStatus, Person, VitalEvent, VitalEventKind};
pub use dr::{
    DisabilityDetails, DisabilityStatus, DisabilityStatusKind, DisabilitySupport, DrCacheSettings,
    DrClient,
};
pub use fr::{Farmer, FarmerClient};
pub use ibr::{
    Beneficiary, DedupeResult, Enrolment, EnrolmentStatus, IbrClient, Programme, PushOutcome,
};
pub use opencrvs::{OpenCrvsVersion, Profile};
pub use record::{
    DisabledPerson, IdentifierType, NotifiedEvent, RegistryRecord, identifier_types,
    marital_status_label,
};
pub use social::{Group, Member, SocialClient};

use crate::error::RegistryError;
use crate::keys::RegistryKeys;
pub(crate) use crate::ops::parse_item;
use crate::ops::{Operations, OpsStore};
use crate::ops::{OpsError, RawRecord, SearchItemResult};
use crate::source::DataSource;
use crate::transport::Endpoint;

/// An identifier as `TYPE:VALUE`, e.g. `UIN:1234567890` or `BRN:2019-0042` (the value may
/// contain `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IdRef {
    /// The identifier type, e.g. `UIN`.
    pub id_type: String,
    /// The identifier value.
    pub value: String,
}

impl IdRef {
    /// `id_type` / `value`.
    pub fn new(id_type: impl Into<String>, value: impl Into<String>) -> IdRef {
        IdRef {
            id_type: id_type.into(),
            value: value.into(),
        }
    }

    /// Parses `TYPE:VALUE`, naming the field `id` in the error.
    pub fn parse(s: &str) -> Result<IdRef, OpsError> {
        s.parse()
    }

    pub(crate) fn query(&self) -> Query {
        Query::id(self.id_type.clone(), self.value.clone())
    }

    /// `{"type": …, "value": …}` as the DR and IBR sync endpoints take it.
    pub(crate) fn query_map(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::from_iter([
            ("type".to_owned(), Value::String(self.id_type.clone())),
            ("value".to_owned(), Value::String(self.value.clone())),
        ])
    }
}

impl fmt::Display for IdRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id_type, self.value)
    }
}

impl FromStr for IdRef {
    type Err = OpsError;
    fn from_str(s: &str) -> Result<IdRef, OpsError> {
        match s.split_once(':') {
            Some((t, v)) if !t.trim().is_empty() && !v.trim().is_empty() => {
                Ok(IdRef::new(t.trim(), v.trim()))
            }
            _ => Err(OpsError::invalid(
                "id",
                format!("{s:?} is not TYPE:VALUE; write it like UIN:1234567890"),
            )),
        }
    }
}

/// The outcome of a lookup, for callers that map it to an exit code or an HTTP status:
/// found (exit 0) or the registry answered "not found" (exit 3). Failures are `Err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The registry found it.
    Found,
    /// The registry answered, and had nothing.
    NotFound,
}

pub(crate) use crate::ops::Reply;

/// What every typed client shares: the source's [`Operations`] — the one path (dialect, sign,
/// send, verify) every call takes — and the registry-type check.
#[derive(Clone)]
pub(crate) struct Core {
    ops: Operations,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("source", &self.ops.source().code)
            .field("registry", &self.ops.source().registry_type)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn new(ops: Operations, expected: RegistryType) -> Result<Core, OpsError> {
        let s = ops.source();
        if s.registry_type != expected {
            return Err(wrong_type(s, expected));
        }
        Ok(Core { ops })
    }

    pub(crate) fn with_keys(mut self, keys: RegistryKeys) -> Core {
        self.ops = self.ops.with_registry_keys(keys);
        self
    }

    pub(crate) fn source(&self) -> &DataSource {
        self.ops.source()
    }

    pub(crate) fn ops(&self) -> &Operations {
        &self.ops
    }

    pub(crate) fn store(&self) -> &Arc<dyn OpsStore> {
        self.ops.store()
    }

    pub(crate) fn profile(&self) -> Profile {
        self.source().profile
    }

    /// A request builder with our header fields filled in.
    pub(crate) fn builder(&self, now: OffsetDateTime) -> Result<RequestBuilder, OpsError> {
        self.ops.request_builder(now)
    }

    /// Signs (when the source names a key), sends and checks the reply's signature.
    pub(crate) async fn send<M: Serialize>(
        &self,
        env: Envelope<M>,
        endpoint: Endpoint,
        now: OffsetDateTime,
    ) -> Result<Reply, OpsError> {
        self.ops.send_envelope(env, endpoint, now).await
    }

    /// One sync search item (adapted to the source's dialect); the first answered item.
    pub(crate) async fn search_one(&self, item: SearchItem) -> Result<SearchItemResult, OpsError> {
        let now = OffsetDateTime::now_utc();
        let env = self.builder(now)?.sync_search([item])?;
        let envelope = self.ops.sign_search(env, now).await?;
        let reply = self
            .ops
            .exchange(envelope, Endpoint::SyncSearch, true)
            .await?;
        first_item(&reply.body, "search_response")
    }

    /// Every record of a search, following pagination to the last page.
    pub(crate) async fn search_all(
        &self,
        item: impl Fn(u32) -> SearchItem,
        page_size: u32,
    ) -> Result<Vec<Value>, OpsError> {
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let r = self.search_one(item(page)).await?;
            let n = r.records.len() as u64;
            out.extend(r.records.into_iter().map(RawRecord::into_value));
            let more = match r.pagination {
                Some(p) => p.has_more() && n > 0,
                None => n >= u64::from(page_size) && n > 0,
            };
            // A registry that never reports the end must not keep us here forever.
            if !more || page >= MAX_PAGES {
                return Ok(out);
            }
            page += 1;
        }
    }
}

/// Safety stop for registries that never report the end.
const MAX_PAGES: u32 = 10_000;

/// A registry-specific endpoint (DR, IBR) as the transport takes it.
pub(crate) fn extra_endpoint(e: dci_protocol::build::Endpoint, idempotent: bool) -> Endpoint {
    Endpoint::Other {
        path: e.path().to_owned(),
        action: e
            .path()
            .trim_start_matches("/registry/")
            .replace(['/', '-'], "_"),
        idempotent,
    }
}

pub(crate) fn wrong_type(s: &DataSource, expected: RegistryType) -> OpsError {
    OpsError::invalid(
        "registry_type",
        format!(
            "data source {:?} is a {} registry, not {}: pick a data source whose registry_type is {}",
            s.code,
            s.registry_type,
            expected,
            expected.as_str()
        ),
    )
}

/// The first item of `message.<field>`; an absent or empty list is an unreadable reply (the
/// transport already turned "every item rejected" into an error).
pub(crate) fn first_item(body: &Value, field: &str) -> Result<SearchItemResult, OpsError> {
    // A header-only `rcvd` / `pdng`: the registry has not answered yet — never "no item".
    if let Some(pending) = crate::ops::pending_reply(body) {
        return Err(pending);
    }
    let item = match body.pointer(&format!("/message/{field}")) {
        Some(Value::Array(a)) => a.first(),
        Some(o @ Value::Object(_)) => Some(o),
        _ => None,
    }
    .ok_or_else(|| unreadable(format!("the reply has no message.{field} item")))?;
    let r = parse_item(item);
    if r.status == "rjct" {
        return Err(OpsError::Rejected(r.reason.clone().unwrap_or(
            RegistryError {
                code: None,
                message: Some("the registry rejected the request without a reason".into()),
            },
        )));
    }
    Ok(r)
}

/// A reply we cannot read: an error, never an empty answer.
pub(crate) fn unreadable(what: impl Into<String>) -> OpsError {
    OpsError::Unreadable(what.into())
}

/// A string at any of `paths` (JSON pointers).
pub(crate) fn text(v: &Value, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| match v.pointer(p) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// A display name from the shapes registries use (`name` string, `{given_name, surname}`,
/// `{first_name, surname}`).
pub(crate) fn display_name(name: Option<&Value>) -> Option<String> {
    match name? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(m) => {
            let parts: Vec<&str> = [
                "prefix",
                "given_name",
                "first_name",
                "second_name",
                "surname",
            ]
            .iter()
            .filter_map(|k| m.get(*k).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        _ => None,
    }
}

/// The identifiers of a record, from `identifier`/`identifiers` lists or objects with
/// `identifier_type`/`identifier_value` (or `type`/`value`).
pub(crate) fn identifiers(v: Option<&Value>) -> Vec<IdRef> {
    let one = |i: &Value| -> Option<IdRef> {
        let t = text(i, &["/identifier_type", "/type"])?;
        let v = text(i, &["/identifier_value", "/value"])?;
        Some(IdRef::new(t, v))
    };
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(o @ Value::Object(_)) => one(o).into_iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_ref_parses_and_names_the_field() {
        let id = IdRef::parse("BRN:2019:42").unwrap();
        assert_eq!(id, IdRef::new("BRN", "2019:42"));
        let e = IdRef::parse("nope").unwrap_err();
        assert!(e.to_string().starts_with("id:"), "{e}");
    }

    #[test]
    fn object_reg_records_are_one_record_or_none() {
        let one = parse_item(&json!({"status": "succ", "data": {"reg_records": {"a": 1}}}));
        assert_eq!(one.records, vec![json!({"a": 1})]);
        let none = parse_item(&json!({"status": "succ", "data": {"reg_records": {}}}));
        assert!(none.records.is_empty());
    }

    #[test]
    fn a_reply_without_items_is_unreadable_not_empty() {
        let e = first_item(&json!({"message": {}}), "search_response").unwrap_err();
        assert!(e.to_string().contains("unreadable"), "{e}");
    }

    #[test]
    fn names_and_identifiers_from_common_shapes() {
        assert_eq!(
            display_name(Some(&json!({"given_name": "Ana", "surname": "Lopes"}))).as_deref(),
            Some("Ana Lopes")
        );
        let ids = identifiers(Some(
            &json!([{"identifier_type": "UIN", "identifier_value": "1"}, {"type": "BRN", "value": "2"}]),
        ));
        assert_eq!(ids, vec![IdRef::new("UIN", "1"), IdRef::new("BRN", "2")]);
    }
}
