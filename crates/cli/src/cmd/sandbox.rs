//! `dci sandbox`: run the local DCI registry (all five registries, OAuth2, callbacks, faults)
//! until Ctrl-C. Behaviour lives in `dci-sandbox`; this parses flags into a `SandboxConfig`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use dci_protocol::RegistryType;
use dci_protocol::signature::{SigningKey, VerifyingKey};
use dci_sandbox::{
    ClientConfig, ClientQuirks, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, SandboxConfig,
    SignaturePolicy,
};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::cli::exit;
use crate::context::CmdError;

/// The environment variable that overrides the demo client secret (never a flag value: argv
/// leaks; `--client-secret-file` names a file holding it instead).
pub(crate) const SECRET_ENV: &str = "DCI_SANDBOX_CLIENT_SECRET";

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci sandbox
  dci sandbox --listen 127.0.0.1:4010 --population 10000 --seed 42
  DCI_SANDBOX_CLIENT_SECRET=s3cret dci sandbox --client-id spmis --opencrvs-quirks
  dci sandbox --client-id spmis --client-secret-file /run/secrets/sandbox-client
  dci sandbox --signature-policy require --client-public-key client.pem")]
pub(crate) struct SandboxArgs {
    /// Address to listen on. Loopback only unless --allow-remote.
    #[arg(long, default_value = dci_sandbox::DEFAULT_CLI_LISTEN, help_heading = "Network")]
    listen: SocketAddr,
    /// Allow listening on a non-loopback address (exposes the sandbox to the network).
    #[arg(long, help_heading = "Network")]
    allow_remote: bool,
    /// OAuth2 client id (the secret comes from DCI_SANDBOX_CLIENT_SECRET or
    /// --client-secret-file, else the demo secret).
    #[arg(long, default_value = DEMO_CLIENT_ID, help_heading = "OAuth2")]
    client_id: String,
    /// File holding the OAuth2 client secret (instead of DCI_SANDBOX_CLIENT_SECRET)
    /// [env: DCI_SANDBOX_CLIENT_SECRET_FILE].
    #[arg(
        long,
        value_name = "FILE",
        env = "DCI_SANDBOX_CLIENT_SECRET_FILE",
        help_heading = "OAuth2"
    )]
    client_secret_file: Option<PathBuf>,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 600, help_heading = "OAuth2")]
    token_lifetime: u64,
    /// Behave like OpenCRVS's token endpoint for this client: credentials in the query string
    /// or a JSON body, `expires_in` as a string.
    #[arg(long, help_heading = "OAuth2")]
    opencrvs_quirks: bool,
    /// Seed of the generated registry data (the same seed gives the same records).
    #[arg(long, default_value_t = 7, help_heading = "Data")]
    seed: u64,
    /// What to do with request signatures: off, if-present or require.
    #[arg(long, default_value = "off", help_heading = "Signatures")]
    signature_policy: SignaturePolicy,
    /// The client's public key (SPKI PEM or a JWK JSON file) to verify its request signatures.
    #[arg(long, help_heading = "Signatures")]
    client_public_key: Option<PathBuf>,
    /// The sandbox's own signing key (PKCS#8 PEM); a fresh Ed25519 key is generated otherwise.
    #[arg(long, help_heading = "Signatures")]
    signing_key: Option<PathBuf>,
    /// The sandbox's sender_id in replies and callbacks.
    #[arg(long, default_value = "dci-sandbox", help_heading = "Signatures")]
    registry_id: String,
    /// How many people to seed (CRVS has one record each, the other registries their share),
    /// for large pages and bulk work; deterministic from --seed.
    #[arg(long, default_value_t = 80, help_heading = "Data")]
    population: usize,
    /// Delivery attempts of a callback whose receiver fails (5xx, 408, 429, unreachable).
    #[arg(long, default_value_t = 8, help_heading = "Callbacks")]
    callback_attempts: u32,
    /// First wait before a callback is delivered again (doubling up to 5 s).
    #[arg(long, default_value_t = 200, help_heading = "Callbacks")]
    callback_backoff_ms: u64,
}

