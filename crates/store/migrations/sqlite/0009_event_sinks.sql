-- Event sinks beside webhooks: a delivery endpoint is a webhook (a signed HTTP POST) or an
-- AMQP sink (a persistent message to a RabbitMQ exchange, confirmed by the broker). Both use
-- the same deliveries, leases and attempts. An AMQP sink's `url` is its broker URL without
-- credentials; the whole URL is sealed in sealed_secret under owner 'webhook:{id}', field
-- 'broker_url' (a webhook's signing secret keeps field 'webhook_secret').

ALTER TABLE webhook_endpoint ADD COLUMN sink TEXT NOT NULL DEFAULT 'webhook';
-- AMQP: the exchange ('' is the default exchange) and the routing key (NULL: the event kind).
ALTER TABLE webhook_endpoint ADD COLUMN exchange TEXT;
ALTER TABLE webhook_endpoint ADD COLUMN routing_key TEXT;
