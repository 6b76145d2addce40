//! The OpenCRVS compatibility profile, selected per data source ([`Profile`]) and versioned
//! ([`OpenCrvsVersion`]), because OpenCRVS's DCI surface changed between releases.
//!
//! What the profile changes, and why:
//! - searches use OpenCRVS's envelope variant: no `signature` (OpenCRVS would fetch a JWKS from
//!   our `sender_id` to check one), a header without `is_msg_encrypted`/`meta`, its `reg_type`
//!   form, a `consent` object and `locale` on every item, `createdAt` sort and explicit paging;
//! - date ranges are an expression with `range` (OpenCRVS has no `ge`/`le` predicates on dates);
//! - its replies carry a compact JWS (`alg.payload.sig`, `kid` = JWK thumbprint) over the reply
//!   without `signature`; we verify it against the registry's JWKS, which OpenCRVS regenerates
//!   at every restart, so the JWKS is fetched per check rather than trusted from a cache.
//!
//! Token credentials in the query string are the auth layer's `credential_location = query`;
//! `sender_id` must be the URL of an origin serving our JWKS (checked by source validation).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dci_protocol::signature::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::keys::RegistryKeys;
use crate::ops::SignatureState;
use crate::source::{DataSource, SignaturePolicy};

/// Which dialect a data source speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// The SPDCI specification.
    #[default]
    Standard,
    /// OpenCRVS's DCI API, in the given version.
    OpenCrvs(OpenCrvsVersion),
}

/// OpenCRVS DCI versions with a known envelope variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OpenCrvsVersion {
    /// Older releases: `reg_type` is the lower-case event (`birth`), no `reg_event_type`, and a
    /// range is `{attr: {type: range, gte, lte}}` without the `expression.query` nesting.
    V1_3,
    /// Current releases: `reg_type` `ns:org:RegistryType:Civil` plus a lower-case
    /// `reg_event_type`, and the range nested under `expression.query`.
    #[default]
    V1_5,
}

impl Profile {
    /// Every accepted name, for help texts.
    pub const NAMES: &'static str =
        "standard, opencrvs (= opencrvs-1.5), opencrvs-1.5, opencrvs-1.3";

    /// The configuration name: `standard`, `opencrvs-1.3`, `opencrvs-1.5`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::OpenCrvs(OpenCrvsVersion::V1_3) => "opencrvs-1.3",
            Profile::OpenCrvs(OpenCrvsVersion::V1_5) => "opencrvs-1.5",
        }
    }

    /// Whether this is an OpenCRVS profile.
    pub fn is_opencrvs(self) -> bool {
        matches!(self, Profile::OpenCrvs(_))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "standard" | "spdci" => Ok(Profile::Standard),
            "opencrvs" | "opencrvs-1.5" | "opencrvs-v1.5" => {
                Ok(Profile::OpenCrvs(OpenCrvsVersion::V1_5))
            }
            "opencrvs-1.3" | "opencrvs-v1.3" => Ok(Profile::OpenCrvs(OpenCrvsVersion::V1_3)),
            other => Err(format!("unknown profile {other:?}: use {}", Profile::NAMES)),
        }
    }
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Profile, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// OpenCRVS's `reg_event_type` for a standard event type (`LiveBirth` → `birth`); unknown
/// names pass through lower-cased so the registry names what it refuses.
fn event_name(standard: Option<&str>) -> String {
    match standard.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("livebirth") | Some("birth") => "birth".into(),
        Some("death") => "death".into(),
        Some("marriage") => "marriage".into(),
        Some("divorce") => "divorce".into(),
        Some(other) => other
            .trim_start_matches("ns:org:crvs:eventtype:")
            .to_owned(),
    }
}

