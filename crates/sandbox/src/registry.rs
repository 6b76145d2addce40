//! The registry endpoints under `/{registry}/registry/…`: ping, sync and async search,
//! subscribe, unsubscribe, txn status, and DR's and IBR's extra sync endpoints.

use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dci_protocol::RegistryType;
use serde_json::{Value, json};

use crate::data::{Dataset, Record};
use crate::envelope::{self, Incoming, Reject, id_string, response_header};
use crate::search::{self, Expr};
use crate::state::{AppState, Subscription, Txn, TxnLookup};
use crate::token::{Caller, authorize};
use crate::{callback, reply, signing};

/// Default page size when a search has no pagination.
const DEFAULT_PAGE_SIZE: usize = 100;

#[allow(
    clippy::result_large_err,
    reason = "the error is the ready HTTP reply, the axum idiom"
)]
fn registry_of(segment: &str) -> Result<RegistryType, Response> {
    // Only the short names: `/sr` is not a prefix the sandbox serves.
    RegistryType::ALL
        .into_iter()
        .find(|r| r.as_str() == segment)
        .ok_or_else(|| {
            reply::http_error(
                StatusCode::NOT_FOUND,
                "err.request.not_found",
                &format!("no registry {segment:?}: use /crvs, /dr, /ibr, /social or /fr"),
            )
        })
}

fn not_found(what: &str) -> Response {
    reply::http_error(StatusCode::NOT_FOUND, "err.request.not_found", what)
}

/// `GET /{registry}/registry/ping` and `GET /registry/ping`: 200 to an authorised caller.
pub(crate) async fn ping(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let registry = match registry_of(&segment) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match authorize(&state, &headers, None) {
        Ok(_) => {
            Json(json!({"status": "ok", "registry": registry.as_str(), "timestamp": reply::now()}))
                .into_response()
        }
        Err(resp) => resp,
    }
}

/// `GET /registry/ping` (no registry prefix).
pub(crate) async fn ping_root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match authorize(&state, &headers, None) {
        Ok(_) => Json(json!({"status": "ok", "timestamp": reply::now()})).into_response(),
        Err(resp) => resp,
    }
}

/// The operations, each with its request action, response action and shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Search,
    Subscribe,
    Unsubscribe,
    TxnStatus,
    DrDisabled,
    DrSupport,
    DrDetails,
    IbrEnrolled,
    IbrUpdates,
}

impl Op {
    fn request_action(self) -> &'static str {
        match self {
            Op::Subscribe => "subscribe",
            Op::Unsubscribe => "unsubscribe",
            Op::TxnStatus => "txn-status",
            Op::IbrUpdates => "notify",
            _ => "search",
        }
    }
    fn response_action(self) -> &'static str {
        match self {
            Op::Subscribe => "on-subscribe",
            Op::Unsubscribe => "on-unsubscribe",
            Op::TxnStatus => "txn-on-status",
            Op::IbrUpdates => "on-notify",
            _ => "on-search",
        }
    }
    fn allowed(self, r: RegistryType) -> bool {
        match self {
            Op::TxnStatus => r.has_txn_status(),
            Op::DrDisabled | Op::DrSupport | Op::DrDetails => r == RegistryType::Dr,
            Op::IbrEnrolled | Op::IbrUpdates => r == RegistryType::Ibr,
            _ => true,
        }
    }
    fn txn_type(self) -> &'static str {
        match self {
            Op::Subscribe => "subscribe",
            Op::Unsubscribe => "unsubscribe",
            Op::IbrUpdates => "receipt",
            _ => "search",
        }
    }
}

/// The outcome of processing a message.
struct Computed {
    message: Value,
    total: usize,
    status: &'static str,
    reference_ids: Vec<String>,
}

struct Ctx<'a> {
    state: &'a AppState,
    registry: RegistryType,
    req: &'a Incoming,
    correlation_id: String,
}

