"""rolloutctl dashboard: a read-only web view of plans, budgets and freezes."""
