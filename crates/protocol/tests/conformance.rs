//! Every envelope kind the client sends, for every registry, validated against that
//! registry's request schema in the official specs (errata applied, see ERRATA.md); callbacks
//! built by `CallbackBuilder` validated against the SP endpoints' schemas; the specs' own
//! examples parsed by the inbound types.

use dci_protocol::RegistryType;
use dci_protocol::build::{
    CallbackBuilder, Endpoint, RequestBuilder, SearchItem, SubscribeItem, TxnLookup,
};
use dci_protocol::codes::{
    Condition, Operator, QueryType, RequestStatus, ResponseEntity, SortOrder, SubscriptionStatus,
    TxnType,
};
use dci_protocol::conformance::{
    example_from_schema, request_schema, response_schema, validate_request, validate_response,
};
use dci_protocol::envelope::{AckResponse, Envelope};
use dci_protocol::message::{
    GetDisabilitySupportResponse, NotifyEvent, NotifyEventRequest, PredicateClause,
    PredicateExpression, Query, RegRecords, SearchData, SearchResponse, SearchResponseItem,
    StatusListResponse, SubscribeResponse, SubscribeResponseItem, SubscriptionCodeStatus,
    SubscriptionInfo, TxnStatusResponse, TxnStatusResponseBody, UnsubscribeResponse,
};
use dci_protocol::signature::{Algorithm, Signer, SigningKey};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
}

fn rb(r: RegistryType) -> RequestBuilder {
    RequestBuilder::new(r, "spmis.example")
        .receiver_id("registry.example")
        .sender_uri("https://spmis.example/registry/on-search")
        .meta(json!({"purpose": "test"}))
        .at(now())
}

fn assert_valid(r: RegistryType, path: &str, body: &Value) {
    if let Err(errors) = validate_request(r, path, body) {
        panic!(
            "{r} {path} rejected:\n  {}\nbody: {}",
            errors.join("\n  "),
            serde_json::to_string_pretty(body).unwrap()
        );
    }
}

fn predicate() -> Query {
    Query::Predicate(vec![PredicateClause {
        seq_num: Some(json!(1)),
        expression1: PredicateExpression {
            attribute_name: "age".into(),
            operator: Operator::Lt,
            attribute_value: json!("25"),
        },
        condition: Some(Condition::And),
        expression2: Some(PredicateExpression {
            attribute_name: "poverty_score".into(),
            operator: Operator::Lt,
            attribute_value: json!(2.5),
        }),
    }])
}

fn expression() -> Query {
    let mut value = Map::new();
    value.insert(
        "expression".into(),
        json!({"collection": "Group", "query": {"$and": [{"poverty_score": {"$lt": 5}}]}}),
    );
    Query::Expression {
        expression_type: "ns:org:QueryType:expression".into(),
        value,
    }
}

fn search_items(r: RegistryType) -> Vec<SearchItem> {
    let consent = json!({"@context": "https://schema.spdci.org/common/v1/api-schemas/Consent.jsonld",
        "@type": "Consent", "ts": "2025-01-01T00:00:00Z",
        "purpose": {"text": "eligibility", "code": "xyz", "ref_uri": "https://example.org/purpose"}});
    let mut items = vec![
        SearchItem::new(Query::id("UIN", "1234567890"))
            .record_type("Person")
            .page(1, 10)
            .locale("eng")
            .sort("birth_date", SortOrder::Desc)
            .consent(consent.clone())
            .authorize(json!({"@type": "Authorize", "ts": "2025-01-01T00:00:00Z"})),
        SearchItem::new(expression()).page(2, 100),
        SearchItem::new(predicate()),
        SearchItem::new(Query::id("BRN", 42)).event_type("LiveBirth"),
    ];
    if r.allows_graphql() {
        items.push(SearchItem::new(Query::Graphql {
            expression_type: "ns:org:QueryType:graphql".into(),
            expression: "query { person(id: \"1\") { name } }".into(),
        }));
    }
    if r == RegistryType::Social {
        items.push(SearchItem::new(Query::id("UIN", "1")).response_entity(ResponseEntity::Group));
    }
    items
}