async fn handle(
    state: AppState,
    segment: String,
    headers: HeaderMap,
    body: Bytes,
    op: Op,
    is_async: bool,
) -> Response {
    let registry = match registry_of(&segment) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !op.allowed(registry) {
        return not_found(&format!(
            "the {registry} registry has no such endpoint (see the DCI {registry} spec)"
        ));
    }
    let caller: Caller = match authorize(&state, &headers, Some(registry)) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let req = match envelope::parse(&body, op.request_action(), is_async) {
        Ok(r) => r,
        Err(rej) => return reject(&state, rej, op, is_async, &Value::Null),
    };
    if let Err(rej) = signing::check_request(&state, &caller, &req) {
        return reject(&state, rej, op, is_async, &req.header);
    }
    tracing::debug!(client_id = %caller.client_id, %registry, ?op, "registry request");
    let ctx = Ctx {
        state: &state,
        registry,
        req: &req,
        correlation_id: reply::new_id(),
    };
    let computed = match compute(&ctx, op) {
        Ok(c) => c,
        Err(rej) => return reject(&state, rej, op, is_async, &req.header),
    };
    // The message is serialised once: the transaction log keeps these bytes and a sync reply
    // sends them.
    let message_bytes = serde_json::to_vec(&computed.message).unwrap_or_default();
    state.push_txn(
        Txn {
            registry,
            txn_type: op.txn_type().to_owned(),
            transaction_id: req.transaction_id.clone(),
            correlation_id: ctx.correlation_id.clone(),
            reference_ids: computed.reference_ids.clone(),
        },
        &message_bytes,
    );
    let header = response_header(
        &state,
        op.response_action(),
        &req.header,
        computed.status,
        computed.total,
    );
    if is_async {
        let url = req.header_str("sender_uri").unwrap_or_default().to_owned();
        callback::spawn_delivery(state.clone(), registry, url, header, computed.message);
        (StatusCode::ACCEPTED, Json(reply::ack(&ctx.correlation_id))).into_response()
    } else {
        envelope::signed_reply(&state, &header, &computed.message, &message_bytes)
    }
}

fn reject(state: &AppState, rej: Reject, op: Op, is_async: bool, header: &Value) -> Response {
    if is_async {
        rej.into_ack()
    } else {
        rej.into_sync(state, op.response_action(), header)
    }
}

macro_rules! endpoint {
    ($name:ident, $op:expr, $async:expr) => {
        pub(crate) async fn $name(
            State(state): State<AppState>,
            Path(segment): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            handle(state, segment, headers, body, $op, $async).await
        }
    };
}

endpoint!(sync_search, Op::Search, false);
endpoint!(search, Op::Search, true);
endpoint!(subscribe, Op::Subscribe, true);
endpoint!(unsubscribe, Op::Unsubscribe, true);
endpoint!(txn_status, Op::TxnStatus, true);
endpoint!(sync_txn_status, Op::TxnStatus, false);
endpoint!(dr_disabled, Op::DrDisabled, false);
endpoint!(dr_support, Op::DrSupport, false);
endpoint!(dr_details, Op::DrDetails, false);
endpoint!(ibr_enrolled, Op::IbrEnrolled, false);
endpoint!(ibr_updates, Op::IbrUpdates, false);

fn compute(ctx: &Ctx<'_>, op: Op) -> Result<Computed, Reject> {
    match op {
        Op::Search => search_all(ctx),
        Op::Subscribe => subscribe_all(ctx),
        Op::Unsubscribe => unsubscribe_all(ctx),
        Op::TxnStatus => txn_status_of(ctx),
        Op::DrDisabled | Op::DrSupport | Op::DrDetails | Op::IbrEnrolled => criteria_all(ctx, op),
        Op::IbrUpdates => enrollment_updates(ctx),
    }
}