/// Turns flags (and the secret from the environment, if any) into a config; also says whether
/// the demo secret is in use, so the banner can show it.
pub(crate) fn config(
    args: &SandboxArgs,
    env_secret: Option<String>,
) -> anyhow::Result<(SandboxConfig, bool)> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        bail!(
            "--listen {} is not a loopback address; add --allow-remote to expose the sandbox",
            args.listen
        );
    }
    if args.token_lifetime == 0 {
        bail!("--token-lifetime must be at least 1 second");
    }
    let env_secret = env_secret.filter(|s| !s.is_empty());
    let demo = env_secret.is_none();
    let secret = env_secret.unwrap_or_else(|| DEMO_CLIENT_SECRET.to_owned());
    let mut client = ClientConfig::new(args.client_id.clone(), secret);
    if args.opencrvs_quirks {
        client = client.quirks(ClientQuirks::opencrvs());
    }
    if let Some(path) = &args.client_public_key {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--client-public-key: cannot read {}", path.display()))?;
        let key = if text.trim_start().starts_with('{') {
            let jwk: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("--client-public-key: {} is not JSON", path.display()))?;
            VerifyingKey::from_jwk(&jwk)
        } else {
            VerifyingKey::from_spki_pem(&text)
        }
        .with_context(|| {
            format!(
                "--client-public-key: {} is neither an SPKI PEM public key nor a JWK",
                path.display()
            )
        })?;
        client = client.public_key(key);
    }
    let mut config = SandboxConfig::default()
        .listen(args.listen)
        .allow_non_loopback(args.allow_remote)
        .token_lifetime(Duration::from_secs(args.token_lifetime))
        .seed(args.seed)
        .signature_policy(args.signature_policy)
        .registry_id(args.registry_id.clone())
        .population(args.population)
        .callback_retry(
            args.callback_attempts,
            Duration::from_millis(args.callback_backoff_ms),
            Duration::from_secs(5),
        );
    config = config.clients([client]);
    if let Some(path) = &args.signing_key {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--signing-key: cannot read {}", path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&text).with_context(|| {
            format!(
                "--signing-key: {} is not a PKCS#8 PEM private key",
                path.display()
            )
        })?;
        config = config.signing_key(key);
    }
    Ok((config, demo))
}

/// What `dci sandbox` prints once listening. The secret is shown only when it is the demo one.
pub(crate) fn banner(
    out: &mut impl Write,
    sb: &Sandbox,
    client_id: &str,
    demo_secret: bool,
    json: bool,
) -> std::io::Result<()> {
    let registries: serde_json::Map<String, serde_json::Value> = RegistryType::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), json!(sb.registry_url(*r))))
        .collect();
    if json {
        let v = json!({
            "base_url": sb.base_url(),
            "token_url": sb.token_url(),
            "jwks_url": sb.jwks_url(),
            "registries": registries,
            "client_id": client_id,
            "client_secret": if demo_secret { json!(DEMO_CLIENT_SECRET) } else { json!(null) },
            "demo_credentials": demo_secret,
            "key_id": sb.key_id(),
        });
        writeln!(out, "{v}")?;
        return out.flush();
    }
    writeln!(out, "DCI sandbox listening on {}", sb.base_url())?;
    for r in RegistryType::ALL {
        writeln!(out, "  {:<7} {}", r.as_str(), sb.registry_url(r))?;
    }
    writeln!(out, "  token   {}", sb.token_url())?;
    writeln!(out, "  jwks    {}", sb.jwks_url())?;
    writeln!(
        out,
        "  admin   {}/admin/examples  (faults, requests, callbacks, stats, notify)",
        sb.base_url()
    )?;
    if let Some(e) = sb
        .examples()
        .get(&RegistryType::Crvs)
        .and_then(|e| e.found.first())
    {
        writeln!(
            out,
            "  try     crvs {} {} (more at /admin/examples)",
            e.id_type, e.id_value
        )?;
    }
    if demo_secret {
        writeln!(
            out,
            "Client id {client_id:?}, secret {DEMO_CLIENT_SECRET:?}  << DEMO ONLY: never use these credentials outside a sandbox"
        )?;
    } else {
        writeln!(
            out,
            "Client id {client_id:?}, secret from {SECRET_ENV} or --client-secret-file"
        )?;
    }
    writeln!(out, "Press Ctrl-C to stop.")?;
    out.flush()
}

/// The client secret from [`SECRET_ENV`] or `--client-secret-file` (not both), if either.
fn client_secret(args: &SandboxArgs) -> Result<Option<String>, CmdError> {
    let env = std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty());
    match (env, &args.client_secret_file) {
        (Some(_), Some(_)) => Err(CmdError::usage(format!(
            "the sandbox client secret is given twice: {SECRET_ENV} and --client-secret-file; keep one"
        ))),
        (Some(s), None) => Ok(Some(s)),
        (None, Some(path)) => {
            let secret = crate::config::read_secret_file(path, "sandbox client secret")?;
            if secret.expose_secret().is_empty() {
                return Err(CmdError::usage(format!(
                    "--client-secret-file: {} is empty; write the client secret in it",
                    path.display()
                )));
            }
            Ok(Some(secret.expose_secret().to_owned()))
        }
        (None, None) => Ok(None),
    }
}

