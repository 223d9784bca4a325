"""The merchant portal's payments and developer pages (/portal/payments/, /portal/webhooks/, /portal/events/).

They live in `payments` because they read payments' rows (intents, charges, events, deliveries) and merchants
cannot import payments; the login, the merchant of the session and its mode come from merchants.views."""
