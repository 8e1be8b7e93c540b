"""Slack through slack-sdk: its Web API behind the `Chat` port, Socket Mode and request
signatures (slack_sdk lives in this package and in `adapters/chat_webhooks.py` only)."""
