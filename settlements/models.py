# The ledger, sweeps and payouts arrive with their issues; the app is in place so the layering is visible.
