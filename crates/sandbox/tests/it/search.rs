//! Sync search and the registry-specific sync endpoints over the seeded data.

use dci_protocol::RegistryType;
use serde_json::{Value, json};

use crate::common::{
    envelope, example, http, id_criteria, post_json, search_message, start, token,
};

/// The records of the first response item. DR (and CRVS/FR txn status) type `reg_records` as
/// an object: one record, or `{}` for none.
fn records(resp: &Value) -> Vec<Value> {
    match &resp["message"]["search_response"][0]["data"]["reg_records"] {
        Value::Array(a) => a.clone(),
        Value::Object(o) if o.is_empty() => Vec::new(),
        o @ Value::Object(_) => vec![o.clone()],
        other => panic!("reg_records is neither an array nor an object: {other}"),
    }
}

#[tokio::test]
async fn crvs_sync_search_by_uin_finds_the_person() {
    let sb = start().await;
    let t = token(&sb).await;
    let (id_type, uin) = example(&sb, RegistryType::Crvs, 0);
    assert_eq!(id_type, "UIN");
    let (status, resp) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(id_criteria("UIN", &uin)), None),
    )
    .await;
    assert_eq!(status, 200);
    let h = &resp["header"];
    assert_eq!(h["action"], "on-search");
    assert_eq!(h["status"], "succ");
    assert_eq!(h["receiver_id"], "spmis.test");
    assert!(h["message_ts"].as_str().unwrap().ends_with('Z'));
    let m = &resp["message"];
    assert_eq!(m["transaction_id"], "txn-1");
    assert!(!m["correlation_id"].as_str().unwrap().is_empty());
    let item = &m["search_response"][0];
    assert_eq!(item["reference_id"], "ref-1");
    assert_eq!(item["status"], "succ");
    assert_eq!(item["data"]["reg_type"], "ns:org:RegistryType:Civil");
    let recs = records(&resp);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["identifier"]["identifier_value"], uin.as_str());
    assert_eq!(item["pagination"]["total_count"], 1);
}

#[tokio::test]
async fn crvs_event_identifiers_find_the_right_people() {
    let sb = start().await;
    let t = token(&sb).await;
    let ex = sb.examples()[&RegistryType::Crvs].clone();
    for e in &ex.found {
        let (_, resp) = post_json(
            &sb,
            "/crvs/registry/sync/search",
            &t,
            &envelope(
                "search",
                search_message(id_criteria(&e.id_type, &e.id_value)),
                None,
            ),
        )
        .await;
        let recs = records(&resp);
        assert_eq!(recs.len(), 1, "{e:?}");
        match e.id_type.as_str() {
            "DRN" => assert!(recs[0]["death_date"].is_string()),
            "MRN" => assert!(recs[0]["marriage_date"].is_string()),
            _ => {}
        }
    }
    let nf = &ex.not_found;
    let (status, resp) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope(
            "search",
            search_message(id_criteria(&nf.id_type, &nf.id_value)),
            None,
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(resp["message"]["search_response"][0]["status"], "succ");
    assert!(records(&resp).is_empty());
}

#[tokio::test]
async fn every_registry_finds_its_examples() {
    let sb = start().await;
    let t = token(&sb).await;
    for r in RegistryType::ALL {
        let ex = sb.examples()[&r].clone();
        assert!(!ex.found.is_empty(), "{r}");
        for e in &ex.found {
            let (status, resp) = post_json(
                &sb,
                &format!("/{r}/registry/sync/search"),
                &t,
                &envelope(
                    "search",
                    search_message(id_criteria(&e.id_type, &e.id_value)),
                    None,
                ),
            )
            .await;
            assert_eq!(status, 200);
            assert!(!records(&resp).is_empty(), "{r} {e:?}");
        }
        let (_, resp) = post_json(
            &sb,
            &format!("/{r}/registry/sync/search"),
            &t,
            &envelope(
                "search",
                search_message(id_criteria(&ex.not_found.id_type, &ex.not_found.id_value)),
                None,
            ),
        )
        .await;
        assert!(records(&resp).is_empty(), "{r} not_found");
    }
}

#[tokio::test]
async fn predicate_date_range_on_death_events() {
    let sb = start().await;
    let t = token(&sb).await;
    let criteria = json!({
        "query_type": "predicate",
        "reg_event_type": "spdci-common:RegistryEventType:Death",
        "query": [{
            "seq_num": 1,
            "expression1": {"attribute_name": "event_date", "operator": "ge", "attribute_value": "1960-01-01"},
            "condition": "and",
            "expression2": {"attribute_name": "event_date", "operator": "le", "attribute_value": "2025-12-31"}
        }],
        "pagination": {"page_size": 100, "page_number": 1}
    });
    let (_, resp) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(criteria), None),
    )
    .await;
    let recs = records(&resp);
    assert!(!recs.is_empty());
    for r in recs {
        let d = r["death_date"].as_str().expect("only deceased people");
        assert!(("1960-01-01"..="2025-12-31").contains(&d), "{d}");
    }
    // A narrow range finds fewer people than the wide one.
    let narrow = json!({
        "query_type": "predicate",
        "reg_event_type": "Death",
        "query": [{"seq_num": 1, "expression1": {"attribute_name": "event_date", "operator": "ge", "attribute_value": "2030-01-01"}}]
    });
    let (_, resp) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(narrow), None),
    )
    .await;
    assert!(records(&resp).is_empty());
}

