//! The delivery worker: from the outbox to the endpoints, at least once, in order per endpoint.
//! One machinery for both sinks: a webhook attempt is a signed POST, an AMQP attempt a publish
//! confirmed by the broker ([`super::amqp`]); leases, order, backoff, the dead letter and the
//! attempt records are the same.
//!
//! Each pass claims endpoints whose oldest pending delivery is due (a lease in the store, so
//! that several `dci serve` instances on one PostgreSQL database deliver each event from one
//! place), sends that endpoint's due deliveries one after another in event order, records every
//! attempt, and releases the lease. A failure (transport error or non-2xx) schedules the next
//! attempt after an exponential backoff with full jitter, never sooner than the endpoint's
//! `Retry-After`; the endpoint's later events wait behind it. After `max_attempts`, or once the
//! event is older than `max_age`, the delivery is dead-lettered and the next one goes.
//!
//! A crash between the endpoint's 2xx and the store's record re-sends the event after the lease
//! expires: a duplicate with the same `webhook-id`, which receivers de-duplicate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use time::OffsetDateTime;

use crate::events::{EventRecord, EventStore};
use crate::store::StoreError;

use super::amqp::Brokers;
use super::{AttemptOutcome, AttemptRecord, DeliveryRecord, Sink, WebhookEndpoint, WebhookSecret};

/// How deliveries are made and retried.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// Age of an event after which its delivery is dead-lettered instead of retried.
    pub max_age: Duration,
    /// First backoff ceiling; doubled per failed attempt (full jitter: uniform in `[0, ceiling]`).
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
    /// Request timeout of one attempt.
    pub timeout: Duration,
    /// How often the outbox is polled when idle.
    pub poll: Duration,
    /// How long a claim of an endpoint lasts without renewal (renewed after each delivery).
    pub lease: Duration,
    /// Endpoints delivered to at once.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            max_attempts: 12,
            max_age: Duration::from_secs(3 * 24 * 3600),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            timeout: Duration::from_secs(15),
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            concurrency: 8,
        }
    }
}

impl WebhookSettings {
    /// The backoff before attempt `failed + 1`: uniform in `[0, min(max_delay, base·2^(failed-1))]`,
    /// and at least `retry_after` when the endpoint sent one.
    pub fn backoff(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        let exp = failed.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jittered = ceiling.mul_f64(rand::random::<f64>());
        retry_after.map_or(jittered, |ra| ra.max(jittered))
    }
}

/// Delivers events from an [`EventStore`] to its webhook endpoints. Cheap to clone.
#[derive(Clone)]
pub struct WebhookWorker {
    store: Arc<dyn EventStore>,
    http: reqwest::Client,
    settings: Arc<WebhookSettings>,
    owner: Arc<str>,
    brokers: Arc<Brokers>,
}

/// An endpoint's opened secret: what an attempt needs.
enum Credential {
    Signing(WebhookSecret),
    Broker(secrecy::SecretString),
}