/// A batch field that should be an array but is sometimes a single object (DR/FR samples).
fn batch<'a>(message: &'a Value, field: &str) -> Result<Vec<&'a Value>, Reject> {
    match message.get(field) {
        Some(Value::Array(a)) if !a.is_empty() => Ok(a.iter().collect()),
        Some(Value::Array(_)) => Err(Reject::bad(format!(
            "message.{field} must contain at least one request"
        ))),
        Some(v @ Value::Object(_)) => Ok(vec![v]),
        _ => Err(Reject::bad(format!(
            "message.{field} is required (an array of requests)"
        ))),
    }
}

struct ItemError {
    code: &'static str,
    reason: String,
}

fn item_err(code: &'static str, reason: impl Into<String>) -> ItemError {
    ItemError {
        code,
        reason: reason.into(),
    }
}

/// Checks `reference_id` (present, unique in the batch) and `timestamp` of a batch item.
fn item_ids(item: &Value, seen: &mut HashSet<String>) -> Result<String, (Value, ItemError)> {
    let Some(reference_id) = id_string(item.get("reference_id")) else {
        return Err((
            Value::Null,
            item_err("rjct.reference_id.invalid", "reference_id is required"),
        ));
    };
    if !seen.insert(reference_id.clone()) {
        return Err((
            json!(reference_id),
            item_err(
                "rjct.reference_id.duplicate",
                format!("reference_id {reference_id:?} appears twice in this message"),
            ),
        ));
    }
    if id_string(item.get("timestamp")).is_none() {
        return Err((
            json!(reference_id),
            item_err(
                "rjct.timestamp.invalid",
                "timestamp is required (RFC 3339 with offset)",
            ),
        ));
    }
    Ok(reference_id)
}

fn rejected_item(reference_id: Value, e: ItemError) -> Value {
    json!({
        "reference_id": reference_id,
        "timestamp": reply::now(),
        "status": "rjct",
        "status_reason_code": e.code,
        "status_reason_message": reply::truncate(&e.reason, 999),
    })
}

fn reg_record_type(registry: RegistryType, member: bool) -> &'static str {
    match registry {
        RegistryType::Crvs => "spdci-extensions-dci:Person",
        RegistryType::Dr => "spdci-extensions-dci:DisabledPerson",
        RegistryType::Fr => "spdci-extensions-dci:Farmer",
        RegistryType::Ibr => "Beneficiary",
        RegistryType::Social if member => "Member",
        RegistryType::Social => "Group",
    }
}

/// Parses a criteria object's `query_type` + `query` (or `filter_type` + `filter`).
fn criteria_expr(
    registry: RegistryType,
    criteria: &Value,
    type_key: &str,
    query_key: &str,
) -> Result<Expr, String> {
    let qt = criteria
        .get(type_key)
        .and_then(Value::as_str)
        .ok_or(format!(
            "{type_key} is required: idtype-value, expression or predicate"
        ))?;
    if qt == "graphql" && !registry.allows_graphql() {
        return Err(format!(
            "{type_key} graphql is not allowed by the {registry} spec"
        ));
    }
    let q = criteria
        .get(query_key)
        .filter(|q| !q.is_null())
        .ok_or(format!("{query_key} is required for {type_key} {qt:?}"))?;
    search::parse_query(qt, q)
}

/// The numbers of the records of `registry` matching `expr`, in order: through the identifier
/// index for an `idtype-value` query, else by a scan.
fn find(data: &Dataset, registry: RegistryType, expr: &Expr, event: Option<&str>) -> Vec<usize> {
    let matching = |i: &usize| {
        data.get(registry, *i)
            .is_some_and(|r| search::matches(expr, &r, event))
    };
    match expr {
        Expr::Id { id_type, value } => data
            .by_id(registry, id_type, value)
            .into_iter()
            .filter(matching)
            .collect(),
        _ => (0..data.len(registry)).filter(matching).collect(),
    }
}

