//! Validation of envelopes against the official OpenAPI specs (feature `conformance`).
//!
//! For tests: other crates call [`validate_request`] on every envelope they send, and
//! [`validate_response`] on sync replies. The specs are read from `DCI_SPEC_DIR`, or from
//! `spec/dci/` at the workspace root (copies of the official files, see `spec/dci/SOURCES.md`). The specs' known defects are repaired
//! in code here, each step named after its entry in `crates/protocol/ERRATA.md`; nothing is
//! skipped.
//!
//! OpenAPI 3.0 schemas are a Draft-4 dialect: they are validated with the `jsonschema` crate
//! in Draft 4 mode with format checks on (`date-time` needs an offset, `uri` must be absolute),
//! as the compliance suite's AJV setup does; `nullable` is translated; `example` is ignored.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

use crate::RegistryType;

/// Where the spec YAML files are read from: `DCI_SPEC_DIR`, else `<workspace>/spec/dci`.
pub fn spec_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DCI_SPEC_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    // crates/protocol → the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/dci")
}

/// The spec file of a registry.
pub fn spec_file(registry: RegistryType) -> PathBuf {
    spec_dir().join(format!("{}_api_v1.0.0.yaml", registry.as_str()))
}

type Cache<T> = OnceLock<Mutex<HashMap<String, Arc<T>>>>;

static SPECS: Cache<Value> = OnceLock::new();
static VALIDATORS: Cache<jsonschema::Validator> = OnceLock::new();

/// The registry's spec as JSON, with the errata applied. Cached.
pub fn spec(registry: RegistryType) -> Result<Arc<Value>, String> {
    let cache = SPECS.get_or_init(Default::default);
    if let Some(s) = cache
        .lock()
        .map_err(|e| e.to_string())?
        .get(registry.as_str())
    {
        return Ok(Arc::clone(s));
    }
    let file = spec_file(registry);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "cannot read the {registry} spec at {}: {e}; set DCI_SPEC_DIR to the folder holding the *_api_v1.0.0.yaml files",
            file.display()
        )
    })?;
    let mut v: Value = serde_yaml::from_str(&text)
        .map_err(|e| format!("{} is not valid YAML: {e}", file.display()))?;
    apply_errata(&mut v);
    let v = Arc::new(v);
    cache
        .lock()
        .map_err(|e| e.to_string())?
        .insert(registry.as_str().to_owned(), Arc::clone(&v));
    Ok(v)
}

/// Errata repairs (see ERRATA.md). Each is a no-op when the defect is absent.
fn apply_errata(spec: &mut Value) {
    // E2: FR `/registry/on-subscribe` has `post: null` with the operation at path level.
    if let Some(Value::Object(paths)) = spec.get_mut("paths") {
        for item in paths.values_mut() {
            let Value::Object(item) = item else { continue };
            if item.get("post").is_some_and(Value::is_null) && item.contains_key("requestBody") {
                let op: Map<String, Value> = [
                    "summary",
                    "description",
                    "operationId",
                    "tags",
                    "requestBody",
                    "responses",
                    "security",
                    "deprecated",
                ]
                .iter()
                .filter_map(|k| item.remove(*k).map(|v| ((*k).to_owned(), v)))
                .collect();
                item.insert("post".into(), Value::Object(op));
            }
        }
    }
    // E5: social, CRVS, FR and IBR keep the search branch of `txn_status` as a *schema* inside
    // `txnstatus_response.example` and point a `$ref` into it. Move it to a named schema so
    // that it is a schema, and the example is not one.
    const HOLDER: &str = "/components/schemas/TxnStatusResponse/properties/txnstatus_response";
    if let Some(Value::Object(holder)) = spec.pointer_mut(HOLDER)
        && let Some(example) = holder.remove("example")
        && let Some(Value::Object(schemas)) = spec.pointer_mut("/components/schemas")
    {
        schemas.insert(TXN_SEARCH_SCHEMA.into(), example);
    }
    rewrite(spec);
}

/// Name under which E5 files the `txn_status` search branch.
const TXN_SEARCH_SCHEMA: &str = "TxnStatusSearchResponse";

