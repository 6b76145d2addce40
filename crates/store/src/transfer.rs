//! Export and import of data sources: the export file and the all-or-nothing import.
//!
//! An export file holds each data source as its [`SourceDocument`] (the API's shape, without the
//! read-only fields) and, when asked, its secret sealed under a separate *export key* (a key file
//! like the master key), bound to the source's code and the secret's field, so that the file can
//! be stored and moved without exposing a secret.
//!
//! [`import`] validates every entry first and reports every problem of every entry; only when
//! all are valid does it write them, in one transaction ([`Store::apply_data_sources`]): a
//! failure (a code taken meanwhile, the database going away) leaves the store as it was.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dci_client::{
    AuthConfig, AuthKind, MasterKey, SourceChange, SourceDocument, SourceFilter, Store, StoreError,
    ValidationErrors,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{BASIC_PASSWORD, BEARER_TOKEN, CLIENT_SECRET};
use crate::seal::{SealedSecret, key_id, open_with, seal_with};

/// The version [`export`] writes. Version 1 files (flat entries) are still read.
pub const EXPORT_VERSION: u32 = 2;

/// An export file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    /// Format version ([`EXPORT_VERSION`]).
    pub version: u32,
    /// Id of the export key the secrets are sealed under, if any are included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_key_id: Option<String>,
    /// The data sources, ordered by code.
    pub data_sources: Vec<ExportedSource>,
}

/// One data source of an export file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSource {
    /// Its settings, without secrets and read-only fields.
    pub source: SourceDocument,
    /// Its secret, sealed under the export key, if secrets were exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<ExportedSecret>,
}

/// A secret sealed under the export key (XChaCha20-Poly1305, bound to code and field).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSecret {
    /// `client_secret`, `bearer_token` or `basic_password`.
    pub field: String,
    /// Id of the export key.
    pub key_id: String,
    /// Nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Codes created.
    pub created: Vec<String>,
    /// Codes updated (with `replace`).
    pub updated: Vec<String>,
}

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions<'a> {
    /// The export key, needed when the file holds sealed secrets.
    pub secrets_key: Option<&'a MasterKey>,
    /// Update sources whose code exists instead of failing on them.
    pub replace: bool,
}

/// The problems of one entry of an import file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryProblems {
    /// Position in `data_sources` (0-based).
    pub index: usize,
    /// Its code as given (may be empty).
    pub code: String,
    /// Every field error, paths relative to the entry's `source`.
    pub errors: ValidationErrors,
}

/// Why an export or import failed. Messages name fields and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The text is not an export file.
    #[error("not a dci export file: {0}")]
    Format(String),
    /// A version this code does not read.
    #[error(
        "export version {0} is not supported: this dci reads versions 1 and 2; export again with this dci"
    )]
    Version(u32),
    /// The file holds sealed secrets but no export key was given.
    #[error(
        "the export holds sealed secrets (export key {key_id}): give the export key it was written with"
    )]
    KeyNeeded {
        /// Id of the key the secrets are sealed under.
        key_id: String,
    },
    /// A sealed secret does not open with the key given.
    #[error(
        "the secret of {code} does not open with export key {key_id}: give the export key it was written with ({reason})"
    )]
    WrongKey {
        /// The entry's code.
        code: String,
        /// Id of the key given.
        key_id: String,
        /// What failed.
        reason: String,
    },
    /// Some entries are invalid; nothing was imported.
    #[error("nothing imported: {}", problems_text(.0))]
    Invalid(Vec<EntryProblems>),
    /// The store failed or refused (a code taken, a source not found); nothing was imported.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn problems_text(problems: &[EntryProblems]) -> String {
    let mut out = String::new();
    for p in problems {
        for e in p.errors.errors() {
            let code = if p.code.is_empty() {
                format!("entry {}", p.index + 1)
            } else {
                p.code.clone()
            };
            out.push_str(&format!("\n  {code}: {e}"));
        }
    }
    out
}

