"""Alerts: per-group channels (webhook, email), evaluated and sent by the leader."""
