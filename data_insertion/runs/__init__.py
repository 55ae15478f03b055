"""Runs are data: every run, wherever it was started (command line, dashboard, API), recorded in
the default database with its configuration, status, progress snapshots and summary; API
tokens; comparisons between runs. Its own app ("runs"), so its tables stay in `default` by the
topology's rule for every app but the three data models'."""
