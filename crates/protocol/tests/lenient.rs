//! Inbound leniency on the quirks of the spdci/standards sample JSONs and real registries:
//! everything parses, and every repair is reported.

use dci_protocol::codes::{Action, RequestStatus};
use dci_protocol::envelope::Envelope;
use dci_protocol::message::{SearchRequest, SearchResponse};
use serde_json::json;

#[test]
fn sample_style_request_parses_and_reports_repairs() {
    // As in the DR/FR process-flow samples: total_count as a string, empty consent/authorize/
    // meta, search_request as an object, locale "EN/GB", empty timestamp, numeric reference id.
    let v = json!({
        "signature": "",
        "header": {"version": "1.0.0", "message_id": 123, "message_ts": "2025-01-01T00:00:00Z",
                   "action": "SEARCH", "sender_id": "spp", "total_count": "1", "meta": "",
                   "is_msg_encrypted": "false"},
        "message": {"transaction_id": "t-1", "search_request": {
            "reference_id": 42, "timestamp": "",
            "search_criteria": {"reg_type": "CRVS", "query_type": "idtype-value",
                                "query": {"type": "UIN", "value": "1"}, "consent": "", "authorize": "",
                                "pagination": {"page_size": "10", "page_number": "1"}},
            "locale": "EN/GB"}}
    });
    let parsed = Envelope::<SearchRequest>::parse(v).unwrap();
    let env = parsed.value;
    assert_eq!(env.header.action, Action::Search);
    assert_eq!(env.header.message_id, "123");
    assert_eq!(env.header.total_count, Some(1));
    assert!(env.signature.is_none());
    let item = &env.plain_message().unwrap().search_request[0];
    assert_eq!(item.reference_id, "42");
    assert_eq!(item.locale.as_deref(), Some("EN/GB"));
    assert_eq!(
        item.search_criteria.reg_type.as_ref().unwrap().as_str(),
        "ns:org:RegistryType:Civil"
    );
    assert_eq!(item.search_criteria.pagination.unwrap().page_size, 10);
    assert!(item.search_criteria.consent.is_none());
    let mut paths: Vec<String> = parsed.tolerated.iter().map(|t| t.path.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "header.is_msg_encrypted",
            "header.message_id",
            "header.meta",
            "header.total_count",
            "message.search_request",
            "message.search_request[0].reference_id",
            "message.search_request[0].search_criteria.authorize",
            "message.search_request[0].search_criteria.consent",
            "message.search_request[0].search_criteria.pagination.page_number",
            "message.search_request[0].search_criteria.pagination.page_size",
            "signature",
        ]
    );
    let query = item.search_criteria.query().unwrap();
    assert_eq!(query.query_type().as_str(), "idtype-value");
}

#[test]
fn registry_quirks_in_callbacks() {
    let v = json!({
        "header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z", "action": "on-search",
                   "status": "SUCC", "completed_count": "1", "vendor_trace": "abc"},
        "message": {"transaction_id": "t", "correlation_id": "c", "search_response": [
            {"reference_id": "r", "timestamp": "2025-01-01T00:00:00Z", "status": "succ",
             "status_reason_code": "rjct.vendor.specific",
             "data": {"reg_type": "ns:org:RegistryType:CRVS", "reg_records": {"id": "only-one"}},
             "pagination": {"page_size": 10, "page_number": 1, "total_count": "25"}}]}
    });
    let env = Envelope::<SearchResponse>::parse(v).unwrap().value;
    assert_eq!(env.header.status, Some(RequestStatus::Succ));
    assert_eq!(env.header.extra["vendor_trace"], "abc");
    let item = &env.plain_message().unwrap().search_response[0];
    assert_eq!(
        item.status_reason_code.as_ref().unwrap().as_str(),
        "rjct.vendor.specific"
    );
    assert!(!item.status_reason_code.as_ref().unwrap().is_known());
    assert_eq!(item.data.as_ref().unwrap().reg_records.records().len(), 1);
    assert_eq!(item.pagination.unwrap().total_count, 25);
}

mod inbound {
    use dci_protocol::codes::Action;
    use dci_protocol::inbound::{Callback, CallbackMessage, MessageStatus, parse_reply};
    use dci_protocol::message::{SearchResponse, TxnStatus};
    use dci_protocol::reason::Reason;
    use serde_json::{Value, json};

    fn header(action: &str, status: &str) -> Value {
        json!({"version": "1.0.0", "message_id": "789", "message_ts": "2025-01-01T00:00:00Z",
               "action": action, "status": status, "total_count": 1, "completed_count": 0,
               "sender_id": "civilregistry.example.org", "receiver_id": "registry.example.org",
               "is_msg_encrypted": false})
    }

