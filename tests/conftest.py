"""Fixtures every test folder may use: the local Slack (tests/slack/fixtures.py)."""

pytest_plugins = ("tests.slack.fixtures",)
