//! `dci serve` as a child process of a test, on a temporary `DCI_HOME`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The admin token every test server runs with.
pub(crate) const ADMIN_TOKEN: &str = "serve-test-admin-token-0123456789";

/// A running `dci serve`; killed on drop if the test did not stop it.
pub(crate) struct Serve {
    pub(crate) child: Child,
    /// `http://ADDR`, from its JSON banner.
    pub(crate) base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dci --json serve --listen LISTEN` over `home` and waits for its banner.
#[allow(dead_code)]
pub(crate) fn start_serve(home: &Path, listen: &str) -> Serve {
    start_serve_with(home, listen, &[])
}

/// [`start_serve`] with these environment variables set as well (e.g. `DCI_DATABASE_URL`
/// and `DCI_MASTER_KEY` for a shared PostgreSQL store).
#[allow(dead_code)]
pub(crate) fn start_serve_with(home: &Path, listen: &str, env: &[(&str, &str)]) -> Serve {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dci"));
    cmd.args(["--json", "serve", "--listen", listen])
        .env("DCI_HOME", home)
        .env("DCI_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let banner: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("dci serve did not print its JSON banner ({e}): {line:?}"));
    assert!(
        banner.get("admin_token").is_none(),
        "a token from DCI_ADMIN_TOKEN is never printed"
    );
    Serve {
        child,
        base: banner["listening"].as_str().unwrap().to_owned(),
    }
}

/// A CRVS source on the sandbox (OAuth2, signed replies required), its callbacks sent to
/// `callbacks_to`'s `/callback/CODE`.
#[allow(dead_code)]
pub(crate) fn sandbox_crvs_source(
    sb: &dci_sandbox::Sandbox,
    code: &str,
    callbacks_to: &Serve,
) -> dci_client::DataSource {
    use dci_protocol::RegistryType;
    dci_client::DataSourceInput {
        callback_uri: Some(format!("{}/callback/{code}", callbacks_to.base)),
        ..crate::sources::verified(
            sb,
            crate::sources::sandbox_input(sb, RegistryType::Crvs, code),
        )
    }
    .validate()
    .unwrap()
}