fn subscribe_items(r: RegistryType) -> Vec<SubscribeItem> {
    let event = if r == RegistryType::Dr {
        "REGISTER"
    } else if r == RegistryType::Crvs {
        "LiveBirth"
    } else {
        "REGISTER"
    };
    vec![
        SubscribeItem::new(event, Query::id("UIN", "1"), "Person")
            .frequency(now(), now() + time::Duration::days(30), "0 0 0 5,15 * ? *")
            .locale("eng"),
        SubscribeItem::new(event, expression(), "spdci-extensions-dci:Member"),
        SubscribeItem::new(event, predicate(), "Person"),
    ]
}

fn all_requests(r: RegistryType) -> Vec<(Endpoint, Value)> {
    let mut out = vec![
        (
            Endpoint::Search,
            rb(r).search(search_items(r)).unwrap().to_value(),
        ),
        (
            Endpoint::SyncSearch,
            rb(r).sync_search(search_items(r)).unwrap().to_value(),
        ),
        (
            Endpoint::Subscribe,
            rb(r).subscribe(subscribe_items(r)).unwrap().to_value(),
        ),
        (
            Endpoint::Unsubscribe,
            rb(r).unsubscribe(["sub-1", "sub-2"]).unwrap().to_value(),
        ),
    ];
    if r.has_txn_status() {
        let crvs_like = matches!(r, RegistryType::Crvs | RegistryType::Fr);
        let mut lookups = vec![
            (TxnType::Search, TxnLookup::TransactionId("txn-1".into())),
            (
                TxnType::Subscribe,
                TxnLookup::ReferenceIds(vec!["r1".into(), "r2".into()]),
            ),
            (TxnType::Search, TxnLookup::CorrelationId("corr-1".into())),
        ];
        if crvs_like {
            lookups.push((
                TxnType::Unsubscribe,
                TxnLookup::SubscriptionCodes(vec!["sub-1".into()]),
            ));
        } else {
            lookups.push((TxnType::Receipt, TxnLookup::TransactionId("txn-2".into())));
        }
        for (t, l) in lookups {
            out.push((
                Endpoint::TxnStatus,
                rb(r).txn_status(t.clone(), l.clone()).unwrap().to_value(),
            ));
            out.push((
                Endpoint::SyncTxnStatus,
                rb(r).sync_txn_status(t, l).unwrap().to_value(),
            ));
        }
    }
    let q = |v: Value| v.as_object().unwrap().clone();
    if r == RegistryType::Dr {
        let query = q(json!({"member.member_identifier": {"eq": "ABC451123"}}));
        out.push((
            Endpoint::DrDisabled,
            rb(r)
                .dr_disabled(QueryType::Expression, query.clone())
                .unwrap()
                .to_value(),
        ));
        out.push((
            Endpoint::DrDisabilitySupport,
            rb(r)
                .dr_disability_support(
                    QueryType::IdTypeValue,
                    q(json!({"type": "UIN", "value": "1"})),
                )
                .unwrap()
                .to_value(),
        ));
        out.push((
            Endpoint::DrDisabilityDetails,
            rb(r)
                .dr_disability_details(QueryType::Expression, query)
                .unwrap()
                .to_value(),
        ));
    }
    if r == RegistryType::Ibr {
        let query = q(
            json!({"attribute_name": "person_identifier", "operator": "eq", "attribute_value": "847951632"}),
        );
        out.push((
            Endpoint::IbrEnrolled,
            rb(r)
                .ibr_enrolled(QueryType::Predicate, query, Some(ResponseEntity::Member))
                .unwrap()
                .to_value(),
        ));
        let beneficiary = json!({"member": {"member_identifier": "M-1"}, "programme_identifier": {"programme": {"programme_identifier": "P1"}}});
        out.push((
            Endpoint::IbrEnrollmentUpdates,
            rb(r)
                .ibr_enrollment_updates(vec![beneficiary])
                .unwrap()
                .to_value(),
        ));
    }
    out
}

