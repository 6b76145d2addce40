//! DCI-level outcomes inside an HTTP success: ACK `ERR`, header `status: rjct`, rejected items.

use dci_protocol::inbound::at;
use serde_json::Value;

use crate::error::RegistryError;

fn eq(v: Option<&Value>, want: &str) -> bool {
    v.and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case(want))
}

/// `Some(reason)` when the body says the request was rejected.
///
/// Per-item rejection counts only when every item of a response array is `rjct`: a batch with
/// some successes is a (partial) success the caller inspects item by item.
pub(crate) fn rejection(body: &Value) -> Option<Option<RegistryError>> {
    if eq(at(body, &["message", "ack_status"]), "ERR") {
        return Some(RegistryError::from_json(body));
    }
    let header_rjct = eq(at(body, &["header", "status"]), "rjct");
    if header_rjct && let Some(reason) = RegistryError::from_json(body) {
        return Some(Some(reason));
    }
    // A header `rjct` without a reason: the rejected items carry it.
    let items_reason = items_rejection(body);
    if header_rjct {
        return Some(items_reason.flatten());
    }
    items_reason
}

fn items_rejection(body: &Value) -> Option<Option<RegistryError>> {
    let message = body.get("message")?.as_object()?;
    for (key, items) in message {
        if !key.ends_with("_response") {
            continue;
        }
        // txnstatus_response and similar are single objects.
        let items: Vec<&Value> = match items {
            Value::Array(a) => a.iter().collect(),
            v @ Value::Object(_) => vec![v],
            _ => continue,
        };
        let with_status: Vec<&Value> = items
            .into_iter()
            .filter(|i| i.get("status").is_some())
            .collect();
        if !with_status.is_empty() && with_status.iter().all(|i| eq(i.get("status"), "rjct")) {
            let first = with_status[0];
            let code = first.get("status_reason_code").and_then(Value::as_str);
            let msg = first.get("status_reason_message").and_then(Value::as_str);
            let mut reason = RegistryError {
                code: code.map(str::to_owned),
                message: msg.map(str::to_owned),
            };
            if with_status.len() > 1 {
                reason.message = Some(format!(
                    "{} (all {} items rejected)",
                    reason.message.unwrap_or_default(),
                    with_status.len()
                ));
            }
            let any = reason.code.is_some() || reason.message.is_some();
            return Some(any.then_some(reason));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_each_rejection_shape() {
        let ack =
            json!({"message": {"ack_status": "ERR", "error": {"code": "err.x", "message": "m"}}});
        assert_eq!(
            rejection(&ack).unwrap().unwrap().code.as_deref(),
            Some("err.x")
        );
        let hdr =
            json!({"header": {"status": "RJCT", "status_reason_code": "rjct.a"}, "message": {}});
        assert_eq!(
            rejection(&hdr).unwrap().unwrap().code.as_deref(),
            Some("rjct.a")
        );
        let items = json!({"header": {"status": "succ"}, "message": {"search_response": [
            {"status": "rjct", "status_reason_code": "rjct.search_criteria.invalid", "status_reason_message": "bad"}
        ]}});
        assert_eq!(
            rejection(&items).unwrap().unwrap().to_string(),
            "rjct.search_criteria.invalid: bad"
        );
        let partial = json!({"header": {"status": "succ"}, "message": {"search_response": [
            {"status": "rjct"}, {"status": "succ"}
        ]}});
        assert!(rejection(&partial).is_none());
        let hdr_items = json!({"header": {"status": "rjct"}, "message": {"search_response": [
            {"status": "rjct", "status_reason_code": "rjct.search_criteria.invalid"}
        ]}});
        assert_eq!(
            rejection(&hdr_items).unwrap().unwrap().code.as_deref(),
            Some("rjct.search_criteria.invalid")
        );
        let ok = json!({"message": {"ack_status": "ACK", "correlation_id": "c"}});
        assert!(rejection(&ok).is_none());
    }
}
