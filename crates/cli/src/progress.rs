//! Progress on stderr while a one-shot command waits: a spinner during `--wait` saying what for
//! and for how long, and — for any command — one while the library retries a call, saying which
//! call, which attempt and why ([`RetryNotices`], fed by the transport's "retrying transient
//! failure" event). Shown only when stderr is a terminal and the output is not `--json`, so
//! scripts, pipes and logs see nothing extra; it uses no colour.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// Whether this command shows progress at all (set once by [`enable`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The spinner on screen, with the message it was started with (none for a spinner that only
/// shows retries).
static CURRENT: Mutex<Option<(ProgressBar, Option<String>)>> = Mutex::new(None);

/// Turns progress on for a one-shot command when stderr is a terminal and `json` is off.
pub(crate) fn enable(json: bool) {
    ENABLED.store(!json && std::io::stderr().is_terminal(), Ordering::Relaxed);
}

/// Clears whatever spinner is still on screen (the end of the command).
pub(crate) fn finish() {
    if let Some((pb, _)) = lock().take() {
        pb.finish_and_clear();
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<(ProgressBar, Option<String>)>> {
    CURRENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn spinner(message: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    pb.set_style(style);
    pb.set_message(message.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A running spinner; cleared from the terminal when dropped.
pub(crate) struct Spinner(bool);

impl Spinner {
    /// Starts a spinner showing `message` and the time elapsed (or nothing, see the module).
    pub(crate) fn start(message: impl Into<String>, json: bool) -> Spinner {
        if json || !ENABLED.load(Ordering::Relaxed) {
            return Spinner(false);
        }
        let message = message.into();
        let pb = spinner(&message);
        if let Some((old, _)) = lock().replace((pb, Some(message))) {
            old.finish_and_clear();
        }
        Spinner(true)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if self.0 {
            finish();
        }
    }
}

/// A tracing layer that turns the transport's retry events into spinner text: "retrying
/// sync_search at crvs_main (attempt 2, next in 1.0 s): HTTP 503". Installed for every command; it
/// shows nothing unless [`enable`] turned progress on.
pub(crate) struct RetryNotices;

/// The message of the transport's retry event (`dci_client::transport`).
const RETRY_EVENT: &str = "retrying transient failure";

impl<S: tracing::Subscriber> Layer<S> for RetryNotices {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !ENABLED.load(Ordering::Relaxed)
            || !event
                .metadata()
                .target()
                .starts_with("dci_client::transport")
        {
            return;
        }
        let mut fields = RetryFields::default();
        event.record(&mut fields);
        if fields.message != RETRY_EVENT {
            return;
        }
        let notice = fields.notice();
        let mut current = lock();
        match current.as_ref() {
            Some((pb, Some(base))) => pb.set_message(format!("{base} — {notice}")),
            Some((pb, None)) => pb.set_message(notice),
            None => *current = Some((spinner(&notice), None)),
        }
    }
}

/// The fields of one retry event.
#[derive(Default)]
struct RetryFields {
    message: String,
    source: String,
    action: String,
    attempt: String,
    delay_ms: String,
    class: String,
    status: String,
}

impl RetryFields {
    fn notice(&self) -> String {
        let next = self
            .attempt
            .parse::<u32>()
            .map_or_else(|_| self.attempt.clone(), |a| (a + 1).to_string());
        let why = match self.status.as_str() {
            "" | "0" => self.class.clone(),
            status => format!("HTTP {status}"),
        };
        let delay = match self.delay_ms.parse::<u64>() {
            Ok(ms) if ms >= 1000 => format!("{:.1} s", ms as f64 / 1000.0),
            Ok(ms) => format!("{ms} ms"),
            Err(_) => "a moment".to_owned(),
        };
        format!(
            "retrying {} at {} (attempt {next}, next in {delay}): {why}",
            self.action, self.source
        )
    }

    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "source" => self.source = value,
            "action" => self.action = value,
            "attempt" => self.attempt = value,
            "delay_ms" => self.delay_ms = value,
            "class" => self.class = value,
            "status" => self.status = value,
            _ => {}
        }
    }
}

impl Visit for RetryFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}
