//! Opening the store the way every front end does: from `DCI_HOME`, `DCI_DATABASE_URL` and
//! `DCI_MASTER_KEY` or `DCI_MASTER_KEY_FILE`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dci_client::{MasterKey, OpsStore, Store, StoreError};

use crate::master_key::{self, MASTER_KEY_FILE, MasterKeyError};
use crate::rotate::{KeyLock, STAGED_KEY_FILE};
use crate::seal::Sealer;

/// Name of the SQLite database file inside `DCI_HOME`.
pub const DATABASE_FILE: &str = "dci.sqlite3";

/// Where the store and its key come from. [`OpenOptions::from_env`] reads the environment.
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// `DCI_HOME`: holds the SQLite file and the key file (default: the platform data dir + `dci`).
    pub home: Option<PathBuf>,
    /// `DCI_DATABASE_URL`: `sqlite://…` or `postgres://…` (default: SQLite in `home`).
    pub database_url: Option<String>,
    /// `DCI_MASTER_KEY`: base64 of 32 bytes (default: the key file in `home`).
    pub master_key: Option<String>,
    /// `DCI_MASTER_KEY_FILE`: a file holding the key as `DCI_MASTER_KEY` would (a systemd
    /// credential, a container secret). Never written by dci. At most one of the two is set.
    pub master_key_file: Option<PathBuf>,
    /// How many database connections the store may hold (default: a pool).
    pub connections: Connections,
}

/// How many database connections a store may hold: what the process does at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Connections {
    /// A pool, for a process that does several things at once (`dci serve`, a bulk run): up
    /// to 4 SQLite or 8 PostgreSQL connections.
    #[default]
    Pool,
    /// One connection, for a command that does one thing at a time. Each query waits for the
    /// previous one's connection instead of opening another: with a pool, a connection that
    /// was just used is handed back a moment after its query ends, so the next query found
    /// none free and opened a second one (a thread, the file and its schema read again, or a
    /// PostgreSQL session) for a command that never needed two. On PostgreSQL it does not
    /// `LISTEN` either (that is a session of its own): its changes are still notified to every
    /// other instance, and its own readers poll for theirs, as on SQLite.
    Single,
}

impl Connections {
    /// The most connections a backend's pool may open (`pool` for [`Connections::Pool`]).
    pub(crate) fn max(self, pool: u32) -> u32 {
        match self {
            Connections::Pool => pool,
            Connections::Single => 1,
        }
    }
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("home", &self.home)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[redacted]"),
            )
            .field("master_key_file", &self.master_key_file)
            .field("connections", &self.connections)
            .finish()
    }
}

impl OpenOptions {
    /// Reads `DCI_HOME`, `DCI_DATABASE_URL`, `DCI_MASTER_KEY` and `DCI_MASTER_KEY_FILE` (empty
    /// values count as unset).
    pub fn from_env() -> OpenOptions {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        OpenOptions {
            home: var("DCI_HOME").map(PathBuf::from),
            database_url: var("DCI_DATABASE_URL"),
            master_key: var("DCI_MASTER_KEY"),
            master_key_file: var("DCI_MASTER_KEY_FILE").map(PathBuf::from),
            connections: Connections::Pool,
        }
    }

    /// These options with `connections` set.
    #[must_use]
    pub fn connections(mut self, connections: Connections) -> OpenOptions {
        self.connections = connections;
        self
    }

    /// `home`, else the platform data directory (`~/.local/share/dci` on Linux).
    pub fn resolved_home(&self) -> Result<PathBuf, OpenError> {
        match &self.home {
            Some(h) => Ok(h.clone()),
            None => dirs::data_dir()
                .map(|d| d.join("dci"))
                .ok_or(OpenError::NoHome),
        }
    }
}

/// Where the master key in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `DCI_MASTER_KEY`, or the file `DCI_MASTER_KEY_FILE` names: the operator supplies the
    /// key and dci never writes it.
    Env,
    /// A key file (created now if `created`).
    File {
        /// The file.
        path: PathBuf,
        /// Whether this open created it.
        created: bool,
    },
}

/// An open store and how it was found.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The operations store (async requests, callbacks, subscriptions, signing keys) in the same
    /// database and pool.
    pub ops: Arc<dyn OpsStore>,
    /// `DCI_HOME` as resolved.
    pub home: PathBuf,
    /// The database URL with any password removed (for messages).
    pub database: String,
    /// Where the master key came from.
    pub key_origin: KeyOrigin,
}

