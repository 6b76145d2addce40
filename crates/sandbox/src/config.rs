//! Sandbox configuration: listen address, OAuth2 clients and their quirks, token lifetime,
//! signature policy and seed.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dci_protocol::RegistryType;
use dci_protocol::signature::{SigningKey, VerifyingKey};
use secrecy::SecretString;

/// The demo client id used when no client is configured. Demo only: never use in production.
pub const DEMO_CLIENT_ID: &str = "sandbox";
/// The demo client secret used when no client is configured. Demo only: never use in production.
pub const DEMO_CLIENT_SECRET: &str = "sandbox-secret";
/// The default listen address of `dci sandbox`.
pub const DEFAULT_CLI_LISTEN: &str = "127.0.0.1:4010";

/// The read scope a token needs to use a registry, e.g. `crvs.read`.
pub fn read_scope(registry: RegistryType) -> String {
    format!("{}.read", registry.as_str())
}

/// Non-standard behaviours of real token endpoints, enabled per client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientQuirks {
    /// Accept `client_id`/`client_secret` in the query string (OpenCRVS proxies the query).
    pub credentials_in_query: bool,
    /// Accept a JSON body `{"client_id", "client_secret", "grant_type"}` (OpenCRVS Farajaland).
    pub credentials_in_json: bool,
    /// Send `expires_in` as a string (`"600"`), as the DCI authz spec types it.
    pub expires_in_as_string: bool,
}

impl ClientQuirks {
    /// OpenCRVS-like: credentials in the query string or a JSON body, `expires_in` as a string.
    pub fn opencrvs() -> Self {
        ClientQuirks {
            credentials_in_query: true,
            credentials_in_json: true,
            expires_in_as_string: true,
        }
    }
}

/// An OAuth2 client the token endpoint knows.
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) id: String,
    pub(crate) secret: SecretString,
    pub(crate) scopes: Vec<String>,
    pub(crate) quirks: ClientQuirks,
    pub(crate) public_key: Option<VerifyingKey>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("quirks", &self.quirks)
            .field("public_key", &self.public_key.is_some())
            .finish()
    }
}

impl ClientConfig {
    /// A client allowed every registry's read scope, with no quirks.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        ClientConfig {
            id: id.into(),
            secret: SecretString::from(secret.into()),
            scopes: RegistryType::ALL.iter().map(|r| read_scope(*r)).collect(),
            quirks: ClientQuirks::default(),
            public_key: None,
        }
    }

    /// Replaces the scopes this client may be granted (e.g. `["crvs.read"]`).
    #[must_use]
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the token-endpoint quirks for this client.
    #[must_use]
    pub fn quirks(mut self, quirks: ClientQuirks) -> Self {
        self.quirks = quirks;
        self
    }

    /// The client's public key, used to verify its request signatures (see [`SignaturePolicy`]).
    #[must_use]
    pub fn public_key(mut self, key: VerifyingKey) -> Self {
        self.public_key = Some(key);
        self
    }

    /// The client id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What the sandbox does with `signature` on incoming requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SignaturePolicy {
    /// Ignore signatures (the default; real registries such as OpenCRVS accept unsigned requests).
    #[default]
    Off,
    /// Verify a signature when one is present and the client's key is known.
    IfPresent,
    /// Reject requests without a valid signature from a client whose key is known.
    Require,
}

impl std::str::FromStr for SignaturePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(SignaturePolicy::Off),
            "if-present" => Ok(SignaturePolicy::IfPresent),
            "require" => Ok(SignaturePolicy::Require),
            other => Err(format!(
                "unknown signature policy {other:?}: use off, if-present or require"
            )),
        }
    }
}

/// How to start a sandbox. `SandboxConfig::default()` listens on `127.0.0.1:0` with the demo
/// client `sandbox` / `sandbox-secret`.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) allow_non_loopback: bool,
    pub(crate) clients: Vec<ClientConfig>,
    pub(crate) token_lifetime: Duration,
    pub(crate) signature_policy: SignaturePolicy,
    pub(crate) seed: u64,
    pub(crate) registry_id: String,
    pub(crate) callback_delay: Duration,
    pub(crate) signing_key: Option<SigningKey>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            allow_non_loopback: false,
            clients: vec![ClientConfig::new(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)],
            token_lifetime: Duration::from_secs(600),
            signature_policy: SignaturePolicy::Off,
            seed: 7,
            registry_id: "dci-sandbox".to_owned(),
            callback_delay: Duration::from_millis(20),
            signing_key: None,
        }
    }
}

impl SandboxConfig {
    /// Same as `default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The address to bind. Non-loopback addresses are refused unless
    /// [`allow_non_loopback`](Self::allow_non_loopback) is set.
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Allows binding beyond loopback (e.g. `0.0.0.0`). Off by default.
    #[must_use]
    pub fn allow_non_loopback(mut self, allow: bool) -> Self {
        self.allow_non_loopback = allow;
        self
    }

    /// Replaces the demo client's credentials (keeps its scopes and no quirks).
    #[must_use]
    pub fn credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        let id = id.into();
        self.clients
            .retain(|c| c.id != DEMO_CLIENT_ID && c.id != id);
        self.clients.insert(0, ClientConfig::new(id, secret));
        self
    }

    /// Replaces every client, the demo one included.
    #[must_use]
    pub fn clients(mut self, clients: impl IntoIterator<Item = ClientConfig>) -> Self {
        self.clients = clients.into_iter().collect();
        self
    }

    /// Adds (or replaces, by id) a client.
    #[must_use]
    pub fn client(mut self, client: ClientConfig) -> Self {
        self.clients.retain(|c| c.id != client.id);
        self.clients.push(client);
        self
    }

    /// Token lifetime (default 600 s).
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// What to do with request signatures (default [`SignaturePolicy::Off`]).
    #[must_use]
    pub fn signature_policy(mut self, policy: SignaturePolicy) -> Self {
        self.signature_policy = policy;
        self
    }

    /// Seed of the generated data (default 7). The same seed gives the same records.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The registry's `sender_id` in callbacks and sync replies (default `dci-sandbox`).
    #[must_use]
    pub fn registry_id(mut self, id: impl Into<String>) -> Self {
        self.registry_id = id.into();
        self
    }

    /// Delay before an async callback is sent (default 20 ms), before any injected delay.
    #[must_use]
    pub fn callback_delay(mut self, delay: Duration) -> Self {
        self.callback_delay = delay;
        self
    }

    /// The sandbox's own signing key for callbacks and sync replies; a fresh Ed25519 key is
    /// generated at start when none is given.
    #[must_use]
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// The configured listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }
}
