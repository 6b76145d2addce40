//! A spinner on stderr while a command waits (`--wait`), saying what for and for how long.
//! Shown only when stderr is a terminal and the output is not `--json`, so scripts, pipes and
//! logs see nothing extra; it uses no colour.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A running spinner; cleared from the terminal when dropped.
pub(crate) struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Starts a spinner showing `message` and the time elapsed (or nothing, see the module).
    pub(crate) fn start(message: impl Into<String>, json: bool) -> Spinner {
        if json || !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        pb.set_style(style);
        pb.set_message(message.into());
        pb.enable_steady_tick(Duration::from_millis(120));
        Spinner(Some(pb))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(pb) = self.0.take() {
            pb.finish_and_clear();
        }
    }
}
