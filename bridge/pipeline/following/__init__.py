"""Following the tracker: webhooks, fresh-state sync, reconciliation, tracker state -> reporter status."""