/// Why the store could not be opened. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No `DCI_HOME` and no platform data directory.
    #[error("cannot find a data directory: set DCI_HOME to a writable directory")]
    NoHome,
    /// `DCI_HOME` could not be created.
    #[error("cannot create DCI_HOME {path}: {source}")]
    Home {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The master key is malformed or its file unreadable.
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    /// Both `DCI_MASTER_KEY` and `DCI_MASTER_KEY_FILE` are set.
    #[error(
        "both DCI_MASTER_KEY and DCI_MASTER_KEY_FILE are set: set only one of them (nothing was opened)"
    )]
    TwoMasterKeys,
    /// The database holds secrets but no master key was supplied.
    #[error(
        "missing master key: {database} holds secrets sealed under master key {key_id}, but neither DCI_MASTER_KEY nor DCI_MASTER_KEY_FILE is set and {file} does not exist: set one of them or restore the key file; nothing was changed"
    )]
    MissingMasterKey {
        /// The database (redacted).
        database: String,
        /// Id of the key the secrets are sealed under.
        key_id: String,
        /// The key file that was looked for.
        file: PathBuf,
    },
    /// The database failed, or the key is wrong.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpenError {
    /// Whether the master key is wrong or missing.
    pub fn is_key_problem(&self) -> bool {
        match self {
            OpenError::MasterKey(_)
            | OpenError::TwoMasterKeys
            | OpenError::MissingMasterKey { .. } => true,
            OpenError::Store(e) => e.is_wrong_master_key(),
            _ => false,
        }
    }
}

/// Opens the store described by `options`, creating `DCI_HOME`, the key file and the SQLite
/// database on first use.
///
/// A key file is only created when no key is given and none exists; if the database turns out to
/// hold secrets sealed under another key, the new file is removed again and
/// [`OpenError::MissingMasterKey`] is returned.
///
/// When `master.key.new` exists (a rotation is running, or one was killed), the open waits for
/// the rotation's lock and then finishes or undoes the cut-short rotation (see [`crate::rotate`]),
/// so the store opens with whichever key its secrets are sealed under.
pub async fn open(options: &OpenOptions) -> Result<Opened, OpenError> {
    if options.master_key.is_none() {
        let home = options.resolved_home()?;
        let staged = home.join(STAGED_KEY_FILE);
        if staged.exists() {
            create_private_dir(&home)?;
            let _lock = KeyLock::acquire(&home)?;
            // Checked again under the lock: the rotation may just have finished.
            if staged.exists() {
                return crate::rotate::open_resolving(options, home, staged).await;
            }
        }
    }
    open_locked(options).await
}

