"""The Web API methods canary uses, answered as Slack answers them: HTTP 200 with `ok: false`
and an error code for a bad token, channel or message; 429 with `Retry-After` when rate
limited; whatever fault a test switched on before any of that.

slack-sdk POSTs every method (GET ones too) with the token as `Authorization: Bearer`; chat.*
go as JSON, the rest form-encoded. Slack also takes `token` in the body, so that works here too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.slack.state import Message, Recorded, Store

Answer = tuple[int, dict[str, Any]]
Handler = Callable[[Store, dict[str, Any], str], Answer]

BOT, APP = "bot", "app"


async def read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif request.can_read_body:
        params.update(await request.post())
    # Slack takes structured fields (blocks) form-encoded as JSON text.
    if isinstance(params.get("blocks"), str):
        params["blocks"] = json.loads(params["blocks"])
    return {k: v for k, v in params.items() if isinstance(v, str | list | dict | bool | int)}


def token_of(request: web.Request, params: dict[str, Any]) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip() or None
    token = params.get("token")
    return token if isinstance(token, str) and token else None


def error(code: str) -> Answer:
    return 200, {"ok": False, "error": code}


def auth_error(store: Store, token: str | None, kind: str) -> Answer | None:
    ws = store.workspace
    if token is None:
        return error("not_authed")
    if token not in (ws.bot_token, ws.app_token):
        return error("invalid_auth")
    if (kind == APP) != (token == ws.app_token):
        return error("not_allowed_token_type")
    return None


def chat_post_message(store: Store, p: dict[str, Any], _base: str) -> Answer:
    channel = store.workspace.channel_id(str(p.get("channel", "")))
    if channel is None:
        return error("channel_not_found")
    if not p.get("text") and not p.get("blocks") and not p.get("attachments"):
        return error("no_text")
    thread = p.get("thread_ts")
    msg = Message(channel, store.next_ts(), str(p.get("text", "")), p.get("blocks"), thread)
    store.post(msg)
    ws = store.workspace
    return 200, {
        "ok": True,
        "channel": channel,
        "ts": msg.ts,
        "message": msg.as_slack(ws.bot_user_id, ws.bot_id),
    }


def chat_update(store: Store, p: dict[str, Any], _base: str) -> Answer:
    channel = store.workspace.channel_id(str(p.get("channel", "")))
    if channel is None:
        return error("channel_not_found")
    msg = store.find(channel, str(p.get("ts", "")))
    if msg is None:
        return error("message_not_found")
    if "text" in p:
        msg.text = str(p["text"])
    if "blocks" in p:
        msg.blocks = p["blocks"]
    msg.updates += 1
    ws = store.workspace
    return 200, {
        "ok": True,
        "channel": channel,
        "ts": msg.ts,
        "text": msg.text,
        "message": msg.as_slack(ws.bot_user_id, ws.bot_id),
    }


def chat_post_ephemeral(store: Store, p: dict[str, Any], _base: str) -> Answer:
    channel = store.workspace.channel_id(str(p.get("channel", "")))
    if channel is None:
        return error("channel_not_found")
    if p.get("user") not in store.workspace.users:
        return error("user_not_in_channel")
    if not p.get("text") and not p.get("blocks") and not p.get("attachments"):
        return error("no_text")
    ts = store.next_ts()
    store.add_ephemeral({"channel": channel, "user": p["user"], "ts": ts, **p})
    return 200, {"ok": True, "message_ts": ts}


def apps_connections_open(store: Store, _p: dict[str, Any], base: str) -> Answer:
    ticket = store.issue_ticket()
    url = f"ws{base.removeprefix('http')}/link/?ticket={ticket}&app_id={store.workspace.app_id}"
    return 200, {"ok": True, "url": url}


def usergroups_users_list(store: Store, p: dict[str, Any], _base: str) -> Answer:
    users = store.workspace.usergroups.get(str(p.get("usergroup", "")))
    if users is None:
        return error("no_such_subteam")
    return 200, {"ok": True, "users": list(users)}


def auth_test(store: Store, _p: dict[str, Any], base: str) -> Answer:
    ws = store.workspace
    return 200, {
        "ok": True,
        "url": base + "/",
        "team": "canary-test",
        "user": "canary",
        "team_id": ws.team_id,
        "user_id": ws.bot_user_id,
        "bot_id": ws.bot_id,
    }


METHODS: dict[str, tuple[str, Handler]] = {
    "chat.postMessage": (BOT, chat_post_message),
    "chat.update": (BOT, chat_update),
    "chat.postEphemeral": (BOT, chat_post_ephemeral),
    "usergroups.users.list": (BOT, usergroups_users_list),
    "auth.test": (BOT, auth_test),
    "apps.connections.open": (APP, apps_connections_open),
}


def api_handler(store: Store, base: Callable[[], str]) -> Callable[[web.Request], Awaitable[Any]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await read_params(request)
        with store.lock:
            fault = store.take_fault(method)
            delay = store.delay
            if fault is not None:
                status, body = fault.status, {"ok": False, "error": "ratelimited"}
            elif method not in METHODS:
                status, body = 404, {"ok": False, "error": "unknown_method"}
            else:
                kind, handler = METHODS[method]
                answer = auth_error(store, token_of(request, params), kind)
                status, body = answer or handler(store, params, base())
            store.record(Recorded(method, params, dict(request.headers), status, time.time()))
        if delay:
            await asyncio.sleep(delay)
        if fault is not None and fault.status == 429:
            headers = {"Retry-After": str(fault.retry_after or 1)}
            return web.json_response(body, status=429, headers=headers)
        if fault is not None:
            # Slack's front end answers a 5xx with a page, not JSON.
            return web.Response(status=fault.status, text="Internal Server Error")
        return web.json_response(body, status=status)

    return handle


def response_url_handler(store: Store) -> Callable[[web.Request], Awaitable[Any]]:
    """Where a block_actions payload's response_url points: records what canary posts back."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        store.note_response({"path": request.path, "body": body})
        return web.Response(text="ok")

    return handle


INCOMING = "incoming.webhook"  # the name a test gives `fail`/`rate_limit` to fault the webhook


def incoming_webhook_handler(store: Store) -> Callable[[web.Request], Awaitable[Any]]:
    """An incoming webhook (`/services/T…/B…/secret`), answered as Slack answers: 200 `ok`, or
    404 `no_service` for a URL it does not know, 400 `invalid_payload` for a body that is not
    JSON or has no text nor blocks; faults as for the Web API, under the name INCOMING."""

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        with store.lock:
            fault = store.take_fault(INCOMING)
            store.record(
                Recorded(
                    INCOMING, {}, dict(request.headers), fault.status if fault else 0, time.time()
                )
            )
        if fault is not None and fault.status == 429:
            headers = {"Retry-After": str(fault.retry_after or 1)}
            return web.Response(status=429, text="rate_limited", headers=headers)
        if fault is not None:
            return web.Response(status=fault.status, text="Internal Server Error")
        if request.match_info["path"] != store.workspace.webhook_path:
            return web.Response(status=404, text="no_service")
        try:
            body = json.loads(raw)
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return web.Response(status=400, text="invalid_payload")
        store.note_incoming(body)
        return web.Response(text="ok")

    return handle
