//! Crash-safe master-key rotation.
//!
//! With the key in `DCI_HOME/master.key`, a rotation runs in stages, each leaving a state from
//! which the store opens with the old or the new key, whenever the process is killed:
//!
//! 1. take the key lock (`master.key.lock`, an OS file lock that dies with the process);
//! 2. write the new key to `master.key.new` (the file appears complete or not at all) and sync
//!    the directory;
//! 3. re-seal every secret under the new key and record the new key's id, in one database
//!    transaction, made durable before going on;
//! 4. rename `master.key.new` over `master.key` (atomic) and sync the directory.
//!
//! Opening the store ([`crate::open`]) finishes or undoes a rotation that was cut short: when
//! `master.key.new` exists it takes the same lock, and if the database's secrets are sealed under
//! the staged key it completes step 4; if they are sealed under `master.key`, the staged file is a
//! leftover of a rotation that never committed and is removed.
//!
//! With `DCI_MASTER_KEY` no file is involved: the database switches in one transaction and the
//! caller must then set the variable to the new key.

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
    /// The secrets are re-sealed, but the key file could not be replaced.
    #[error(
        "secrets are re-sealed under the new key, but replacing {path} failed ({source}): the next dci command finishes the switch"
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
    let staged = home.join(STAGED_KEY_FILE);
    let new_key = new_key.unwrap_or_else(master_key::generate);
    master_key::write_new_file(&staged, &new_key)?;
    sync_dir(&home).map_err(|source| MasterKeyError::Io {
        path: home.clone(),
        source,
    })?;
    // On failure the staged file stays: the next open checks which key the database holds and
    // either removes it or finishes the switch (a failed commit may still have committed).
    let report = opened.store.rotate_master_key(new_key).await?;
    finish(&staged, &key_file, &home)?;
    Ok(Rotation {
        report,
        key_file: Some(key_file),
    })
}

/// Step 4: the staged key becomes the key file.
fn finish(staged: &Path, key_file: &Path, home: &Path) -> Result<(), RotateError> {
    let failed = |source| RotateError::Finish {
        path: key_file.to_owned(),
        source,
    };
    fs::rename(staged, key_file).map_err(failed)?;
    sync_dir(home).map_err(failed)
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
        let main = master_key::read_file(&key_file)?;
        match open::connect_all(&url, &main).await {
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
    match open::connect_all(&url, &staged_key).await {
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
        let store = open::connect(
            &format!(
                "sqlite://{}",
                dir.path().join(open::DATABASE_FILE).display()
            ),
            &old,
        )
        .await
        .unwrap();
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
}
