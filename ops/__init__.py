"""Delivery tooling: PR comments, the preview guard, review-stack lifecycle and teardown (`python -m ops --help`).

Each module imports only what its command needs, so the lightweight commands (comment, guard, policy) run
without boto3 or a Pulumi CLI.
"""