/// A date range (`ge`/`gt` and `le`/`lt` on one attribute, joined by `and`) from a standard
/// predicate query, as OpenCRVS's `range` expression in the version's form.
fn range_expression(version: OpenCrvsVersion, clauses: &[Value]) -> Option<Value> {
    let mut attribute: Option<&str> = None;
    let mut range = json!({"type": "range"});
    for c in clauses {
        if c.get("condition")
            .and_then(Value::as_str)
            .is_some_and(|k| !k.eq_ignore_ascii_case("and"))
        {
            return None;
        }
        for e in ["expression1", "expression2"]
            .iter()
            .filter_map(|k| c.get(*k))
        {
            let name = e.get("attribute_name")?.as_str()?;
            if attribute.is_some_and(|a| a != name) {
                return None;
            }
            attribute = Some(name);
            let bound = match e.get("operator")?.as_str()? {
                "ge" | "gt" => "gte",
                "le" | "lt" => "lte",
                _ => return None,
            };
            range[bound] = e.get("attribute_value")?.clone();
        }
    }
    let attribute = attribute?;
    let value = match version {
        OpenCrvsVersion::V1_3 => json!({ attribute: range }),
        OpenCrvsVersion::V1_5 => json!({"expression": {"query": { attribute: range }}}),
    };
    Some(json!({"type": "ns:org:QueryType:expression", "value": value}))
}

/// Rewrites a standard search envelope (built by `dci_protocol::build`, unsigned) into
/// OpenCRVS's variant: its `reg_type` form, lower-case event names, date ranges as a `range`
/// expression, `createdAt` sort, `consent` and `locale` on every item, and the header fields it
/// insists on. OpenCRVS envelopes are never signed.
pub(crate) fn adapt_search(
    source: &DataSource,
    version: OpenCrvsVersion,
    mut envelope: Value,
) -> Result<Value, crate::ops::OpsError> {
    use crate::ops::OpsError;
    let sender_id = source
        .sender_id
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            OpsError::invalid(
                "sender_id",
                "the OpenCRVS profile needs sender_id: the https:// origin that serves your JWKS",
            )
        })?
        .to_owned();
    let callback = source.callback_uri.clone().unwrap_or_default();
    let ref_uri = if callback.is_empty() {
        sender_id.clone()
    } else {
        callback.clone()
    };
    if let Some(obj) = envelope.as_object_mut() {
        obj.remove("signature");
    }
    if let Some(h) = envelope.get_mut("header").and_then(Value::as_object_mut) {
        // OpenCRVS's header: these fields and no others (no encryption flag, no meta).
        h.retain(|k, _| {
            matches!(
                k.as_str(),
                "version" | "message_id" | "message_ts" | "action" | "sender_id" | "total_count"
            )
        });
        h.insert("sender_uri".into(), json!(callback));
        h.insert("receiver_id".into(), json!(source.effective_receiver_id()));
    }
    let items = envelope
        .pointer_mut("/message/search_request")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| OpsError::invalid("search_request", "the search has no items"))?;
    for item in items {
        let ts = item
            .get("timestamp")
            .cloned()
            .unwrap_or_else(|| json!(dci_protocol::build::rfc3339(OffsetDateTime::now_utc())));
        let Some(c) = item
            .get_mut("search_criteria")
            .and_then(Value::as_object_mut)
        else {
            return Err(OpsError::invalid(
                "search_criteria",
                "an item has no criteria",
            ));
        };
        let event = event_name(c.get("reg_event_type").and_then(Value::as_str));
        match version {
            OpenCrvsVersion::V1_3 => {
                c.insert("reg_type".into(), json!(event));
                c.remove("reg_event_type");
            }
            OpenCrvsVersion::V1_5 => {
                c.insert("reg_type".into(), json!("ns:org:RegistryType:Civil"));
                c.insert("reg_event_type".into(), json!(event));
            }
        }
        c.remove("reg_record_type");
        match c.get("query_type").and_then(Value::as_str) {
            Some("idtype-value") | Some("expression") => {}
            Some("predicate") => {
                let clauses = c
                    .get("query")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let q = range_expression(version, &clauses).ok_or_else(|| {
                    OpsError::invalid(
                        "query",
                        "the OpenCRVS profile takes identifier searches, expressions and date                          ranges (ge/le on one attribute); this predicate is none of them",
                    )
                })?;
                c.insert("query_type".into(), json!("expression"));
                c.insert("query".into(), q);
            }
            other => {
                return Err(OpsError::invalid(
                    "query_type",
                    format!(
                        "{} is not supported by the OpenCRVS profile: use an identifier, an                          expression or a date range",
                        other.unwrap_or("(none)")
                    ),
                ));
            }
        }
        c.insert(
            "sort".into(),
            json!([{"attribute_name": "createdAt", "sort_order": "asc"}]),
        );
        if !c.contains_key("pagination") {
            c.insert(
                "pagination".into(),
                json!({"page_size": 10, "page_number": 1}),
            );
        }
        if let Some(m) = item.as_object_mut() {
            m.entry("consent").or_insert_with(|| {
                json!({"id": "consent-dci-client", "ts": ts, "purpose": {
                    "text": "Social protection programme verification",
                    "code": "SPP", "refUri": ref_uri}})
            });
            m.entry("locale").or_insert_with(|| json!("eng"));
        }
    }
    Ok(envelope)
}