fn search_item(
    data: &Dataset,
    registry: RegistryType,
    item: &Value,
    reference_id: &str,
) -> Result<Value, ItemError> {
    let Some(criteria) = item.get("search_criteria").filter(|c| c.is_object()) else {
        return Err(item_err(
            "rjct.search_criteria.invalid",
            "search_criteria is required (an object with query_type and query)",
        ));
    };
    let expr = criteria_expr(registry, criteria, "query_type", "query").map_err(|e| {
        item_err(
            "rjct.search_criteria.invalid",
            format!("search_criteria.{e}"),
        )
    })?;
    let (size, page) = search::pagination(criteria.get("pagination"), DEFAULT_PAGE_SIZE)
        .map_err(|e| item_err("rjct.pagination.invalid", e))?;
    let event = criteria
        .get("reg_event_type")
        .and_then(Value::as_str)
        .filter(|_| registry == RegistryType::Crvs)
        .map(search::event_kind);
    let mut hits = find(data, registry, &expr, event.as_deref());
    let keys = criteria
        .get("sort")
        .map(search::sort_keys)
        .unwrap_or_default();
    if !keys.is_empty() {
        let mut keyed: Vec<(Vec<Value>, usize)> = hits
            .iter()
            .filter_map(|&i| Some((search::sort_values(&*data.get(registry, i)?, &keys), i)))
            .collect();
        // Stable: equal keys keep the registry's order.
        keyed.sort_by(|a, b| search::compare_sort_values(&a.0, &b.0, &keys));
        hits = keyed.into_iter().map(|(_, i)| i).collect();
    }
    let member = registry == RegistryType::Social
        && criteria
            .get("response_entity")
            .and_then(Value::as_str)
            .is_some_and(|e| e.eq_ignore_ascii_case("member"));
    let skip = size.saturating_mul(page - 1);
    // Only the asked page is rendered: a search over 100 000 records costs one page of JSON.
    let (total, page_records): (usize, Vec<Value>) = if member {
        let only_uin = match &expr {
            Expr::Id { id_type, value } if id_type == "UIN" => Some(value.clone()),
            _ => None,
        };
        let mut total = 0;
        let mut page_records = Vec::new();
        for i in &hits {
            let Some(r) = data.get(registry, *i) else {
                continue;
            };
            for m in r.json["member_list"].as_array().into_iter().flatten() {
                if only_uin
                    .as_deref()
                    .is_some_and(|u| m["member_identifier"] != u)
                {
                    continue;
                }
                if total >= skip && page_records.len() < size {
                    page_records.push(m.clone());
                }
                total += 1;
            }
        }
        (total, page_records)
    } else {
        let page_records = hits
            .iter()
            .skip(skip)
            .take(size)
            .filter_map(|&i| data.get(registry, i).map(|r| r.json.clone()))
            .collect();
        (hits.len(), page_records)
    };
    Ok(json!({
        "reference_id": reference_id,
        "timestamp": reply::now(),
        "status": "succ",
        "data": {
            "version": "1.0.0",
            "reg_type": registry.reg_type(),
            "reg_record_type": reg_record_type(registry, member),
            "reg_records": if registry == RegistryType::Dr { as_object_records(page_records) } else { Value::Array(page_records) },
        },
        "pagination": {"page_size": size, "page_number": page, "total_count": total},
        "locale": item.get("locale").and_then(Value::as_str).unwrap_or("eng"),
    }))
}

fn header_status(items: &[Value]) -> &'static str {
    if !items.is_empty() && items.iter().all(|i| i["status"] == "rjct") {
        "rjct"
    } else {
        "succ"
    }
}

fn search_all(ctx: &Ctx<'_>) -> Result<Computed, Reject> {
    let items = batch(&ctx.req.message, "search_request")?;
    let data = ctx.state.data();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut refs = Vec::new();
    for item in &items {
        let resp = match item_ids(item, &mut seen) {
            Err((rid, e)) => rejected_item(rid, e),
            Ok(rid) => {
                refs.push(rid.clone());
                search_item(&data, ctx.registry, item, &rid)
                    .unwrap_or_else(|e| rejected_item(json!(rid), e))
            }
        };
        out.push(resp);
    }
    Ok(Computed {
        status: header_status(&out),
        total: out.len(),
        message: json!({
            "transaction_id": ctx.req.transaction_id,
            "correlation_id": ctx.correlation_id,
            "search_response": out,
        }),
        reference_ids: refs,
    })
}

