"""gunicorn settings; every value can be overridden on the command line or by GUNICORN_CMD_ARGS."""

import os

# All interfaces in production; `make run` binds loopback through BIND.
bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Webhook senders give up after 10 s (GitLab); we answer in milliseconds or not at all.
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-" if os.environ.get("ACCESS_LOG") else None
# Trust X-Forwarded-* only from the local proxy (the default); widen via FORWARDED_ALLOW_IPS.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which two
# services on one machine would share; the bridge does not use it.
control_socket_disable = True