/// The JWKS URL of the registry: the configured one, else `/.well-known/jwks.json` at the
/// origin of the base URL (where OpenCRVS serves it).
pub fn jwks_url(source: &DataSource) -> String {
    if let Some(u) = &source.registry_jwks_url {
        return u.clone();
    }
    match url::Url::parse(&source.base_url) {
        Ok(u) => format!("{}/.well-known/jwks.json", u.origin().ascii_serialization()),
        Err(_) => format!("{}/.well-known/jwks.json", source.base_url),
    }
}

/// Checks an OpenCRVS reply's compact JWS under the source's signature policy. The JWKS comes
/// from the shared cache, fetched again (through `http`, the source's own client) when the
/// cached keys do not verify: OpenCRVS regenerates its key at every restart.
pub(crate) async fn check_reply(
    source: &DataSource,
    keys: &RegistryKeys,
    http: Option<&reqwest::Client>,
    body: &Value,
) -> Result<SignatureState, String> {
    let policy = source.reply_signature_policy;
    if policy == SignaturePolicy::Off {
        return Ok(SignatureState::NotChecked);
    }
    let jws = match body.get("signature") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
        _ if policy == SignaturePolicy::Require => {
            return Err("the reply is not signed, but the data source requires signatures".into());
        }
        _ => return Ok(SignatureState::Unsigned),
    };
    let configured: Vec<(Option<String>, VerifyingKey)> = source
        .registry_public_keys
        .iter()
        .filter_map(|p| VerifyingKey::from_spki_pem(p).ok())
        .map(|k| (None, k))
        .collect();
    jws_kid(jws)?;
    if !configured.is_empty() && verify_jws(jws, body, &configured).is_ok() {
        return Ok(SignatureState::Verified);
    }
    let url = jwks_url(source);
    let cached = keys
        .jwks_keys(http, &url, false)
        .await
        .map_err(|e| e.to_string())?;
    if verify_jws(jws, body, &cached).is_ok() {
        return Ok(SignatureState::Verified);
    }
    let fresh = keys
        .jwks_keys(http, &url, true)
        .await
        .map_err(|e| e.to_string())?;
    verify_jws(jws, body, &fresh)?;
    Ok(SignatureState::Verified)
}

fn jws_kid(jws: &str) -> Result<Option<String>, String> {
    let header = jws.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| "invalid JWS: the protected header is not base64url".to_owned())?;
    let h: Value = serde_json::from_slice(&bytes)
        .map_err(|_| "invalid JWS: the protected header is not JSON".to_owned())?;
    Ok(h.get("kid").and_then(Value::as_str).map(str::to_owned))
}

