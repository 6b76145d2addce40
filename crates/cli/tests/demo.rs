//! `dci demo` (the README's main job) runs the real binary: it must come up with a passing,
//! active sandbox data source and a console that answers, and remove its temporary home when
//! stopped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn demo_starts_a_tested_sandbox_source_and_the_console() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dci"))
        .args(["demo", "--listen", "127.0.0.1:0", "--json"])
        .env_remove("DCI_ADMIN_TOKEN")
        .env_remove("DCI_HOME")
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let result = std::panic::catch_unwind(|| {
        assert_eq!(v["test"]["ok"], true, "{v:#}");
        assert_eq!(v["test"]["state"], "active");
        assert_eq!(v["data_source"], "sandbox_crvs");
        let token = v["admin_token"]
            .as_str()
            .expect("a fresh home prints the token once");
        assert!(token.len() >= 16);
        let console = v["console"].as_str().unwrap();
        let addr = console
            .trim_start_matches("http://")
            .trim_end_matches("/login");
        let page = http_get(addr, "/login");
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("Sign in"));
        assert!(!page.contains(token), "the token is never in a page");
        let home = std::path::PathBuf::from(v["home"].as_str().unwrap());
        assert!(home.join("master.key").exists(), "master key auto-created");
        home
    });
    // Stop it the way Ctrl-C does, so it cleans up.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let home = match result {
        Ok(h) => h,
        Err(p) => std::panic::resume_unwind(p),
    };
    assert!(status.success(), "{status}");
    assert!(!home.exists(), "the temporary home is removed on exit");
}