/// E3 (`oneOf` over overlapping primitive types), E5 (dangling `$ref` into
/// `…/txnstatus_response/example`) and the OpenAPI → JSON Schema dialect step (`nullable`).
fn rewrite(v: &mut Value) {
    const BAD: &str =
        "#/components/schemas/TxnStatusResponse/properties/txnstatus_response/example";
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(rest) = r.strip_prefix(BAD)
            {
                *r = format!("#/components/schemas/{TXN_SEARCH_SCHEMA}{rest}");
            }
            // E3: `oneOf [string, integer, number, boolean, object]` (idtype-value `value`,
            // predicate `attribute_value`) rejects every integer, which is both an integer and
            // a number. The intent is "any of these types".
            let type_only_one_of = match map.get("oneOf") {
                Some(Value::Array(branches)) => {
                    let types: Vec<&str> = branches
                        .iter()
                        .filter_map(|b| b.as_object())
                        .filter(|b| b.len() == 1)
                        .filter_map(|b| b.get("type").and_then(Value::as_str))
                        .collect();
                    types.len() == branches.len()
                        && types.contains(&"integer")
                        && types.contains(&"number")
                }
                _ => false,
            };
            if type_only_one_of && let Some(branches) = map.remove("oneOf") {
                map.insert("anyOf".into(), branches);
            }
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type").cloned()
            {
                map.insert("type".into(), json!([t, "null"]));
            }
            for (k, child) in map.iter_mut() {
                // Examples are data, not schemas: leave them alone.
                if k != "example" && k != "examples" {
                    rewrite(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite),
        _ => {}
    }
}

fn operation(spec: &Value, registry: RegistryType, path: &str) -> Result<Value, String> {
    let path = path.trim_end_matches('/');
    let paths = spec
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("spec has no paths")?;
    let op = paths.get(path).and_then(|p| p.get("post")).ok_or_else(|| {
        let known: Vec<&String> = paths.keys().collect();
        format!("the {registry} spec has no POST {path}; it has {known:?}")
    })?;
    Ok(op.clone())
}

fn json_schema_of(content_holder: &Value) -> Option<Value> {
    content_holder
        .pointer("/content/application~1json/schema")
        .cloned()
}

/// The JSON request-body schema of `POST path` in the registry's spec.
pub fn request_schema(registry: RegistryType, path: &str) -> Result<Value, String> {
    let spec = spec(registry)?;
    let op = operation(&spec, registry, path)?;
    op.get("requestBody")
        .and_then(json_schema_of)
        .ok_or_else(|| format!("{registry} {path} declares no application/json request body"))
}

/// The JSON schema of the `default` (success) response of `POST path`.
pub fn response_schema(registry: RegistryType, path: &str) -> Result<Value, String> {
    let spec = spec(registry)?;
    let op = operation(&spec, registry, path)?;
    let default = op
        .pointer("/responses/default")
        .ok_or_else(|| format!("{registry} {path} declares no default response"))?;
    let default = match default.get("$ref").and_then(Value::as_str) {
        // A reference to components/responses: follow it.
        Some(r) if r.starts_with("#/components/responses/") => spec
            .pointer(&r[1..])
            .cloned()
            .ok_or_else(|| format!("dangling response reference {r}"))?,
        // E4: IBR puts a schema where a response object belongs (and no envelope).
        Some(_) => return Ok(default.clone()),
        None => default.clone(),
    };
    json_schema_of(&default)
        .ok_or_else(|| format!("{registry} {path} declares no application/json response body"))
}

fn validator(
    registry: RegistryType,
    key: String,
    schema: Value,
) -> Result<Arc<jsonschema::Validator>, String> {
    let cache = VALIDATORS.get_or_init(Default::default);
    if let Some(v) = cache.lock().map_err(|e| e.to_string())?.get(&key) {
        return Ok(Arc::clone(v));
    }
    let spec = spec(registry)?;
    // The schema's `#/components/…` references resolve against a root that carries the spec's
    // components next to the schema (unknown keywords are ignored by Draft 4).
    let root = json!({
        "allOf": [schema],
        "components": spec.get("components").cloned().unwrap_or(Value::Null),
    });
    let v = jsonschema::draft4::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .build(&root)
        .map_err(|e| format!("cannot compile the {registry} schema ({key}): {e}"))?;
    let v = Arc::new(v);
    cache
        .lock()
        .map_err(|e| e.to_string())?
        .insert(key, Arc::clone(&v));
    Ok(v)
}

fn run(v: &jsonschema::Validator, body: &Value) -> Result<(), Vec<String>> {
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/".to_owned() } else { at })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates a request body (an envelope the client sends, or a callback the registry sends
/// to the SP's `/registry/on-*` and `/registry/notify`) against `POST path`'s JSON schema.
/// Errors are `"<instance path>: <message>"` lines.
pub fn validate_request(
    registry: RegistryType,
    path: &str,
    body: &Value,
) -> Result<(), Vec<String>> {
    let schema = request_schema(registry, path).map_err(|e| vec![e])?;
    let (schema, branch) = select_message_branch(schema, body);
    let v = validator(registry, format!("{registry} req {path} {branch}"), schema)
        .map_err(|e| vec![e])?;
    run(&v, body)
}

/// E1: `message` is `oneOf [<payload>, EncryptedMessage]`. A failing `oneOf` reports only
/// "not valid under any of the schemas", hiding the real error, and the compliance mock drops
/// these errors for that reason. Validate against the branch the header selects instead
/// (`is_msg_encrypted`), which keeps every check and gives precise error paths.
fn select_message_branch(mut schema: Value, body: &Value) -> (Value, &'static str) {
    let encrypted = body.pointer("/header/is_msg_encrypted") == Some(&Value::Bool(true));
    let Some(message) = schema.pointer_mut("/properties/message") else {
        return (schema, "any");
    };
    let Some(Value::Array(branches)) = message.get("oneOf").cloned() else {
        return (schema, "any");
    };
    let is_encrypted_branch = |b: &Value| {
        b.get("$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| r.ends_with("/EncryptedMessage"))
    };
    let chosen: Vec<Value> = branches
        .into_iter()
        .filter(|b| is_encrypted_branch(b) == encrypted)
        .collect();
    if chosen.len() != 1 {
        return (schema, "any");
    }
    if let Value::Object(m) = message {
        m.remove("oneOf");
        m.insert("allOf".into(), Value::Array(chosen));
    }
    (schema, if encrypted { "encrypted" } else { "plain" })
}

/// Validates a sync response body against `POST path`'s `default` response schema.
pub fn validate_response(
    registry: RegistryType,
    path: &str,
    body: &Value,
) -> Result<(), Vec<String>> {
    let schema = response_schema(registry, path).map_err(|e| vec![e])?;
    let (schema, branch) = select_message_branch(schema, body);
    let v = validator(registry, format!("{registry} resp {path} {branch}"), schema)
        .map_err(|e| vec![e])?;
    run(&v, body)
}

/// The paths of the registry's spec, in spec order.
pub fn paths(registry: RegistryType) -> Result<Vec<String>, String> {
    let spec = spec(registry)?;
    Ok(spec
        .get("paths")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default())
}

/// Builds an example instance of a schema from its `example`/`default`/`enum` values (first
/// `oneOf`/`anyOf` branch, `allOf` merged), to test that inbound parsing accepts what the spec
/// shows. Depth-limited to stop self-referencing schemas.
pub fn example_from_schema(registry: RegistryType, schema: &Value) -> Result<Value, String> {
    let spec = spec(registry)?;
    Ok(synth(&spec, schema, 0))
}

fn synth(spec: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 24 {
        return Value::Null;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return match r.strip_prefix('#').and_then(|p| spec.pointer(p)) {
            Some(target) => synth(spec, target, depth + 1),
            None => Value::Null,
        };
    }
    if let Some(ex) = schema.get("example") {
        return ex.clone();
    }
    if let Some(d) = schema.get("default") {
        return d.clone();
    }
    if let Some(Value::Array(e)) = schema.get("enum")
        && let Some(first) = e.first()
    {
        return first.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(branches)) = schema.get(key)
            && let Some(first) = branches.first()
        {
            return synth(spec, first, depth + 1);
        }
    }
    if let Some(Value::Array(parts)) = schema.get("allOf") {
        let mut merged = Map::new();
        for p in parts {
            if let Value::Object(m) = synth(spec, p, depth + 1) {
                merged.extend(m);
            }
        }
        return Value::Object(merged);
    }
    let ty = schema.get("type").and_then(Value::as_str);
    if let Some(Value::Object(props)) = schema.get("properties") {
        let mut out = Map::new();
        for (k, s) in props {
            let v = synth(spec, s, depth + 1);
            if !v.is_null() {
                out.insert(k.clone(), v);
            }
        }
        return Value::Object(out);
    }
    match ty {
        Some("array") => match schema.get("items") {
            Some(items) => {
                let v = synth(spec, items, depth + 1);
                if v.is_null() { json!([]) } else { json!([v]) }
            }
            None => json!([]),
        },
        Some("object") => json!({}),
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2025-01-01T00:00:00Z"),
            Some("uri") => json!("https://example.org/"),
            _ => json!("string"),
        },
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        _ => Value::Null,
    }
}
