"""Inbound email: provider webhooks and IMAP, parsing, sender rules, and the job that reads each message."""