fn subscribe_all(ctx: &Ctx<'_>) -> Result<Computed, Reject> {
    let items = batch(&ctx.req.message, "subscribe_request")?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut refs = Vec::new();
    for item in &items {
        let rid = match item_ids(item, &mut seen) {
            Err((rid, e)) => {
                out.push(rejected_item(rid, e));
                continue;
            }
            Ok(rid) => rid,
        };
        refs.push(rid.clone());
        let Some(criteria) = item.get("subscribe_criteria").filter(|c| c.is_object()) else {
            out.push(rejected_item(
                json!(rid),
                item_err(
                    "rjct.notify_details.invalid",
                    "subscribe_criteria is required",
                ),
            ));
            continue;
        };
        if let Err(e) = criteria_expr(ctx.registry, criteria, "filter_type", "filter") {
            out.push(rejected_item(
                json!(rid),
                item_err(
                    "rjct.notify_details.invalid",
                    format!("subscribe_criteria.{e}"),
                ),
            ));
            continue;
        }
        let Some(event) = criteria.get("reg_event_type").and_then(Value::as_str) else {
            out.push(rejected_item(
                json!(rid),
                item_err(
                    "rjct.notify_types.invalid",
                    "subscribe_criteria.reg_event_type is required (e.g. REGISTER, LiveBirth)",
                ),
            ));
            continue;
        };
        let code = format!(
            "SUB-{}-{:06}",
            ctx.registry.as_str().to_uppercase(),
            ctx.state.next_number()
        );
        let info = json!({
            "version": "1.0.0",
            "code": code,
            "status": "subscribe",
            "timestamp": reply::now(),
            "reg_type": ctx.registry.reg_type(),
            "reg_event_type": event,
            "frequency": criteria.get("frequency").cloned().unwrap_or(Value::Null),
            "filter_type": criteria.get("filter_type").cloned().unwrap_or(Value::Null),
            "filter": criteria.get("filter").cloned().unwrap_or(Value::Null),
            "notify_record_type": criteria.get("notify_record_type").cloned()
                .unwrap_or_else(|| json!(reg_record_type(ctx.registry, false))),
            "locale": "eng",
        });
        let info = without_nulls(info);
        ctx.state.add_subscription(
            code,
            Subscription {
                registry: ctx.registry,
                info: info.clone(),
                sender_uri: ctx
                    .req
                    .header_str("sender_uri")
                    .unwrap_or_default()
                    .to_owned(),
                receiver_id: ctx
                    .req
                    .header_str("sender_id")
                    .unwrap_or_default()
                    .to_owned(),
                active: true,
                created: 0,
            },
        );
        out.push(json!({
            "reference_id": rid,
            "timestamp": reply::now(),
            "status": "succ",
            "subscriptions": [info],
            "locale": "eng",
        }));
    }
    Ok(Computed {
        status: header_status(&out),
        total: out.len(),
        message: json!({
            "transaction_id": ctx.req.transaction_id,
            "correlation_id": ctx.correlation_id,
            "subscribe_response": out,
        }),
        reference_ids: refs,
    })
}

