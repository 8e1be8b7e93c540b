"""Socket Mode over a real WebSocket: a client opens `/link/?ticket=...` with a URL it got from
apps.connections.open, gets `hello`, and from then on receives envelopes and sends acks.

Pings are answered by aiohttp itself (autoping); slack-sdk's builtin client pings every
`ping_interval` seconds and drops a connection that stays silent for four of them.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiohttp import WSMsgType, web

from tests.slack.state import Store


class SocketMode:
    """Lives on the server's event loop; only that loop touches `open`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.open: list[web.WebSocketResponse] = []
        self._ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.store.use_ticket(request.query.get("ticket", "")):
            # Slack refuses a URL it did not issue, or one already used.
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.open.append(ws)
        self.store.note_connection()
        try:
            await ws.send_json(self._hello())
            # Ends when either side closes; stop() and down() close every socket.
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except json.JSONDecodeError:
                    frame = {"raw": msg.data}
                self.store.note_frame(frame if isinstance(frame, dict) else {"raw": frame})
        finally:
            self.open.remove(ws)
        return ws

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": len(self.open),
            "debug_info": {"host": "applink-local", "approximate_connection_time": 3600},
            "connection_info": {"app_id": self.store.workspace.app_id},
        }

    async def send_interactive(self, payload: dict[str, Any]) -> str:
        """Sends an `interactive` envelope on the newest connection; returns its envelope id."""
        if not self.open:
            raise RuntimeError("local Slack: no Socket Mode connection to deliver to")
        envelope_id = f"env-{next(self._ids)}"
        await self.open[-1].send_json(
            {
                "envelope_id": envelope_id,
                "payload": payload,
                "type": "interactive",
                "accepts_response_payload": False,
            }
        )
        return envelope_id

    async def send_disconnect(self, reason: str) -> int:
        """Asks every connection to reconnect, as Slack does before it recycles one."""
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-local"}}
        for ws in list(self.open):
            await ws.send_json(frame)
        return len(self.open)

    async def close_all(self) -> None:
        for ws in list(self.open):
            await ws.close()
