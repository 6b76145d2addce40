//! Which fields a change touched, by name: a JSON document's changed leaves as dotted paths
//! (`endpoints.search`, `auth.token_url`), and for a data source also the secrets that changed
//! (compared here, never returned: only their field names leave this module).

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::source::{AuthConfig, DataSource};

/// The dotted paths of the leaves that differ between two JSON documents (added, removed or
/// changed), sorted. Arrays count as one leaf.
pub fn json_fields(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out.sort();
    out.dedup();
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = join(path, k);
                walk(&p, va, y.get(k).unwrap_or(&Value::Null), out);
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    walk(&join(path, k), &Value::Null, vb, out);
                }
            }
        }
        (Value::Object(x), Value::Null) => {
            for (k, va) in x {
                walk(&join(path, k), va, &Value::Null, out);
            }
        }
        (Value::Null, Value::Object(y)) => {
            for (k, vb) in y {
                walk(&join(path, k), &Value::Null, vb, out);
            }
        }
        _ if a == b => {}
        _ => out.push(if path.is_empty() {
            "document".into()
        } else {
            path.to_owned()
        }),
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_owned()
    } else {
        format!("{path}.{k}")
    }
}

/// Bookkeeping fields a person does not set: never listed as changed.
const BOOKKEEPING: [&str; 6] = [
    "id",
    "created_at",
    "updated_at",
    "state",
    "last_test_at",
    "last_error",
];

/// The fields a new data source sets (its document's fields, secrets by name), without the
/// bookkeeping ones.
pub fn created_source_fields(source: &DataSource) -> Vec<String> {
    let mut fields = json_fields(&Value::Null, &source.to_redacted_json());
    fields.retain(|f| !BOOKKEEPING.contains(&f.as_str()));
    fields
}

/// The fields of a data source that an update changed: its document's fields (secrets show
/// masked there, so they never differ) plus, by name, each secret whose value changed.
/// `updated_at`-like bookkeeping fields are left out.
pub fn source_fields(before: &DataSource, after: &DataSource) -> Vec<String> {
    let mut fields = json_fields(&before.to_redacted_json(), &after.to_redacted_json());
    fields.retain(|f| !BOOKKEEPING.contains(&f.as_str()));
    let secret = |s: &secrecy::SecretString| s.expose_secret().to_owned();
    let (a, b) = (&before.auth, &after.auth);
    let changed = match (a, b) {
        (AuthConfig::Bearer { token: x }, AuthConfig::Bearer { token: y }) => {
            (secret(x) != secret(y)).then_some("auth.token")
        }
        (AuthConfig::Basic { password: x, .. }, AuthConfig::Basic { password: y, .. }) => {
            (secret(x) != secret(y)).then_some("auth.password")
        }
        (AuthConfig::OAuth2(x), AuthConfig::OAuth2(y)) => {
            (secret(&x.client_secret) != secret(&y.client_secret)).then_some("auth.client_secret")
        }
        _ => None,
    };
    fields.extend(changed.map(str::to_owned));
    let cb = |s: &DataSource| s.callbacks.secret.as_ref().map(secret);
    if cb(before) != cb(after) {
        fields.push("callbacks.secret".into());
    }
    fields.sort();
    fields.dedup();
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_leaves_by_dotted_path() {
        let a = json!({"name": "A", "endpoints": {"search": "/s", "sub": "/x"}, "tags": [1]});
        let b = json!({"name": "A", "endpoints": {"search": "/t"}, "tags": [1, 2], "new": 1});
        assert_eq!(
            json_fields(&a, &b),
            ["endpoints.search", "endpoints.sub", "new", "tags"]
        );
        assert!(json_fields(&a, &a).is_empty());
        // A creation names every field set.
        assert_eq!(
            json_fields(
                &Value::Null,
                &json!({"name": "A", "auth": {"kind": "none"}})
            ),
            ["auth.kind", "name"]
        );
    }
}
