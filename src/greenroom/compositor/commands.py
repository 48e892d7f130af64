"""Commands from the Greenroom service to a compositor it dispatched, over LiveKit only.

A dispatched compositor runs in a ``greenroom worker`` job, possibly on another machine, so
the service cannot call it. It reaches it the way any LiveKit server-side tool can, with no
connection to the room of its own:

- **Command** (service -> job): a reliable data packet sent with the server API
  (``RoomService.SendData``) to the compositor's identity, topic :data:`TOPIC`, body
  :class:`Command` as JSON. Only packets with no sending participant, which only a holder
  of the API secret can send, are obeyed; a participant in the room cannot forge one.
- **Reply** (job -> service): the compositor's participant attribute :data:`ATTR_REPLY`,
  :class:`Reply` as JSON, read back with ``RoomService.ListParticipants``.
- **State**: attribute :data:`ATTR_STATE`, ``"joined"`` once compositor (and avatar) run,
  ``"live"`` once the first composited frame has been published, ``"failed"`` (with
  :data:`ATTR_ERROR`) when the job could not start what it was asked to, ``"stopped"``
  (with :data:`ATTR_STOP_REASON`) when a ``stop`` command ends it: the replica that holds
  the session records that reason, whichever replica sent the command.

Any API replica can therefore switch, speak or stop any session; nothing is held in the
process that started it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from greenroom.errors import InvalidInput

TOPIC = "greenroom.command"
ATTR_REPLY = "greenroom.reply"
ATTR_STATE = "greenroom.state"
ATTR_ERROR = "greenroom.error"  # why the job failed to start: {"code", "message", "field"}
ATTR_STOP_REASON = "greenroom.stop_reason"  # the reason a ``stop`` command gave
STATE_JOINED, STATE_LIVE, STATE_FAILED = "joined", "live", "failed"
STATE_STOPPED = "stopped"  # a ``stop`` command was obeyed; the job is leaving

Op = Literal["set_background", "speak", "interrupt", "stop"]
OPS: frozenset[str] = frozenset({"set_background", "speak", "interrupt", "stop"})
MAX_COMMAND_BYTES = 15_000  # LiveKit's data packets carry up to about 15 kB reliably


@dataclass(frozen=True)
class Command:
    """One instruction: ``op`` with its ``args``; ``id`` pairs it with its :class:`Reply`."""

    op: Op
    args: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def to_bytes(self) -> bytes:
        data = json.dumps({"id": self.id, "op": self.op, "args": self.args}).encode()
        if len(data) > MAX_COMMAND_BYTES:
            raise InvalidInput(
                f"command is {len(data)} bytes; the limit is {MAX_COMMAND_BYTES}", field="args"
            )
        return data

    @classmethod
    def parse(cls, data: bytes) -> Command:
        """Raises ``InvalidInput`` for anything that is not a command we know."""
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidInput("command is not JSON", field="command") from None
        if not isinstance(raw, dict):
            raise InvalidInput("command must be a JSON object", field="command")
        op, args, cid = raw.get("op"), raw.get("args", {}), raw.get("id")
        if op not in OPS:
            raise InvalidInput(f"unknown op {op!r}; one of {sorted(OPS)}", field="op")
        if not isinstance(args, dict):
            raise InvalidInput("args must be an object", field="args")
        if not isinstance(cid, str) or not cid:
            raise InvalidInput("id is required", field="id")
        return cls(op=op, args=args, id=cid)


@dataclass(frozen=True)
class Reply:
    """The outcome of command ``id``: ``result`` when ``ok``, else the error's API shape."""

    id: str
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)  # {"code", "message", "field"}

    def to_attribute(self) -> str:
        body = {"id": self.id, "ok": self.ok, "result": self.result, "error": self.error}
        return json.dumps(body)

    @classmethod
    def from_attribute(cls, value: str) -> Reply | None:
        """The reply in an attribute value, or None if there is none (or it is not one)."""
        try:
            raw = json.loads(value) if value else None
        except json.JSONDecodeError:
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            return None
        return cls(
            id=raw["id"],
            ok=bool(raw.get("ok")),
            result=raw.get("result") or {},
            error=raw.get("error") or {},
        )