/// Exports the sources with these codes (all when empty), ordered by code. With `secrets_key`,
/// each secret is sealed under it; without, secrets are left out.
pub async fn export(
    store: &dyn Store,
    codes: &[String],
    secrets_key: Option<&MasterKey>,
) -> Result<ExportFile, TransferError> {
    let mut sources = store.list_data_sources(&SourceFilter::default()).await?;
    if let Some(missing) = codes
        .iter()
        .find(|c| !sources.iter().any(|s| &s.code == *c))
    {
        return Err(StoreError::NotFound(missing.clone()).into());
    }
    if !codes.is_empty() {
        sources.retain(|s| codes.contains(&s.code));
    }
    let mut file = ExportFile {
        version: EXPORT_VERSION,
        secrets_key_id: secrets_key.map(key_id),
        data_sources: Vec::with_capacity(sources.len()),
    };
    for s in &sources {
        let mut doc = SourceDocument::from_source(s).without_status();
        doc.set_secret(s.auth.kind(), None);
        let sealed_secret = match (secrets_key, stored_secret(&s.auth)) {
            (Some(key), Some((field, secret))) => {
                let sealed = seal_with(key, &s.code, field, secret);
                Some(ExportedSecret {
                    field: field.to_owned(),
                    key_id: sealed.key_id,
                    nonce: STANDARD.encode(sealed.nonce),
                    ciphertext: STANDARD.encode(sealed.ciphertext),
                })
            }
            _ => None,
        };
        file.data_sources.push(ExportedSource {
            source: doc,
            sealed_secret,
        });
    }
    Ok(file)
}

/// Reads an export file (version 2, or version 1 upgraded on the fly).
pub fn parse_export(text: &str) -> Result<ExportFile, TransferError> {
    let mut v: Value =
        serde_json::from_str(text).map_err(|e| TransferError::Format(e.to_string()))?;
    let version = v.get("version").and_then(Value::as_u64).ok_or_else(|| {
        TransferError::Format(
            "version is missing: an export file starts with {\"version\": 2".into(),
        )
    })?;
    match version {
        1 => upgrade_v1(&mut v),
        2 => {}
        n => return Err(TransferError::Version(u32::try_from(n).unwrap_or(u32::MAX))),
    }
    serde_json::from_value(v).map_err(|e| TransferError::Format(e.to_string()))
}

/// Version 1 kept each entry flat: `auth` was the kind, its settings sat beside it, and the
/// sealed secret inside the entry.
fn upgrade_v1(v: &mut Value) {
    v["version"] = EXPORT_VERSION.into();
    let Some(entries) = v.get_mut("data_sources").and_then(Value::as_array_mut) else {
        return;
    };
    for entry in entries.iter_mut() {
        let Some(obj) = entry.as_object_mut() else {
            continue;
        };
        let sealed = obj.remove("sealed_secret");
        let mut auth = serde_json::Map::new();
        if let Some(kind) = obj.remove("auth") {
            auth.insert("type".into(), kind);
        }
        for (old, new) in [
            ("basic_username", "username"),
            ("token_url", "token_url"),
            ("client_id", "client_id"),
            ("scope", "scope"),
            ("credential_location", "credential_location"),
        ] {
            if let Some(val) = obj.remove(old) {
                auth.insert(new.into(), val);
            }
        }
        obj.insert("auth".into(), Value::Object(auth));
        let mut upgraded = serde_json::json!({ "source": Value::Object(std::mem::take(obj)) });
        if let Some(s) = sealed {
            upgraded["sealed_secret"] = s;
        }
        *entry = upgraded;
    }
}

