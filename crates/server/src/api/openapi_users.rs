//! The OpenAPI paths of the users, `me` and change-audit routes, merged into the document by
//! `openapi::document` (kept apart like `openapi_events`).

use serde_json::{Value, json};

use super::openapi::{body, ok, responses};

fn q(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "schema": schema, "description": description })
}

fn range() -> [Value; 2] {
    [
        q(
            "since",
            json!({ "type": "string", "format": "date-time" }),
            "From this instant on (RFC 3339, inclusive)",
        ),
        q(
            "until",
            json!({ "type": "string", "format": "date-time" }),
            "Before this instant (RFC 3339, exclusive)",
        ),
    ]
}

fn user() -> Value {
    json!({ "type": "object", "properties": {
        "id": { "type": "string", "format": "uuid" },
        "username": { "type": "string" },
        "role": { "type": "string", "enum": ["viewer", "operator", "admin"] },
        "created_at": { "type": "string", "format": "date-time" },
        "updated_at": { "type": "string", "format": "date-time" }
    } })
}

fn change() -> Value {
    json!({ "type": "object", "properties": {
        "at": { "type": "string", "format": "date-time" },
        "actor": { "type": "string", "description": "user:NAME, admin-token, readonly-token or cli" },
        "target": { "type": "string", "enum": ["data_source", "webhook", "signing_key", "user", "api_token", "schedule"] },
        "target_id": { "type": "string" },
        "action": { "type": "string", "description": "create, update, delete, activate, revoke, …" },
        "fields": { "type": "array", "items": { "type": "string" }, "description": "The fields changed, by name (never a value)" }
    } })
}

/// `(path, path item)` of every route of this group.
pub(crate) fn paths() -> Vec<(&'static str, Value)> {
    let [since, until] = range();
    vec![
        (
            "/audit/changes",
            json!({ "get": {
                "operationId": "auditChanges",
                "summary": "The change audit: who changed which data source, webhook, key, user or token, when, and which fields (names only), newest first (viewer)",
                "parameters": [since, until,
                    q("target", json!({ "type": "string", "enum": ["data_source", "webhook", "signing_key", "user", "api_token", "schedule"] }), "Only changes of this kind of thing"),
                    q("limit", json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }), "At most this many")],
                "responses": responses("200", ok("Changes", json!({ "type": "object", "properties": { "changes": { "type": "array", "items": change() } } })), &["422"])
            } }),
        ),
        (
            "/audit/export",
            json!({ "get": {
                "operationId": "auditExport",
                "summary": "Every record of the audit log of outgoing calls (log=calls) or of the change audit (log=changes) in a time range, oldest first, as JSON Lines or CSV (viewer)",
                "parameters": [since, until,
                    q("format", json!({ "type": "string", "enum": ["jsonl", "csv"], "default": "jsonl" }), "JSON Lines or CSV (a header row)"),
                    q("log", json!({ "type": "string", "enum": ["calls", "changes"], "default": "calls" }), "Which log")],
                "responses": responses("200", json!({ "description": "The export", "content": {
                    "application/x-ndjson": { "schema": { "type": "string" } },
                    "text/csv": { "schema": { "type": "string" } }
                } }), &["422"])
            } }),
        ),
        (
            "/users",
            json!({
                "get": {
                    "operationId": "listUsers",
                    "summary": "Named users and their roles (admin)",
                    "responses": responses("200", ok("Users", json!({ "type": "object", "properties": { "users": { "type": "array", "items": user() } } })), &[])
                },
                "post": {
                    "operationId": "createUser",
                    "summary": "Add a named user; the password (12+ characters) is stored only as an argon2 hash (admin)",
                    "requestBody": body(json!({ "type": "object", "additionalProperties": false,
                        "required": ["username", "role", "password"], "properties": {
                        "username": { "type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$" },
                        "role": { "type": "string", "enum": ["viewer", "operator", "admin"] },
                        "password": { "type": "string", "minLength": 12, "writeOnly": true }
                    } })),
                    "responses": responses("201", ok("The user", user()), &["400", "409", "422"])
                }
            }),
        ),
        (
            "/users/{username}",
            json!({ "delete": {
                "operationId": "deleteUser",
                "summary": "Remove a user with their tokens and console sessions (admin)",
                "parameters": [{ "name": "username", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": responses("204", json!({ "description": "Removed" }), &["404"])
            } }),
        ),
        (
            "/me",
            json!({ "get": {
                "operationId": "me",
                "summary": "Who this token acts as: actor and role (viewer)",
                "responses": responses("200", ok("The caller", json!({ "type": "object", "properties": {
                    "actor": { "type": "string" },
                    "role": { "type": "string", "enum": ["viewer", "operator", "admin"] },
                    "may": { "type": "string" }
                } })), &[])
            } }),
        ),
    ]
}
