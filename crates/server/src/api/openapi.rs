//! The OpenAPI 3.1 document of the gateway API, written by hand beside the route table and
//! checked against it by a test (`every_route_is_documented`).

use axum::Json;
use serde_json::{Value, json};

/// `GET /api/v1/openapi.json`.
pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}

fn err_ref() -> Value {
    json!({ "$ref": "#/components/responses/Error" })
}

fn errors(codes: &[&str]) -> serde_json::Map<String, Value> {
    codes.iter().map(|c| ((*c).to_owned(), err_ref())).collect()
}

pub(super) fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

pub(super) fn responses(ok_code: &str, ok_body: Value, err_codes: &[&str]) -> Value {
    let mut m = errors(err_codes);
    m.insert(ok_code.to_owned(), ok_body);
    m.insert("401".into(), err_ref());
    m.insert("403".into(), err_ref());
    Value::Object(m)
}

pub(super) fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn code_param() -> Value {
    json!({ "name": "code", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[a-z0-9_]+$" }, "description": "Data source code" })
}

fn wait_secs() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": 300, "description": "Async only: wait up to this many seconds (less than the server's request timeout, default 60 s) for the callback and include the completed transaction (504 with the transaction id if it does not arrive in time)" })
}

pub(super) fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The typed registry endpoints merged from `registries::router()`: method, path, summary,
/// and the body schema for POSTs (GETs take `?id=TYPE:VALUE[&via_search=true]`, except
/// `crvs/events`).
pub(crate) const REGISTRY_ROUTES: &[(&str, &str, &str)] = &[
    (
        "get",
        "/sources/{code}/crvs/person",
        "CRVS: the person with this identifier",
    ),
    (
        "get",
        "/sources/{code}/crvs/verify-birth",
        "CRVS: whether a birth is registered",
    ),
    (
        "get",
        "/sources/{code}/crvs/check-death",
        "CRVS: whether a death is registered",
    ),
    (
        "get",
        "/sources/{code}/crvs/events",
        "CRVS: vital events of a kind in a date range",
    ),
    (
        "post",
        "/sources/{code}/crvs/subscribe",
        "CRVS: subscribe to event types",
    ),
    ("get", "/sources/{code}/dr/status", "DR: disability status"),
    (
        "get",
        "/sources/{code}/dr/details",
        "DR: disability details",
    ),
    (
        "get",
        "/sources/{code}/dr/support",
        "DR: disability support",
    ),
    (
        "get",
        "/sources/{code}/ibr/enrolled",
        "IBR: enrolments of a person",
    ),
    (
        "post",
        "/sources/{code}/ibr/dedupe",
        "IBR: which identifiers are already enrolled (fails closed)",
    ),
    (
        "post",
        "/sources/{code}/ibr/enrolments",
        "IBR: push enrolment updates",
    ),
    (
        "get",
        "/sources/{code}/social/group",
        "Social registry: the group (household) of a person",
    ),
    (
        "get",
        "/sources/{code}/social/member",
        "Social registry: a member",
    ),
    (
        "get",
        "/sources/{code}/fr/farmer",
        "Farmer registry: a farmer",
    ),
];

fn registry_operation(method: &str, path: &str, summary: &str) -> Value {
    let op_id: String = path
        .trim_start_matches("/sources/{code}/")
        .split(['/', '-'])
        .enumerate()
        .map(|(i, w)| {
            let mut c = w.chars();
            match (i, c.next()) {
                (0, Some(f)) => f.to_string() + c.as_str(),
                (_, Some(f)) => f.to_uppercase().collect::<String>() + c.as_str(),
                _ => String::new(),
            }
        })
        .collect();
    let found = ok(
        "outcome found, with the typed answer",
        json!({ "type": "object", "properties": { "outcome": { "const": "found" } } }),
    );
    let mut op = json!({
        "operationId": op_id,
        "summary": summary,
        "responses": responses("200", found, &["404", "422", "502", "503", "504"]),
    });
    op["responses"]["404"] = json!({
        "description": "The registry answered and had nothing (`\"outcome\": \"not_found\"`), or no such source (the API's error shape)",
        "content": { "application/json": { "schema": { "type": "object" } } }
    });
    if method == "get" {
        op["parameters"] = if path.ends_with("/crvs/events") {
            json!([
                { "name": "kind", "in": "query", "schema": { "type": "string" }, "description": "event type, e.g. LiveBirth" },
                { "name": "from", "in": "query", "schema": { "type": "string", "format": "date" } },
                { "name": "to", "in": "query", "schema": { "type": "string", "format": "date" } }
            ])
        } else {
            json!([
                { "name": "id", "in": "query", "required": true, "schema": { "type": "string" }, "description": "TYPE:VALUE, e.g. UIN:1234567890" },
                { "name": "via_search", "in": "query", "schema": { "type": "boolean", "default": false } }
            ])
        };
    } else {
        let (field, items) = match path.rsplit('/').next() {
            Some("subscribe") => ("types", json!({ "type": "string" })),
            Some("dedupe") => ("ids", json!({ "type": "string" })),
            _ => ("beneficiaries", json!({ "type": "object" })),
        };
        op["requestBody"] = body(json!({
            "type": "object", "required": [field],
            "properties": { field: { "type": "array", "items": items } }
        }));
    }
    op
}

/// The document.
pub(crate) fn document() -> Value {
    let mut doc = core_document();
    for (path, item) in super::openapi_events::paths() {
        doc["paths"][path] = item;
    }
    for (path, item) in super::openapi_users::paths() {
        doc["paths"][path] = item;
    }
    for (path, item) in super::openapi_jobs::paths() {
        doc["paths"][path] = item;
    }
    for (name, s) in super::openapi_events::schemas() {
        doc["components"]["schemas"][name] = s;
    }
    for (method, path, summary) in REGISTRY_ROUTES {
        let item = &mut doc["paths"][*path];
        if item.is_null() {
            *item = json!({ "parameters": [code_param()] });
        }
        item[*method] = registry_operation(method, path, summary);
    }
    doc
}

fn core_document() -> Value {
    let registry_errs = ["404", "422", "502", "503", "504"];
    // Kept apart: one json! this size reaches the macro recursion limit.
    let callbacks_input = json!({ "type": "object", "additionalProperties": false, "properties": {
                            "accept_unauthenticated": { "type": ["boolean", "null"], "description": "Accept callbacks that are neither signed nor carry the callback secret (default false; unsafe)" },
                            "http_refusals": { "type": ["boolean", "null"], "description": "Answer DCI-level callback refusals (bad signature, unknown transaction, wrong sender, malformed message) with HTTP 4xx instead of HTTP 200 + ACK ERR (default false)" },
                            "secret": { "type": ["string", "null"], "description": "Write-only: left out or ******** keeps (or, for a new source, generates) it; otherwise 32+ characters of A-Z a-z 0-9 - _" },
                            "url": { "type": ["string", "null"], "description": "Read-only: ignored on input" } } });
    let recovery_input = json!({ "type": "object", "additionalProperties": false,
                            "description": "When a result that has not come is asked for (txn-status) and when it is given up (expired)",
                            "properties": {
                            "callback_within_secs": { "type": "integer", "minimum": 1, "maximum": 2592000, "description": "Expected callback time (default 30)" },
                            "poll_interval_secs": { "type": "integer", "minimum": 1, "maximum": 2592000, "description": "Ask again after (default 30)" },
                            "give_up_after_secs": { "type": "integer", "minimum": 1, "maximum": 2592000, "description": "Mark expired after (default 3600; at least callback_within_secs)" } } });
    let retry_input = json!({ "type": "object", "additionalProperties": false,
                            "description": "Retries of idempotent calls (defaults: the server's)",
                            "properties": {
                            "max_retries": { "type": ["integer", "null"], "minimum": 0, "maximum": 10 },
                            "quota": { "type": ["integer", "null"], "minimum": 0, "maximum": 100000 } } });
    let limits_input = json!({ "type": "object", "additionalProperties": false,
                            "description": "How hard this registry may be driven: calls in flight, a rate limit (token bucket), identifiers per envelope in bulk runs, and the circuit breaker",
                            "properties": {
                            "max_concurrency": { "type": ["integer", "null"], "minimum": 1, "maximum": 256, "description": "Calls in flight at once (default 4)" },
                            "rate_per_sec": { "type": ["integer", "null"], "minimum": 1, "maximum": 100000, "description": "Requests per second (default: no limit)" },
                            "burst": { "type": ["integer", "null"], "minimum": 1, "maximum": 100000, "description": "Token-bucket burst (default: the rate)" },
                            "max_batch_size": { "type": ["integer", "null"], "minimum": 1, "maximum": 1000, "description": "Identifiers per search envelope (default 100)" },
                            "breaker_failures": { "type": ["integer", "null"], "minimum": 0, "maximum": 1000, "description": "Consecutive transient failures that open the circuit breaker; 0: none (default 5)" },
                            "breaker_cooldown_secs": { "type": ["integer", "null"], "minimum": 1, "maximum": 3600, "description": "Seconds open before one probe (default 30)" } } });
    let callbacks_output = json!({ "type": "object", "properties": {
                            "accept_unauthenticated": { "type": "boolean" },
                            "http_refusals": { "type": "boolean" },
                            "secret": { "type": "string", "description": "******** when the source has a callback secret" },
                            "url": { "type": "string", "description": "Only on creation, on reveal_callback_url=true and on regenerate_callback_secret=true: the URL registries post callbacks to, secret included" } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "dci gateway API",
            "version": "1.0.0",
            "description": "JSON gateway of `dci serve`: data sources, DCI operations (search, subscribe, unsubscribe, txn status), transactions and the audit log. Every operation needs `Authorization: Bearer <admin token>` (DCI_ADMIN_TOKEN, or the token printed on first start). A registry's ERR/rjct answer is an error with the registry's `code` and `message`, never a success. Errors: 4xx for the caller's mistakes (422 names the fields), 502 when the registry failed or refused our credentials, 504 when it timed out."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "adminToken": [] }],
        "paths": {
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document (no token needed)",
                    "security": [],
                    "responses": { "200": ok("The OpenAPI document", json!({ "type": "object" })) }
                }
            },
            "/sources": {
                "get": {
                    "operationId": "listSources",
                    "summary": "List data sources (secrets masked)",
                    "parameters": [
                        { "name": "registry_type", "in": "query", "schema": { "type": "string", "enum": ["crvs", "dr", "ibr", "social", "fr"] } },
                        { "name": "state", "in": "query", "schema": { "type": "string", "enum": ["draft", "testing", "active", "error"] } },
                        { "name": "active", "in": "query", "schema": { "type": "boolean" } }
                    ],
                    "responses": responses("200", ok("Data sources", json!({ "type": "object", "properties": { "sources": { "type": "array", "items": schema("DataSource") } } })), &["422"])
                },
                "post": {
                    "operationId": "createSource",
                    "summary": "Create a data source (secrets are write-only); the answer shows callbacks.url, the callback URL with its generated secret, this once",
                    "requestBody": body(schema("DataSourceInput")),
                    "responses": responses("201", ok("Created", schema("DataSource")), &["400", "409", "422"])
                }
            },
            "/sources/{code}": {
                "parameters": [code_param()],
                "get": {
                    "operationId": "getSource",
                    "summary": "One data source (secrets masked); with reveal_callback_url=true also callbacks.url, the callback URL with the source's callback secret",
                    "parameters": [{ "name": "reveal_callback_url", "in": "query", "schema": { "type": "boolean", "default": false } }],
                    "responses": responses("200", ok("The data source", schema("DataSource")), &["404"])
                },
                "put": {
                    "operationId": "updateSource",
                    "summary": "Replace a data source; a secret left out or sent as ******** keeps the stored one; with regenerate_callback_secret=true the callback secret is replaced and the answer shows the new callbacks.url",
                    "parameters": [{ "name": "regenerate_callback_secret", "in": "query", "schema": { "type": "boolean", "default": false } }],
                    "requestBody": body(schema("DataSourceInput")),
                    "responses": responses("200", ok("Updated", schema("DataSource")), &["400", "404", "409", "422"])
                },
                "delete": {
                    "operationId": "deleteSource",
                    "summary": "Delete a data source with its secrets and cached token",
                    "responses": responses("204", json!({ "description": "Deleted" }), &["404"])
                }
            },
            "/sources/{code}/test": {
                "parameters": [code_param()],
                "post": {
                    "operationId": "testSource",
                    "summary": "Staged connection test (DNS, connect, token, ping, optional probe search, callback)",
                    "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "probe_search": { "type": "boolean", "default": false } }, "additionalProperties": false } } } },
                    "responses": responses("200", ok("The report (`ok` says whether it passed)", schema("TestReport")), &["404", "422"])
                }
            },
            "/sources/{code}/search": {
                "parameters": [code_param()],
                "post": {
                    "operationId": "search",
                    "summary": "Search, synchronously (typed result) or asynchronously (ACK and ids)",
                    "requestBody": body(schema("SearchRequest")),
                    "responses": responses("200", ok("sync: the typed result; async: the ACK", json!({ "oneOf": [schema("SearchResult"), schema("AsyncAccepted")] })), &registry_errs)
                }
            },
            "/sources/{code}/subscribe": {
                "parameters": [code_param()],
                "post": {
                    "operationId": "subscribe",
                    "summary": "Subscribe to registry events (async; the on-subscribe callback carries the codes)",
                    "requestBody": body(json!({ "type": "object", "required": ["event_type"], "properties": { "event_type": { "type": "string" }, "filter": {}, "wait_secs": wait_secs() }, "additionalProperties": false })),
                    "responses": responses("200", ok("The ACK", schema("AsyncAccepted")), &registry_errs)
                }
            },
            "/sources/{code}/unsubscribe": {
                "parameters": [code_param()],
                "post": {
                    "operationId": "unsubscribe",
                    "summary": "Cancel subscriptions (async)",
                    "requestBody": body(json!({ "type": "object", "required": ["subscription_codes"], "properties": { "subscription_codes": { "type": "array", "minItems": 1, "items": { "type": "string" } }, "wait_secs": wait_secs() }, "additionalProperties": false })),
                    "responses": responses("200", ok("The ACK", schema("AsyncAccepted")), &registry_errs)
                }
            },
            "/sources/{code}/txn-status": {
                "parameters": [code_param()],
                "post": {
                    "operationId": "txnStatus",
                    "summary": "Ask the registry for the status of a transaction (sync: its answer; async: the ACK)",
                    "requestBody": body(json!({ "type": "object", "required": ["transaction_id"], "properties": { "transaction_id": { "type": "string", "maxLength": 99 }, "mode": { "type": "string", "enum": ["sync", "async"], "default": "sync" } }, "additionalProperties": false })),
                    "responses": responses("200", ok("The registry's txn status", json!({ "type": "object" })), &registry_errs)
                }
            },
            "/transactions/{transaction_id}": {
                "parameters": [{ "name": "transaction_id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "get": {
                    "operationId": "getTransaction",
                    "summary": "A stored async transaction: state, ACK, callbacks, results",
                    "responses": responses("200", ok("The transaction", schema("Transaction")), &["404"])
                }
            },
            "/audit": {
                "get": {
                    "operationId": "audit",
                    "summary": "The audit log of calls to registries, newest first (no payloads, no secrets)",
                    "parameters": [
                        { "name": "source", "in": "query", "schema": { "type": "string" } },
                        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }
                    ],
                    "responses": responses("200", ok("Entries", json!({ "type": "object", "properties": { "entries": { "type": "array", "items": schema("AuditEntry") } } })), &["422"])
                }
            }
        },
        "components": {
            "securitySchemes": {
                "adminToken": { "type": "http", "scheme": "bearer", "description": "DCI_ADMIN_TOKEN, or the token printed once on first start" }
            },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": { "application/json": { "schema": schema("Error") } }
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["kind", "message"],
                            "properties": {
                                "kind": { "type": "string", "description": "unauthorized, too_many_requests (failed admin-token attempts from this address: wait Retry-After seconds), not_found, method_not_allowed, bad_request (a path or query parameter names itself in fields, pointer /path/NAME or /query/NAME), unsupported_media_type, too_large, request_timeout, invalid_input, conflict, registry_rejected, registry_auth, registry_timeout, registry_unavailable, source_config, timeout, outcome_unknown (an async request whose reply was lost: look transaction_id up, do not resend), unavailable, internal" },
                                "retry_after_secs": { "type": "integer", "description": "too_many_requests: seconds until this address may try again (also the Retry-After header)" },
                                "message": { "type": "string" },
                                "code": { "type": "string", "description": "The registry's code (e.g. rjct.reference_id.invalid) when it gave one" },
                                "registry": { "type": "object", "properties": { "code": { "type": ["string", "null"] }, "message": { "type": ["string", "null"] } } },
                                "fields": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "pointer": { "type": "string" }, "message": { "type": "string" } } } },
                                "hint": { "type": "string" }
                            }
                        }
                    }
                },
                "DataSourceInput": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["code", "name", "registry_type", "base_url"],
                    "properties": {
                        "code": { "type": "string", "pattern": "^[a-z0-9_]+$" },
                        "name": { "type": "string" },
                        "registry_type": { "type": "string", "enum": ["crvs", "dr", "ibr", "social", "fr"] },
                        "base_url": { "type": "string", "format": "uri" },
                        "auth": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "type": { "type": "string", "enum": ["none", "bearer", "basic", "oauth2"] },
                                "bearer_token": { "type": "string", "writeOnly": true },
                                "username": { "type": "string" },
                                "password": { "type": "string", "writeOnly": true },
                                "token_url": { "type": "string", "format": "uri" },
                                "client_id": { "type": "string" },
                                "client_secret": { "type": "string", "writeOnly": true },
                                "scope": { "type": ["string", "null"] },
                                "credential_location": { "type": "string", "enum": ["body", "basic", "query", "json"] }
                            }
                        },
                        "sender_id": { "type": ["string", "null"] },
                        "receiver_id": { "type": ["string", "null"] },
                        "callback_uri": { "type": ["string", "null"], "format": "uri", "description": "Base of our callback routes, e.g. http://127.0.0.1:8080/callback/crvs_main" },
                        "endpoints": { "type": "object", "additionalProperties": false, "properties": {
                            "sync_search": { "type": "string" }, "search": { "type": "string" }, "subscribe": { "type": "string" },
                            "unsubscribe": { "type": "string" }, "txn_status": { "type": "string" }, "sync_txn_status": { "type": "string" } } },
                        "tls": { "type": "object", "additionalProperties": false, "properties": {
                            "verify": { "type": "boolean" }, "ca_file": { "type": ["string", "null"] },
                            "client_cert_file": { "type": ["string", "null"] }, "client_key_file": { "type": ["string", "null"] } } },
                        "timeout_secs": { "type": "integer", "minimum": 1, "maximum": 3600 },
                        "signing_key_id": { "type": ["string", "null"] },
                        "reply_signature_policy": { "type": "string", "enum": ["off", "if-present", "require"] },
                        "registry_public_keys": { "type": "array", "items": { "type": "string" } },
                        "registry_jwks_url": { "type": ["string", "null"], "format": "uri" },
                        "profile": { "type": "string", "description": "standard (default), or opencrvs, opencrvs-1.5, opencrvs-1.3 for CRVS sources" },
                        "callbacks": callbacks_input,
                        "recovery": recovery_input,
                        "retry": retry_input,
                        "limits": limits_input,
                        "active": { "type": "boolean" },
                        "notes": { "type": ["string", "null"] }
                    }
                },
                "DataSource": {
                    "type": "object",
                    "description": "A data source as stored; every secret is shown as ********",
                    "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "code": { "type": "string" }, "name": { "type": "string" },
                        "registry_type": { "type": "string" }, "base_url": { "type": "string" },
                        "auth": { "type": "object" }, "state": { "type": "string", "enum": ["draft", "testing", "active", "error"] },
                        "callbacks": callbacks_output,
                        "active": { "type": "boolean" }, "last_test_at": { "type": ["string", "null"] },
                        "last_error": { "type": ["string", "null"] }, "created_at": { "type": "string" }, "updated_at": { "type": "string" }
                    }
                },
                "TestReport": {
                    "type": "object",
                    "properties": {
                        "source": { "type": "string" }, "ok": { "type": "boolean" }, "verified": { "type": "boolean" },
                        "state": { "type": "string" }, "tested_at": { "type": "string" }, "duration_ms": { "type": "integer" },
                        "summary": { "type": "string" },
                        "stages": { "type": "array", "items": { "type": "object", "properties": {
                            "stage": { "type": "string" }, "label": { "type": "string" }, "status": { "type": "string", "enum": ["pass", "warn", "fail", "skipped"] },
                            "duration_ms": { "type": "integer" }, "message": { "type": "string" }, "error_class": { "type": ["string", "null"] } } } }
                    }
                },
                "SearchRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["query_type", "query"],
                    "properties": {
                        "query_type": { "type": "string", "enum": ["idtype-value", "expression", "predicate"] },
                        "query": { "description": "idtype-value: {\"type\": \"UIN\", \"value\": \"…\"} or \"UIN:…\"; expression: a Mongo-style object; predicate: an array of conditions" },
                        "record_type": { "type": "string" },
                        "reg_event_type": { "type": "string" },
                        "page": { "type": "integer", "minimum": 1 },
                        "page_size": { "type": "integer", "minimum": 1 },
                        "mode": { "type": "string", "enum": ["sync", "async"], "default": "sync" },
                        "wait_secs": wait_secs()
                    }
                },
                "SearchResult": { "type": "object", "description": "The typed result: per-item status, reason, records (as the registry sent them), pagination, and raw: the rest of the item as received" },
                "AsyncAccepted": {
                    "type": "object",
                    "required": ["ack_status", "transaction_id"],
                    "properties": {
                        "ack_status": { "type": "string", "enum": ["ACK", "NACK"] },
                        "correlation_id": { "type": ["string", "null"] },
                        "transaction_id": { "type": "string" },
                        "message_id": { "type": "string" },
                        "state": { "type": "string" },
                        "transaction": { "allOf": [schema("Transaction")], "description": "With wait_secs: the completed transaction" }
                    }
                },
                "Transaction": {
                    "type": "object",
                    "properties": {
                        "transaction_id": { "type": "string" }, "source": { "type": "string" }, "kind": { "type": "string" },
                        "state": { "type": "string", "enum": ["pending", "acknowledged", "partial", "completed", "failed", "timed_out"] },
                        "ack": { "type": ["object", "null"] }, "callbacks": { "type": "array", "items": { "type": "object" } },
                        "results": {}
                    }
                },
                "AuditEntry": {
                    "type": "object",
                    "properties": {
                        "at": { "type": "string" }, "source": { "type": "string" }, "endpoint": { "type": "string" },
                        "action": { "type": "string" }, "message_id": { "type": ["string", "null"] },
                        "transaction_id": { "type": ["string", "null"] }, "http_status": { "type": ["integer", "null"] },
                        "outcome": { "type": "string" }, "duration_ms": { "type": "integer" }, "attempt": { "type": "integer" },
                        "error": { "type": ["string", "null"] }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "delete", "patch"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let mut routed: BTreeSet<(String, String)> = crate::api::routes()
            .into_iter()
            .map(|(m, p, _, _)| (m.to_string(), p.to_owned()))
            .collect();
        for (m, p) in crate::api::PUBLIC_ROUTES {
            routed.insert((m.to_string(), (*p).to_owned()));
        }
        for (m, p, _) in REGISTRY_ROUTES {
            routed.insert((m.to_uppercase(), (*p).to_owned()));
        }
        assert_eq!(routed, documented);
    }

    #[test]
    fn registry_routes_carry_their_inputs() {
        let doc = document();
        let sub = &doc["paths"]["/sources/{code}/crvs/subscribe"]["post"];
        let props = &sub["requestBody"]["content"]["application/json"]["schema"]["properties"];
        assert!(props["types"].is_object(), "{sub}");
        let person = &doc["paths"]["/sources/{code}/crvs/person"]["get"];
        assert_eq!(person["parameters"][0]["name"], "id");
        assert_eq!(person["operationId"], "crvsPerson");
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = piece.split('"').next().unwrap();
            let mut node = &doc["components"];
            for part in target.split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "dangling $ref {target}");
        }
    }
}
