"""Fixtures every test folder may use: the local Slack (tests/slack/fixtures.py) and
a running Jaeger (tests/jaeger/fixtures.py)."""

pytest_plugins = ("tests.slack.fixtures", "tests.jaeger.fixtures")