/// [`open`] for a caller that holds the key lock (a rotation).
pub(crate) async fn open_locked(options: &OpenOptions) -> Result<Opened, OpenError> {
    let home = options.resolved_home()?;
    // The ring, and the file it is re-read from when a key id it does not hold turns up.
    let given_key = match (&options.master_key, &options.master_key_file) {
        (Some(_), Some(_)) => return Err(OpenError::TwoMasterKeys),
        (Some(text), None) => Some((master_key::parse_ring(text, "DCI_MASTER_KEY")?, None)),
        (None, Some(path)) => {
            let origin = format!("DCI_MASTER_KEY_FILE ({})", path.display());
            let ring = master_key::read_ring_file(path, &origin)?;
            Some((ring, Some(path.clone())))
        }
        (None, None) => None,
    };
    let needs_home = given_key.is_none() || options.database_url.is_none();
    if needs_home {
        create_private_dir(&home)?;
    }
    let staged = home.join(STAGED_KEY_FILE);
    if options.master_key.is_none() && staged.exists() {
        return crate::rotate::open_resolving(options, home, staged).await;
    }
    let key_file = home.join(MASTER_KEY_FILE);
    let ((ring, ring_file), key_origin) = match given_key {
        Some(given) => (given, KeyOrigin::Env),
        None if key_file.exists() => (
            (read_ring(&key_file)?, Some(key_file.clone())),
            KeyOrigin::File {
                path: key_file.clone(),
                created: false,
            },
        ),
        None => {
            let key = master_key::generate();
            match master_key::write_new_file(&key_file, &key) {
                Ok(()) => (
                    (vec![key], Some(key_file.clone())),
                    KeyOrigin::File {
                        path: key_file.clone(),
                        created: true,
                    },
                ),
                // Another process created it first (two commands on a fresh home): use theirs.
                Err(MasterKeyError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    (
                        (read_ring(&key_file)?, Some(key_file.clone())),
                        KeyOrigin::File {
                            path: key_file.clone(),
                            created: false,
                        },
                    )
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let url = database_url(options, &home)?;
    let database = redact_url(&url);
    match connect_ring_all(&url, key_ring(&ring, ring_file), options.connections).await {
        Ok((store, ops)) => Ok(Opened {
            store,
            ops,
            home,
            database,
            key_origin,
        }),
        Err(e)
            if e.is_wrong_master_key()
                && matches!(key_origin, KeyOrigin::File { created: true, .. }) =>
        {
            let _ = std::fs::remove_file(&key_file);
            Err(OpenError::MissingMasterKey {
                database,
                key_id: stored_key_id(&e),
                file: key_file,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// `DCI_DATABASE_URL`, else the SQLite file in `home` (created empty with mode 0600).
pub(crate) fn database_url(options: &OpenOptions, home: &Path) -> Result<String, OpenError> {
    match &options.database_url {
        Some(u) => Ok(u.clone()),
        None => {
            let path = home.join(DATABASE_FILE);
            create_private_file(&path)?;
            Ok(format!("sqlite://{}", path.display()))
        }
    }
}

fn read_ring(path: &Path) -> Result<Vec<MasterKey>, MasterKeyError> {
    master_key::read_ring_file(path, &path.display().to_string())
}

/// The sealer for `ring`, re-reading `file` (when the keys come from one) on an unknown key id:
/// how a running server picks up a key another process rotated to.
pub(crate) fn key_ring(ring: &[MasterKey], file: Option<PathBuf>) -> Sealer {
    let reload = file.map(|path| -> crate::seal::Reload {
        Arc::new(move || read_ring(&path).map_err(|e| e.to_string()))
    });
    Sealer::ring(ring, reload)
}

/// Connects to `url`, picking the backend by scheme: `sqlite:` or `postgres:`/`postgresql:`.
pub async fn connect(url: &str, master_key: &MasterKey) -> Result<Arc<dyn Store>, StoreError> {
    Ok(connect_all(url, master_key).await?.0)
}

/// Like [`connect`], also returning the operations store, which shares the pool.
pub async fn connect_all(
    url: &str,
    master_key: &MasterKey,
) -> Result<(Arc<dyn Store>, Arc<dyn OpsStore>), StoreError> {
    connect_ring_all(url, Sealer::new(master_key), Connections::Pool).await
}

/// [`connect_all`] with a key ring.
pub(crate) async fn connect_ring_all(
    url: &str,
    sealer: Sealer,
    connections: Connections,
) -> Result<(Arc<dyn Store>, Arc<dyn OpsStore>), StoreError> {
    if url.starts_with("sqlite:") {
        let s = Arc::new(crate::SqliteStore::connect_ring(url, sealer, connections).await?);
        Ok((s.clone(), s))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let s = Arc::new(crate::PgStore::connect_ring(url, sealer, connections).await?);
        Ok((s.clone(), s))
    } else {
        Err(StoreError::Backend {
            message: format!(
                "unsupported database URL {}: use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url(url)
            ),
            source: "unsupported database URL scheme".into(),
        })
    }
}

/// The URL with any password replaced by `********`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let pw = if userinfo.contains(':') {
                ":********"
            } else {
                ""
            };
            // A password could also hide in the query (`?password=`); drop the query entirely.
            let tail = tail.split_once('?').map_or(tail, |(p, _)| p);
            format!("{scheme}://{user}{pw}@{host}{tail}")
        }
        None => {
            let tail = tail.split_once('?').map_or(tail, |(p, _)| p);
            format!("{scheme}://{authority}{tail}")
        }
    }
}

fn stored_key_id(e: &StoreError) -> String {
    // The message names the stored key first ("sealed under master key X").
    let msg = e.to_string();
    msg.split("master key ")
        .nth(1)
        .and_then(|s| s.split([',', ' ']).next())
        .unwrap_or("?")
        .to_owned()
}

/// Creates an empty file readable only by its owner, unless it exists. SQLite gives its `-wal`
/// and `-shm` files the same mode.
fn create_private_file(path: &Path) -> Result<(), OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(OpenError::Home {
            path: path.to_owned(),
            source,
        }),
    }
}

pub(crate) fn create_private_dir(path: &Path) -> Result<(), OpenError> {
    let err = |source| OpenError::Home {
        path: path.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(home: &Path) -> OpenOptions {
        OpenOptions {
            home: Some(home.to_owned()),
            ..OpenOptions::default()
        }
    }

    #[tokio::test]
    async fn the_key_can_come_from_a_file_that_dci_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let key = master_key::generate();
        let key_path = dir.path().join("credential");
        std::fs::write(
            &key_path,
            format!("{}\n", master_key::encode(&key).as_str()),
        )
        .unwrap();
        let with_file = OpenOptions {
            master_key_file: Some(key_path.clone()),
            ..options(&home)
        };
        let opened = open(&with_file).await.unwrap();
        assert_eq!(opened.key_origin, KeyOrigin::Env);
        assert!(
            !home.join(MASTER_KEY_FILE).exists(),
            "no key file is created"
        );
        drop(opened);
        assert_eq!(
            std::fs::read_to_string(&key_path).unwrap(),
            format!("{}\n", master_key::encode(&key).as_str())
        );
        // The same key through DCI_MASTER_KEY opens the same database; another key does not.
        let with_env = OpenOptions {
            master_key: Some(master_key::encode(&key).to_string()),
            ..options(&home)
        };
        open(&with_env).await.unwrap();
        std::fs::write(
            &key_path,
            master_key::encode(&master_key::generate()).as_str(),
        )
        .unwrap();
        let other = open(&with_file).await;
        assert!(other.is_err_and(|e| e.is_key_problem()));
    }

    #[tokio::test]
    async fn a_bad_key_file_or_two_keys_are_refused_with_the_variable_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let missing = dir.path().join("nope");
        let err = open(&OpenOptions {
            master_key_file: Some(missing.clone()),
            ..options(&home)
        })
        .await
        .err()
        .unwrap();
        assert!(err.is_key_problem());
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let short = dir.path().join("short");
        std::fs::write(&short, "c2hvcnQ=").unwrap();
        let err = open(&OpenOptions {
            master_key_file: Some(short),
            ..options(&home)
        })
        .await
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("DCI_MASTER_KEY_FILE") && err.contains("32 random bytes"),
            "{err}"
        );

        let key = dir.path().join("key");
        std::fs::write(&key, master_key::encode(&master_key::generate()).as_str()).unwrap();
        let err = open(&OpenOptions {
            master_key: Some(master_key::encode(&master_key::generate()).to_string()),
            master_key_file: Some(key),
            ..options(&home)
        })
        .await
        .err()
        .unwrap();
        assert!(matches!(err, OpenError::TwoMasterKeys), "{err}");
        assert!(!home.exists(), "nothing is created when the key is refused");
    }

    fn audit_entry(n: u32) -> dci_client::AuditEntry {
        dci_client::AuditEntry {
            at: time::OffsetDateTime::now_utc(),
            source_code: "crvs_main".into(),
            endpoint: "https://crvs.example.org/registry/sync/search".into(),
            action: "search".into(),
            message_id: Some(format!("msg-{n}")),
            transaction_id: None,
            http_status: Some(200),
            outcome: dci_client::AuditOutcome::Ok,
            duration_ms: 3,
            attempt: 1,
            error: None,
        }
    }

    #[tokio::test]
    async fn a_single_connection_store_opens_one_and_serves_calls_made_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("one.sqlite3").display());
        let sealer = Sealer::new(&master_key::generate());
        let store = crate::SqliteStore::connect_ring(&url, sealer, Connections::Single)
            .await
            .unwrap();
        let all = dci_client::AuditFilter {
            limit: 0,
            ..dci_client::AuditFilter::default()
        };
        // Back to back, as a command makes them (with a pool, the second call found the first
        // one's connection not yet handed back and opened another) ...
        for n in 0..5 {
            store.append_audit(&audit_entry(n)).await.unwrap();
            store.list_audit(&all).await.unwrap();
        }
        // ... and many at once, as a command and its audit writer may: each waits its turn.
        let calls: Vec<_> = (5..21)
            .map(|n| {
                let (store, all) = (store.clone(), all.clone());
                tokio::spawn(async move {
                    store.append_audit(&audit_entry(n)).await?;
                    store.list_audit(&all).await
                })
            })
            .collect();
        for call in calls {
            tokio::time::timeout(std::time::Duration::from_secs(10), call)
                .await
                .expect("no call waits for ever on the one connection")
                .unwrap()
                .unwrap();
        }
        assert_eq!(store.list_audit(&all).await.unwrap().len(), 21);
        assert_eq!(store.pool().size(), 1, "one connection was opened");
    }

    #[tokio::test]
    async fn opening_a_store_whose_key_is_recorded_waits_for_no_other_writer() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        // The first open records the master key id.
        drop(open(&options(&home)).await.unwrap());
        // Another process (a busy `dci serve`) holds SQLite's write lock.
        let url = format!("sqlite://{}", home.join(DATABASE_FILE).display());
        let mut writer = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut writer)
            .await
            .unwrap();
        // A command opens the store and reads while the lock is held (the busy timeout is 30 s:
        // an open that wrote would wait until the writer is done).
        let one_shot = options(&home).connections(Connections::Single);
        let opened = tokio::time::timeout(std::time::Duration::from_secs(5), open(&one_shot))
            .await
            .expect("opening waited for the other writer")
            .unwrap();
        let sources = opened
            .store
            .list_data_sources(&dci_client::SourceFilter::default())
            .await
            .unwrap();
        assert!(sources.is_empty());
        sqlx::query("ROLLBACK").execute(&mut writer).await.unwrap();
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:********@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?password=x"),
            "postgres://u@h/db"
        );
        assert_eq!(redact_url("postgres://h/db?password=x"), "postgres://h/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