#[tokio::test]
async fn expression_search_and_sort_on_the_social_registry() {
    let sb = start().await;
    let t = token(&sb).await;
    let criteria = json!({
        "query_type": "expression",
        "response_entity": "Group",
        "query": {"type": "ns:org:QueryType:expression", "value": {"expression": {"collection": "Group", "query": {"$and": [{"poverty_score": {"$lt": 5}}]}}}},
        "sort": [{"attribute_name": "poverty_score", "sort_order": "desc"}]
    });
    let (_, resp) = post_json(
        &sb,
        "/social/registry/sync/search",
        &t,
        &envelope("search", search_message(criteria), None),
    )
    .await;
    let scores: Vec<f64> = records(&resp)
        .iter()
        .map(|g| g["poverty_score"].as_f64().unwrap())
        .collect();
    assert!(!scores.is_empty());
    assert!(scores.iter().all(|s| *s < 5.0));
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "sorted desc: {scores:?}"
    );
    for g in records(&resp) {
        assert!(!g["member_list"].as_array().unwrap().is_empty());
    }
}

#[tokio::test]
async fn social_member_entity_returns_members() {
    let sb = start().await;
    let t = token(&sb).await;
    let (_, uin) = example(&sb, RegistryType::Social, 1);
    let mut c = id_criteria("UIN", &uin);
    c["response_entity"] = json!("Member");
    let (_, resp) = post_json(
        &sb,
        "/social/registry/sync/search",
        &t,
        &envelope("search", search_message(c), None),
    )
    .await;
    let recs = records(&resp);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["member_identifier"], uin.as_str());
    assert_eq!(
        resp["message"]["search_response"][0]["data"]["reg_record_type"],
        "Member"
    );
}

#[tokio::test]
async fn pagination_pages_are_disjoint_and_zero_is_rejected() {
    let sb = start().await;
    let t = token(&sb).await;
    let page = |n: u32, size: i64| {
        json!({
            "query_type": "predicate",
            "query": [{"seq_num": 1, "expression1": {"attribute_name": "birth_date", "operator": "ge", "attribute_value": "1900-01-01"}}],
            "pagination": {"page_size": size, "page_number": n}
        })
    };
    let (_, p1) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(page(1, 5)), None),
    )
    .await;
    let (_, p2) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(page(2, 5)), None),
    )
    .await;
    assert_eq!(records(&p1).len(), 5);
    assert_eq!(records(&p2).len(), 5);
    assert!(records(&p1).iter().all(|r| !records(&p2).contains(r)));
    let total = &p1["message"]["search_response"][0]["pagination"]["total_count"];
    assert!(total.as_u64().unwrap() > 10);
    assert_eq!(
        p1["message"]["search_response"][0]["pagination"]["page_number"],
        1
    );
    let (_, bad) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(page(1, 0)), None),
    )
    .await;
    let item = &bad["message"]["search_response"][0];
    assert_eq!(item["status"], "rjct");
    assert_eq!(item["status_reason_code"], "rjct.pagination.invalid");
    assert!(
        item["status_reason_message"]
            .as_str()
            .unwrap()
            .contains("page_size")
    );
}

