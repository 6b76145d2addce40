//! The configuration names of every enum a data source holds, parsed in one place: registry type,
//! auth kind, credential location, signature policy, profile and state.
//!
//! Names are matched case-insensitively with surrounding blanks ignored; an unknown name is an
//! [`UnknownName`] that lists the accepted ones. Every front end (validation, list filters, the
//! store's rows) parses through these, so they accept the same spellings and say the same thing.

use std::str::FromStr;

use dci_protocol::RegistryType;

use super::{AuthKind, CredentialLocation, SignaturePolicy, SourceState};
use crate::registries::Profile;

/// A value that is not one of the accepted names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {what}: use one of {names}")]
pub struct UnknownName {
    /// The value as given.
    pub value: String,
    /// What was expected, e.g. `an auth type`.
    pub what: &'static str,
    /// The accepted names, comma-separated.
    pub names: &'static str,
}

fn unknown(value: &str, what: &'static str, names: &'static str) -> UnknownName {
    UnknownName {
        value: value.trim().to_owned(),
        what,
        names,
    }
}

fn norm(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl AuthKind {
    /// Every configuration name.
    pub const NAMES: &'static str = "none, bearer, basic, oauth2";
}

impl FromStr for AuthKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<AuthKind, UnknownName> {
        Ok(match norm(s).as_str() {
            "none" => AuthKind::None,
            "bearer" => AuthKind::Bearer,
            "basic" => AuthKind::Basic,
            "oauth2" => AuthKind::OAuth2,
            _ => return Err(unknown(s, "an auth type", AuthKind::NAMES)),
        })
    }
}

impl CredentialLocation {
    /// Every configuration name.
    pub const NAMES: &'static str = "body, basic, query, json";
}

impl FromStr for CredentialLocation {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<CredentialLocation, UnknownName> {
        Ok(match norm(s).as_str() {
            "body" => CredentialLocation::Body,
            "basic" => CredentialLocation::Basic,
            "query" => CredentialLocation::Query,
            "json" => CredentialLocation::Json,
            _ => {
                return Err(unknown(
                    s,
                    "a credential location",
                    CredentialLocation::NAMES,
                ));
            }
        })
    }
}

impl SignaturePolicy {
    /// Every configuration name.
    pub const NAMES: &'static str = "off, if-present, require";
}

impl FromStr for SignaturePolicy {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<SignaturePolicy, UnknownName> {
        Ok(match norm(s).as_str() {
            "off" => SignaturePolicy::Off,
            "if-present" | "if_present" => SignaturePolicy::IfPresent,
            "require" => SignaturePolicy::Require,
            _ => return Err(unknown(s, "a policy", SignaturePolicy::NAMES)),
        })
    }
}

impl SourceState {
    /// Every state, in lifecycle order.
    pub const ALL: [SourceState; 4] = [
        SourceState::Draft,
        SourceState::Testing,
        SourceState::Active,
        SourceState::Error,
    ];
    /// Every configuration name.
    pub const NAMES: &'static str = "draft, testing, active, error";
}

impl FromStr for SourceState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<SourceState, UnknownName> {
        let n = norm(s);
        SourceState::ALL
            .into_iter()
            .find(|st| st.as_str() == n)
            .ok_or_else(|| unknown(s, "a state", SourceState::NAMES))
    }
}

/// Every registry type name.
pub const REGISTRY_TYPE_NAMES: &str = "crvs, dr, ibr, social, fr";

/// A registry type (`crvs`, `dr`, `ibr`, `social` or `sr`, `fr`).
pub fn registry_type(s: &str) -> Result<RegistryType, UnknownName> {
    s.parse()
        .map_err(|_| unknown(s, "a registry type", REGISTRY_TYPE_NAMES))
}

/// A profile (`standard`, `opencrvs`, `opencrvs-1.5`, `opencrvs-1.3`).
pub fn profile(s: &str) -> Result<Profile, UnknownName> {
    s.parse()
        .map_err(|_| unknown(s, "a profile", Profile::NAMES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_lists_the_choices() {
        for k in [
            AuthKind::None,
            AuthKind::Bearer,
            AuthKind::Basic,
            AuthKind::OAuth2,
        ] {
            assert_eq!(k.as_str().parse::<AuthKind>().unwrap(), k);
        }
        for c in [
            CredentialLocation::Body,
            CredentialLocation::Basic,
            CredentialLocation::Query,
            CredentialLocation::Json,
        ] {
            assert_eq!(c.as_str().parse::<CredentialLocation>().unwrap(), c);
        }
        for p in [
            SignaturePolicy::Off,
            SignaturePolicy::IfPresent,
            SignaturePolicy::Require,
        ] {
            assert_eq!(p.as_str().parse::<SignaturePolicy>().unwrap(), p);
        }
        for s in SourceState::ALL {
            assert_eq!(s.as_str().parse::<SourceState>().unwrap(), s);
        }
        assert_eq!(" OAuth2 ".parse::<AuthKind>().unwrap(), AuthKind::OAuth2);
        assert_eq!(
            "api_key".parse::<AuthKind>().unwrap_err().to_string(),
            "\"api_key\" is not an auth type: use one of none, bearer, basic, oauth2"
        );
        assert_eq!(
            "paused".parse::<SourceState>().unwrap_err().to_string(),
            "\"paused\" is not a state: use one of draft, testing, active, error"
        );
        assert_eq!(registry_type("SR").unwrap(), RegistryType::Social);
        assert!(
            registry_type("civil")
                .unwrap_err()
                .to_string()
                .contains("crvs, dr, ibr, social, fr")
        );
        assert!(profile("opencrvs").unwrap().is_opencrvs());
        assert!(profile("x").unwrap_err().to_string().contains("standard"));
    }
}
