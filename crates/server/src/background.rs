//! The server's background tasks — the engine's recovery loop and retention purge
//! ([`dci_client::Engine::recover_until`], [`dci_client::Engine::purge_until`]), the webhook
//! delivery worker, and the bulk jobs with the scheduler — started beside the router and, at
//! shutdown, waited for.
//!
//! [`Background::start`] spawns them over an [`AppState`]; each stops at its next pause once
//! [`AppState::shutdown`] fires. [`Background::finish`] gives the work in hand (a scheduler
//! tick that has claimed an occurrence and is starting its job, a webhook delivery pass) until
//! a deadline to end, cancels what is still going then, and stops the running bulk jobs at
//! their checkpoint — so nothing a stopped server began goes on starting jobs or delivering
//! after [`crate::serve`] returns.

use std::time::Duration;

use tokio::task::JoinSet;

use crate::AppState;

/// Why a shutdown stopped a job (its `interrupted` reason).
const STOPPED: &str = "the server stopped: it continues at the next start";

/// The running background tasks of one server.
pub(crate) struct Background {
    state: AppState,
    tasks: JoinSet<()>,
}

impl Background {
    /// Starts the recovery loop, the retention purge (with [`crate::ServerConfig::retention`]),
    /// the webhook worker and, with a [`crate::ServerConfig::jobs_dir`], the jobs and the
    /// scheduler.
    pub(crate) fn start(state: &AppState) -> Background {
        let mut tasks = JoinSet::new();
        let (engine, shutdown) = (state.engine.clone(), state.shutdown.clone());
        tasks.spawn(async move { engine.recover_until(shutdown.wait()).await });
        if let Some(keep) = state.config.retention {
            let (engine, shutdown) = (state.engine.clone(), state.shutdown.clone());
            tasks.spawn(async move { engine.purge_until(keep, shutdown.wait()).await });
        }
        start_webhooks(state, &mut tasks);
        start_jobs(state, &mut tasks);
        Background {
            state: state.clone(),
            tasks,
        }
    }

    /// Once the shutdown has fired: waits up to `grace` for the tasks to end what they are
    /// doing, cancels the rest, then stops the running jobs at their checkpoint (they resume at
    /// the next start). A cancelled scheduler tick leaves at most an occurrence claimed
    /// without its job, which the next instance takes over (its holder is then dead).
    pub(crate) async fn finish(mut self, grace: Duration) {
        self.state.shutdown.wait().await;
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                tasks = self.tasks.len(),
                grace_secs = grace.as_secs(),
                "background work did not end in time: cancelled"
            );
            self.tasks.shutdown().await;
        }
        let stopped = self.state.jobs.stop_all(STOPPED).await;
        if stopped > 0 {
            tracing::info!(
                jobs = stopped,
                "stopped running bulk jobs at their checkpoint: they resume at the next start"
            );
        }
    }
}

/// Starts the webhook delivery worker over the state's store until shutdown.
fn start_webhooks(state: &AppState, tasks: &mut JoinSet<()>) {
    let events: std::sync::Arc<dyn dci_client::events::EventStore> = state.ops.clone();
    match dci_client::webhooks::WebhookWorker::new(events, state.config.webhooks.clone()) {
        Ok(worker) => {
            let shutdown = state.shutdown.clone();
            tasks.spawn(async move { worker.run_until(shutdown.wait()).await });
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook deliveries are off: the worker did not start")
        }
    }
}

/// Resumes the bulk jobs a restart interrupted and runs the scheduler (which also continues
/// the jobs and scheduled runs of instances that stopped or died) until shutdown.
fn start_jobs(state: &AppState, tasks: &mut JoinSet<()>) {
    if state.config.jobs_dir.is_none() {
        tracing::info!("background jobs and schedules are off: no jobs directory");
        return;
    }
    let runner = state.jobs.clone();
    let shutdown = state.shutdown.clone();
    let tick = state.config.schedule_tick;
    let takeover = state.config.schedule_takeover_after;
    tasks.spawn(async move {
        match runner.adopt().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "resumed bulk jobs interrupted by a restart"),
            Err(e) => tracing::warn!(error = %e, "could not resume interrupted bulk jobs"),
        }
        dci_client::jobs::Scheduler::new(runner, tick)
            .takeover_after(takeover)
            .run_until(shutdown.wait())
            .await;
    });
}
