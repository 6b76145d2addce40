//! Outbound strict: every reply and callback the sandbox sends validates against the official
//! specs (with the protocol crate's errata repairs), registry by registry.

use dci_protocol::RegistryType;
use dci_protocol::conformance::{validate_request, validate_response};
use serde_json::json;

use crate::common::{Receiver, envelope, id_criteria, post_json, search_message, start, token};

fn check(what: &str, r: Result<(), Vec<String>>) {
    if let Err(errors) = r {
        panic!("{what} does not conform:\n{}", errors.join("\n"));
    }
}

#[tokio::test]
async fn replies_and_callbacks_conform_to_the_specs() {
    let sb = start().await;
    let t = token(&sb).await;
    let mut rx = Receiver::start().await;
    for r in RegistryType::ALL {
        let ex = sb.examples()[&r].clone();
        let id = &ex.found[0];
        let search = envelope(
            "search",
            search_message(id_criteria(&id.id_type, &id.id_value)),
            None,
        );
        check(
            &format!("{r} client search request"),
            validate_request(r, "/registry/sync/search", &search),
        );
        let (_, reply) = post_json(&sb, &format!("/{r}/registry/sync/search"), &t, &search).await;
        check(
            &format!("{r} sync search reply"),
            validate_response(r, "/registry/sync/search", &reply),
        );

        let asearch = envelope(
            "search",
            search_message(id_criteria(&id.id_type, &id.id_value)),
            Some(&rx.url),
        );
        let (_, ack) = post_json(&sb, &format!("/{r}/registry/search"), &t, &asearch).await;
        check(
            &format!("{r} ACK"),
            validate_response(r, "/registry/search", &ack),
        );
        let cb = rx.next().await;
        check(
            &format!("{r} on-search callback"),
            validate_request(r, "/registry/on-search", &cb),
        );

        let sub = json!({"transaction_id": "txn-sub", "subscribe_request": [{
            "reference_id": "r1", "timestamp": "2026-11-29T10:00:00Z",
            "subscribe_criteria": {"reg_event_type": "REGISTER", "filter_type": "idtype-value",
                "filter": {"type": id.id_type, "value": id.id_value},
                "notify_record_type": "spdci-extensions-dci:Person"}
        }]});
        post_json(
            &sb,
            &format!("/{r}/registry/subscribe"),
            &t,
            &envelope("subscribe", sub, Some(&rx.url)),
        )
        .await;
        let cb = rx.next().await;
        check(
            &format!("{r} on-subscribe callback"),
            validate_request(r, "/registry/on-subscribe", &cb),
        );
        let code = cb["message"]["subscribe_response"][0]["subscriptions"][0]["code"].clone();

        assert_eq!(sb.notify(r, None).await, 1, "{r}");
        let n = rx.next().await;
        check(
            &format!("{r} notify"),
            validate_request(r, "/registry/notify", &n),
        );

        let unsub = json!({"transaction_id": "txn-unsub", "timestamp": "2026-11-29T10:00:00Z", "subscription_codes": [code]});
        post_json(
            &sb,
            &format!("/{r}/registry/unsubscribe"),
            &t,
            &envelope("unsubscribe", unsub, Some(&rx.url)),
        )
        .await;
        let cb = rx.next().await;
        check(
            &format!("{r} on-unsubscribe callback"),
            validate_request(r, "/registry/on-unsubscribe", &cb),
        );

        if r.has_txn_status() {
            let st = json!({"transaction_id": "txn-st", "txnstatus_request": {"reference_id": "r", "txn_type": "search", "attribute_type": "transaction_id", "attribute_value": "txn-1"}});
            let (_, reply) = post_json(
                &sb,
                &format!("/{r}/registry/sync/txn/status"),
                &t,
                &envelope("txn-status", st.clone(), None),
            )
            .await;
            check(
                &format!("{r} sync txn status reply"),
                validate_response(r, "/registry/sync/txn/status", &reply),
            );
            post_json(
                &sb,
                &format!("/{r}/registry/txn/status"),
                &t,
                &envelope("txn-status", st, Some(&rx.url)),
            )
            .await;
            let cb = rx.next().await;
            check(
                &format!("{r} txn/on-status callback"),
                validate_request(r, "/registry/txn/on-status", &cb),
            );
        }
    }
}

#[tokio::test]
async fn dr_and_ibr_extra_replies_conform() {
    let sb = start().await;
    let t = token(&sb).await;
    let uin = sb.examples()[&RegistryType::Dr].found[0].id_value.clone();
    let crit = json!({"transaction_id": "txn-dr", "disabled_criteria": {"query_type": "idtype-value", "query": {"type": "UIN", "value": uin}}});
    for path in [
        "/registry/sync/disabled",
        "/registry/sync/get-disability-support",
        "/registry/sync/get-disability-details",
    ] {
        let req = envelope("search", crit.clone(), None);
        check(
            &format!("dr {path} request"),
            validate_request(RegistryType::Dr, path, &req),
        );
        let (_, reply) = post_json(&sb, &format!("/dr{path}"), &t, &req).await;
        check(
            &format!("dr {path} reply"),
            validate_response(RegistryType::Dr, path, &reply),
        );
    }
    let uin = sb.examples()[&RegistryType::Ibr].found[0].id_value.clone();
    let req = envelope(
        "search",
        json!({"transaction_id": "txn-ibr", "enrolled_criteria": {"query_type": "predicate", "response_entity": "Member", "query": {"attribute_name": "person_identifier", "operator": "eq", "attribute_value": uin}}}),
        None,
    );
    let (_, reply) = post_json(&sb, "/ibr/registry/sync/enrolled", &t, &req).await;
    // The IBR spec declares a bare EnrolledResponse here; the sandbox wraps it in an envelope
    // like every other sync reply, so its message is what must conform.
    check(
        "ibr enrolled reply message",
        validate_response(
            RegistryType::Ibr,
            "/registry/sync/enrolled",
            &reply["message"],
        ),
    );
}

#[tokio::test]
async fn rejections_conform_too() {
    let sb = start().await;
    let t = token(&sb).await;
    let r = RegistryType::Crvs;
    let mut wrong = envelope("search", search_message(id_criteria("UIN", "1")), None);
    wrong["header"]["action"] = json!("subscribe");
    let (_, reply) = post_json(&sb, "/crvs/registry/sync/search", &t, &wrong).await;
    assert_eq!(reply["header"]["status"], "rjct");
    check(
        "header-level rjct reply",
        validate_response(r, "/registry/sync/search", &reply),
    );
    let (_, ack) = post_json(&sb, "/crvs/registry/search", &t, &wrong).await;
    assert_eq!(ack["message"]["ack_status"], "ERR");
    check("ACK ERR", validate_response(r, "/registry/search", &ack));
    let mut bad_page = search_message(id_criteria("UIN", "1"));
    bad_page["search_request"][0]["search_criteria"]["pagination"] = json!({"page_size": 0});
    let (_, reply) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", bad_page, None),
    )
    .await;
    check(
        "item-level rjct reply",
        validate_response(r, "/registry/sync/search", &reply),
    );
    let st = json!({"transaction_id": "t", "txnstatus_request": {"reference_id": "r", "txn_type": "search", "attribute_type": "transaction_id", "attribute_value": "nope"}});
    let (_, reply) = post_json(
        &sb,
        "/crvs/registry/sync/txn/status",
        &t,
        &envelope("txn-status", st, None),
    )
    .await;
    assert_eq!(reply["header"]["status"], "rjct");
    check(
        "unknown txn status reply",
        validate_response(r, "/registry/sync/txn/status", &reply),
    );
}
