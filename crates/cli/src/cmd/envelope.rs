//! `dci envelope …`: interop tools for sysadmins debugging signatures ("the registry rejects
//! our signature"). Each reads an envelope (JSON) on stdin.
//!
//! Exit codes: 0 success / valid; 1 the signature is not valid (with the reason); 2 malformed
//! input or bad usage (unreadable JSON, no `header`, unreadable key).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use dci_protocol::OffsetDateTime;
use dci_protocol::signature::{
    self, Algorithm, Canonicalization, SignatureError, Signer, SigningKey, VerifyOptions,
    VerifyingKey,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::cli::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum EnvelopeCommand {
    /// Print the exact canonical bytes of {"header":…,"message":…} that are digested and
    /// signed (no trailing newline, so the output can be piped into `sha256sum`).
    Canonicalize(CanonicalizeArgs),
    /// Sign an envelope: print it with its `signature` set.
    Sign(SignArgs),
    /// Verify an envelope's `signature`: exit 0 when valid, 1 with the reason when not.
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub(crate) enum CanonArg {
    /// Python json.dumps(sort_keys=True, separators=(",", ":")) — the reference profile.
    #[default]
    Python,
    /// RFC 8785 JSON Canonicalization Scheme.
    Jcs,
}

impl From<CanonArg> for Canonicalization {
    fn from(c: CanonArg) -> Self {
        match c {
            CanonArg::Python => Canonicalization::PythonJson,
            CanonArg::Jcs => Canonicalization::Jcs,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AlgArg {
    /// Ed25519.
    Ed25519,
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
}

impl From<AlgArg> for Algorithm {
    fn from(a: AlgArg) -> Self {
        match a {
            AlgArg::Ed25519 => Algorithm::Ed25519,
            AlgArg::Rs256 => Algorithm::Rs256,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct CanonicalizeArgs {
    /// Canonical form.
    #[arg(long, value_enum, default_value_t)]
    canonicalization: CanonArg,
    /// Print base64(SHA-256(canonical bytes)) — the `digest` of the signing string — instead.
    #[arg(long)]
    digest: bool,
    /// Canonicalize the whole input document instead of {"header","message"} of an envelope.
    #[arg(long)]
    whole: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----), Ed25519 or RSA.
    #[arg(long, value_name = "PRIVATE.pem")]
    key: PathBuf,
    /// Our sender id, as registered with the receiver (first part of kidId).
    #[arg(long)]
    sender_id: String,
    /// The key's id known to the receiver (middle part of kidId).
    #[arg(long)]
    key_id: String,
    /// Expected key algorithm; refused if the key is of another type.
    #[arg(long, value_enum)]
    alg: Option<AlgArg>,
    /// Signature validity in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    validity: u64,
    /// Canonical form of the digest.
    #[arg(long, value_enum, default_value_t)]
    canonicalization: CanonArg,
    /// Sign as of this unix time instead of now (for reproducing a peer's signature).
    #[arg(long, value_name = "UNIX")]
    at: Option<i64>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// SPKI PEM public key (-----BEGIN PUBLIC KEY-----), Ed25519 or RSA.
    #[arg(long, value_name = "PUBLIC.pem")]
    public_key: PathBuf,
    /// Tolerated clock difference in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    max_skew: u64,
    /// Canonical form of the digest.
    #[arg(long, value_enum, default_value_t)]
    canonicalization: CanonArg,
    /// Verify as of this unix time instead of now.
    #[arg(long, value_name = "UNIX")]
    at: Option<i64>,
}

/// A failure and the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
    /// Already written to stdout (verify's verdict); do not repeat it.
    reported: bool,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        message: message.into(),
        reported: false,
    }
}

pub(crate) fn run(cmd: EnvelopeCommand, json: bool) -> u8 {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cmd {
        EnvelopeCommand::Canonicalize(a) => canonicalize(a, json, &mut stdin.lock(), &mut out),
        EnvelopeCommand::Sign(a) => sign(a, json, &mut stdin.lock(), &mut out),
        EnvelopeCommand::Verify(a) => verify(a, json, &mut stdin.lock(), &mut out),
    };
    match result {
        Ok(()) => exit::OK,
        Err(f) if f.reported => f.code,
        Err(f) => {
            if json {
                let _ = writeln!(out, "{}", json!({"ok": false, "error": f.message}));
            }
            eprintln!("dci envelope: {}", f.message);
            f.code
        }
    }
}

fn read_json(input: &mut impl Read) -> Result<Value, Failure> {
    let mut buf = Vec::new();
    input
        .read_to_end(&mut buf)
        .map_err(|e| usage(format!("cannot read stdin: {e}")))?;
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Err(usage(
            "no input: pipe the envelope JSON into stdin, e.g. `dci envelope verify --public-key k.pem < envelope.json`",
        ));
    }
    serde_json::from_slice(&buf).map_err(|e| usage(format!("stdin is not valid JSON: {e}")))
}

fn envelope_parts(v: &Value) -> Result<(&Value, &Value), Failure> {
    let obj = v
        .as_object()
        .ok_or_else(|| usage("the envelope must be a JSON object {signature, header, message}"))?;
    let header = obj.get("header").ok_or_else(|| {
        usage("the envelope has no `header` (use --whole to canonicalize any JSON)")
    })?;
    Ok((header, obj.get("message").unwrap_or(&Value::Null)))
}

fn read_file(path: &Path, what: &str) -> Result<SecretString, Failure> {
    std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))
}

fn when(at: Option<i64>) -> Result<OffsetDateTime, Failure> {
    match at {
        None => Ok(OffsetDateTime::now_utc()),
        Some(t) => OffsetDateTime::from_unix_timestamp(t)
            .map_err(|e| usage(format!("--at {t} is not a usable unix time: {e}"))),
    }
}

fn io_err(e: std::io::Error) -> Failure {
    Failure {
        code: exit::FAILED,
        message: format!("cannot write output: {e}"),
        reported: false,
    }
}

fn canonicalize(
    a: CanonicalizeArgs,
    json: bool,
    input: &mut impl Read,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let v = read_json(input)?;
    let c: Canonicalization = a.canonicalization.into();
    let text = if a.whole {
        c.apply(&v)
    } else {
        let (header, message) = envelope_parts(&v)?;
        signature::canonical_payload(header, message, c)
    };
    let digest = signature::digest_bytes(text.as_bytes());
    if json {
        writeln!(
            out,
            "{}",
            json!({"ok": true, "canonical": text, "digest": digest})
        )
        .map_err(io_err)?;
    } else if a.digest {
        writeln!(out, "{digest}").map_err(io_err)?;
    } else {
        out.write_all(text.as_bytes()).map_err(io_err)?;
    }
    out.flush().map_err(io_err)
}

fn sign(
    a: SignArgs,
    json: bool,
    input: &mut impl Read,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut v = read_json(input)?;
    envelope_parts(&v)?;
    let pem = read_file(&a.key, "private key")?;
    let key = SigningKey::from_pkcs8_pem(pem.expose_secret())
        .map_err(|e| usage(format!("{}: {e}", a.key.display())))?;
    if let Some(alg) = a.alg
        && Algorithm::from(alg) != key.algorithm()
    {
        return Err(usage(format!(
            "--alg {} but {} is an {} key",
            Algorithm::from(alg),
            a.key.display(),
            key.algorithm()
        )));
    }
    if a.validity == 0 {
        return Err(usage("--validity must be at least 1 second"));
    }
    let signer = Signer::new(key, a.sender_id, a.key_id)
        .validity(Duration::from_secs(a.validity))
        .canonicalization(a.canonicalization.into());
    signer
        .sign_envelope(&mut v, when(a.at)?)
        .map_err(|e| usage(e.to_string()))?;
    let text = if json {
        serde_json::to_string(&v)
    } else {
        serde_json::to_string_pretty(&v)
    }
    .map_err(|e| usage(e.to_string()))?;
    writeln!(out, "{text}").map_err(io_err)?;
    out.flush().map_err(io_err)
}

fn verify(
    a: VerifyArgs,
    json: bool,
    input: &mut impl Read,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let v = read_json(input)?;
    envelope_parts(&v)?;
    let pem = std::fs::read_to_string(&a.public_key).map_err(|e| {
        usage(format!(
            "cannot read public key {}: {e}",
            a.public_key.display()
        ))
    })?;
    let key = VerifyingKey::from_spki_pem(&pem)
        .map_err(|e| usage(format!("{}: {e}", a.public_key.display())))?;
    let opts = VerifyOptions {
        max_skew: Duration::from_secs(a.max_skew),
        canonicalization: a.canonicalization.into(),
    };
    match signature::verify_envelope(&v, &key, &opts, when(a.at)?) {
        Ok(p) => {
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"ok": true, "valid": true, "sender_id": p.sender_id, "key_id": p.key_id,
                           "algorithm": p.algorithm.as_str(), "created": p.created, "expires": p.expires,
                           "namespace": p.namespace})
                )
                .map_err(io_err)?;
            } else {
                writeln!(
                    out,
                    "valid: signed by sender {:?} with key {:?} ({}), created {}, expires {}",
                    p.sender_id, p.key_id, p.algorithm, p.created, p.expires
                )
                .map_err(io_err)?;
            }
            out.flush().map_err(io_err)
        }
        Err(e) => {
            let digest = {
                let (h, m) = envelope_parts(&v)?;
                signature::digest(h, m, opts.canonicalization)
            };
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"ok": true, "valid": false, "reason": e.to_string(), "kind": kind(&e), "digest": digest})
                )
                .map_err(io_err)?;
            } else {
                writeln!(out, "invalid: {e}\nour digest of header+message: {digest}")
                    .map_err(io_err)?;
            }
            let _ = out.flush();
            Err(Failure {
                code: exit::FAILED,
                message: format!("signature not valid: {e}"),
                reported: true,
            })
        }
    }
}

fn kind(e: &SignatureError) -> &'static str {
    match e {
        SignatureError::Malformed(_) | SignatureError::MissingParameter(_) => "malformed",
        SignatureError::UnsupportedAlgorithm(_) | SignatureError::AlgorithmMismatch { .. } => {
            "algorithm"
        }
        SignatureError::Expired { .. } => "expired",
        SignatureError::NotYetValid { .. } => "not_yet_valid",
        SignatureError::Invalid => "invalid",
        _ => "other",
    }
}
