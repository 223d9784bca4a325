"""The portal's money pages (issue 12 item 7, issue 10): balance and balance transactions, payouts, refunds, and the
refund actions of payments and unmatched deposits. Thin views over settlements' selectors and services; lists page
by keyset and export CSV with payments' portal helpers (settlements may import payments, never the reverse)."""