fn unsubscribe_all(ctx: &Ctx<'_>) -> Result<Computed, Reject> {
    let m = &ctx.req.message;
    let codes: Vec<String> = match m.get("subscription_codes") {
        Some(Value::Array(a)) if !a.is_empty() => {
            a.iter().filter_map(|c| id_string(Some(c))).collect()
        }
        Some(Value::String(s)) => vec![s.clone()],
        _ => {
            return Err(Reject::bad(
                "message.subscription_codes is required (an array of subscription codes)",
            ));
        }
    };
    let mut subs = ctx.state.subscriptions();
    let mut statuses = Vec::new();
    let mut problem: Option<(&str, String)> = None;
    for code in &codes {
        match subs.get_mut(code) {
            Some(s) if s.registry == ctx.registry && s.active => {
                s.active = false;
                s.info["status"] = json!("unsubscribe");
                statuses.push(json!({"code": code, "status": "unsubscribe"}));
            }
            Some(s) if s.registry == ctx.registry => {
                problem.get_or_insert((
                    "rjct.event.already_unsubscribed",
                    format!("{code} is already unsubscribed"),
                ));
                statuses.push(json!({"code": code, "status": "unsubscribe"}));
            }
            _ => {
                problem.get_or_insert((
                    "rjct.subscription_code.invalid",
                    format!("no subscription {code:?} in the {} registry", ctx.registry),
                ));
            }
        }
    }
    let status = if problem.is_some() { "rjct" } else { "succ" };
    let mut message = json!({
        "transaction_id": ctx.req.transaction_id,
        "correlation_id": ctx.correlation_id,
        "timestamp": reply::now(),
        "status": status,
        "subscription_status": statuses,
    });
    if let Some((code, reason)) = problem {
        message["status_reason_code"] = json!(code);
        message["status_reason_message"] = json!(reason);
    }
    Ok(Computed {
        status: "succ",
        total: 1,
        message,
        reference_ids: codes,
    })
}

fn txn_status_of(ctx: &Ctx<'_>) -> Result<Computed, Reject> {
    let m = &ctx.req.message;
    let r = match m.get("txnstatus_request") {
        Some(Value::Array(a)) if !a.is_empty() => &a[0],
        Some(v @ Value::Object(_)) => v,
        _ => {
            return Err(Reject::bad(
                "message.txnstatus_request is required (an object)",
            ));
        }
    };
    let attr_type = r.get("attribute_type").and_then(Value::as_str).ok_or_else(|| {
        Reject::bad("txnstatus_request.attribute_type is required: transaction_id, correlation_id, reference_id_list or subscription_code_list")
    })?;
    let values: Vec<String> = match r.get("attribute_value") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| id_string(Some(v))).collect(),
        v => id_string(v).into_iter().collect(),
    };
    if values.is_empty() {
        return Err(Reject::bad("txnstatus_request.attribute_value is required"));
    }
    let reference_id = id_string(r.get("reference_id")).unwrap_or_default();
    let wanted_type = r
        .get("txn_type")
        .and_then(Value::as_str)
        .unwrap_or("search")
        .to_owned();
    let found: Option<(String, Value)> = if attr_type == "subscription_code_list" {
        let subs = ctx.state.subscriptions();
        let infos: Vec<Value> = values
            .iter()
            .filter_map(|c| subs.get(c))
            .filter(|s| s.registry == ctx.registry)
            .map(|s| s.info.clone())
            .collect();
        (!infos.is_empty()).then(|| {
            ("subscribe".to_owned(), json!({
                "transaction_id": ctx.req.transaction_id,
                "correlation_id": ctx.correlation_id,
                "subscribe_response": [{"reference_id": reference_id, "timestamp": reply::now(), "status": "succ", "subscriptions": infos}],
            }))
        })
    } else {
        let found = ctx.state.txns().find(ctx.registry, attr_type, &values);
        match found {
            TxnLookup::Found { txn_type, message } => Some((txn_type, message)),
            TxnLookup::NotFound => None,
            // Known, so not "no such transaction" (a client may take that as "never
            // arrived"): an error that says the result is gone.
            TxnLookup::ResultDropped { transaction_id } => {
                return Err(Reject::bad(format!(
                    "transaction {transaction_id:?} is known but its result is no longer kept: \
                     the sandbox keeps results up to its log body budget (log_body_budget)"
                )));
            }
        }
    };
    if !matches!(
        attr_type,
        "transaction_id" | "correlation_id" | "reference_id_list" | "subscription_code_list"
    ) {
        return Err(Reject::bad(format!(
            "txnstatus_request.attribute_type {attr_type:?} is not one of transaction_id, correlation_id, reference_id_list, subscription_code_list"
        )));
    }
    let (txn_type, txn_status, status) = match found {
        Some((t, mut msg)) => {
            // E6: CRVS and FR type the search branch's reg_records as an object.
            if t == "search" && matches!(ctx.registry, RegistryType::Crvs | RegistryType::Fr) {
                for item in msg["search_response"].as_array_mut().into_iter().flatten() {
                    if let Some(Value::Array(recs)) =
                        item.pointer_mut("/data/reg_records").map(std::mem::take)
                    {
                        item["data"]["reg_records"] = as_object_records(recs);
                    }
                }
            }
            (t, msg, "succ")
        }
        None => {
            return Err(Reject::NotFound(format!(
                "no {wanted_type} transaction found in the {} registry for {attr_type} {values:?}",
                ctx.registry
            )));
        }
    };
    let message = json!({
        "transaction_id": ctx.req.transaction_id,
        "correlation_id": ctx.correlation_id,
        "txnstatus_response": {"txn_type": txn_type, "txn_status": txn_status},
    });
    Ok(Computed {
        status,
        total: 1,
        message,
        reference_ids: vec![reference_id],
    })
}

