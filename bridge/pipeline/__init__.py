"""What the bridge does with a report, one capability per package.

- ``intake``: chatbot events and inbound email are stored once and queued; a reporter's
  follow-up ("not fixed") reaches the tracker issue.
- ``filing``: classify (severity, kind), route (tracker and project), plan (the sprint), and
  file the issue exactly once.
- ``following``: tracker webhooks and reconciliation bring each ticket in line with its issue;
  ``status_map`` turns a tracker state into the reporter's status.
- ``notifying``: what the reporter is told (email, chatbot callback) and the one reporter-facing
  view of a ticket.
- ``privacy``: GDPR export, erasure and retention.
- ``reporting``: the numbers support asks for (``python -m bridge stats``, the ticket gauges).
"""
