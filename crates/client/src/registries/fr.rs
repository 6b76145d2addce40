//! Functional (farmer) registry: farmer search.

use dci_protocol::RegistryType;
use dci_protocol::build::SearchItem;
use serde::Serialize;
use serde_json::Value;

use super::{Core, IdRef, display_name, identifiers, text};
use crate::keys::RegistryKeys;
use crate::ops::{Operations, OpsError};

/// A farmer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Farmer {
    /// `member_identifier` of the personal details.
    pub member_identifier: Option<String>,
    /// Identifiers in the demographic info.
    pub identifiers: Vec<IdRef>,
    /// Display name.
    pub name: Option<String>,
    /// `farm_details.farm_type`.
    pub farm_type: Option<String>,
    /// `farm_details.land_area_hectares`, when sent.
    pub land_area_hectares: Option<f64>,
    /// `farm_details.place.name`.
    pub place: Option<String>,
    /// The record as received.
    pub raw: Value,
}

impl Farmer {
    /// Reads a record leniently; the spec's own spelling `famer_personal_details` is accepted.
    pub fn from_record(r: &Value) -> Farmer {
        let p = r
            .get("farmer_personal_details")
            .or_else(|| r.get("famer_personal_details"))
            .unwrap_or(&Value::Null);
        let demo = p.get("demographic_info").unwrap_or(&Value::Null);
        Farmer {
            member_identifier: text(p, &["/member_identifier"]),
            identifiers: identifiers(demo.get("identifier")),
            name: display_name(demo.get("name")),
            farm_type: text(r, &["/farm_details/farm_type"]),
            land_area_hectares: r
                .pointer("/farm_details/land_area_hectares")
                .and_then(Value::as_f64),
            place: text(r, &["/farm_details/place/name"]),
            raw: r.clone(),
        }
    }
}

/// The farmer registry client.
#[derive(Debug, Clone)]
pub struct FarmerClient {
    core: Core,
}

impl FarmerClient {
    /// A client for an FR data source; any other registry type is refused.
    pub fn new(ops: Operations) -> Result<FarmerClient, OpsError> {
        Ok(FarmerClient {
            core: Core::new(ops, RegistryType::Fr)?,
        })
    }

    /// Shares a registry-key (JWKS) cache.
    #[must_use]
    pub fn with_registry_keys(mut self, keys: RegistryKeys) -> FarmerClient {
        self.core = self.core.with_keys(keys);
        self
    }

    /// The farmer with this identifier; `None`: none.
    pub async fn farmer(&self, id: &IdRef) -> Result<Option<Farmer>, OpsError> {
        let item = self
            .core
            .search_one(
                SearchItem::new(id.query())
                    .record_type("Farmer")
                    .page(1, 10),
            )
            .await?;
        Ok(item.records.first().map(|r| Farmer::from_record(r)))
    }

    /// Every farmer matching this identifier, all pages.
    pub async fn farmers(&self, id: &IdRef) -> Result<Vec<Farmer>, OpsError> {
        let records = self
            .core
            .search_all(|page| SearchItem::new(id.query()).page(page, 50), 50)
            .await?;
        Ok(records.iter().map(Farmer::from_record).collect())
    }
}
