//! OpenCRVS quirk mode: `POST /opencrvs/registry/sync/search` (current OpenCRVS DCI, "1.5")
//! and `POST /opencrvs-1.3/registry/sync/search` (older releases) behave like OpenCRVS's DCI
//! API over the seeded CRVS data, so the client's OpenCRVS profile can be tested for real.
//!
//! Like OpenCRVS it:
//! - answers validation failures with HTTP 400 (e.g. "expected expression"), not DCI `rjct`;
//! - takes `reg_type` in its version's form, only birth, death and marriage, and only
//!   `idtype-value` (BRN, DRN, MRN, NID, UIN, OPENCRVS_RECORD_ID) or a `range` expression;
//! - requires `consent` and `locale` on each item; default page size 5;
//! - accepts unsigned requests; a signed one must name a `sender_id` that is an http(s)
//!   origin, where OpenCRVS would fetch the JWKS to verify it;
//! - signs its reply as a compact JWS (`kid` = the JWK thumbprint) over the JSON of the reply
//!   without `signature`, and serves the key at `/.well-known/jwks.json`.
//!
//! Token quirks (credentials in the query string, string `expires_in`) are per client:
//! [`crate::ClientQuirks::opencrvs`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dci_protocol::RegistryType;
use serde_json::{Value, json};

use crate::data::Dataset;
use crate::reply;
use crate::state::AppState;
use crate::token::authorize;

/// OpenCRVS's default page size.
const DEFAULT_PAGE_SIZE: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1_3,
    V1_5,
}

/// `POST /opencrvs/registry/sync/search`.
pub(crate) async fn sync_search(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, headers, body, Version::V1_5)
}

/// `POST /opencrvs-1.3/registry/sync/search`.
pub(crate) async fn sync_search_v1_3(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, headers, body, Version::V1_3)
}

fn bad(message: impl Into<String>) -> Response {
    // OpenCRVS answers Hapi/Joi-style validation errors.
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"statusCode": 400, "error": "Bad Request", "message": message.into()})),
    )
        .into_response()
}

fn handle(state: AppState, headers: HeaderMap, body: Bytes, version: Version) -> Response {
    if let Err(resp) = authorize(&state, &headers, Some(RegistryType::Crvs)) {
        return resp;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("invalid JSON: {e}")),
    };
    let header = req.get("header").cloned().unwrap_or(Value::Null);
    let sender_id = header
        .get("sender_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if req.get("signature").is_some_and(|s| !s.is_null())
        && !(sender_id.starts_with("https://") || sender_id.starts_with("http://"))
    {
        return bad(
            "header.sender_id must be the origin serving your JWKS (https://…): OpenCRVS fetches \
             {sender_id}/.well-known/jwks.json to verify a signed request",
        );
    }
    let items = match req.pointer("/message/search_request") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        _ => return bad("message.search_request must be a non-empty array"),
    };
    let data = state.data();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match search_item(version, item, &data) {
            Ok(v) => out.push(v),
            Err(m) => return bad(format!("message.search_request[{i}].{m}")),
        }
    }
    drop(data);
    let total = out.len();
    let mut reply_body = json!({
        "header": {
            "version": "1.0.0",
            "message_id": reply::new_id(),
            "message_ts": reply::now(),
            "action": "on-search",
            "status": "succ",
            "total_count": total,
            "completed_count": total,
            "sender_id": state.cfg().registry_id,
            "receiver_id": sender_id,
        },
        "message": {
            "transaction_id": req.pointer("/message/transaction_id").cloned().unwrap_or(Value::Null),
            "correlation_id": reply::new_id(),
            "search_response": out,
        },
    });
    if let Some(jws) = jws(&state, &reply_body) {
        reply_body["signature"] = json!(jws);
    }
    Json(reply_body).into_response()
}

