-- prune_webhook_deliveries: delivery ids by receive time (a range delete of the oldest rows).
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