pub(crate) fn run(args: SandboxArgs, json: bool) -> u8 {
    let secret = match client_secret(&args) {
        Ok(s) => s,
        Err(e) => return e.report(json),
    };
    let (config, demo) = match config(&args, secret) {
        Ok(c) => c,
        Err(e) => return CmdError::usage(format!("{e:#}")).report(json),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            return CmdError::failed(format!("cannot start the async runtime: {e}")).report(json);
        }
    };
    runtime.block_on(async {
        let sb = match dci_sandbox::spawn(config).await {
            Ok(sb) => sb,
            Err(e) => return CmdError::failed(e.to_string()).report(json),
        };
        if let Err(e) = banner(&mut std::io::stdout(), &sb, &args.client_id, demo, json)
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            eprintln!("error: {e}");
        }
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("error: cannot wait for Ctrl-C: {e}");
        }
        sb.shutdown().await;
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        args: SandboxArgs,
    }

    fn args(extra: &[&str]) -> SandboxArgs {
        let mut argv = vec!["t"];
        argv.extend_from_slice(extra);
        T::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn non_loopback_needs_allow_remote() {
        let err = config(&args(&["--listen", "0.0.0.0:4010"]), None).unwrap_err();
        assert!(err.to_string().contains("--allow-remote"));
        assert!(config(&args(&["--listen", "0.0.0.0:4010", "--allow-remote"]), None).is_ok());
        assert!(T::try_parse_from(["t", "--signature-policy", "sometimes"]).is_err());
    }

    #[tokio::test]
    async fn env_secret_replaces_the_demo_one_and_is_never_printed() {
        let a = args(&[
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            "spmis",
            "--opencrvs-quirks",
        ]);
        let (cfg, demo) = config(&a, Some("env-secret-123".into())).unwrap();
        assert!(!demo);
        let sb = dci_sandbox::spawn(cfg).await.unwrap();
        let mut out = Vec::new();
        banner(&mut out, &sb, "spmis", demo, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&sb.registry_url(RegistryType::Crvs)));
        let uin = &sb.examples()[&RegistryType::Crvs].found[0].id_value;
        assert!(text.contains(uin.as_str()), "an example id to try: {text}");
        assert!(!text.contains("env-secret-123") && !text.contains(DEMO_CLIENT_SECRET));
        // The configured client works (OpenCRVS-style query credentials); the demo one is gone.
        let http = reqwest_like(&sb).await;
        assert_eq!(http.0, 200);
        assert_eq!(http.1, "600");
        assert_eq!(http.2, 401);
    }

    /// (status with env creds in the query, its expires_in, status with the demo creds).
    async fn reqwest_like(sb: &Sandbox) -> (u16, String, u16) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        async fn post(addr: std::net::SocketAddr, path_query: &str, body: &str) -> String {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!(
                "POST {path_query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut resp = String::new();
            s.read_to_string(&mut resp).await.unwrap();
            resp
        }
        let ok = post(
            sb.addr(),
            "/oauth2/client/token?grant_type=client_credentials&client_id=spmis&client_secret=env-secret-123",
            "",
        )
        .await;
        let demo = post(
            sb.addr(),
            "/oauth2/client/token",
            "grant_type=client_credentials&client_id=sandbox&client_secret=sandbox-secret",
        )
        .await;
        let status = |r: &str| r[9..12].parse::<u16>().unwrap();
        let body: serde_json::Value =
            serde_json::from_str(ok.split("\r\n\r\n").nth(1).unwrap().trim()).unwrap_or_default();
        (
            status(&ok),
            body["expires_in"].as_str().unwrap_or_default().to_owned(),
            status(&demo),
        )
    }

    #[tokio::test]
    async fn json_banner_shows_the_demo_secret_only_as_demo() {
        let (cfg, demo) = config(&args(&["--listen", "127.0.0.1:0"]), None).unwrap();
        assert!(demo);
        let sb = dci_sandbox::spawn(cfg).await.unwrap();
        let mut out = Vec::new();
        banner(&mut out, &sb, DEMO_CLIENT_ID, demo, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["demo_credentials"], true);
        assert_eq!(v["client_secret"], DEMO_CLIENT_SECRET);
        assert_eq!(v["registries"]["dr"], sb.registry_url(RegistryType::Dr));
    }
}
