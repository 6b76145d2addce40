//! IBR (integrated beneficiary registry): programme enrolments of a person (`sync/enrolled`),
//! beneficiary search, pushing enrolment updates (`sync/enrollment/updates`), and the
//! duplication check across programmes.
//!
//! The duplication check FAILS CLOSED: a registry error, a refusal, or a reply we cannot read
//! is an error, never "no duplicate" (the reference swallowed these and enrolled duplicates).

use dci_protocol::RegistryType;
use dci_protocol::build::{Endpoint as WireEndpoint, SearchItem};
use dci_protocol::codes::{QueryType, ResponseEntity};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::{Core, IdRef, extra_endpoint, first_item, identifiers, text, unreadable};
use crate::error::RegistryError;
use crate::keys::RegistryKeys;
use crate::ops::{Operations, OpsError};

/// The spec's `EnrollmentStatusEnum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolmentStatus {
    /// Active.
    Active,
    /// Deceased.
    Deceased,
    /// Graduated.
    Graduated,
    /// Suspended.
    Suspended,
    /// Anything else, as sent.
    Other(String),
}

impl EnrolmentStatus {
    fn parse_lenient(s: &str) -> EnrolmentStatus {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" | "1" => EnrolmentStatus::Active,
            "deceased" | "2" => EnrolmentStatus::Deceased,
            "graduated" | "3" => EnrolmentStatus::Graduated,
            "suspended" | "4" => EnrolmentStatus::Suspended,
            _ => EnrolmentStatus::Other(s.to_owned()),
        }
    }
}

/// One programme enrolment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Programme {
    /// `programme.programme_identifier`.
    pub id: Option<String>,
    /// `programme.programme_name`.
    pub name: Option<String>,
    /// `enrolment_status`.
    pub status: Option<EnrolmentStatus>,
    /// `enrolment_date`.
    pub enrolment_date: Option<String>,
    /// The entry as received.
    pub raw: Value,
}

impl Programme {
    fn from_entry(e: &Value) -> Programme {
        Programme {
            id: text(
                e,
                &["/programme/programme_identifier", "/programme_identifier"],
            ),
            name: text(e, &["/programme/programme_name", "/programme_name"]),
            status: text(e, &["/enrolment_status", "/enrollment_status"])
                .map(|s| EnrolmentStatus::parse_lenient(&s)),
            enrolment_date: text(e, &["/enrolment_date", "/enrollment_date"]),
            raw: e.clone(),
        }
    }

    /// The programme's identifier, else its name.
    pub fn key(&self) -> Option<&str> {
        self.id.as_deref().or(self.name.as_deref())
    }
}

/// A person's enrolments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Enrolment {
    /// `enrolled_status` = `yes`.
    pub enrolled: bool,
    /// The programmes, when the registry listed them.
    pub programmes: Vec<Programme>,
    /// The response item as received.
    pub raw: Value,
}

/// A beneficiary record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Beneficiary {
    /// `member.member_identifier`.
    pub member_identifier: Option<String>,
    /// `assistance_unit`.
    pub assistance_unit: Option<String>,
    /// The programmes.
    pub programmes: Vec<Programme>,
    /// The record as received.
    pub raw: Value,
}

impl Beneficiary {
    /// Reads a record leniently.
    pub fn from_record(r: &Value) -> Beneficiary {
        Beneficiary {
            member_identifier: text(r, &["/member/member_identifier"]),
            assistance_unit: text(r, &["/assistance_unit"]),
            programmes: entries(r).iter().map(Programme::from_entry).collect(),
            raw: r.clone(),
        }
    }
}

fn entries(r: &Value) -> Vec<Value> {
    for key in ["enrolments", "programme_identifier", "enrollments"] {
        match r.get(key) {
            Some(Value::Array(a)) if !a.is_empty() => return a.clone(),
            Some(o @ Value::Object(_)) => return vec![o.clone()],
            _ => {}
        }
    }
    Vec::new()
}

/// The duplication check's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DedupeResult {
    /// Whether any identifier is enrolled in any programme.
    pub duplicate: bool,
    /// Programme keys found, sorted, without repeats.
    pub programmes: Vec<String>,
    /// Per identifier: its enrolments.
    pub checked: Vec<(IdRef, Enrolment)>,
}

/// One pushed beneficiary's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushItem {
    /// Reference id.
    pub reference_id: String,
    /// `succ` or `rjct`.
    pub status: String,
    /// The registry's reason, if any.
    pub reason: Option<RegistryError>,
}

/// The answer to an enrolment push.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushOutcome {
    /// Per beneficiary.
    pub items: Vec<PushItem>,
    /// Whether every beneficiary was accepted.
    pub all_accepted: bool,
    /// The reply as received.
    pub raw: Value,
}

/// The IBR client.
#[derive(Debug, Clone)]
pub struct IbrClient {
    core: Core,
}

impl IbrClient {
    /// A client for an IBR data source; any other registry type is refused.
    pub fn new(ops: Operations) -> Result<IbrClient, OpsError> {
        Ok(IbrClient {
            core: Core::new(ops, RegistryType::Ibr)?,
        })
    }