/// A compact JWS over the reply as JSON, as OpenCRVS's `CompactSign` does.
fn jws(state: &AppState, body: &Value) -> Option<String> {
    let signer = &state.0.signer;
    let key = signer.signing_key();
    let header = json!({"alg": key.algorithm().jose_alg(), "kid": signer.kid()});
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?);
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(body).ok()?);
    let sig = key.sign_bytes(format!("{h}.{p}").as_bytes()).ok()?;
    Some(format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

const EVENTS: &[&str] = &["birth", "death", "marriage"];
const ID_TYPES: &[&str] = &["BRN", "DRN", "MRN", "NID", "UIN", "OPENCRVS_RECORD_ID"];

fn search_item(version: Version, item: &Value, data: &Dataset) -> Result<Value, String> {
    if !item.get("consent").is_some_and(Value::is_object) {
        return Err("consent is required (an object with id, ts and purpose)".into());
    }
    if !item.get("locale").is_some_and(Value::is_string) {
        return Err("locale is required (e.g. \"eng\")".into());
    }
    let c = item
        .get("search_criteria")
        .filter(|c| c.is_object())
        .ok_or("search_criteria is required")?;
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
    let event = match version {
        Version::V1_3 => s("reg_type").to_owned(),
        Version::V1_5 => {
            if s("reg_type") != "ns:org:RegistryType:Civil" {
                return Err(format!(
                    "search_criteria.reg_type must be \"ns:org:RegistryType:Civil\", got {:?}",
                    s("reg_type")
                ));
            }
            s("reg_event_type").to_owned()
        }
    };
    if !EVENTS.contains(&event.as_str()) {
        let field = if version == Version::V1_3 {
            "reg_type"
        } else {
            "reg_event_type"
        };
        return Err(format!(
            "search_criteria.{field} must be one of birth, death, marriage, got {event:?}"
        ));
    }
    let kind = if event == "birth" {
        "live_birth"
    } else {
        event.as_str()
    };
    let q = c.get("query").unwrap_or(&Value::Null);
    let crvs = RegistryType::Crvs;
    let hits: Vec<usize> = match s("query_type") {
        "idtype-value" => {
            let t = q.get("type").and_then(Value::as_str).unwrap_or_default();
            let v = q.get("value").and_then(Value::as_str).unwrap_or_default();
            if !ID_TYPES.contains(&t) || v.is_empty() {
                return Err(format!(
                    "search_criteria.query must be {{type, value}} with type one of {}",
                    ID_TYPES.join(", ")
                ));
            }
            data.by_id(crvs, t, v)
                .into_iter()
                .filter(|&i| {
                    data.get(crvs, i).is_some_and(|r| {
                        r.ids.iter().any(|(a, b)| a == t && b == v)
                            && r.events.iter().any(|(e, _)| e == kind)
                    })
                })
                .collect()
        }
        "expression" => {
            let value = q.get("value").unwrap_or(&Value::Null);
            let expr = match version {
                Version::V1_3 => value,
                Version::V1_5 => value.pointer("/expression/query").unwrap_or(&Value::Null),
            };
            let Some((_, range)) = expr.as_object().and_then(|m| m.iter().next()) else {
                return Err("search_criteria.query: expected expression".into());
            };
            if range.get("type").and_then(Value::as_str) != Some("range") {
                return Err("search_criteria.query: expected expression with type range".into());
            }
            let gte = range.get("gte").and_then(Value::as_str);
            let lte = range.get("lte").and_then(Value::as_str);
            let day = |d: &str| d.get(..10).unwrap_or(d).to_owned();
            (0..data.len(crvs))
                .filter(|&i| {
                    data.get(crvs, i).is_some_and(|r| {
                        r.events.iter().any(|(e, d)| {
                            e == kind
                                && gte.is_none_or(|g| day(d) >= day(g))
                                && lte.is_none_or(|l| day(d) <= day(l))
                        })
                    })
                })
                .collect()
        }
        // What OpenCRVS says to the standard shapes it does not take.
        _ => return Err("search_criteria.query: expected expression".into()),
    };
    let num = |k: &str, d: usize| {
        c.pointer(&format!("/pagination/{k}"))
            .and_then(Value::as_u64)
            .map_or(d, |n| n as usize)
    };
    let size = num("page_size", DEFAULT_PAGE_SIZE).max(1);
    let page = num("page_number", 1).max(1);
    let total = hits.len();
    let page_records: Vec<Value> = hits
        .iter()
        .skip(size.saturating_mul(page - 1))
        .take(size)
        .filter_map(|&i| data.get(crvs, i).map(|r| r.json.clone()))
        .collect();
    Ok(json!({
        "reference_id": item.get("reference_id").cloned().unwrap_or(Value::Null),
        "timestamp": reply::now(),
        "status": "succ",
        "data": {
            "version": "1.0.0",
            "reg_type": c.get("reg_type").cloned().unwrap_or(Value::Null),
            "reg_event_type": event,
            "reg_record_type": "Person",
            "reg_records": page_records,
        },
        "pagination": {"page_size": size, "page_number": page, "total_count": total},
        "locale": item.get("locale").cloned().unwrap_or(json!("eng")),
    }))
}
