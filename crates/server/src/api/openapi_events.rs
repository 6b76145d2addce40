//! The OpenAPI paths and schemas of the events, notifications, subscriptions, transactions
//! list and webhook routes, merged into the document by `openapi::document` (kept apart: one
//! `json!` of the whole document reaches the macro recursion limit).

use serde_json::{Value, json};

use super::openapi::{body, ok, responses, schema};

fn q(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "schema": schema, "description": description })
}

fn limit() -> Value {
    q(
        "limit",
        json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
        "At most this many",
    )
}

fn id_param(description: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" }, "description": description })
}

const KINDS: [&str; 6] = [
    "notification.received",
    "search.completed",
    "transaction.failed",
    "transaction.expired",
    "subscription.changed",
    "source.state_changed",
];

/// `(path, path item)` of every route of this group.
pub(crate) fn paths() -> Vec<(&'static str, Value)> {
    let source = q(
        "source",
        json!({ "type": "string" }),
        "Only this data source's",
    );
    let endpoint_body = body(schema("WebhookEndpointInput"));
    vec![
        (
            "/events",
            json!({ "get": {
                "operationId": "listEvents",
                "summary": "Events (the outbox), oldest first, from an opaque cursor: stable under inserts (new events only come after it). Poll with next_cursor; events committed out of order on PostgreSQL can appear behind a cursor already passed, so a consumer that must see every event also reads unprocessed=true or uses webhooks",
                "parameters": [
                    q("after", json!({ "type": "string" }), "next_cursor of the previous page; omit to start at the oldest"),
                    q("kind", json!({ "type": "string" }), "Comma-separated event kinds"),
                    source.clone(),
                    q("unprocessed", json!({ "type": "boolean" }), "Only events not marked processed"),
                    q("since", json!({ "type": "string", "format": "date-time" }), "Created at or after"),
                    q("until", json!({ "type": "string", "format": "date-time" }), "Created before"),
                    limit(),
                ],
                "responses": responses("200", ok("A page", schema("EventPage")), &["422"])
            }}),
        ),
        (
            "/events/ack",
            json!({ "post": {
                "operationId": "ackEvents",
                "summary": "Mark events processed (by the consumer); unknown or already marked ids are ignored",
                "requestBody": body(json!({ "type": "object", "required": ["ids"], "additionalProperties": false, "properties": { "ids": { "type": "array", "minItems": 1, "maxItems": 1000, "items": { "type": "string" } } } })),
                "responses": responses("200", ok("How many were marked", json!({ "type": "object", "properties": { "marked": { "type": "integer" } } })), &["422"])
            }}),
        ),
        (
            "/events/{id}",
            json!({
                "parameters": [id_param("Event id (evt_…, the webhook-id)")],
                "get": {
                    "operationId": "getEvent",
                    "summary": "One event",
                    "responses": responses("200", ok("The event", schema("Event")), &["404"])
                }
            }),
        ),
        (
            "/notifications",
            json!({ "get": {
                "operationId": "listNotifications",
                "summary": "Notifications received, newest first, typed per registry (CRVS: vital events and people; others: the notify_event items as sent)",
                "parameters": [source.clone(), limit()],
                "responses": responses("200", ok("Notifications", json!({ "type": "object", "properties": { "notifications": { "type": "array", "items": schema("NotificationData") } } })), &["422"])
            }}),
        ),
        (
            "/subscriptions",
            json!({ "get": {
                "operationId": "listSubscriptions",
                "summary": "Subscriptions at the registries, with their state and event type (unsubscribe with POST /sources/{code}/unsubscribe)",
                "parameters": [source.clone(), limit()],
                "responses": responses("200", ok("Subscriptions", json!({ "type": "object", "properties": { "subscriptions": { "type": "array", "items": schema("Subscription") } } })), &["422"])
            }}),
        ),
        (
            "/transactions",
            json!({ "get": {
                "operationId": "listTransactions",
                "summary": "Stored async requests, newest first (GET /transactions/{transaction_id} has the ACK, callbacks and items)",
                "parameters": [
                    source,
                    q("state", json!({ "type": "string", "enum": ["pending", "acknowledged", "unknown", "partial", "completed", "failed", "timed_out"] }), "Only in this state"),
                    q("since", json!({ "type": "string", "format": "date-time" }), "Created at or after"),
                    q("until", json!({ "type": "string", "format": "date-time" }), "Created before"),
                    limit(),
                ],
                "responses": responses("200", ok("Transactions", json!({ "type": "object", "properties": { "transactions": { "type": "array", "items": { "type": "object" } } } })), &["422"])
            }}),
        ),
        (
            "/webhooks",
            json!({
                "get": {
                    "operationId": "listWebhooks",
                    "summary": "Webhook endpoints (secrets are never listed)",
                    "responses": responses("200", ok("Endpoints", json!({ "type": "object", "properties": { "webhooks": { "type": "array", "items": schema("WebhookEndpoint") } } })), &[])
                },
                "post": {
                    "operationId": "createWebhook",
                    "summary": "Add an endpoint (a webhook, or an AMQP sink with sink: amqp); a webhook's answer carries its signing secret (whsec_…) once — store it, it is not shown again",
                    "requestBody": endpoint_body.clone(),
                    "responses": responses("201", ok("The endpoint and, for a webhook, its secret", json!({ "allOf": [schema("WebhookEndpoint"), { "type": "object", "properties": { "secret": { "type": "string", "pattern": "^whsec_", "description": "Webhooks only" } } }] })), &["422"])
                }
            }),
        ),
        (
            "/webhooks/redeliver",
            json!({ "post": {
                "operationId": "redeliverWebhooks",
                "summary": "Queue events again (delivered or dead alike): one event by id, or a time range, to one endpoint or every enabled endpoint whose filter takes them",
                "requestBody": body(json!({ "type": "object", "additionalProperties": false, "properties": {
                    "event_id": { "type": "string" },
                    "since": { "type": "string", "format": "date-time" },
                    "until": { "type": "string", "format": "date-time", "description": "Default now" },
                    "endpoint_id": { "type": "string" } } })),
                "responses": responses("200", ok("How many deliveries were queued", json!({ "type": "object", "properties": { "queued": { "type": "integer" } } })), &["404", "422"])
            }}),
        ),
        (
            "/webhooks/{id}",
            json!({
                "parameters": [id_param("Endpoint id (wh_…)")],
                "get": {
                    "operationId": "getWebhook",
                    "summary": "One endpoint",
                    "responses": responses("200", ok("The endpoint", schema("WebhookEndpoint")), &["404"])
                },
                "put": {
                    "operationId": "updateWebhook",
                    "summary": "Change URL, kinds, enabled, description, and an AMQP sink's exchange and routing key (the secret, the sink and an AMQP sink's broker URL stay)",
                    "requestBody": endpoint_body,
                    "responses": responses("200", ok("The endpoint", schema("WebhookEndpoint")), &["404", "422"])
                },
                "delete": {
                    "operationId": "deleteWebhook",
                    "summary": "Remove an endpoint with its secret, deliveries and attempts",
                    "responses": responses("204", json!({ "description": "Deleted" }), &["404"])
                }
            }),
        ),
        (
            "/webhooks/{id}/deliveries",
            json!({
                "parameters": [id_param("Endpoint id (wh_…)")],
                "get": {
                    "operationId": "listWebhookDeliveries",
                    "summary": "Deliveries to the endpoint, newest event first; with event=…, each with its attempts (status, response code, error)",
                    "parameters": [
                        q("state", json!({ "type": "string", "enum": ["pending", "delivered", "dead"] }), "Only in this state (dead: the dead letter)"),
                        q("event", json!({ "type": "string" }), "Only this event (adds attempts_made)"),
                        limit(),
                    ],
                    "responses": responses("200", ok("Deliveries", json!({ "type": "object", "properties": { "deliveries": { "type": "array", "items": schema("WebhookDelivery") } } })), &["404", "422"])
                }
            }),
        ),
    ]
}

