"""Tracker adapters: GitLab and Jira behind one port."""
