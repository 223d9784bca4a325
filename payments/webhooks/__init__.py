"""Webhook delivery: events fan out to one delivery per matching endpoint, deliveries are POSTed signed as Stripe
signs them, retried with backoff for 3 days, every attempt recorded (docs/webhooks.md)."""