/// `(name, schema)` of the component schemas these routes use.
pub(crate) fn schemas() -> Vec<(&'static str, Value)> {
    let time = json!({ "type": "string", "format": "date-time" });
    let opt_text = json!({ "type": ["string", "null"] });
    vec![
        ("EventKind", json!({ "type": "string", "enum": KINDS })),
        (
            "Event",
            json!({
                "type": "object",
                "required": ["id", "kind", "created_at", "payload"],
                "properties": {
                    "id": { "type": "string", "description": "Stable id, the webhook-id of every delivery" },
                    "kind": schema("EventKind"),
                    "source_code": opt_text, "transaction_id": opt_text, "subscription_code": opt_text,
                    "created_at": time,
                    "payload": { "description": "notification.received: NotificationData; search.completed, transaction.failed, transaction.expired: the Transaction; subscription.changed: the Subscription with previous_state; source.state_changed: source_code, previous_state, state, last_error" },
                    "processed_at": { "type": ["string", "null"], "format": "date-time" }
                }
            }),
        ),
        (
            "EventPage",
            json!({
                "type": "object",
                "properties": {
                    "events": { "type": "array", "items": schema("Event") },
                    "next_cursor": { "type": ["string", "null"], "description": "Pass as after for the next page" }
                }
            }),
        ),
        (
            "NotificationData",
            json!({
                "type": "object",
                "properties": {
                    "source_code": { "type": "string" },
                    "message_id": { "type": "string" },
                    "received_at": time,
                    "signature": { "type": "string", "enum": ["not_checked", "unsigned", "verified"] },
                    "subscription_codes": { "type": "array", "items": { "type": "string" } },
                    "notification": { "type": "object", "properties": {
                        "registry_type": { "type": ["string", "null"] },
                        "events": { "type": "array", "description": "CRVS: subscription_code, kind (birth, death, …), event_type, people, raw; other registries: notify_event items as sent" } } },
                    "tolerated": { "type": "array", "items": { "type": "string" } }
                }
            }),
        ),
        (
            "Subscription",
            json!({
                "type": "object",
                "properties": {
                    "source_code": { "type": "string" }, "code": { "type": "string" },
                    "state": { "type": "string", "enum": ["subscribed", "unsubscribed", "requested", "rejected"] },
                    "event_type": opt_text, "transaction_id": opt_text,
                    "created_at": time, "updated_at": time
                }
            }),
        ),
        (
            "WebhookEndpointInput",
            json!({
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {
                    "url": { "type": "string", "format": "uri", "description": "webhook: http:// or https://, no credentials in it; amqp: the broker URL amqp://user:password@host:5672/vhost (or amqps://), sealed at rest and shown without credentials" },
                    "sink": { "type": "string", "enum": ["webhook", "amqp"], "default": "webhook", "description": "webhook: a signed POST per event; amqp: a persistent message per event to a RabbitMQ exchange, marked delivered once the broker confirms it (the event id is the message id). Does not change on update" },
                    "exchange": { "type": "string", "maxLength": 255, "description": "amqp only: the exchange (default \"\": the default exchange)" },
                    "routing_key": { "type": "string", "maxLength": 255, "description": "amqp only: the routing key (default: the event's kind)" },
                    "kinds": { "type": "array", "items": schema("EventKind"), "description": "Empty or absent: every kind" },
                    "enabled": { "type": "boolean", "default": true },
                    "description": { "type": "string" },
                    "secret": { "type": "string", "pattern": "^whsec_", "writeOnly": true, "description": "Create only: the signing secret if you have one (base64 of 24+ bytes after whsec_); absent: one is generated and returned once" }
                }
            }),
        ),
        (
            "WebhookEndpoint",
            json!({
                "type": "object",
                "properties": {
                    "id": { "type": "string" }, "url": { "type": "string" },
                    "sink": { "type": "string", "enum": ["webhook", "amqp"] },
                    "exchange": { "type": "string" }, "routing_key": { "type": ["string", "null"] },
                    "kinds": { "type": "array", "items": schema("EventKind") },
                    "enabled": { "type": "boolean" }, "description": opt_text,
                    "created_at": time, "updated_at": time
                }
            }),
        ),
        (
            "WebhookDelivery",
            json!({
                "type": "object",
                "properties": {
                    "endpoint_id": { "type": "string" }, "event_id": { "type": "string" },
                    "event_kind": schema("EventKind"),
                    "state": { "type": "string", "enum": ["pending", "delivered", "dead"] },
                    "attempts": { "type": "integer" },
                    "next_attempt_at": time,
                    "last_status": { "type": ["integer", "null"] },
                    "last_error": opt_text,
                    "created_at": time,
                    "delivered_at": { "type": ["string", "null"], "format": "date-time" },
                    "attempts_made": { "type": "array", "items": { "type": "object", "properties": {
                        "attempt": { "type": "integer" }, "at": time,
                        "status": { "type": ["integer", "null"] }, "error": opt_text,
                        "duration_ms": { "type": "integer" } } } }
                }
            }),
        ),
    ]
}