fn criteria_all(ctx: &Ctx<'_>, op: Op) -> Result<Computed, Reject> {
    let key = if op == Op::IbrEnrolled {
        "enrolled_criteria"
    } else {
        "disabled_criteria"
    };
    let m = &ctx.req.message;
    // Accept the spec's single criteria object, an array of them, or a search_request batch.
    let items: Vec<Value> = match m.get(key) {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => match m.get("search_request") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|i| {
                    let mut c = i.get("search_criteria").cloned().unwrap_or(json!({}));
                    if let Some(r) = i.get("reference_id") {
                        c["reference_id"] = r.clone();
                    }
                    c
                })
                .collect(),
            _ => {
                return Err(Reject::bad(format!(
                    "message.{key} is required (an object with query_type and query)"
                )));
            }
        },
    };
    let data = ctx.state.data();
    let mut out = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let rid = id_string(c.get("reference_id"))
            .or_else(|| id_string(m.get("reference_id")))
            .unwrap_or_else(|| format!("{}-{}", ctx.req.transaction_id, i + 1));
        let expr = match criteria_expr(ctx.registry, c, "query_type", "query") {
            Ok(e) => e,
            Err(e) => {
                out.push(rejected_item(
                    json!(rid),
                    item_err("rjct.search_criteria.invalid", format!("{key}.{e}")),
                ));
                continue;
            }
        };
        let hits: Vec<_> = find(&data, ctx.registry, &expr, None)
            .into_iter()
            .filter_map(|i| data.get(ctx.registry, i))
            .collect();
        let base = json!({"reference_id": rid, "timestamp": reply::now(), "status": "succ"});
        let mut item = base;
        match op {
            Op::DrDisabled => {
                let status = hits.first().map(|r| r.json["disability_status"].clone());
                let yes = status.as_ref().is_some_and(|s| s == "Approved");
                item["disabled_status"] = json!(if yes { "yes" } else { "no" });
                if let Some(s) = status {
                    item["disability_status"] = s;
                }
            }
            Op::DrSupport => {
                item["data"] = json!({"version": "1.0.0", "reg_records": hits.iter().map(|r| json!([r.json["disability_support"].clone()])).collect::<Vec<_>>()});
            }
            Op::DrDetails => {
                item["data"] = json!({"version": "1.0.0", "reg_type": ctx.registry.reg_type(), "reg_records": hits.iter().map(|r| json!({"disability_details": r.json["disability_details"].clone(), "disability_status": r.json["disability_status"].clone(), "disability_level": r.json["disability_level"].clone()})).collect::<Vec<_>>()});
            }
            _ => {
                let programmes: Vec<Value> = hits
                    .iter()
                    .flat_map(|r| r.json["enrolments"].as_array().cloned().unwrap_or_default())
                    .collect();
                item["enrolled_status"] = json!(if programmes.is_empty() { "no" } else { "yes" });
                item["enrolments"] = Value::Array(programmes);
            }
        }
        out.push(item);
    }
    let field = match op {
        Op::DrDisabled => "disabled_response",
        Op::IbrEnrolled => "enrolled_response",
        _ => "search_response",
    };
    let refs = out
        .iter()
        .filter_map(|i| id_string(i.get("reference_id")))
        .collect();
    Ok(Computed {
        status: header_status(&out),
        total: out.len(),
        message: json!({
            "transaction_id": ctx.req.transaction_id,
            "correlation_id": ctx.correlation_id,
            field: out,
        }),
        reference_ids: refs,
    })
}

