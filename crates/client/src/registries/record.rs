//! One registry record read as its registry's typed view, whatever registry it came from, for
//! front ends that show search results and notifications (the console, the CLI): a CRVS
//! [`Person`], a social registry [`Group`] with its members, a [`Farmer`], a DR
//! [`DisabledPerson`], an IBR [`Beneficiary`] with its enrolments. Codes registries send are
//! decoded here ([`marital_status_label`], [`DisabilityStatusKind::label`],
//! [`EnrolmentStatus::label`]) so every front end shows the same words.
//!
//! Also: the identifier types each registry is searched by ([`identifier_types`]) and the
//! events of a `notify` callback ([`NotifiedEvent`]).

use dci_protocol::RegistryType;
use serde::Serialize;
use serde_json::Value;

use super::crvs::Person;
use super::dr::{DisabilityStatus, DisabilityStatusKind, DisabilitySupport};
use super::fr::Farmer;
use super::ibr::{Beneficiary, EnrolmentStatus};
use super::social::Group;
use super::{display_name, identifiers, text};

/// A record read as its registry's typed view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegistryRecord {
    /// CRVS: a person.
    Person(Person),
    /// Social registry: a group (household) with its members.
    Group(Group),
    /// Farmer registry: a farmer.
    Farmer(Farmer),
    /// Disability registry: a person with their disability status (boxed: the largest view).
    DisabledPerson(Box<DisabledPerson>),
    /// IBR: a beneficiary with their enrolments.
    Beneficiary(Beneficiary),
}

impl RegistryRecord {
    /// Reads a record of `registry` leniently (every view keeps the raw record).
    pub fn read(registry: RegistryType, raw: &Value) -> RegistryRecord {
        match registry {
            RegistryType::Crvs => RegistryRecord::Person(Person::from_record(raw)),
            RegistryType::Social => RegistryRecord::Group(Group::from_record(raw)),
            RegistryType::Fr => RegistryRecord::Farmer(Farmer::from_record(raw)),
            RegistryType::Dr => {
                RegistryRecord::DisabledPerson(Box::new(DisabledPerson::from_record(raw)))
            }
            RegistryType::Ibr => RegistryRecord::Beneficiary(Beneficiary::from_record(raw)),
        }
    }

    /// The record as received.
    pub fn raw(&self) -> &Value {
        match self {
            RegistryRecord::Person(p) => &p.raw,
            RegistryRecord::Group(g) => &g.raw,
            RegistryRecord::Farmer(f) => &f.raw,
            RegistryRecord::DisabledPerson(d) => &d.status.raw,
            RegistryRecord::Beneficiary(b) => &b.raw,
        }
    }
}

/// A disability registry record: who, and their status, impairments and support needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisabledPerson {
    /// `personal_details.identifier`.
    pub identifiers: Vec<super::IdRef>,
    /// Display name.
    pub name: Option<String>,
    /// `gender` / `sex`.
    pub sex: Option<String>,
    /// `date_of_birth` / `birth_date`.
    pub birth_date: Option<String>,
    /// The status (its `raw` is the whole record).
    pub status: DisabilityStatus,
    /// `disability_details[].impairment_type`.
    pub impairment_types: Vec<String>,
    /// `disability_support`, when sent.
    pub support: Option<DisabilitySupport>,
}

impl DisabledPerson {
    /// Reads a DR record leniently.
    pub fn from_record(raw: &Value) -> DisabledPerson {
        let p = raw.get("personal_details").unwrap_or(raw);
        let details: Vec<&Value> = match raw.get("disability_details") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(o @ Value::Object(_)) => vec![o],
            _ => Vec::new(),
        };
        DisabledPerson {
            identifiers: identifiers(p.get("identifier").or_else(|| p.get("identifiers"))),
            name: display_name(p.get("name")),
            sex: text(p, &["/gender", "/sex"]),
            birth_date: text(p, &["/date_of_birth", "/birth_date"]),
            status: DisabilityStatus::from_record(raw.clone()),
            impairment_types: details
                .iter()
                .filter_map(|d| text(d, &["/impairment_type"]))
                .collect(),
            support: raw
                .get("disability_support")
                .cloned()
                .and_then(DisabilitySupport::from_record),
        }
    }
}

/// The words for a `marital_status` code (HL7 v3 MaritalStatus letters, as CRVS registries
/// send them: `S`, `M`, `D`, `W`, …); a word already spelt out is kept as sent.
pub fn marital_status_label(code: &str) -> String {
    let label = match code.trim().to_ascii_uppercase().as_str() {
        "S" => "Single (never married)",
        "M" => "Married",
        "D" => "Divorced",
        "W" => "Widowed",
        "L" => "Legally separated",
        "A" => "Annulled",
        "I" => "Interlocutory",
        "P" => "Polygamous",
        "T" => "Domestic partner",
        "U" => "Unmarried",
        _ => return code.to_owned(),
    };
    label.to_owned()
}

impl DisabilityStatusKind {
    /// How to show it.
    pub fn label(&self) -> &str {
        match self {
            DisabilityStatusKind::Approved => "Approved",
            DisabilityStatusKind::Pending => "Assessment pending",
            DisabilityStatusKind::Expired => "Expired",
            DisabilityStatusKind::Other(s) => s,
        }
    }
}

