//! Crash-safe master-key rotation that running processes follow.
//!
//! With the key in `DCI_HOME/master.key`, a rotation runs in stages, each leaving a key file
//! that holds the key the database's secrets are sealed under, whenever the process is killed:
//!
//! 1. take the key lock (`master.key.lock`, an OS file lock that dies with the process);
//! 2. replace `master.key` (atomically: a sibling written and synced, then renamed) with a ring:
//!    the new key first, then the keys it held; sync the directory;
//! 3. re-seal every secret under the new key and record the new key's id, in one database
//!    transaction, made durable before going on;
//! 4. replace `master.key` with the new key and the one it replaced (older keys dropped).
//!
//! Every process holding the store opens with the whole ring (see [`crate::seal`]): a running
//! `dci serve` that meets the new key id (a writer reads the current id inside its transaction,
//! a reader sees it on a re-sealed value) re-reads `master.key` and carries on, without a
//! restart and without an error. The previous key stays in the file so that values read just
//! before the switch, and values sealed by a process that has not yet seen it, still open.
//!
//! Stores left by a rotation of an older version, which staged the new key in `master.key.new`,
//! are finished or undone when opened: under the same lock, if the database's secrets are sealed
//! under the staged key the rename is completed, otherwise the staged file is removed.
//!
//! With `DCI_MASTER_KEY` no file is involved: the database switches in one transaction; servers
//! started with the new key in their ring (`DCI_MASTER_KEY=NEW,OLD`) follow it at once.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dci_client::{MasterKey, RotationReport, StoreError};

use crate::master_key::{self, MASTER_KEY_FILE, MasterKeyError};
use crate::open::{self, KeyOrigin, OpenError, OpenOptions, Opened};

/// The staged new key, beside `master.key`, while a rotation runs.
pub const STAGED_KEY_FILE: &str = "master.key.new";

/// The lock file that serializes rotations and their recovery.
pub const KEY_LOCK_FILE: &str = "master.key.lock";

/// An exclusive OS lock on `DCI_HOME/master.key.lock`, released on drop (or when the process
/// dies).
pub(crate) struct KeyLock {
    _file: fs::File,
}