fn enrollment_updates(ctx: &Ctx<'_>) -> Result<Computed, Reject> {
    let m = &ctx.req.message;
    let beneficiaries = m
        .pointer("/enrolled_updates/beneficiaries")
        .or_else(|| m.pointer("/receipt_information/beneficiaries"))
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| {
            Reject::bad(
                "message.enrolled_updates.beneficiaries is required (an array of Beneficiary)",
            )
        })?;
    let mut out = Vec::new();
    let mut data = ctx.state.data_mut();
    for (i, b) in beneficiaries.iter().enumerate() {
        let rid = id_string(b.get("reference_id"))
            .unwrap_or_else(|| format!("{}-{}", ctx.req.transaction_id, i + 1));
        let uin = id_string(b.pointer("/member/member_identifier"))
            .or_else(|| id_string(b.pointer("/member/demographic_info/person/identifier_value")));
        let Some(uin) = uin else {
            out.push(
                json!({"reference_id": rid, "timestamp": reply::now(), "status": "rjct",
                "status_reason_message": "member.member_identifier is required"}),
            );
            continue;
        };
        let mut attrs = serde_json::Map::new();
        attrs.insert("uin".into(), json!(uin));
        attrs.insert("person_identifier".into(), json!(uin));
        let mut record = b.clone();
        if record.get("enrolments").is_none() {
            record["enrolments"] = match b.get("programme_identifier") {
                Some(Value::Array(a)) => Value::Array(a.clone()),
                Some(v) => json!([v]),
                None => json!([]),
            };
        }
        let programmes: Vec<Value> = record["enrolments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.pointer("/programme/programme_identifier").cloned())
            .collect();
        attrs.insert("programme_identifier".into(), Value::Array(programmes));
        data.push(
            RegistryType::Ibr,
            Record {
                ids: vec![("UIN".to_owned(), uin)],
                attrs,
                events: Vec::new(),
                json: record,
            },
        );
        out.push(json!({"reference_id": rid, "timestamp": reply::now(), "status": "succ"}));
    }
    let refs = out
        .iter()
        .filter_map(|i| id_string(i.get("reference_id")))
        .collect();
    Ok(Computed {
        status: header_status(&out),
        total: out.len(),
        message: json!({
            "transaction_id": ctx.req.transaction_id,
            "correlation_id": ctx.correlation_id,
            "enrolled_response": out,
        }),
        reference_ids: refs,
    })
}

/// Drops `null` members: the specs type optional fields without `nullable`, so absent is right.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Where a spec types `reg_records` as an object (DR search, CRVS/FR txn status): the record
/// itself when there is one, `{}` when there is none, and the array when there are several,
/// which an object cannot express. Clients must accept both shapes.
fn as_object_records(records: Vec<Value>) -> Value {
    match records.len() {
        0 => json!({}),
        1 => records.into_iter().next().unwrap_or_default(),
        _ => Value::Array(records),
    }
}
