"""A tracker sandbox: GitLab REST v4 and Jira REST v2 / agile 1.0 subsets with real-format webhooks.

``create_app(config)`` builds the Flask app; ``python -m sandbox serve`` runs it.
"""

from sandbox.app import create_app
from sandbox.config import SandboxConfig

__all__ = ["SandboxConfig", "create_app"]
