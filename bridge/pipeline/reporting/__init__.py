"""Numbers about the reports: counts, times to triage and resolve, reopen rate, busiest organisations."""