impl std::fmt::Debug for WebhookWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWorker")
            .field("owner", &self.owner)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl WebhookWorker {
    /// A worker with its own HTTP client (no redirects, the settings' timeout, system roots).
    pub fn new(
        store: Arc<dyn EventStore>,
        settings: WebhookSettings,
    ) -> Result<WebhookWorker, crate::Error> {
        let b = reqwest::Client::builder()
            .user_agent(concat!("dci-webhooks/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the signed event elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)));
        let http = crate::transport::with_system_roots(b)
            .build()
            .map_err(|e| crate::Error::config(format!("building the webhook HTTP client: {e}")))?;
        Ok(WebhookWorker {
            store,
            http,
            settings: Arc::new(settings),
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()).into(),
            brokers: Arc::new(Brokers::default()),
        })
    }

    /// The lease owner name of this worker (unique per process start).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs passes until `shutdown` completes, sleeping `poll` between idle passes. Store
    /// failures are logged and retried on the next pass.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let busy = match self.pass().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery pass failed");
                    false
                }
            };
            // Busy: go on at once (yet still stop on shutdown); idle: wait a poll interval.
            let pause = if busy {
                Duration::ZERO
            } else {
                self.settings.poll
            };
            tokio::select! {
                biased; // a busy worker's zero pause is ready too: the shutdown goes first
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One pass: claims up to `concurrency` endpoints with due deliveries and drains each (in
    /// parallel across endpoints, in order within one). Returns the number of attempts made.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.settings.concurrency.max(1) {
            let now = OffsetDateTime::now_utc();
            let Some(endpoint) = self
                .store
                .claim_webhook(&self.owner, now, now + self.settings.lease)
                .await?
            else {
                break;
            };
            let me = self.clone();
            tasks.spawn(async move { me.drain(endpoint).await });
        }
        let mut attempts = 0;
        let mut failure = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(n)) => attempts += n,
                Ok(Err(e)) => failure = Some(e),
                Err(e) => tracing::error!(error = %e, "webhook delivery task panicked"),
            }
        }
        match failure {
            Some(e) if attempts == 0 => Err(e),
            _ => Ok(attempts),
        }
    }

    /// Sends the endpoint's due deliveries in order until one fails or none is due, then
    /// releases the lease.
    async fn drain(&self, endpoint: WebhookEndpoint) -> Result<usize, StoreError> {
        let result = self.drain_held(&endpoint).await;
        if let Err(e) = self
            .store
            .renew_webhook_lease(&endpoint.id, &self.owner, None)
            .await
        {
            tracing::warn!(endpoint = %endpoint.id, error = %e, "releasing a webhook lease failed");
        }
        result
    }

    async fn drain_held(&self, endpoint: &WebhookEndpoint) -> Result<usize, StoreError> {
        let Some(secret) = self.store.webhook_secret(&endpoint.id).await? else {
            return Ok(0);
        };
        let credential = match endpoint.sink {
            Sink::Webhook => Credential::Signing(WebhookSecret::parse(&secret).map_err(|e| {
                StoreError::Corrupt(format!("webhook {} secret: {e}", endpoint.id))
            })?),
            Sink::Amqp { .. } => Credential::Broker(secret),
        };
        let mut attempts = 0;
        loop {
            let Some((delivery, event)) = self.store.head_delivery(&endpoint.id).await? else {
                return Ok(attempts);
            };
            let now = OffsetDateTime::now_utc();
            if delivery.next_attempt_at > now {
                return Ok(attempts);
            }
            let age = (now - event.created_at).unsigned_abs();
            let (attempt, outcome) = if age > self.settings.max_age {
                let attempt = AttemptRecord {
                    endpoint_id: endpoint.id.clone(),
                    event_id: event.id.clone(),
                    attempt: delivery.attempts,
                    at: now,
                    status: None,
                    error: None,
                    duration_ms: 0,
                };
                let why = format!(
                    "the event is older than the maximum age of {}s",
                    self.settings.max_age.as_secs()
                );
                (attempt, AttemptOutcome::Dead(why))
            } else {
                attempts += 1;
                self.attempt(endpoint, &credential, &delivery, &event).await
            };
            crate::metrics::webhook_attempt(match outcome {
                AttemptOutcome::Delivered => "delivered",
                AttemptOutcome::Retry(_) => "retry",
                AttemptOutcome::Dead(_) => "dead",
            });
            let retry = matches!(outcome, AttemptOutcome::Retry(_));
            if !self
                .store
                .finish_attempt(&self.owner, &attempt, &outcome)
                .await?
            {
                tracing::info!(endpoint = %endpoint.id, "webhook lease lost; another worker delivers");
                return Ok(attempts);
            }
            if retry {
                return Ok(attempts);
            }
            let until = OffsetDateTime::now_utc() + self.settings.lease;
            if !self
                .store
                .renew_webhook_lease(&endpoint.id, &self.owner, Some(until))
                .await?
            {
                return Ok(attempts);
            }
        }
    }

    /// One attempt (a signed POST, or a confirmed publish) and what it leads to.
    async fn attempt(
        &self,
        endpoint: &WebhookEndpoint,
        credential: &Credential,
        delivery: &DeliveryRecord,
        event: &EventRecord,
    ) -> (AttemptRecord, AttemptOutcome) {
        let body = event.webhook_body().to_string();
        let at = OffsetDateTime::now_utc();
        let started = Instant::now();
        let (status, error, retry_after) = match (credential, &endpoint.sink) {
            (Credential::Signing(secret), _) => self.post(endpoint, secret, event, body, at).await,
            (
                Credential::Broker(url),
                Sink::Amqp {
                    exchange,
                    routing_key,
                },
            ) => {
                let published = self
                    .brokers
                    .publish(
                        &endpoint.id,
                        url,
                        super::amqp::Target {
                            exchange,
                            routing_key: routing_key.as_deref(),
                        },
                        event,
                        body.as_bytes(),
                        self.settings.timeout,
                    )
                    .await;
                (None, published.err(), None)
            }
            (Credential::Broker(_), Sink::Webhook) => (
                None,
                Some("the endpoint's stored secret is not a signing secret".into()),
                None,
            ),
        };
        let number = delivery.attempts + 1;
        let accepted = match endpoint.sink {
            Sink::Webhook => status.is_some_and(|s| (200..300).contains(&s)),
            Sink::Amqp { .. } => error.is_none(),
        };
        let attempt = AttemptRecord {
            endpoint_id: endpoint.id.clone(),
            event_id: event.id.clone(),
            attempt: number,
            at,
            status,
            error,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let outcome = if accepted {
            AttemptOutcome::Delivered
        } else if number >= self.settings.max_attempts {
            AttemptOutcome::Dead(format!(
                "{number} attempts failed (the maximum is {})",
                self.settings.max_attempts
            ))
        } else {
            AttemptOutcome::Retry(
                OffsetDateTime::now_utc() + self.settings.backoff(number, retry_after),
            )
        };
        tracing::debug!(endpoint = %endpoint.id, sink = endpoint.sink.as_str(), event = %event.id,
            attempt = number, status = ?status, "event delivery attempt");
        (attempt, outcome)
    }

    /// One signed POST: its status, transport error and `Retry-After`.
    async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        secret: &WebhookSecret,
        event: &EventRecord,
        body: String,
        at: OffsetDateTime,
    ) -> (Option<u16>, Option<String>, Option<Duration>) {
        let timestamp = at.unix_timestamp();
        let signature = secret.sign(&event.id, timestamp, body.as_bytes());
        let sent = self
            .http
            .post(&endpoint.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match &sent {
            Ok(r) => (
                Some(r.status().as_u16()),
                None,
                crate::transport::retry_after(r.headers()),
            ),
            Err(e) => (None, Some(describe(e)), None),
        }
    }
}

/// A transport error in words, without the URL's query (no secrets in logs or the store).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "the request failed"
    } else {
        "the exchange failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling_and_honours_retry_after() {
        let s = WebhookSettings {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            ..WebhookSettings::default()
        };
        for failed in 1..20 {
            let ceiling = Duration::from_secs(1 << (failed - 1).min(10)).min(s.max_delay);
            for _ in 0..50 {
                assert!(s.backoff(failed, None) <= ceiling);
            }
        }
        let spread: std::collections::BTreeSet<u128> =
            (0..50).map(|_| s.backoff(8, None).as_millis()).collect();
        assert!(spread.len() > 10, "jitter spreads retries: {spread:?}");
        assert!(s.backoff(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }
}