/// Imports every entry, or none: see the module docs.
pub async fn import(
    store: &dyn Store,
    file: ExportFile,
    options: ImportOptions<'_>,
) -> Result<ImportReport, TransferError> {
    if file.version != EXPORT_VERSION {
        return Err(TransferError::Version(file.version));
    }
    if options.secrets_key.is_none() && file.data_sources.iter().any(|e| e.sealed_secret.is_some())
    {
        return Err(TransferError::KeyNeeded {
            key_id: file.secrets_key_id.unwrap_or_else(|| "?".into()),
        });
    }
    let mut changes = Vec::with_capacity(file.data_sources.len());
    let mut problems = Vec::new();
    let mut report = ImportReport::default();
    for (index, entry) in file.data_sources.into_iter().enumerate() {
        let mut doc = entry.source.without_status();
        let code = doc.code.clone().unwrap_or_default().trim().to_owned();
        if let (Some(sealed), Some(key)) = (entry.sealed_secret, options.secrets_key) {
            let (kind, secret) = open_secret(key, &code, &sealed)?;
            doc.set_secret(kind, Some(secret));
        }
        let existing = if options.replace && !code.is_empty() {
            store.get_data_source(&code).await?
        } else {
            None
        };
        let result = match &existing {
            Some(e) => doc.validate_update(e).map(SourceChange::Update),
            None => doc.validate().map(SourceChange::Create),
        };
        match result {
            Ok(change) => {
                match &change {
                    SourceChange::Create(s) => report.created.push(s.code.clone()),
                    SourceChange::Update(s) => report.updated.push(s.code.clone()),
                }
                changes.push(change);
            }
            Err(errors) => problems.push(EntryProblems {
                index,
                code,
                errors,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(TransferError::Invalid(problems));
    }
    store.apply_data_sources(&changes).await?;
    Ok(report)
}

fn stored_secret(auth: &AuthConfig) -> Option<(&'static str, &SecretString)> {
    match auth {
        AuthConfig::None => None,
        AuthConfig::Bearer { token } => Some((BEARER_TOKEN, token)),
        AuthConfig::Basic { password, .. } => Some((BASIC_PASSWORD, password)),
        AuthConfig::OAuth2(o) => Some((CLIENT_SECRET, &o.client_secret)),
    }
}

fn open_secret(
    key: &MasterKey,
    code: &str,
    sealed: &ExportedSecret,
) -> Result<(AuthKind, SecretString), TransferError> {
    let wrong = |reason: String| TransferError::WrongKey {
        code: code.to_owned(),
        key_id: key_id(key),
        reason,
    };
    let kind = match sealed.field.as_str() {
        BEARER_TOKEN => AuthKind::Bearer,
        BASIC_PASSWORD => AuthKind::Basic,
        CLIENT_SECRET => AuthKind::OAuth2,
        other => return Err(wrong(format!("unknown secret field {other:?}"))),
    };
    let decode = |what: &str, s: &str| {
        STANDARD
            .decode(s)
            .map_err(|_| wrong(format!("{what} is not base64")))
    };
    let secret = open_with(
        key,
        code,
        &sealed.field,
        &SealedSecret {
            key_id: sealed.key_id.clone(),
            nonce: decode("the nonce", &sealed.nonce)?,
            ciphertext: decode("the ciphertext", &sealed.ciphertext)?,
        },
    )
    .map_err(|e| wrong(e.to_string()))?;
    Ok((kind, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_entries_are_upgraded() {
        let v1 = r#"{"version": 1, "secrets_key_id": "k", "data_sources": [{
            "code": "crvs_main", "name": "CRVS", "registry_type": "crvs",
            "base_url": "https://crvs.example.org", "auth": "oauth2",
            "token_url": "https://crvs.example.org/token", "client_id": "spmis",
            "credential_location": "query", "sender_id": "me",
            "endpoints": {"sync_search": "/s", "search": "/a", "subscribe": "/b",
                          "unsubscribe": "/c", "txn_status": "/d", "sync_txn_status": "/e"},
            "tls": {"verify": true, "ca_file": null, "client_cert_file": null, "client_key_file": null},
            "timeout_secs": 20, "reply_signature_policy": "off", "registry_public_keys": [],
            "active": true, "notes": "",
            "sealed_secret": {"field": "client_secret", "key_id": "k", "nonce": "AA==", "ciphertext": "AA=="}
        }]}"#;
        let file = parse_export(v1).unwrap();
        assert_eq!(file.version, EXPORT_VERSION);
        let e = &file.data_sources[0];
        assert_eq!(e.source.auth.kind.as_deref(), Some("oauth2"));
        assert_eq!(e.source.auth.credential_location.as_deref(), Some("query"));
        assert_eq!(e.source.timeout_secs.as_deref(), Some("20"));
        assert_eq!(e.sealed_secret.as_ref().unwrap().field, "client_secret");
        assert!(matches!(
            parse_export(r#"{"version": 9, "data_sources": []}"#),
            Err(TransferError::Version(9))
        ));
        assert!(matches!(parse_export("[]"), Err(TransferError::Format(_))));
    }
}