impl EnrolmentStatus {
    /// How to show it.
    pub fn label(&self) -> &str {
        match self {
            EnrolmentStatus::Active => "Active",
            EnrolmentStatus::Deceased => "Deceased",
            EnrolmentStatus::Graduated => "Graduated",
            EnrolmentStatus::Suspended => "Suspended",
            EnrolmentStatus::Other(s) => s,
        }
    }
}

/// One identifier type a registry is searched by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdentifierType {
    /// As sent in `identifier_type`, e.g. `UIN`.
    pub code: &'static str,
    /// What it is.
    pub label: &'static str,
}

const fn id_type(code: &'static str, label: &'static str) -> IdentifierType {
    IdentifierType { code, label }
}

const UIN: IdentifierType = id_type("UIN", "Unique identification number");

/// The identifier types a registry of this type is searched by, the usual one first.
pub fn identifier_types(registry: RegistryType) -> &'static [IdentifierType] {
    const CRVS: &[IdentifierType] = &[
        UIN,
        id_type("BRN", "Birth registration number"),
        id_type("DRN", "Death registration number"),
        id_type("MRN", "Marriage registration number"),
    ];
    const DR: &[IdentifierType] = &[UIN, id_type("DR_ID", "Disability registry id")];
    const IBR: &[IdentifierType] = &[UIN, id_type("NID", "National id")];
    const SOCIAL: &[IdentifierType] = &[UIN, id_type("HOUSEHOLD_ID", "Household id")];
    const FR: &[IdentifierType] = &[UIN, id_type("FARMER_ID", "Farmer id")];
    match registry {
        RegistryType::Crvs => CRVS,
        RegistryType::Dr => DR,
        RegistryType::Ibr => IBR,
        RegistryType::Social => SOCIAL,
        RegistryType::Fr => FR,
    }
}

/// One event of a `notify` callback, its records read as the registry's typed view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifiedEvent {
    /// `subscription_code`.
    pub subscription_code: Option<String>,
    /// `data.reg_event_type`.
    pub event_type: Option<String>,
    /// `data.reg_record_type`.
    pub record_type: Option<String>,
    /// `data.reg_records`.
    pub records: Vec<RegistryRecord>,
}

impl NotifiedEvent {
    /// The events of a `notify` envelope (or its `message`), read leniently.
    pub fn from_notification(registry: RegistryType, body: &Value) -> Vec<NotifiedEvent> {
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
                let records = match data.get("reg_records") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|r| RegistryRecord::read(registry, r))
                        .collect(),
                    Some(o @ Value::Object(m)) if !m.is_empty() => {
                        vec![RegistryRecord::read(registry, o)]
                    }
                    _ => Vec::new(),
                };
                NotifiedEvent {
                    subscription_code: text(i, &["/subscription_code"]),
                    event_type: text(data, &["/reg_event_type"]),
                    record_type: text(data, &["/reg_record_type"]),
                    records,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marital_status_codes_are_decoded_and_words_kept() {
        assert_eq!(marital_status_label("D"), "Divorced");
        assert_eq!(marital_status_label("m"), "Married");
        assert_eq!(marital_status_label("married"), "married");
    }

    #[test]
    fn each_registry_reads_its_own_view() {
        let dr = json!({
            "personal_details": {"identifier": [{"identifier_type": "UIN", "identifier_value": "7"}],
                "name": {"given_name": "Ana", "surname": "Lopes"}, "gender": "female"},
            "disability_status": "Approved", "disability_level": "moderate",
            "disability_details": [{"impairment_type": "visual"}],
            "disability_support": {"assistive_technology": ["white cane"]},
        });
        let RegistryRecord::DisabledPerson(d) = RegistryRecord::read(RegistryType::Dr, &dr) else {
            panic!("a DR record is a disabled person");
        };
        assert_eq!(d.name.as_deref(), Some("Ana Lopes"));
        assert_eq!(d.identifiers[0].value, "7");
        assert!(d.status.disabled);
        assert_eq!(
            d.status.status.as_ref().map(DisabilityStatusKind::label),
            Some("Approved")
        );
        assert_eq!(d.impairment_types, ["visual"]);
        assert_eq!(
            d.support.map(|s| s.assistive_technology),
            Some(vec!["white cane".to_owned()])
        );
        let g = json!({"group_identifier": [{"identifier_type": "HOUSEHOLD_ID", "identifier_value": "H1"}],
            "member_list": [{"member_identifier": "1"}, {"member_identifier": "2"}]});
        let RegistryRecord::Group(g) = RegistryRecord::read(RegistryType::Social, &g) else {
            panic!("a social record is a group");
        };
        assert_eq!(g.members.len(), 2);
        assert_eq!(identifier_types(RegistryType::Crvs)[0].code, "UIN");
    }

    #[test]
    fn notifications_carry_typed_records() {
        let body = json!({"message": {"notify_event": [{"subscription_code": "S1",
            "data": {"reg_event_type": "Death", "reg_records": [{"name": "Ana", "marital_status": "W"}]}}]}});
        let ev = NotifiedEvent::from_notification(RegistryType::Crvs, &body);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type.as_deref(), Some("Death"));
        let RegistryRecord::Person(p) = &ev[0].records[0] else {
            panic!("a CRVS record is a person");
        };
        assert_eq!(p.name.as_deref(), Some("Ana"));
    }
}