#[test]
fn every_request_kind_conforms_for_every_registry() {
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let signer = Signer::new(key, "spmis.example", "key-1");
    let mut count = 0;
    for r in RegistryType::ALL {
        for endpoint in Endpoint::ALL {
            if endpoint.is_callback() || !endpoint.available_in(r) {
                continue;
            }
            // Every non-callback endpoint the spec has must be covered below.
            assert!(
                all_requests(r).iter().any(|(e, _)| *e == endpoint),
                "{r} {} has no conformance case",
                endpoint.path()
            );
        }
        for (endpoint, mut body) in all_requests(r) {
            assert_valid(r, endpoint.path(), &body);
            signer.sign_envelope(&mut body, now()).unwrap();
            assert_valid(r, endpoint.path(), &body);
            count += 1;
        }
    }
    assert!(count >= 57, "only {count} envelopes checked");
}

#[test]
fn schema_validation_can_fail() {
    let r = RegistryType::Crvs;
    let mut body = rb(r).search(search_items(r)).unwrap().to_value();
    body["message"]["search_request"][0]["locale"] = json!("en");
    body["header"]["message_ts"] = json!("2025-01-01T00:00:00");
    body["header"]["action"] = json!("on-search");
    let errors = validate_request(r, "/registry/search", &body).unwrap_err();
    let text = errors.join("\n");
    assert!(text.contains("/message/search_request/0/locale"), "{text}");
    assert!(text.contains("/header/message_ts"), "{text}");
    assert!(text.contains("/header/action"), "{text}");

    let mut body = rb(r).unsubscribe(["c"]).unwrap().to_value();
    body["message"]
        .as_object_mut()
        .unwrap()
        .remove("subscription_codes");
    assert!(validate_request(r, "/registry/unsubscribe", &body).is_err());

    let err = validate_request(RegistryType::Dr, "/registry/txn/status", &body).unwrap_err();
    assert!(err[0].contains("no POST /registry/txn/status"), "{err:?}");
}

fn search_response(correlation_id: &str) -> SearchResponse {
    SearchResponse {
        transaction_id: "txn-1".into(),
        correlation_id: correlation_id.into(),
        search_response: vec![SearchResponseItem {
            reference_id: "ref-1".into(),
            timestamp: "2025-01-01T00:00:00Z".into(),
            status: RequestStatus::Succ,
            status_reason_code: None,
            status_reason_message: None,
            data: Some(SearchData {
                version: Some("1.0.0".into()),
                reg_type: None,
                reg_event_type: None,
                reg_record_type: Some("Person".into()),
                reg_records: RegRecords(json!([{"name": "Zoë"}])),
                extra: Map::new(),
            }),
            pagination: None,
            locale: Some("eng".into()),
            extra: Map::new(),
        }],
        extra: Map::new(),
    }
}

