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