/// Verifies a compact JWS whose payload must equal `body` without its `signature` (compared
/// as JSON values, so key order and whitespace do not matter, as OpenCRVS compares).
pub fn verify_jws(
    jws: &str,
    body: &Value,
    keys: &[(Option<String>, VerifyingKey)],
) -> Result<(), String> {
    let parts: Vec<&str> = jws.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err("invalid JWS: expected header.payload.signature".into());
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("invalid JWS: unreadable protected header")?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kid = header.get("kid").and_then(Value::as_str);
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "invalid JWS: the signature is not base64url".to_owned())?;
    let input = format!("{h}.{p}");
    let mut tried = false;
    let mut ok = false;
    for (k, key) in keys {
        if key.algorithm().jose_alg() != alg {
            continue;
        }
        if let (Some(want), Some(have)) = (kid, k.as_deref())
            && want != have
        {
            continue;
        }
        tried = true;
        if key.verify_bytes(input.as_bytes(), &sig).is_ok() {
            ok = true;
            break;
        }
    }
    if !tried {
        return Err(format!(
            "unknown signing key {:?} ({alg}): not among the registry's configured keys or its JWKS",
            kid.unwrap_or("")
        ));
    }
    if !ok {
        return Err("invalid signature: the JWS does not verify".into());
    }
    let payload: Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("invalid JWS: the payload is not JSON")?;
    let mut unsigned = body.clone();
    if let Some(m) = unsigned.as_object_mut() {
        m.remove("signature");
    }
    if payload != unsigned {
        return Err("invalid signature: the signed payload differs from the reply".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dci_protocol::signature::{Algorithm, SigningKey};

    #[test]
    fn profile_names_round_trip() {
        for p in [
            Profile::Standard,
            Profile::OpenCrvs(OpenCrvsVersion::V1_3),
            Profile::OpenCrvs(OpenCrvsVersion::V1_5),
        ] {
            assert_eq!(p.as_str().parse::<Profile>().unwrap(), p);
        }
        assert_eq!(
            "opencrvs".parse::<Profile>().unwrap(),
            Profile::OpenCrvs(OpenCrvsVersion::V1_5)
        );
        let e = "odd".parse::<Profile>().unwrap_err();
        assert!(e.contains("opencrvs-1.3"), "{e}");
    }

    fn date_predicate(from: Option<&str>, to: Option<&str>) -> Vec<Value> {
        let mut c = json!({"seq_num": 1});
        if let Some(f) = from {
            c["expression1"] =
                json!({"attribute_name": "birthdate", "operator": "ge", "attribute_value": f});
        }
        if let Some(t) = to {
            let k = if from.is_some() {
                "expression2"
            } else {
                "expression1"
            };
            c[k] = json!({"attribute_name": "birthdate", "operator": "le", "attribute_value": t});
            if from.is_some() {
                c["condition"] = json!("and");
            }
        }
        vec![c]
    }

    #[test]
    fn range_forms_differ_by_version() {
        let old =
            range_expression(OpenCrvsVersion::V1_3, &date_predicate(Some("a"), Some("b"))).unwrap();
        assert_eq!(old["value"]["birthdate"]["gte"], "a");
        assert_eq!(old["value"]["birthdate"]["lte"], "b");
        let new =
            range_expression(OpenCrvsVersion::V1_5, &date_predicate(Some("a"), None)).unwrap();
        assert_eq!(
            new["value"]["expression"]["query"]["birthdate"]["type"],
            "range"
        );
        assert!(
            new["value"]["expression"]["query"]["birthdate"]
                .get("lte")
                .is_none()
        );
        // Not a date range: an `or`, or two attributes.
        let mut or = date_predicate(Some("a"), Some("b"));
        or[0]["condition"] = json!("or");
        assert!(range_expression(OpenCrvsVersion::V1_5, &or).is_none());
    }

    #[test]
    fn jws_verifies_and_detects_changes() {
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let vk = key.verifying_key();
        let body = json!({"header": {"a": 1}, "message": {"b": [1, 2]}});
        let h = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&json!({"alg": "EdDSA", "kid": vk.thumbprint()})).unwrap());
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap());
        let s = URL_SAFE_NO_PAD.encode(key.sign_bytes(format!("{h}.{p}").as_bytes()).unwrap());
        let jws = format!("{h}.{p}.{s}");
        let keys = vec![(Some(vk.thumbprint()), vk.clone())];
        let mut signed = body.clone();
        signed["signature"] = json!(jws);
        verify_jws(&jws, &signed, &keys).unwrap();
        let mut altered = signed.clone();
        altered["message"]["b"] = json!([1, 3]);
        assert!(
            verify_jws(&jws, &altered, &keys)
                .unwrap_err()
                .contains("differs")
        );
        let other = SigningKey::generate(Algorithm::Ed25519)
            .unwrap()
            .verifying_key();
        let e = verify_jws(&jws, &signed, &[(Some(vk.thumbprint()), other)]).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        let e = verify_jws(&jws, &signed, &[]).unwrap_err();
        assert!(e.contains("unknown signing key"), "{e}");
    }
}