#[test]
fn callbacks_built_by_the_callback_builder_conform() {
    for r in RegistryType::ALL {
        let cb = || {
            CallbackBuilder::new("registry.example")
                .receiver_id("spmis.example")
                .at(now())
        };
        let mut sr = search_response("corr-1");
        if r == RegistryType::Dr {
            // DR: reg_records is an object (ERRATA E7).
            sr.search_response[0].data.as_mut().unwrap().reg_records =
                RegRecords(json!({"name": "x"}));
        }
        let on_search = cb().on_search(sr.clone()).unwrap().to_value();
        assert_valid(r, "/registry/on-search", &on_search);
        if let Err(e) = validate_response(r, "/registry/sync/search", &on_search) {
            panic!("{r} sync search response: {e:?}");
        }
        let sub = SubscribeResponse {
            transaction_id: "txn-1".into(),
            correlation_id: "corr-1".into(),
            subscribe_response: vec![SubscribeResponseItem {
                reference_id: "ref-1".into(),
                timestamp: "2025-01-01T00:00:00Z".into(),
                status: RequestStatus::Succ,
                status_reason_code: None,
                status_reason_message: None,
                subscriptions: vec![SubscriptionInfo {
                    code: "sub-1".into(),
                    status: SubscriptionStatus::Subscribe,
                    timestamp: "2025-01-01T00:00:00Z".into(),
                    extra: Map::new(),
                }],
                pagination: None,
                locale: None,
                extra: Map::new(),
            }],
            extra: Map::new(),
        };
        assert_valid(
            r,
            "/registry/on-subscribe",
            &cb().on_subscribe(sub.clone()).unwrap().to_value(),
        );
        let unsub = UnsubscribeResponse {
            transaction_id: "txn-1".into(),
            correlation_id: "corr-1".into(),
            timestamp: "2025-01-01T00:00:00Z".into(),
            status: RequestStatus::Succ,
            status_reason_code: None,
            status_reason_message: None,
            subscription_status: vec![SubscriptionCodeStatus {
                code: "sub-1".into(),
                status: SubscriptionStatus::Unsubscribe,
            }],
            extra: Map::new(),
        };
        assert_valid(
            r,
            "/registry/on-unsubscribe",
            &cb().on_unsubscribe(unsub).unwrap().to_value(),
        );
        let event_type = match r {
            RegistryType::Ibr => "enrollement",
            RegistryType::Crvs => "spdci-common:RegistryEventType:LiveBirth",
            _ => "REGISTER",
        };
        let notify = NotifyEventRequest {
            transaction_id: "txn-9".into(),
            notify_event: vec![NotifyEvent {
                reference_id: "ev-1".into(),
                timestamp: "2025-01-01T00:00:00Z".into(),
                data: SearchData {
                    version: Some("1.0.0".into()),
                    reg_type: Some(r.into()),
                    reg_event_type: Some(event_type.into()),
                    reg_record_type: Some("Person".into()),
                    reg_records: RegRecords(json!({"name": "x"})),
                    extra: Map::new(),
                },
                locale: None,
                extra: Map::new(),
            }],
            extra: Map::new(),
        };
        assert_valid(
            r,
            "/registry/notify",
            &cb().notify(notify).unwrap().to_value(),
        );
        if r.has_txn_status() {
            let crvs_like = matches!(r, RegistryType::Crvs | RegistryType::Fr);
            let mut status = serde_json::to_value(search_response("corr-1")).unwrap();
            if crvs_like {
                // CRVS/FR type the search branch's reg_records as an object (ERRATA E6).
                status["search_response"][0]["data"]["reg_records"] = json!({"name": "x"});
            }
            let txn = TxnStatusResponse {
                transaction_id: "txn-2".into(),
                correlation_id: "corr-2".into(),
                txnstatus_response: TxnStatusResponseBody {
                    txn_type: TxnType::Search,
                    txn_status: status,
                    extra: Map::new(),
                },
                extra: Map::new(),
            };
            let env = cb().txn_on_status(txn).unwrap().to_value();
            assert_valid(r, "/registry/txn/on-status", &env);
            if let Err(e) = validate_response(r, "/registry/sync/txn/status", &env) {
                panic!("{r} sync txn status response: {e:?}");
            }
        }
    }
}

/// Builds an instance from the `example`s of a message schema and parses it with our types.
fn spec_example(r: RegistryType, path: &str, response: bool) -> Value {
    let schema = if response {
        response_schema(r, path)
    } else {
        request_schema(r, path)
    }
    .unwrap();
    example_from_schema(r, &schema).unwrap()
}

