"""The job side of :mod:`greenroom.compositor.commands`: obey the service's commands.

A dispatched job runs a compositor (and, for the built-in avatar, the avatar too). The
receiver listens for data packets on :data:`~greenroom.compositor.commands.TOPIC` that the
LiveKit server itself sent (no participant: only a holder of the API secret can send one),
carries each out and publishes the :class:`~greenroom.compositor.commands.Reply` in the
compositor's attributes. Commands run one at a time, in the order they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from livekit import rtc

from greenroom.compositor.commands import (
    ATTR_REPLY,
    ATTR_STATE,
    ATTR_STOP_REASON,
    STATE_STOPPED,
    TOPIC,
    Command,
    Reply,
)
from greenroom.compositor.control import coerce_background
from greenroom.errors import GreenroomError, InvalidInput

if TYPE_CHECKING:
    from greenroom.avatars.base import AvatarSession
    from greenroom.compositor.compositor import Compositor

logger = logging.getLogger("greenroom.compositor.worker")

STOP_LINGER = 2.5  # s the job stays after a stop, its reason published (see _run)
QUEUE_LIMIT = 64  # commands waiting; more are refused (the service waits for each reply)


class CommandReceiver:
    """Carries out the service's commands on one compositor (and its built-in avatar)."""

    def __init__(
        self,
        room: rtc.Room,
        compositor: Compositor,
        avatar: AvatarSession | None,
        on_stop: Callable[[str], object],
    ) -> None:
        self._room = room
        self._compositor = compositor
        self._avatar = avatar
        self._on_stop = on_stop
        self._queue: asyncio.Queue[Command] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._room.on("data_received", self._on_data)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="greenroom-commands")

    async def aclose(self) -> None:
        self._room.off("data_received", self._on_data)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != TOPIC:
            return
        if packet.participant is not None:  # only the server's own packets are commands
            logger.warning(
                "ignored a command from participant %r: commands come from the service",
                packet.participant.identity,
            )
            return
        try:
            command = Command.parse(packet.data)
        except InvalidInput as exc:
            logger.warning("ignored a malformed command: %s", exc.message)
            return
        try:
            self._queue.put_nowait(command)
        except asyncio.QueueFull:
            logger.warning("command %s refused: %d already waiting", command.id, QUEUE_LIMIT)

    async def _run(self) -> None:
        while True:
            command = await self._queue.get()
            reply = await self._carry_out(command)
            status = {ATTR_REPLY: reply.to_attribute()}
            stopping = command.op == "stop" and reply.ok
            reason = str(command.args.get("reason") or "stopped by the service")
            if stopping:
                status.update({ATTR_STATE: STATE_STOPPED, ATTR_STOP_REASON: reason})
            await self._compositor.publish_status(status)
            if stopping:
                # stay a moment, so the replica holding the session reads why before the
                # avatar's departure could read as the avatar leaving on its own
                await asyncio.sleep(STOP_LINGER)
                self._on_stop(reason)
                return

    async def _carry_out(self, command: Command) -> Reply:
        try:
            result = await self._do(command.op, command.args)
        except GreenroomError as exc:
            field = exc.field if isinstance(exc, InvalidInput) else None
            error = {"code": exc.code, "message": exc.message, "field": field}
            return Reply(command.id, ok=False, error=error)
        except Exception as exc:  # a failure of ours: say so, keep running
            logger.exception("command %s (%s) failed", command.id, command.op)
            error = {"code": "internal", "message": f"{type(exc).__name__}: {exc}", "field": None}
            return Reply(command.id, ok=False, error=error)
        return Reply(command.id, ok=True, result=result)

    async def _do(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        if op == "set_background":
            # the service vetted the value (library ids are resolved there): any spec goes
            spec = coerce_background(args.get("background"))
            transition = args.get("transition")
            done = await self._compositor.set_background(spec, transition)
            return {"background": json.loads(done.to_attribute())}
        if op == "stop":
            return {}
        avatar = self._avatar
        if avatar is None:
            raise InvalidInput(
                f"{op}: this compositor runs no avatar of its own; the service speaks to "
                "vendor avatars directly",
                field="op",
            )
        if op == "speak":
            text = args.get("text")
            if not isinstance(text, str):
                raise InvalidInput("text must be a string", field="text")
            await avatar.speak(text, mode=args.get("mode", "repeat"))
        elif op == "interrupt":
            await avatar.interrupt()
        return {}
