"""A local Slack for tests: its Web API and Socket Mode on loopback, reached by the real slack-sdk
clients through `base_url`, plus signed interaction payloads for the HTTP endpoint path.

`server.SlackServer` is the entry point; `state` holds what it keeps (messages, recorded
requests, faults a test switches on), `signing` builds what Slack would POST to canary.
"""
