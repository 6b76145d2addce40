//! Property tests of the receiver side (proptest): mutated callbacks — bytes flipped, bodies
//! cut short, fields replaced by values of any type, arbitrary JSON — go through the real
//! `ingest` on a real SQLite store. None panics; each is either acknowledged or refused with one
//! of the spec's `Error.code` values and a documented status, answered the DCI way (a DCI-level
//! refusal HTTP 200 with ACK `ERR`, a transport one with its 4xx) and storing nothing; without
//! the callback secret nothing is ever accepted; and the lenient reply parser reads any JSON
//! without panicking.

use std::sync::Arc;

use dci_client::ops::callbacks::{CallbackCredentials, ingest_with};
use dci_client::ops::{CallbackFilter, IngestContext, RefusalLayer, SearchQuery, SearchSpec};
use dci_protocol::RegistryType;
use dci_protocol::codes::{Action, ErrorCode};
use dci_sandbox::{CallbackFaults, FaultTarget, Faults};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::asynchronous::part;
use crate::support::{Env, found_id};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The JSON pointers of every value in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(usize, u8),
    Truncate(usize),
    Replace(usize, Value),
    Whole(Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        any_json().prop_map(Mutation::Whole),
    ]
}

fn apply(valid: &Value, m: &Mutation) -> Vec<u8> {
    let bytes = serde_json::to_vec(valid).unwrap();
    match m {
        Mutation::FlipByte(i, b) => {
            let mut out = bytes;
            let i = i % out.len();
            out[i] ^= b | 1;
            out
        }
        Mutation::Truncate(n) => bytes[..n % bytes.len()].to_vec(),
        Mutation::Replace(i, v) => {
            let mut ps = Vec::new();
            pointers(valid, String::new(), &mut ps);
            let mut out = valid.clone();
            if let Some(slot) = out.pointer_mut(&ps[i % ps.len()]) {
                *slot = v.clone();
            }
            serde_json::to_vec(&out).unwrap()
        }
        Mutation::Whole(v) => serde_json::to_vec(v).unwrap(),
    }
}

#[test]
fn mutated_callbacks_are_acknowledged_or_refused_with_a_code_never_a_panic() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (env, ctx, valid, secret) = rt.block_on(async {
        let env = Env::default().await;
        // The registry's own callback is dropped: the test plays the registry.
        env.sb
            .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
                fail: Some(true),
                ..CallbackFaults::default()
            }))
            .unwrap();
        let source = env.source(RegistryType::Crvs).await;
        let ops = env.ops(source.clone()).with_txn_status_fallback(false);
        let q =
            SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
        let sub = ops.submit_search_async(&q).await.unwrap();
        let valid = part(&source, &sub.transaction_id, "r1", 1, 2);
        let secret = source
            .callbacks
            .secret
            .as_ref()
            .expect("a new source has a callback secret")
            .expose_secret()
            .to_owned();
        let ctx = IngestContext::new(env.store.clone(), env.store.clone());
        (env, ctx, valid, secret)
    });
    let ctx = Arc::new(ctx);
    // Every stored callback, of any transaction (a mutation may point at another one).
    let stored = |ctx: &IngestContext| {
        let all = CallbackFilter {
            limit: 100_000,
            ..CallbackFilter::default()
        };
        rt.block_on(ctx.ops.list_callbacks(&all)).unwrap().len()
    };
    // The unmutated callback: refused without the secret, acknowledged with it — so the
    // properties below are about real refusals, not a receiver that refuses everything.
    let body = serde_json::to_vec(&valid).unwrap();
    let refused = rt
        .block_on(ingest_with(
            &ctx,
            "crvs_main",
            &body,
            Some(Action::OnSearch),
            &CallbackCredentials::default(),
        ))
        .unwrap_err();
    // No secret where it is the only way in (the source verifies no signatures): transport.
    assert_eq!(
        (refused.http_status, refused.answer_status, refused.layer),
        (401, 401, RefusalLayer::Transport),
        "{refused:?}"
    );
    let with = CallbackCredentials {
        url_secret: Some(secret.clone()),
        bearer: None,
    };
    rt.block_on(ingest_with(
        &ctx,
        "crvs_main",
        &body,
        Some(Action::OnSearch),
        &with,
    ))
    .expect("the valid callback is acknowledged");
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&mutation(), |m| {
        let body = apply(&valid, &m);
        let with = CallbackCredentials {
            url_secret: Some(secret.clone()),
            bearer: None,
        };
        let stored_before = stored(&ctx);
        let outcome = rt.block_on(ingest_with(
            &ctx,
            "crvs_main",
            &body,
            Some(Action::OnSearch),
            &with,
        ));
        if let Err(r) = &outcome {
            prop_assert!(
                !matches!(ErrorCode::parse_lenient(&r.code), ErrorCode::Other(_)),
                "refusal without one of the spec's Error.code values: {r:?}"
            );
            prop_assert!(
                [400, 401, 403, 404, 409, 413].contains(&r.http_status),
                "undocumented status: {r:?}"
            );
            // Answered the DCI way: DCI-level in an ACK ERR with HTTP 200; transport-level (not
            // JSON: the only one a mutated body with the secret can hit) with its 4xx.
            match r.layer {
                RefusalLayer::Dci => prop_assert_eq!(r.answer_status, 200, "{:?}", r),
                RefusalLayer::Transport => {
                    prop_assert_eq!((r.http_status, r.answer_status), (400, 400), "{:?}", r);
                    prop_assert!(r.message.contains("not JSON"), "{:?}", r);
                }
            }
            let ack = serde_json::to_value(r.to_ack(time::OffsetDateTime::now_utc())).unwrap();
            prop_assert_eq!(&ack["message"]["ack_status"], "ERR");
            prop_assert_eq!(
                ack["message"]["error"]["code"].as_str(),
                Some(r.code.as_str())
            );
            prop_assert_eq!(stored_before, stored(&ctx), "a refused callback was stored");
        }
        // Without the secret the same body is never accepted.
        let without = rt.block_on(ingest_with(
            &ctx,
            "crvs_main",
            &body,
            Some(Action::OnSearch),
            &CallbackCredentials::default(),
        ));
        prop_assert!(without.is_err(), "accepted without the callback secret");
        Ok(())
    });
    drop(env);
    result.unwrap();
}

#[test]
fn the_lenient_reply_parser_reads_any_json_without_panicking() {
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any_json(), |v| {
            let wrapped = json!({"header": v.clone(), "message": v.clone()});
            for candidate in [v, wrapped] {
                let _ = dci_protocol::inbound::parse_reply::<dci_protocol::message::SearchResponse>(
                    candidate.clone(),
                );
                let _ = dci_protocol::inbound::Callback::parse(&Action::OnSearch, candidate);
            }
            Ok(())
        })
        .unwrap();
}