#[test]
fn spec_examples_parse() {
    for r in RegistryType::ALL {
        let on_search = spec_example(r, "/registry/on-search", false);
        let parsed = Envelope::<SearchResponse>::parse(on_search.clone())
            .unwrap_or_else(|e| panic!("{r} on-search example: {e}\n{on_search:#}"));
        let msg = parsed.value.plain_message().expect("plain message");
        assert!(!msg.search_response.is_empty());
        assert!(
            !msg.search_response[0]
                .data
                .as_ref()
                .unwrap()
                .reg_records
                .is_empty()
        );

        let ex = spec_example(r, "/registry/on-subscribe", false);
        Envelope::<SubscribeResponse>::parse(ex.clone())
            .unwrap_or_else(|e| panic!("{r} on-subscribe: {e}\n{ex:#}"));
        let ex = spec_example(r, "/registry/on-unsubscribe", false);
        Envelope::<UnsubscribeResponse>::parse(ex.clone())
            .unwrap_or_else(|e| panic!("{r} on-unsubscribe: {e}\n{ex:#}"));
        let ex = spec_example(r, "/registry/notify", false);
        Envelope::<NotifyEventRequest>::parse(ex.clone())
            .unwrap_or_else(|e| panic!("{r} notify: {e}\n{ex:#}"));
        let ex = spec_example(r, "/registry/sync/search", true);
        Envelope::<SearchResponse>::parse(ex.clone())
            .unwrap_or_else(|e| panic!("{r} sync search: {e}\n{ex:#}"));
        if r.has_txn_status() {
            let ex = spec_example(r, "/registry/txn/on-status", false);
            let env = Envelope::<TxnStatusResponse>::parse(ex.clone())
                .unwrap_or_else(|e| panic!("{r} txn/on-status: {e}\n{ex:#}"));
            env.value
                .plain_message()
                .unwrap()
                .txnstatus_response
                .status()
                .unwrap();
        }
        // The ACK (components.responses.Response) of async endpoints.
        let ex = spec_example(r, "/registry/search", true);
        let ack = AckResponse::parse(ex.clone()).unwrap_or_else(|e| panic!("{r} ack: {e}\n{ex:#}"));
        assert!(ack.value.message.ack_status.is_known());
    }
    let dr = spec_example(RegistryType::Dr, "/registry/sync/disabled", true);
    let env = Envelope::<StatusListResponse>::parse(dr.clone())
        .unwrap_or_else(|e| panic!("dr disabled: {e}\n{dr:#}"));
    assert!(
        !env.value
            .plain_message()
            .unwrap()
            .disabled_response
            .is_empty()
    );
    for path in [
        "/registry/sync/get-disability-support",
        "/registry/sync/get-disability-details",
    ] {
        let ex = spec_example(RegistryType::Dr, path, true);
        let env = Envelope::<GetDisabilitySupportResponse>::parse(ex.clone())
            .unwrap_or_else(|e| panic!("dr {path}: {e}\n{ex:#}"));
        let msg = env.value.plain_message().unwrap();
        assert!(!msg.search_response.is_empty(), "{path}");
    }
    // IBR's sync responses are bare message schemas (ERRATA E4).
    let ibr = spec_example(RegistryType::Ibr, "/registry/sync/enrolled", true);
    let m: StatusListResponse = dci_protocol::lenient::from_value(ibr.clone())
        .unwrap_or_else(|e| panic!("ibr enrolled: {e}\n{ibr:#}"))
        .value;
    assert!(!m.enrolled_response.is_empty());
}

#[test]
fn malformed_callbacks_give_clear_errors() {
    let bad = json!({"header": {"message_id": "m", "message_ts": "t", "action": "on-search", "status": "succ"},
                     "message": {"transaction_id": "t", "correlation_id": "c",
                                 "search_response": [{"reference_id": "r", "timestamp": "t", "status": 7}]}});
    let err = Envelope::<SearchResponse>::parse(bad).unwrap_err();
    assert_eq!(err.path(), Some("message.search_response[0].status"));
    assert!(err.to_string().contains("invalid type"), "{err}");
    let err = Envelope::<SearchResponse>::parse_slice(b"{not json").unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    let err = Envelope::<SearchResponse>::parse(json!([1])).unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
}
