//! Sandbox configuration: listen address, OAuth2 clients and their quirks, token lifetime,
//! signature policy, seed and population, log bounds and callback redelivery.

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
    pub(crate) population: usize,
    pub(crate) log_entries: usize,
    pub(crate) log_body_budget: usize,
    pub(crate) log_entry_body_cap: usize,
    pub(crate) callback_attempts: u32,
    pub(crate) callback_initial_backoff: Duration,
    pub(crate) callback_max_backoff: Duration,
    pub(crate) callback_timeout: Duration,
}

/// Default of [`SandboxConfig::log_capacity`].
pub const DEFAULT_LOG_ENTRIES: usize = 10_000;
/// Default total of [`SandboxConfig::log_body_budget`] (16 MiB per log).
pub const DEFAULT_LOG_BODY_BUDGET: usize = 16 * 1024 * 1024;
/// Default per-entry cap of [`SandboxConfig::log_body_budget`] (2 MiB, the largest request).
pub const DEFAULT_LOG_ENTRY_BODY_CAP: usize = 2 * 1024 * 1024;

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
            population: crate::data::DEFAULT_POPULATION,
            log_entries: DEFAULT_LOG_ENTRIES,
            log_body_budget: DEFAULT_LOG_BODY_BUDGET,
            log_entry_body_cap: DEFAULT_LOG_ENTRY_BODY_CAP,
            callback_attempts: 8,
            callback_initial_backoff: Duration::from_millis(200),
            callback_max_backoff: Duration::from_secs(5),
            callback_timeout: Duration::from_secs(10),
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

    /// How many people the seeded data is generated for (default 80, at most 10 million).
    /// CRVS serves one record per person; DR, IBR, the social registry and FR serve their
    /// share of the same people (about a fifth, two fifths, one household per five or six,
    /// and a sixth). The same seed and population give the same records. Large populations
    /// start fast (records are rendered when a search needs them) and identifier searches
    /// stay a hash lookup; list identifiers with [`crate::Sandbox::identifiers`] or
    /// `GET /admin/examples?ids=K`.
    #[must_use]
    pub fn population(mut self, people: usize) -> Self {
        self.population = people;
        self
    }

    /// How many entries each in-memory log keeps (requests, transactions, callback attempts,
    /// subscriptions; default 10 000); the oldest go first.
    #[must_use]
    pub fn log_capacity(mut self, entries: usize) -> Self {
        self.log_entries = entries;
        self
    }

    /// How many bytes of bodies the request log keeps, and as many of results the transaction
    /// log keeps (for txn status): `total` per log (default 16 MiB), none larger than
    /// `per_entry` (default 2 MiB). The oldest bodies go first; their entries stay, without
    /// the body. `GET /admin/stats` shows what is kept (`retained_bytes`).
    #[must_use]
    pub fn log_body_budget(mut self, total: usize, per_entry: usize) -> Self {
        self.log_body_budget = total;
        self.log_entry_body_cap = per_entry;
        self
    }

    /// Redelivery of callbacks that fail (network error, timeout, HTTP 5xx, 408, 429): at
    /// most `max_attempts` attempts in all (1: no redelivery), waiting `initial_backoff`
    /// before the second and twice as long before each next one, never more than
    /// `max_backoff`. Default 8 attempts, 200 ms, 5 s. At most [`log_capacity`](Self::log_capacity)
    /// callbacks wait for redelivery at once, holding at most four times the
    /// [`log_body_budget`](Self::log_body_budget); a callback failing beyond that is given up
    /// at once (its log entry says so).
    #[must_use]
    pub fn callback_retry(
        mut self,
        max_attempts: u32,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        self.callback_attempts = max_attempts;
        self.callback_initial_backoff = initial_backoff;
        self.callback_max_backoff = max_backoff;
        self
    }

    /// How long one callback attempt may take before it counts as failed (default 10 s).
    #[must_use]
    pub fn callback_timeout(mut self, timeout: Duration) -> Self {
        self.callback_timeout = timeout;
        self
    }

    /// The configured listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The configured population (see [`population`](Self::population)).
    pub fn population_size(&self) -> usize {
        self.population
    }

    /// Checks the settings; the error names the setting and what it accepts.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let max = crate::data::MAX_POPULATION;
        if !(1..=max).contains(&self.population) {
            return Err(format!(
                "population must be between 1 and {max} people, got {}",
                self.population
            ));
        }
        if self.log_entries == 0 {
            return Err("log_capacity must be at least 1 entry".into());
        }
        if self.log_entry_body_cap > self.log_body_budget {
            return Err(format!(
                "log_body_budget: the per-entry cap ({} bytes) must not exceed the total ({} bytes)",
                self.log_entry_body_cap, self.log_body_budget
            ));
        }
        if self.callback_attempts == 0 {
            return Err(
                "callback_retry max_attempts must be at least 1 (1 sends each callback once)"
                    .into(),
            );
        }
        if self.callback_timeout.is_zero() {
            return Err("callback_timeout must be longer than zero".into());
        }
        Ok(())
    }
}