    #[test]
    fn header_only_callbacks_are_valid_for_every_callback_action() {
        for action in [
            "on-search",
            "txn-on-status",
            "on-subscribe",
            "on-unsubscribe",
        ] {
            let mut h = header(action, "rjct");
            h["status_reason_code"] = json!("rjct.action.not_supported");
            h["status_reason_message"] = json!("not here");
            let body = json!({"signature": "", "header": h});
            let cb = Callback::parse(&Action::parse_lenient(action), body.clone()).unwrap();
            assert!(cb.value.is_header_only(), "{action}");
            assert_eq!(cb.value.status(), MessageStatus::Rejected);
            assert_eq!(cb.value.transaction_id(), None);
            let reason = Reason::from_header(&cb.value.header).unwrap();
            assert_eq!(reason.code.as_deref(), Some("rjct.action.not_supported"));
            assert_eq!(Reason::from_value(&body), Some(reason));
        }
    }

    #[test]
    fn rcvd_and_pdng_are_in_progress_not_success() {
        for (status, want) in [
            ("rcvd", MessageStatus::Received),
            ("pdng", MessageStatus::Pending),
            ("PDNG", MessageStatus::Pending),
        ] {
            let cb = Callback::parse(
                &Action::OnSearch,
                json!({"header": header("on-search", status)}),
            )
            .unwrap()
            .value;
            assert_eq!(cb.status(), want);
            assert!(cb.status().is_in_progress());
            assert!(cb.status().describe().contains("pending"), "{status}");
        }
        let reply = parse_reply::<SearchResponse>(json!({"header": header("on-search", "rcvd"),
            "message": ""}))
        .unwrap();
        assert!(reply.value.message.is_none());
        assert_eq!(reply.tolerated[0].path, "message");
        assert!(!MessageStatus::Succeeded.is_in_progress());
    }

    #[test]
    fn reg_records_as_object_or_array() {
        let item = |records: Value| {
            json!({"header": header("on-search", "succ"), "message": {"transaction_id": "t",
                "correlation_id": "c", "search_response": [{"reference_id": "r",
                "timestamp": "2025-01-01T00:00:00Z", "status": "succ",
                "data": {"reg_record_type": "Person", "reg_records": records}}]}})
        };
        for (records, n) in [
            (json!([{"a": 1}, {"a": 2}]), 2),
            (json!({"a": 1}), 1),
            (json!([]), 0),
            (Value::Null, 0),
        ] {
            let cb = Callback::parse(&Action::OnSearch, item(records.clone()))
                .unwrap()
                .value;
            let Some(CallbackMessage::Search(m)) = cb.message else {
                panic!("not a search response")
            };
            let data = m.search_response[0].data.as_ref().unwrap();
            assert_eq!(data.reg_records.len(), n, "{records}");
        }
    }

    #[test]
    fn txn_status_callback_decodes_its_search_response_and_reports_repairs() {
        let body = json!({"header": header("txn-on-status", "succ"), "message": {
            "transaction_id": "t-status", "correlation_id": "c", "txnstatus_response": {
                "txn_type": "search", "txn_status": {"transaction_id": "t-search",
                    "correlation_id": "c", "search_response": {"reference_id": "r",
                        "timestamp": "2025-01-01T00:00:00Z", "status": "succ",
                        "data": {"reg_records": []}}}}}});
        let cb = Callback::parse(&Action::TxnOnStatus, body).unwrap();
        let Some(CallbackMessage::TxnStatus(_, Some(status))) = &cb.value.message else {
            panic!("{:?}", cb.value.message)
        };
        let TxnStatus::Search(s) = status.as_ref() else {
            panic!("{status:?}")
        };
        assert_eq!(s.search_response[0].reference_id, "r");
        assert!(
            cb.tolerated
                .iter()
                .any(|t| t.path == "message.txnstatus_response.txn_status.search_response"),
            "{:?}",
            cb.tolerated
        );
    }

    #[test]
    fn dr_support_object_is_kept_as_registry_data() {
        // The DR spec's DisabledPerson example: disability_support[].human_assistance is an object.
        let body = json!({"header": header("on-search", "succ"), "message": {"transaction_id": "t",
            "correlation_id": "c", "search_response": [{"reference_id": "r",
            "timestamp": "2025-01-01T00:00:00Z", "status": "succ", "data": {
                "reg_record_type": "spdci-extensions-dci:DisabledPerson",
                "reg_records": {"disability_status": "Approved", "disability_support": [
                    {"human_assistance": {"frequency": "Permanent", "type": "mobility",
                                          "support_status": "Required"}}],
                    "total_count": "7"}}}]}});
        let cb = Callback::parse(&Action::OnSearch, body).unwrap();
        let Some(CallbackMessage::Search(m)) = &cb.value.message else {
            panic!()
        };
        let rec = m.search_response[0]
            .data
            .as_ref()
            .unwrap()
            .reg_records
            .records()[0];
        assert_eq!(
            rec["disability_support"][0]["human_assistance"]["type"],
            "mobility"
        );
        // Registry data is never rewritten.
        assert_eq!(rec["total_count"], "7");
        assert!(cb.tolerated.is_empty(), "{:?}", cb.tolerated);
    }
}
