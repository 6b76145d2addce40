//! Social registry: groups (households) and members, with household composition. The
//! `response_entity` of the search selects whether groups or members come back.

use dci_protocol::RegistryType;
use dci_protocol::build::SearchItem;
use dci_protocol::codes::ResponseEntity;
use serde::Serialize;
use serde_json::Value;

use super::{Core, IdRef, display_name, identifiers, text};
use crate::keys::RegistryKeys;
use crate::ops::{Operations, OpsError};

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// `member_identifier`.
    pub member_identifier: Option<String>,
    /// Identifiers in `demographic_info.identifier`.
    pub identifiers: Vec<IdRef>,
    /// Display name.
    pub name: Option<String>,
    /// `sex`.
    pub sex: Option<String>,
    /// `birth_date`.
    pub birth_date: Option<String>,
    /// `relationship_to_head`, when sent.
    pub relationship: Option<String>,
    /// The record as received.
    pub raw: Value,
}

impl Member {
    /// Reads a member leniently.
    pub fn from_record(r: &Value) -> Member {
        let demo = r.get("demographic_info").unwrap_or(r);
        Member {
            member_identifier: text(r, &["/member_identifier"]),
            identifiers: identifiers(demo.get("identifier")),
            name: display_name(demo.get("name")),
            sex: text(demo, &["/sex"]),
            birth_date: text(demo, &["/birth_date"]),
            relationship: text(r, &["/relationship_to_head"]),
            raw: r.clone(),
        }
    }
}

/// A group (household) with its composition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// `group_identifier`.
    pub identifiers: Vec<IdRef>,
    /// `group_type`.
    pub group_type: Option<String>,
    /// `group_size` as sent (may differ from `members.len()`).
    pub size: Option<u64>,
    /// `poverty_score`.
    pub poverty_score: Option<f64>,
    /// `group_head_info`.
    pub head: Option<Member>,
    /// `member_list`.
    pub members: Vec<Member>,
    /// The record as received.
    pub raw: Value,
}

impl Group {
    /// Reads a group leniently.
    pub fn from_record(r: &Value) -> Group {
        Group {
            identifiers: identifiers(r.get("group_identifier")),
            group_type: text(r, &["/group_type"]),
            size: r.get("group_size").and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            }),
            poverty_score: r.get("poverty_score").and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            }),
            head: r
                .get("group_head_info")
                .filter(|h| h.is_object())
                .map(Member::from_record),
            members: r
                .get("member_list")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(Member::from_record)
                .collect(),
            raw: r.clone(),
        }
    }
}

/// The social registry client.
#[derive(Debug, Clone)]
pub struct SocialClient {
    core: Core,
}

impl SocialClient {
    /// A client for a social registry data source; any other registry type is refused.
    pub fn new(ops: Operations) -> Result<SocialClient, OpsError> {
        Ok(SocialClient {
            core: Core::new(ops, RegistryType::Social)?,
        })
    }

    /// Shares a registry-key (JWKS) cache.
    #[must_use]
    pub fn with_registry_keys(mut self, keys: RegistryKeys) -> SocialClient {
        self.core = self.core.with_keys(keys);
        self
    }

    /// Groups matching this identifier (a group id, or a member's id: their household),
    /// every page.
    pub async fn groups(&self, id: &IdRef) -> Result<Vec<Group>, OpsError> {
        let records = self
            .core
            .search_all(
                |page| {
                    SearchItem::new(id.query())
                        .response_entity(ResponseEntity::Group)
                        .page(page, 50)
                },
                50,
            )
            .await?;
        Ok(records.iter().map(Group::from_record).collect())
    }

    /// The group (household) for this identifier with its composition; `None`: none.
    pub async fn group(&self, id: &IdRef) -> Result<Option<Group>, OpsError> {
        Ok(self.groups(id).await?.into_iter().next())
    }

    /// The member with this identifier; `None`: none.
    pub async fn member(&self, id: &IdRef) -> Result<Option<Member>, OpsError> {
        let item = self
            .core
            .search_one(
                SearchItem::new(id.query())
                    .response_entity(ResponseEntity::Member)
                    .page(1, 10),
            )
            .await?;
        Ok(item.records.first().map(|r| Member::from_record(r)))
    }

    /// The members of the household this identifier belongs to (empty: no household).
    pub async fn household(&self, id: &IdRef) -> Result<Vec<Member>, OpsError> {
        Ok(self.group(id).await?.map(|g| g.members).unwrap_or_default())
    }
}