#[tokio::test]
async fn invalid_requests_get_spec_codes_with_reasons() {
    let sb = start().await;
    let t = token(&sb).await;
    let url = "/crvs/registry/sync/search";
    // Not an envelope.
    let (status, resp) = post_json(&sb, url, &t, &json!({"message": {}})).await;
    assert_eq!(status, 400);
    assert_eq!(resp["message"]["ack_status"], "ERR");
    assert_eq!(resp["message"]["error"]["code"], "err.request.bad");
    assert!(
        resp["message"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("header")
    );
    let resp = http()
        .post(format!("{}{url}", sb.base_url()))
        .bearer_auth(&t)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Header problems: rejected in the response header.
    let mut wrong_action = envelope("search", search_message(id_criteria("UIN", "1")), None);
    wrong_action["header"]["action"] = json!("subscribe");
    let (status, resp) = post_json(&sb, url, &t, &wrong_action).await;
    assert_eq!(status, 200);
    assert_eq!(resp["header"]["status"], "rjct");
    assert_eq!(resp["header"]["status_reason_code"], "rjct.action.invalid");
    assert!(
        resp.get("message").is_none(),
        "a header-only rejection: {resp}"
    );
    let mut no_tz = envelope("search", search_message(id_criteria("UIN", "1")), None);
    no_tz["header"]["message_ts"] = json!("2026-11-29T10:00:00");
    let (_, resp) = post_json(&sb, url, &t, &no_tz).await;
    assert_eq!(
        resp["header"]["status_reason_code"],
        "rjct.message_ts.invalid"
    );
    let mut no_txn = envelope("search", search_message(id_criteria("UIN", "1")), None);
    no_txn["message"]
        .as_object_mut()
        .unwrap()
        .remove("transaction_id");
    // No header reason code fits a missing message field: an ACK ERR with HTTP 400.
    let (status, resp) = post_json(&sb, url, &t, &no_txn).await;
    assert_eq!(status, 400);
    assert_eq!(resp["message"]["error"]["code"], "err.request.bad");
    assert!(
        resp["message"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("transaction_id")
    );
    // Item problems: rejected per item.
    let mut no_ref = search_message(id_criteria("UIN", "1"));
    no_ref["search_request"][0]
        .as_object_mut()
        .unwrap()
        .remove("reference_id");
    let (_, resp) = post_json(&sb, url, &t, &envelope("search", no_ref, None)).await;
    assert_eq!(
        resp["message"]["search_response"][0]["status_reason_code"],
        "rjct.reference_id.invalid"
    );
    let (_, resp) = post_json(
        &sb,
        url,
        &t,
        &envelope(
            "search",
            search_message(json!({"query_type": "sql", "query": {}})),
            None,
        ),
    )
    .await;
    let item = &resp["message"]["search_response"][0];
    assert_eq!(item["status_reason_code"], "rjct.search_criteria.invalid");
    assert!(
        item["status_reason_message"]
            .as_str()
            .unwrap()
            .contains("query_type")
    );
    // Numbers as strings and a single object for the batch are accepted (inbound lenient).
    let mut lenient = envelope(
        "search",
        json!({"transaction_id": 42, "search_request": {"reference_id": 7, "timestamp": "2026-11-29T10:00:00Z", "search_criteria": id_criteria("UIN", "1")}}),
        None,
    );
    lenient["header"]["total_count"] = json!("1");
    let (_, resp) = post_json(&sb, url, &t, &lenient).await;
    assert_eq!(resp["header"]["status"], "succ");
    assert_eq!(resp["message"]["search_response"][0]["reference_id"], "7");
}

#[tokio::test]
async fn dr_extra_endpoints() {
    let sb = start().await;
    let t = token(&sb).await;
    let ex = sb.examples()[&RegistryType::Dr].clone();
    let crit = |uin: &str| json!({"transaction_id": "txn-dr", "disabled_criteria": {"query_type": "idtype-value", "query": {"type": "UIN", "value": uin}}});
    let disabled = |resp: &Value| {
        resp["message"]["disabled_response"][0]["disabled_status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (_, approved) = post_json(
        &sb,
        "/dr/registry/sync/disabled",
        &t,
        &envelope("search", crit(&ex.found[0].id_value), None),
    )
    .await;
    assert_eq!(disabled(&approved), "yes");
    assert_eq!(
        approved["message"]["disabled_response"][0]["disability_status"],
        "Approved"
    );
    let (_, pending) = post_json(
        &sb,
        "/dr/registry/sync/disabled",
        &t,
        &envelope("search", crit(&ex.found[1].id_value), None),
    )
    .await;
    assert_eq!(
        pending["message"]["disabled_response"][0]["disability_status"],
        "Pending"
    );
    let (_, expired) = post_json(
        &sb,
        "/dr/registry/sync/disabled",
        &t,
        &envelope("search", crit(&ex.found[2].id_value), None),
    )
    .await;
    assert_eq!(
        expired["message"]["disabled_response"][0]["disability_status"],
        "Expired"
    );
    let (_, none) = post_json(
        &sb,
        "/dr/registry/sync/disabled",
        &t,
        &envelope("search", crit(&ex.not_found.id_value), None),
    )
    .await;
    assert_eq!(disabled(&none), "no");
    // The DR sample's expression form.
    let expr = json!({"transaction_id": "t", "disabled_criteria": {"query_type": "expression", "query": {"member.member_identifier": {"eq": ex.found[0].id_value}}}});
    let (_, resp) = post_json(
        &sb,
        "/dr/registry/sync/disabled",
        &t,
        &envelope("search", expr, None),
    )
    .await;
    assert_eq!(disabled(&resp), "yes");

    let (_, support) = post_json(
        &sb,
        "/dr/registry/sync/get-disability-support",
        &t,
        &envelope("search", crit(&ex.found[0].id_value), None),
    )
    .await;
    let recs = support["message"]["search_response"][0]["data"]["reg_records"]
        .as_array()
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert!(recs[0][0]["assistive_technology"].is_array());
    let (_, details) = post_json(
        &sb,
        "/dr/registry/sync/get-disability-details",
        &t,
        &envelope("search", crit(&ex.found[0].id_value), None),
    )
    .await;
    let recs = details["message"]["search_response"][0]["data"]["reg_records"]
        .as_array()
        .unwrap();
    assert!(recs[0]["disability_details"][0]["impairment_type"].is_string());

    // DR has no txn status, and the DR endpoints exist only under /dr.
    let (status, _) = post_json(
        &sb,
        "/dr/registry/sync/txn/status",
        &t,
        &envelope("txn-status", json!({}), None),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post_json(
        &sb,
        "/crvs/registry/sync/disabled",
        &t,
        &envelope("search", crit("1"), None),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ibr_enrolled_and_enrollment_updates() {
    let sb = start().await;
    let t = token(&sb).await;
    let ex = sb.examples()[&RegistryType::Ibr].clone();
    let enrolled = |uin: &str| json!({"transaction_id": "txn-ibr", "enrolled_criteria": {"query_type": "predicate", "response_entity": "Member", "query": {"attribute_name": "person_identifier", "operator": "eq", "attribute_value": uin}}});
    let (_, two) = post_json(
        &sb,
        "/ibr/registry/sync/enrolled",
        &t,
        &envelope("search", enrolled(&ex.found[0].id_value), None),
    )
    .await;
    let item = &two["message"]["enrolled_response"][0];
    assert_eq!(item["enrolled_status"], "yes");
    assert_eq!(item["enrolments"].as_array().unwrap().len(), 2);
    let (_, none) = post_json(
        &sb,
        "/ibr/registry/sync/enrolled",
        &t,
        &envelope("search", enrolled("0000000000"), None),
    )
    .await;
    assert_eq!(
        none["message"]["enrolled_response"][0]["enrolled_status"],
        "no"
    );

    let update = json!({"transaction_id": "txn-up", "enrolled_updates": {"beneficiaries": [{
        "member": {"member_identifier": "5550001111"},
        "programme_identifier": {"programme": {"programme_identifier": "PRG-CT-01", "programme_name": "Child Grant"}, "enrolment_status": "Active"}
    }]}});
    let mut env = envelope("notify", update, None);
    env["header"]["status"] = json!("succ");
    let (status, resp) = post_json(&sb, "/ibr/registry/sync/enrollment/updates", &t, &env).await;
    assert_eq!(status, 200);
    assert_eq!(resp["message"]["enrolled_response"][0]["status"], "succ");
    let (_, now) = post_json(
        &sb,
        "/ibr/registry/sync/enrolled",
        &t,
        &envelope("search", enrolled("5550001111"), None),
    )
    .await;
    assert_eq!(
        now["message"]["enrolled_response"][0]["enrolled_status"],
        "yes"
    );
}

#[tokio::test]
async fn sync_txn_status_returns_an_earlier_search() {
    let sb = start().await;
    let t = token(&sb).await;
    let (_, uin) = example(&sb, RegistryType::Crvs, 0);
    let (_, first) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(id_criteria("UIN", &uin)), None),
    )
    .await;
    let status_req = json!({"transaction_id": "txn-status-1", "txnstatus_request": {"reference_id": "r", "txn_type": "search", "attribute_type": "transaction_id", "attribute_value": "txn-1"}});
    let (status, resp) = post_json(
        &sb,
        "/crvs/registry/sync/txn/status",
        &t,
        &envelope("txn-status", status_req, None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(resp["header"]["action"], "txn-on-status");
    assert_eq!(resp["message"]["transaction_id"], "txn-status-1");
    let ts = &resp["message"]["txnstatus_response"];
    assert_eq!(ts["txn_type"], "search");
    // Same result; the CRVS txn-status branch types reg_records as an object (one record).
    assert_eq!(
        ts["txn_status"]["correlation_id"],
        first["message"]["correlation_id"]
    );
    assert_eq!(
        records(&json!({"message": ts["txn_status"]})),
        records(&first)
    );
    assert!(ts["txn_status"]["search_response"][0]["data"]["reg_records"].is_object());
    let unknown = json!({"transaction_id": "t2", "txnstatus_request": {"reference_id": "r", "txn_type": "search", "attribute_type": "correlation_id", "attribute_value": "nope"}});
    let (_, resp) = post_json(
        &sb,
        "/crvs/registry/sync/txn/status",
        &t,
        &envelope("txn-status", unknown, None),
    )
    .await;
    assert_eq!(resp["header"]["status"], "rjct");
}
