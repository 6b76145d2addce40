-- Callbacks at the server root (`/registry/on-search`, …) name no data source in their URL: the
-- receiver finds it from the stored transaction, by transaction id or by the registry's
-- correlation id (from its ACK). This index serves the correlation-id lookup. (The per-source
-- choice of how refusals are answered, `callbacks.http_refusals`, lives in the data source's
-- config document like its other callback settings; records without it read as `false`.)
CREATE INDEX op_transaction_correlation ON op_transaction (correlation_id);