impl KeyLock {
    /// Waits for and takes the lock.
    pub(crate) fn acquire(home: &Path) -> Result<KeyLock, OpenError> {
        let path = home.join(KEY_LOCK_FILE);
        let io_err = |source| {
            OpenError::MasterKey(MasterKeyError::Io {
                path: path.clone(),
                source,
            })
        };
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(io_err)?;
        file.lock().map_err(io_err)?;
        Ok(KeyLock { _file: file })
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Old and new key ids and how many secrets were re-sealed.
    pub report: RotationReport,
    /// The key file that now holds the new key; `None` when the key comes from
    /// `DCI_MASTER_KEY` (which must now be set to the new key).
    pub key_file: Option<PathBuf>,
}

/// Why a rotation failed. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The key comes from `DCI_MASTER_KEY` or `DCI_MASTER_KEY_FILE` (dci never writes either)
    /// and no new key was supplied.
    #[error(
        "the master key comes from {0}, so dci cannot store a new one: supply the new key (32 random bytes in base64, e.g. from `openssl rand -base64 32`), then put it in {0}"
    )]
    NewKeyNeeded(&'static str),
    /// The store could not be opened (or a cut-short rotation not resolved).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The staged key file could not be written; nothing changed.
    #[error(transparent)]
    KeyFile(#[from] MasterKeyError),
    /// The re-sealing failed. If the database did not commit, nothing changed; either way the
    /// next open of the store resolves the staged key.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secrets are re-sealed and the key file holds the new key, but dropping the older
    /// keys from it failed (harmless: the store opens).
    #[error(
        "secrets are re-sealed under the new key, which {path} holds, but dropping the older keys from it failed ({source}): the store opens; the next rotation drops them"
    )]
    Finish {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Re-seals every secret under `new_key` (generated when `None`) and switches the key, in the
/// stages of the module docs. With `DCI_MASTER_KEY` set, `new_key` is required.
pub async fn rotate_master_key(
    options: &OpenOptions,
    new_key: Option<MasterKey>,
) -> Result<Rotation, RotateError> {
    let supplied = if options.master_key.is_some() {
        Some("DCI_MASTER_KEY")
    } else if options.master_key_file.is_some() {
        Some("DCI_MASTER_KEY_FILE")
    } else {
        None
    };
    if let Some(var) = supplied {
        let new_key = new_key.ok_or(RotateError::NewKeyNeeded(var))?;
        let opened = open::open(options).await?;
        let report = opened.store.rotate_master_key(new_key).await?;
        return Ok(Rotation {
            report,
            key_file: None,
        });
    }
    let home = options.resolved_home()?;
    open::create_private_dir(&home)?;
    let _lock = KeyLock::acquire(&home)?;
    // Under the lock, opening resolves any staged key a killed rotation left behind.
    let opened = open::open_locked(options).await?;
    let key_file = match &opened.key_origin {
        KeyOrigin::File { path, .. } => path.clone(),
        KeyOrigin::Env => home.join(MASTER_KEY_FILE),
    };
    let new_key = new_key.unwrap_or_else(master_key::generate);
    let old_ring = master_key::read_ring_file(&key_file, &key_file.display().to_string())?;
    // Stage 2: the file holds the new key before the database uses it.
    let staged: Vec<MasterKey> = std::iter::once(new_key.clone())
        .chain(old_ring.iter().cloned())
        .collect();
    master_key::replace_ring_file(&key_file, &staged)?;
    sync_dir(&home).map_err(|source| MasterKeyError::Io {
        path: home.clone(),
        source,
    })?;
    // On failure the file keeps both keys: the store opens whichever the database holds.
    let report = opened.store.rotate_master_key(new_key.clone()).await?;
    // Stage 4: keep the new key and the one it replaced.
    let ring: Vec<MasterKey> = std::iter::once(new_key)
        .chain(
            old_ring
                .into_iter()
                .find(|k| crate::key_id(k) == report.old_key_id),
        )
        .collect();
    master_key::replace_ring_file(&key_file, &ring)
        .map_err(|e| match e {
            MasterKeyError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })
        .and_then(|()| sync_dir(&home))
        .map_err(|source| RotateError::Finish {
            path: key_file.clone(),
            source,
        })?;
    Ok(Rotation {
        report,
        key_file: Some(key_file),
    })
}

/// Opens the store while `staged` exists, with the key lock held: see the module docs.
pub(crate) async fn open_resolving(
    options: &OpenOptions,
    home: PathBuf,
    staged: PathBuf,
) -> Result<Opened, OpenError> {
    let key_file = home.join(MASTER_KEY_FILE);
    let url = open::database_url(options, &home)?;
    let database = open::redact_url(&url);
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| {
            OpenError::MasterKey(MasterKeyError::Io {
                path: path.clone(),
                source,
            })
        }
    };
    // A staged file that does not parse was never used: keys are staged whole before the
    // database changes.
    let staged_key = master_key::read_file(&staged).ok();
    let opened = |(store, ops)| Opened {
        store,
        ops,
        home: home.clone(),
        database: database.clone(),
        key_origin: KeyOrigin::File {
            path: key_file.clone(),
            created: false,
        },
    };
    let mut first_err = None;
    if key_file.exists() {
        let main = master_key::read_ring_file(&key_file, &key_file.display().to_string())?;
        match open::connect_ring_all(
            &url,
            open::key_ring(&main, Some(key_file.clone())),
            options.connections,
        )
        .await
        {
            Ok(pair) => {
                // The database holds the current key: the staged one never took effect.
                fs::remove_file(&staged).map_err(io_err(&staged))?;
                sync_dir(&home).map_err(io_err(&home))?;
                return Ok(opened(pair));
            }
            Err(e) if e.is_wrong_master_key() && staged_key.is_some() => first_err = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    let Some(staged_key) = staged_key else {
        return Err(OpenError::MasterKey(MasterKeyError::Malformed {
            origin: staged.display().to_string(),
        }));
    };
    let ring = open::key_ring(std::slice::from_ref(&staged_key), Some(key_file.clone()));
    match open::connect_ring_all(&url, ring, options.connections).await {
        Ok(pair) => {
            // The rotation committed: finish it.
            fs::rename(&staged, &key_file).map_err(io_err(&key_file))?;
            sync_dir(&home).map_err(io_err(&home))?;
            Ok(opened(pair))
        }
        Err(e) => Err(first_err.unwrap_or(e).into()),
    }
}

/// Makes renames and new files in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use dci_client::{DataSourceInput, Store};
    use secrecy::SecretString;

    fn options(home: &Path) -> OpenOptions {
        OpenOptions {
            home: Some(home.to_owned()),
            ..OpenOptions::default()
        }
    }

    fn source(code: &str, secret: &str) -> dci_client::DataSource {
        DataSourceInput {
            code: code.into(),
            name: code.into(),
            registry_type: "dr".into(),
            base_url: "http://127.0.0.1:9".into(),
            auth: Some("bearer".into()),
            bearer_token: Some(SecretString::from(secret.to_owned())),
            sender_id: Some("me".into()),
            ..DataSourceInput::default()
        }
        .validate()
        .unwrap()
    }

    async fn secret_of(store: &dyn Store, code: &str) -> String {
        use secrecy::ExposeSecret;
        match store.get_data_source(code).await.unwrap().unwrap().auth {
            dci_client::AuthConfig::Bearer { token } => token.expose_secret().to_owned(),
            other => panic!("{other:?}"),
        }
    }

    /// The stores of the home `dir`'s database opened with `key` alone.
    async fn stores_under(
        dir: &Path,
        key: &MasterKey,
    ) -> (Arc<dyn Store>, Arc<dyn dci_client::OpsStore>) {
        let url = format!("sqlite://{}", dir.join(open::DATABASE_FILE).display());
        open::connect_all(&url, key).await.unwrap()
    }

    async fn store_under(dir: &Path, key: &MasterKey) -> Arc<dyn Store> {
        stores_under(dir, key).await.0
    }

    async fn home_with_secrets() -> (tempfile::TempDir, MasterKey) {
        let dir = tempfile::tempdir().unwrap();
        let opened = open::open(&options(dir.path())).await.unwrap();
        for i in 0..3 {
            opened
                .store
                .create_data_source(&source(&format!("s{i}"), &format!("tok-{i}")))
                .await
                .unwrap();
        }
        let key = master_key::read_file(&dir.path().join(MASTER_KEY_FILE)).unwrap();
        (dir, key)
    }

    #[tokio::test]
    async fn killed_after_commit_the_next_open_finishes_the_switch() {
        let (dir, old) = home_with_secrets().await;
        // Stages 1-3 done by hand: staged key written, database re-sealed, rename not done.
        let new = master_key::generate();
        master_key::write_new_file(&dir.path().join(STAGED_KEY_FILE), &new).unwrap();
        let store = store_under(dir.path(), &old).await;
        store.rotate_master_key(new.clone()).await.unwrap();
        drop(store);

        let opened = open::open(&options(dir.path())).await.unwrap();
        for i in 0..3 {
            assert_eq!(
                secret_of(&*opened.store, &format!("s{i}")).await,
                format!("tok-{i}")
            );
        }
        assert!(!dir.path().join(STAGED_KEY_FILE).exists());
        let now = master_key::read_file(&dir.path().join(MASTER_KEY_FILE)).unwrap();
        assert_eq!(now.expose_bytes(), new.expose_bytes());
    }

    #[tokio::test]
    async fn killed_before_commit_the_staged_key_is_removed() {
        let (dir, old) = home_with_secrets().await;
        master_key::write_new_file(&dir.path().join(STAGED_KEY_FILE), &master_key::generate())
            .unwrap();
        let opened = open::open(&options(dir.path())).await.unwrap();
        assert_eq!(secret_of(&*opened.store, "s1").await, "tok-1");
        assert!(!dir.path().join(STAGED_KEY_FILE).exists());
        let now = master_key::read_file(&dir.path().join(MASTER_KEY_FILE)).unwrap();
        assert_eq!(now.expose_bytes(), old.expose_bytes());
    }

    #[tokio::test]
    async fn rotation_switches_the_file_and_env_needs_a_new_key() {
        let (dir, old) = home_with_secrets().await;
        let r = rotate_master_key(&options(dir.path()), None).await.unwrap();
        // Three credentials and the three sources' callback secrets.
        assert_eq!(r.report.resealed, 6);
        assert_eq!(r.report.old_key_id, crate::key_id(&old));
        assert_eq!(
            r.key_file.as_deref(),
            Some(&*dir.path().join(MASTER_KEY_FILE))
        );
        assert!(!dir.path().join(STAGED_KEY_FILE).exists());
        let opened = open::open(&options(dir.path())).await.unwrap();
        assert_eq!(secret_of(&*opened.store, "s2").await, "tok-2");

        let env = OpenOptions {
            master_key: Some(master_key::encode(&master_key::generate()).to_string()),
            ..options(dir.path())
        };
        assert!(matches!(
            rotate_master_key(&env, None).await,
            Err(RotateError::NewKeyNeeded(_))
        ));
    }

    /// Why running servers failed after a rotation: their store held the old key only. Now a
    /// store opened before another process rotates reads the re-sealed secrets and writes
    /// under the new key, and the key file ends with the new key and the one it replaced.
    #[tokio::test]
    async fn a_store_opened_before_a_rotation_elsewhere_follows_it() {
        let (dir, old) = home_with_secrets().await;
        let running = open::open(&options(dir.path())).await.unwrap();
        let r = rotate_master_key(&options(dir.path()), None).await.unwrap();
        assert_eq!(secret_of(&*running.store, "s1").await, "tok-1");
        running
            .store
            .create_data_source(&source("s9", "tok-9"))
            .await
            .unwrap();
        let ring = master_key::read_ring_file(&dir.path().join(MASTER_KEY_FILE), "f").unwrap();
        let ids: Vec<String> = ring.iter().map(crate::key_id).collect();
        assert_eq!(ids, [r.report.new_key_id.clone(), crate::key_id(&old)]);
        // Everything, the secret written by the running store included, opens under the new
        // key alone.
        let new_only = store_under(dir.path(), &ring[0]).await;
        assert_eq!(secret_of(&*new_only, "s9").await, "tok-9");
        assert_eq!(secret_of(&*new_only, "s0").await, "tok-0");
    }

    /// A store that wrote nothing across two rotations elsewhere still seals a new signing key
    /// and a new webhook secret under the key the database records as current (it checks in
    /// the writing transaction), not under the key it opened with, which the file no longer
    /// holds.
    #[tokio::test]
    async fn new_signing_keys_and_webhook_secrets_follow_two_rotations_elsewhere() {
        use secrecy::ExposeSecret;
        let (dir, _) = home_with_secrets().await;
        let running = open::open(&options(dir.path())).await.unwrap();
        rotate_master_key(&options(dir.path()), None).await.unwrap();
        rotate_master_key(&options(dir.path()), None).await.unwrap();
        let key = dci_client::keys::KeyManager::new(running.ops.clone())
            .generate(
                "k-after",
                dci_protocol::signature::Algorithm::Ed25519,
                dci_client::keys::GenerateOptions::default(),
            )
            .await
            .unwrap();
        let now = time::OffsetDateTime::now_utc();
        let hook = dci_client::webhooks::WebhookEndpoint {
            id: "wh_after".into(),
            url: "http://127.0.0.1:9/hook".into(),
            sink: dci_client::webhooks::Sink::Webhook,
            kinds: Vec::new(),
            enabled: true,
            description: None,
            created_at: now,
            updated_at: now,
        };
        running
            .ops
            .create_webhook(&hook, &secrecy::SecretString::from("whsec-after"))
            .await
            .unwrap();
        let ring = master_key::read_ring_file(&dir.path().join(MASTER_KEY_FILE), "f").unwrap();
        let (_, newest_only) = stores_under(dir.path(), &ring[0]).await;
        assert!(
            newest_only
                .signing_key_private(&key.key_id)
                .await
                .unwrap()
                .is_some()
        );
        let secret = newest_only
            .webhook_secret("wh_after")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secret.expose_secret(), "whsec-after");
    }

    #[tokio::test]
    async fn killed_between_the_ring_file_and_the_commit_the_store_opens() {
        let (dir, old) = home_with_secrets().await;
        let key_file = dir.path().join(MASTER_KEY_FILE);
        // Stage 2 done, the database never changed.
        master_key::replace_ring_file(&key_file, &[master_key::generate(), old.clone()]).unwrap();
        let opened = open::open(&options(dir.path())).await.unwrap();
        assert_eq!(secret_of(&*opened.store, "s2").await, "tok-2");
        opened
            .store
            .create_data_source(&source("s8", "tok-8"))
            .await
            .unwrap();
        let old_only = store_under(dir.path(), &old).await;
        assert_eq!(
            secret_of(&*old_only, "s8").await,
            "tok-8",
            "sealed with the key the database holds, not the file's newest"
        );
    }

    #[tokio::test]
    async fn an_environment_ring_follows_a_rotation_to_its_newest_key() {
        let (dir, old) = home_with_secrets().await;
        let new = master_key::generate();
        let ring = OpenOptions {
            master_key: Some(format!(
                "{},{}",
                master_key::encode(&new).as_str(),
                master_key::encode(&old).as_str()
            )),
            ..options(dir.path())
        };
        let running = open::open(&ring).await.unwrap();
        let env_old = OpenOptions {
            master_key: Some(master_key::encode(&old).to_string()),
            ..options(dir.path())
        };
        rotate_master_key(&env_old, Some(new.clone()))
            .await
            .unwrap();
        assert_eq!(secret_of(&*running.store, "s0").await, "tok-0");
        running
            .store
            .create_data_source(&source("s7", "tok-7"))
            .await
            .unwrap();
        let env_new = OpenOptions {
            master_key: Some(master_key::encode(&new).to_string()),
            ..options(dir.path())
        };
        let opened = open::open(&env_new).await.unwrap();
        assert_eq!(secret_of(&*opened.store, "s7").await, "tok-7");
    }

    #[tokio::test]
    async fn a_store_on_a_supplied_key_file_re_reads_it_when_the_key_changes() {
        let (dir, old) = home_with_secrets().await;
        let supplied = dir.path().join("supplied.key");
        master_key::write_new_file(&supplied, &old).unwrap();
        let file = OpenOptions {
            master_key_file: Some(supplied.clone()),
            ..options(dir.path())
        };
        let running = open::open(&file).await.unwrap();
        let new = master_key::generate();
        master_key::replace_ring_file(&supplied, &[new.clone(), old]).unwrap();
        rotate_master_key(&file, Some(new)).await.unwrap();
        running
            .store
            .create_data_source(&source("s6", "tok-6"))
            .await
            .unwrap();
        assert_eq!(secret_of(&*running.store, "s0").await, "tok-0");
    }
}
