//! Typed protocol vocabularies. Every enum has an `Other(String)` fallback, because real
//! registries send codes the specs do not list (`err.request.invalid`, `err.server`, …), and
//! one canonical wire form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a string-backed enum with known values, aliases accepted on input, and `Other`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every known value, in declaration order.
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The canonical wire form.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(s) => s.as_str(),
                }
            }

            /// Whether this is one of the known values.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }

            /// Parses a wire value; unknown values become `Other`. Never fails.
            pub fn parse_lenient(s: &str) -> Self {
                $(
                    // Case is not significant on input (`SUCC`, `Ack`); output is canonical.
                    if s.eq_ignore_ascii_case($wire) $(|| s.eq_ignore_ascii_case($alias))* {
                        return $name::$variant;
                    }
                )+
                Self::parse_extra(s).unwrap_or_else(|| $name::Other(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, std::convert::Infallible> {
                Ok(Self::parse_lenient(s))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::parse_lenient(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::parse_lenient(&s))
            }
        }
    };
}

/// Default hook for enums without extra parsing rules.
trait NoExtra {
    fn parse_extra(_s: &str) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

wire_enum! {
    /// `header.action`.
    Action {
        /// `search` (also every sync search-type request).
        Search => "search",
        /// `on-search` (callback, and the header of sync search replies).
        OnSearch => "on-search",
        /// `subscribe`.
        Subscribe => "subscribe",
        /// `on-subscribe`.
        OnSubscribe => "on-subscribe",
        /// `unsubscribe`.
        Unsubscribe => "unsubscribe",
        /// `on-unsubscribe`.
        OnUnsubscribe => "on-unsubscribe",
        /// `notify` (registry events; IBR enrollment updates).
        Notify => "notify",
        /// `txn-status` (note the hyphen; the path is `txn/status`).
        TxnStatus => "txn-status" | "txn_status",
        /// `txn-on-status`.
        TxnOnStatus => "txn-on-status" | "txn_on_status",
    }
}
impl NoExtra for Action {}

wire_enum! {
    /// `message.ack_status` of the synchronous reply.
    AckStatus {
        /// Accepted; a callback will follow.
        Ack => "ACK" | "ack",
        /// Valid but nothing further will come.
        Nack => "NACK" | "nack",
        /// Invalid; see `error`.
        Err => "ERR" | "err",
    }
}
impl NoExtra for AckStatus {}

wire_enum! {
    /// `RequestStatus`: header `status`, per-item `status`, unsubscribe `status`.
    RequestStatus {
        /// Received.
        Rcvd => "rcvd",
        /// Pending.
        Pdng => "pdng",
        /// Succeeded.
        Succ => "succ",
        /// Rejected.
        Rjct => "rjct",
    }
}
impl NoExtra for RequestStatus {}

wire_enum! {
    /// `Error.code` in ACK/ERR replies.
    ErrorCode {
        /// `err.request.bad`
        RequestBad => "err.request.bad",
        /// `err.request.unauthorized`
        RequestUnauthorized => "err.request.unauthorized",
        /// `err.request.forbidden`
        RequestForbidden => "err.request.forbidden",
        /// `err.request.not_found`
        RequestNotFound => "err.request.not_found",
        /// `err.request.timeout`
        RequestTimeout => "err.request.timeout",
        /// `err.version.not_supported`
        VersionNotSupported => "err.version.not_supported",
        /// `err.request.too_many_requests`
        TooManyRequests => "err.request.too_many_requests",
        /// `err.sender_id.invalid`
        SenderIdInvalid => "err.sender_id.invalid",
        /// `err.sender_uri.invalid`
        SenderUriInvalid => "err.sender_uri.invalid",
        /// `err.receiver_id.invalid`
        ReceiverIdInvalid => "err.receiver_id.invalid",
        /// `err.signature.missing`
        SignatureMissing => "err.signature.missing",
        /// `err.signature.invalid`
        SignatureInvalid => "err.signature.invalid",
        /// `err.encryption.invalid`
        EncryptionInvalid => "err.encryption.invalid",
        /// `err.service.unavailable`
        ServiceUnavailable => "err.service.unavailable",
    }
}
impl NoExtra for ErrorCode {}

wire_enum! {
    /// Every `status_reason_code` of the specs (header, search, subscribe, unsubscribe).
    StatusReasonCode {
        /// `rjct.version.invalid`
        VersionInvalid => "rjct.version.invalid",
        /// `rjct.message_id.duplicate`
        MessageIdDuplicate => "rjct.message_id.duplicate",
        /// `rjct.message_ts.invalid`
        MessageTsInvalid => "rjct.message_ts.invalid",
        /// `rjct.action.invalid`
        ActionInvalid => "rjct.action.invalid",
        /// `rjct.action.not_supported`
        ActionNotSupported => "rjct.action.not_supported",
        /// `rjct.total_count.invalid`
        TotalCountInvalid => "rjct.total_count.invalid",
        /// `rjct.total_count.limit_exceeded`
        TotalCountLimitExceeded => "rjct.total_count.limit_exceeded",
        /// `rjct.errors.too_many`
        ErrorsTooMany => "rjct.errors.too_many",
        /// `rjct.reference_id.invalid`
        ReferenceIdInvalid => "rjct.reference_id.invalid",
        /// `rjct.reference_id.duplicate`
        ReferenceIdDuplicate => "rjct.reference_id.duplicate",
        /// `rjct.timestamp.invalid`
        TimestampInvalid => "rjct.timestamp.invalid",
        /// `rjct.search_criteria.invalid`
        SearchCriteriaInvalid => "rjct.search_criteria.invalid",
        /// `rjct.filter.invalid`
        FilterInvalid => "rjct.filter.invalid",
        /// `rjct.sort.invalid`
        SortInvalid => "rjct.sort.invalid",
        /// `rjct.pagination.invalid`
        PaginationInvalid => "rjct.pagination.invalid",
        /// `rjct.search.too_many_records_found`
        TooManyRecordsFound => "rjct.search.too_many_records_found",
        /// `rjct.notify_types.invalid`
        NotifyTypesInvalid => "rjct.notify_types.invalid",
        /// `rjct.notify_details.invalid`
        NotifyDetailsInvalid => "rjct.notify_details.invalid",
        /// `rjct.person_id.invalid`
        PersonIdInvalid => "rjct.person_id.invalid",
        /// `rjct.event.already_subscribed`
        AlreadySubscribed => "rjct.event.already_subscribed",
        /// `rjct.subscription_code.invalid`
        SubscriptionCodeInvalid => "rjct.subscription_code.invalid",
        /// `rjct.requester.invalid`
        RequesterInvalid => "rjct.requester.invalid",
        /// `rjct.event.already_unsubscribed`
        AlreadyUnsubscribed => "rjct.event.already_unsubscribed",
    }
}
impl NoExtra for StatusReasonCode {}

wire_enum! {
    /// `query_type` / `filter_type`. Queries are decoded by this tag, never by shape.
    QueryType {
        /// `{type: <identifier type>, value: …}`
        IdTypeValue => "idtype-value" | "idtype_value",
        /// `{type: …, value: {…}}`, syntax implementation-defined.
        Expression => "expression",
        /// Array of predicate clauses.
        Predicate => "predicate",
        /// `{type: …, value: {expression: "<graphql>"}}` (not in social and IBR).
        Graphql => "graphql",
    }
}
impl NoExtra for QueryType {}

wire_enum! {
    /// `sort_order`.
    SortOrder {
        /// Ascending.
        Asc => "asc",
        /// Descending.
        Desc => "desc",
    }
}
impl NoExtra for SortOrder {}

wire_enum! {
    /// `response_entity` (social search, IBR enrolled).
    ResponseEntity {
        /// Households / groups.
        Group => "Group",
        /// Individuals.
        Member => "Member",
    }
}
impl NoExtra for ResponseEntity {}

wire_enum! {
    /// Predicate `operator`. There is no `gte`/`lte` in the spec.
    Operator {
        /// Greater than.
        Gt => "gt",
        /// Less than.
        Lt => "lt",
        /// Equal.
        Eq => "eq",
        /// Greater or equal.
        Ge => "ge",
        /// Less or equal.
        Le => "le",
        /// Member of.
        In => "in",
    }
}
impl NoExtra for Operator {}

wire_enum! {
    /// Predicate `condition`.
    Condition {
        /// Both.
        And => "and",
        /// Either.
        Or => "or",
        /// Negation.
        Not => "not",
    }
}
impl NoExtra for Condition {}

wire_enum! {
    /// `SubscriptionStatus`.
    SubscriptionStatus {
        /// Active subscription.
        Subscribe => "subscribe",
        /// Cancelled subscription.
        Unsubscribe => "unsubscribe",
    }
}
impl NoExtra for SubscriptionStatus {}

wire_enum! {
    /// `txnstatus_request.txn_type` / `txnstatus_response.txn_type`.
    TxnType {
        /// A search transaction.
        Search => "search",
        /// A subscribe transaction.
        Subscribe => "subscribe" | "subscibe",
        /// An unsubscribe transaction (CRVS, FR).
        Unsubscribe => "unsubscribe",
        /// A receipt (social, IBR).
        Receipt => "receipt",
    }
}
impl NoExtra for TxnType {}

wire_enum! {
    /// `txnstatus_request.attribute_type`: what `attribute_value` holds.
    AttributeType {
        /// One transaction id.
        TransactionId => "transaction_id",
        /// A list of reference ids.
        ReferenceIdList => "reference_id_list",
        /// One correlation id.
        CorrelationId => "correlation_id",
        /// A list of subscription codes (CRVS, FR).
        SubscriptionCodeList => "subscription_code_list",
    }
}
impl NoExtra for AttributeType {}

wire_enum! {
    /// `yes`/`no` of DR `disabled_status` and IBR `enrolled_status`.
    YesNo {
        /// Yes.
        Yes => "yes",
        /// No.
        No => "no",
    }
}
impl NoExtra for YesNo {}

wire_enum! {
    /// `reg_type`. Canonical wire form `ns:org:RegistryType:<Name>`; input also accepts the bare
    /// name, `CRVS`, and lowercase forms.
    RegType {
        /// `ns:org:RegistryType:Social`
        Social => "ns:org:RegistryType:Social",
        /// `ns:org:RegistryType:Civil` (CRVS)
        Civil => "ns:org:RegistryType:Civil",
        /// `ns:org:RegistryType:DR`
        Dr => "ns:org:RegistryType:DR",
        /// `ns:org:RegistryType:FR`
        Fr => "ns:org:RegistryType:FR",
        /// `ns:org:RegistryType:IBR`
        Ibr => "ns:org:RegistryType:IBR",
    }
}

impl RegType {
    fn parse_extra(s: &str) -> Option<Self> {
        let short = s.rsplit(':').next().unwrap_or(s).to_ascii_lowercase();
        match short.as_str() {
            "social" | "social_registry" | "sr" => Some(RegType::Social),
            "civil" | "crvs" => Some(RegType::Civil),
            "dr" | "disability" => Some(RegType::Dr),
            "fr" | "farmer" => Some(RegType::Fr),
            "ibr" => Some(RegType::Ibr),
            _ => None,
        }
    }
}

impl From<crate::RegistryType> for RegType {
    fn from(r: crate::RegistryType) -> Self {
        match r {
            crate::RegistryType::Social => RegType::Social,
            crate::RegistryType::Crvs => RegType::Civil,
            crate::RegistryType::Dr => RegType::Dr,
            crate::RegistryType::Fr => RegType::Fr,
            crate::RegistryType::Ibr => RegType::Ibr,
        }
    }
}

wire_enum! {
    /// Identifier types (`query.type` of `idtype-value`). Real deployments use many more
    /// (`NationalID`, `NID`, `BIRTH_REG_NO`…), which stay `Other` verbatim.
    IdentifierType {
        /// Unique identification number.
        Uin => "UIN",
        /// Birth registration number.
        Brn => "BRN",
        /// Marriage registration number.
        Mrn => "MRN",
        /// Death registration number.
        Drn => "DRN",
    }
}
impl NoExtra for IdentifierType {}

wire_enum! {
    /// Record types (`reg_record_type`, `notify_record_type`). The specs only give examples, in
    /// several spellings (`Person`, `spdci-extensions-dci:Person`); the bare name is canonical
    /// here and a prefixed value is kept verbatim as `Other`.
    RecordType {
        /// A person.
        Person => "Person",
        /// A member of a group.
        Member => "Member",
        /// A group / household.
        Group => "Group",
        /// A disabled person (DR).
        DisabledPerson => "DisabledPerson",
        /// A farmer (FR).
        Farmer => "Farmer",
    }
}
impl NoExtra for RecordType {}

wire_enum! {
    /// Event types (`reg_event_type`). The specs disagree per registry (§7.1 of the digest);
    /// registry-specific spellings stay `Other` verbatim.
    EventType {
        /// `REGISTER` (social, DR, FR notify and DR subscribe).
        Register => "REGISTER",
        /// `NewHouseHoldMember` (social notify).
        NewHouseholdMember => "NewHouseHoldMember",
        /// `LiveBirth` (CRVS).
        LiveBirth => "LiveBirth",
        /// `Death` (CRVS).
        Death => "Death",
        /// `Marriage` (CRVS).
        Marriage => "Marriage",
        /// `Divorce` (CRVS).
        Divorce => "Divorce",
        /// `enrollement` (IBR, sic).
        Enrollment => "enrollement",
        /// `enrollement_status_change` (IBR, sic).
        EnrollmentStatusChange => "enrollement_status_change",
    }
}
impl NoExtra for EventType {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_other_round_trip() {
        assert_eq!(Action::parse_lenient("txn-on-status"), Action::TxnOnStatus);
        assert_eq!(Action::parse_lenient("txn_status").as_str(), "txn-status");
        let other = ErrorCode::parse_lenient("err.server");
        assert_eq!(other, ErrorCode::Other("err.server".into()));
        assert_eq!(serde_json::to_value(&other).unwrap(), "err.server");
        let v: AckStatus = serde_json::from_str("\"ack\"").unwrap();
        assert_eq!(v, AckStatus::Ack);
        assert_eq!(serde_json::to_value(v).unwrap(), "ACK");
    }

    #[test]
    fn reg_type_has_one_canonical_form() {
        for s in ["CRVS", "Civil", "ns:org:RegistryType:CRVS", "crvs"] {
            assert_eq!(RegType::parse_lenient(s), RegType::Civil, "{s}");
        }
        assert_eq!(RegType::Civil.as_str(), "ns:org:RegistryType:Civil");
        for r in crate::RegistryType::ALL {
            assert_eq!(RegType::from(r).as_str(), r.reg_type());
        }
        assert_eq!(
            RegType::parse_lenient("ns:org:RegistryType:Pension"),
            RegType::Other("ns:org:RegistryType:Pension".into())
        );
    }
}