    /// Shares a registry-key (JWKS) cache.
    #[must_use]
    pub fn with_registry_keys(mut self, keys: RegistryKeys) -> IbrClient {
        self.core = self.core.with_keys(keys);
        self
    }

    /// Enrolments by `sync/enrolled`, read strictly: a missing or odd `enrolled_status`, or
    /// "no" with programmes listed, is an error.
    async fn enrolment(&self, id: &IdRef) -> Result<Enrolment, OpsError> {
        let now = OffsetDateTime::now_utc();
        let env = self.core.builder(now)?.ibr_enrolled(
            QueryType::IdTypeValue,
            id.query_map(),
            Some(ResponseEntity::Member),
        )?;
        let reply = self
            .core
            .send(env, extra_endpoint(WireEndpoint::IbrEnrolled, true), now)
            .await?;
        let item = first_item(&reply.body, "enrolled_response")?;
        let raw = item.raw;
        let enrolled = match raw.get("enrolled_status").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("yes") => true,
            Some(s) if s.eq_ignore_ascii_case("no") => false,
            other => {
                return Err(unreadable(format!(
                    "enrolled_status is {other:?}, expected \"yes\" or \"no\""
                )));
            }
        };
        let programmes: Vec<Programme> = entries(&raw).iter().map(Programme::from_entry).collect();
        if !enrolled && !programmes.is_empty() {
            return Err(unreadable(
                "enrolled_status is \"no\" but programmes are listed",
            ));
        }
        Ok(Enrolment {
            enrolled,
            programmes,
            raw,
        })
    }

    /// The programmes this person is enrolled in; `None` when not enrolled anywhere.
    pub async fn enrolled(&self, id: &IdRef) -> Result<Option<Enrolment>, OpsError> {
        let e = self.enrolment(id).await?;
        Ok(e.enrolled.then_some(e))
    }

    /// Beneficiary records for this identifier (empty: none).
    pub async fn beneficiaries(&self, id: &IdRef) -> Result<Vec<Beneficiary>, OpsError> {
        let records = self
            .core
            .search_all(|page| SearchItem::new(id.query()).page(page, 50), 50)
            .await?;
        Ok(records.iter().map(Beneficiary::from_record).collect())
    }

    /// Whether any of these identifiers of one person is already enrolled in a programme.
    /// Fails closed: every identifier must be answered readably, or the whole check is an
    /// error.
    pub async fn dedupe(&self, ids: &[IdRef]) -> Result<DedupeResult, OpsError> {
        if ids.is_empty() {
            return Err(OpsError::invalid(
                "id",
                "give at least one identifier (TYPE:VALUE) to check",
            ));
        }
        let mut checked = Vec::new();
        let mut programmes = Vec::new();
        for id in ids {
            let e = self.enrolment(id).await?;
            for p in &e.programmes {
                if let Some(k) = p.key() {
                    programmes.push(k.to_owned());
                }
            }
            checked.push((id.clone(), e));
        }
        programmes.sort();
        programmes.dedup();
        Ok(DedupeResult {
            duplicate: checked.iter().any(|(_, e)| e.enrolled),
            programmes,
            checked,
        })
    }

    /// Pushes enrolment updates (beneficiary records) by `sync/enrollment/updates`. Not
    /// resent automatically: a push is not idempotent everywhere.
    pub async fn push_enrolments(
        &self,
        beneficiaries: Vec<Value>,
    ) -> Result<PushOutcome, OpsError> {
        let now = OffsetDateTime::now_utc();
        let env = self
            .core
            .builder(now)?
            .ibr_enrollment_updates(beneficiaries)?;
        let reply = self
            .core
            .send(
                env,
                extra_endpoint(WireEndpoint::IbrEnrollmentUpdates, false),
                now,
            )
            .await?;
        let items: Vec<PushItem> = match reply.body.pointer("/message/enrolled_response") {
            Some(Value::Array(a)) => a.iter().map(super::parse_item).collect(),
            Some(o @ Value::Object(_)) => vec![super::parse_item(o)],
            _ => return Err(unreadable("the reply has no message.enrolled_response")),
        }
        .into_iter()
        .map(|i| PushItem {
            reference_id: i.reference_id,
            status: i.status,
            reason: i.reason,
        })
        .collect();
        Ok(PushOutcome {
            all_accepted: !items.is_empty() && items.iter().all(|i| i.status == "succ"),
            items,
            raw: reply.body,
        })
    }
}

/// Identifiers a beneficiary record carries (for callers that dedupe by all of them).
pub fn beneficiary_ids(r: &Value) -> Vec<IdRef> {
    let mut ids = identifiers(r.pointer("/member/demographic_info/person"));
    ids.extend(identifiers(
        r.pointer("/member/demographic_info/identifier"),
    ));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn programmes_from_spec_and_sandbox_shapes() {
        let r = json!({"member": {"member_identifier": "1"}, "programme_identifier": {
            "programme": {"programme_identifier": "P1", "programme_name": "Grant"},
            "enrolment_status": "Active"}});
        let b = Beneficiary::from_record(&r);
        assert_eq!(b.programmes.len(), 1);
        assert_eq!(b.programmes[0].key(), Some("P1"));
        assert_eq!(b.programmes[0].status, Some(EnrolmentStatus::Active));
    }
}
