"""A session's compositor (and built-in avatar) as a LiveKit Agents job on a ``greenroom
worker`` (``GREENROOM_COMPOSITOR=dispatch``), driven over LiveKit only.

:meth:`DispatchedCompositor.start` asks LiveKit for a ``greenroom-compositor`` job in the
session's room (explicit dispatch; LiveKit picks a worker by load) and returns once the job's
participant has joined. From then on the service holds no connection to the room: commands
go out with ``RoomService.SendData`` and replies come back in the job's attributes
(:mod:`greenroom.compositor.commands`), and a watcher reads the room's participants once a
second for the state, the key colour and whether the job is still there. Both handles
satisfy the contracts the session service drives (:mod:`.contracts`), so sessions run the
same way wherever their compositor is.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from livekit import api as lkapi
from livekit import rtc

from greenroom.api.services.contracts import STOP_REQUESTED
from greenroom.avatars.base import (
    STATE_ATTRIBUTE,
    AvatarState,
    SpeakMode,
    StateEmitter,
    check_speech,
)
from greenroom.compositor.commands import (
    ATTR_ERROR,
    ATTR_REPLY,
    ATTR_STATE,
    ATTR_STOP_REASON,
    STATE_FAILED,
    STATE_JOINED,
    STATE_LIVE,
    STATE_STOPPED,
    TOPIC,
    Command,
    Reply,
)
from greenroom.compositor.options import (
    ATTR_BACKGROUND,
    ATTR_KEY_COLOR,
    ATTR_KEYER,
    TRACK_NAME,
    compositor_identity,
)
from greenroom.config import Settings
from greenroom.errors import CompositorClosed, Conflict, GreenroomError, InvalidInput, StartFailed
from greenroom.tokens import viewer_token

if TYPE_CHECKING:
    from greenroom.backgrounds.spec import BackgroundSpec
    from greenroom.compositor.worker import AvatarRequest

log = logging.getLogger("greenroom.sessions")

JOIN_TIMEOUT = 120.0  # s for a worker to take the job and join (a fresh job process loads numba)
COMMAND_TIMEOUT = 20.0  # s for a command's reply
WATCH_INTERVAL = 1.0  # s between reads of the room's participants
STOP_TIMEOUT = 5.0  # s for the job to confirm a stop before it is removed from the room
POLL = 0.2  # s between reads while waiting for a reply
GONE_AFTER = 3  # reads in a row without the job's participant before it counts as gone


class DispatchedCompositor:
    """The service's handle on a compositor job (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        lk: lkapi.LiveKitAPI,
        room: str,
        avatar_identity: str,
        background: BackgroundSpec,
        dispatch_id: str,
    ) -> None:
        self._settings = settings
        self._lk = lk
        self.room = room
        self.avatar_identity = avatar_identity
        self.identity = compositor_identity(avatar_identity)
        self.dispatch_id = dispatch_id
        self._background = background
        self._background_attr = ""  # the attribute value _background was read from
        self._attributes: dict[str, str] = {}
        self._closed_reason: str | None = None
        self._close_callbacks: list[Callable[[str], object]] = []
        self._live = asyncio.Event()
        self._ended = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one command at a time: replies share one attribute
        self._loop = asyncio.get_running_loop()
        self.avatar: DispatchedAvatar | None = None  # the job's own avatar, if it runs one

    # ----------------------------------------------------------------- start
    @classmethod
    async def start(
        cls,
        settings: Settings,
        lk: lkapi.LiveKitAPI,
        room: str,
        avatar_identity: str,
        background: BackgroundSpec,
        options: dict[str, Any],
        *,
        avatar: AvatarRequest | None = None,
        join_timeout: float | None = None,
    ) -> DispatchedCompositor:
        """Dispatch the job and wait until its participant is in the room.

        Raises:
            StartFailed: no worker took the job in time (the dispatch is withdrawn).
        """
        from greenroom.compositor.options import CompositorOptions
        from greenroom.compositor.worker import AGENT_NAME, DispatchRequest

        request = DispatchRequest(avatar_identity, background, CompositorOptions(), avatar)
        dispatch = await lk.agent_dispatch.create_dispatch(
            lkapi.CreateAgentDispatchRequest(
                agent_name=AGENT_NAME, room=room, metadata=request.to_metadata(options)
            )
        )
        comp = cls(settings, lk, room, avatar_identity, background, dispatch.id)
        if avatar is not None:
            comp.avatar = DispatchedAvatar(comp, avatar.provider)
        try:
            await comp._wait_joined(JOIN_TIMEOUT if join_timeout is None else join_timeout)
        except BaseException:
            await comp._withdraw()
            raise
        comp._start_watching()
        return comp

    @classmethod
    async def adopt(
        cls,
        settings: Settings,
        lk: lkapi.LiveKitAPI,
        room: str,
        avatar_identity: str,
        background: BackgroundSpec,
        *,
        job_avatar: str | None = None,
        watch: bool = True,
    ) -> DispatchedCompositor | None:
        """A handle on a job that is already running (another replica started it), or None
        if its participant is not in the room. ``job_avatar``: the provider of the built-in
        avatar the job runs, if any. ``watch=False``: a handle for one command (the session
        is held by another replica, which watches it)."""
        comp = cls(settings, lk, room, avatar_identity, background, dispatch_id="")
        try:
            me = (await comp._participants()).get(comp.identity)
        except lkapi.TwirpError:
            return None
        if me is None or me.attributes.get(ATTR_STATE) not in (STATE_JOINED, STATE_LIVE):
            return None
        comp._see(dict(me.attributes))
        if job_avatar is not None:
            comp.avatar = DispatchedAvatar(comp, job_avatar)
        if watch:
            comp._start_watching()
        return comp

    async def _wait_joined(self, timeout: float) -> None:
        """Until the job says its compositor (and avatar) run, or why they could not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            me = (await self._participants()).get(self.identity)
            state = me.attributes.get(ATTR_STATE) if me is not None else None
            if me is not None and state in (STATE_JOINED, STATE_LIVE):
                self._see(dict(me.attributes))
                return
            if me is not None and state == STATE_FAILED:
                error = json.loads(me.attributes.get(ATTR_ERROR) or "{}")
                try:
                    _outcome(Reply("start", ok=False, error=error))
                except InvalidInput:
                    raise
                except GreenroomError as exc:
                    raise StartFailed(
                        f"the compositor job could not start: {exc.message}"
                    ) from None
            await asyncio.sleep(POLL)
        raise StartFailed(
            f"no compositor worker joined room {self.room!r} within {timeout:g} s; "
            "GREENROOM_COMPOSITOR=dispatch needs `greenroom worker` running against this "
            "LiveKit server with free capacity"
        )

    async def _withdraw(self) -> None:
        if self.dispatch_id:
            with contextlib.suppress(Exception):
                await self._lk.agent_dispatch.delete_dispatch(self.dispatch_id, self.room)
        with contextlib.suppress(Exception):
            await self._lk.room.remove_participant(
                lkapi.RoomParticipantIdentity(room=self.room, identity=self.identity)
            )

    # ----------------------------------------------------------------- watching
    def _start_watching(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch(), name=f"greenroom-dispatch-{self.room}"
        )

    async def _participants(self) -> dict[str, lkapi.ParticipantInfo]:
        res = await self._lk.room.list_participants(lkapi.ListParticipantsRequest(room=self.room))
        return {p.identity: p for p in res.participants}

    async def _watch(self) -> None:
        """Read the room once a second: attributes, the avatar's state, the job's presence."""
        missing = avatar_missing = 0
        while not self._ended.is_set():
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                people = await self._participants()
            except lkapi.TwirpError as exc:
                if exc.code == lkapi.TwirpErrorCode.NOT_FOUND:
                    self._end("room disconnected (ROOM_DELETED)")
                    return
                continue
            except Exception:  # LiveKit not answering: the session's own watch decides
                continue
            me = people.get(self.identity)
            if me is None:
                missing += 1
                if missing >= GONE_AFTER:
                    self._end("the compositor job left the room")
                    return
            else:
                missing = 0
                self._see(dict(me.attributes))
                if me.attributes.get(ATTR_STATE) == STATE_STOPPED:
                    reason = me.attributes.get(ATTR_STOP_REASON) or "stopped"
                    self._end(STOP_REQUESTED + reason)
                    return
            if self.avatar is not None:
                them = people.get(self.avatar_identity)
                avatar_missing = 0 if them is not None else avatar_missing + 1
                if them is not None:
                    self.avatar.see(them.attributes.get(STATE_ATTRIBUTE) or "")
                elif avatar_missing >= GONE_AFTER:  # a read can miss a participant briefly
                    self.avatar.see("stopped")

    def _see(self, attributes: dict[str, str]) -> None:
        self._attributes = attributes
        if attributes.get(ATTR_STATE) == STATE_LIVE:
            self._live.set()

    def _end(self, reason: str) -> None:
        if self._ended.is_set():
            return
        self._closed_reason = reason
        self._ended.set()
        for cb in self._close_callbacks:
            try:
                cb(reason)
            except Exception:
                log.exception("close callback failed")

    # ----------------------------------------------------------------- commands
    async def command(self, op: str, args: dict[str, Any], timeout: float = COMMAND_TIMEOUT) -> Any:
        """Send ``op`` to the job and return its result.

        Raises:
            InvalidInput / GreenroomError: the job refused it (its reason and field).
            CompositorClosed: the job is gone.
            TimeoutError: no reply in ``timeout`` seconds.
        """
        if self._ended.is_set():
            raise CompositorClosed(f"compositor ended: {self._closed_reason}")
        cmd = Command(op=op, args=args)  # type: ignore[arg-type]  # ops are checked by the job
        async with self._lock:
            await self._lk.room.send_data(
                lkapi.SendDataRequest(
                    room=self.room,
                    data=cmd.to_bytes(),
                    kind=lkapi.DataPacket.Kind.RELIABLE,
                    destination_identities=[self.identity],
                    topic=TOPIC,
                )
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                people = await self._participants()
                me = people.get(self.identity)
                if me is None and op == "stop":  # obeyed and gone before we read the reply
                    return {}
                if me is not None:
                    self._see(dict(me.attributes))
                    reply = Reply.from_attribute(me.attributes.get(ATTR_REPLY, ""))
                    if reply is not None and reply.id == cmd.id:
                        return _outcome(reply)
                await asyncio.sleep(POLL)
        raise TimeoutError(f"the compositor job did not answer {op!r} within {timeout:g} s")

    # ----------------------------------------------------------------- SessionCompositor
    @property
    def background(self) -> BackgroundSpec:
        """The background the job says it shows (another replica may have switched it)."""
        raw = self._attributes.get(ATTR_BACKGROUND, "")
        if raw and raw != self._background_attr:
            from greenroom.compositor.control import coerce_background

            with contextlib.suppress(GreenroomError, ValueError):
                self._background = coerce_background(json.loads(raw))
            self._background_attr = raw
        return self._background

    @property
    def key_color(self) -> tuple[int, int, int] | None:
        value = self._attributes.get(ATTR_KEY_COLOR, "")
        if len(value) != 7 or not value.startswith("#"):
            return None
        return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)

    @property
    def closed(self) -> bool:
        return self._ended.is_set()

    async def set_background(
        self, spec: BackgroundSpec, transition: float | None = None
    ) -> BackgroundSpec:
        args: dict[str, Any] = {"background": json.loads(spec.to_attribute())}
        if transition is not None:
            args["transition"] = transition
        await self.command("set_background", args)
        self._background, self._background_attr = spec, ""
        return spec

    def metrics(self) -> dict[str, object]:
        key = self._attributes.get(ATTR_KEY_COLOR) or None
        raw = self._attributes.get(ATTR_BACKGROUND)
        return {
            "runs_on": "dispatch",
            "dispatch_id": self.dispatch_id,
            "state": self._attributes.get(ATTR_STATE),
            "background": json.loads(raw) if raw else json.loads(self._background.to_attribute()),
            "key_color": key,
            "keyer": _json_or_none(self._attributes.get(ATTR_KEYER)),
            "closed_reason": self._closed_reason,
        }

    def snapshot_png(self) -> bytes | None:
        """One frame of the composited track, read by a short-lived hidden subscriber
        (blocking: the service calls it in a worker thread)."""
        future = asyncio.run_coroutine_threadsafe(self._grab_png(), self._loop)
        return future.result(timeout=JOIN_TIMEOUT)

    async def _grab_png(self) -> bytes | None:
        from PIL import Image

        settings = self._settings
        token = viewer_token(
            settings.livekit_api_key,
            settings.livekit_api_secret.get_secret_value(),
            room=self.room,
            identity=f"greenroom-snapshot-{int(time.time() * 1000)}",
            can_publish_data=False,
        )
        room = rtc.Room()
        reader: asyncio.Task[rtc.VideoFrame] | None = None

        def on_track(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
        ) -> None:
            nonlocal reader
            if p.identity == self.identity and pub.name == TRACK_NAME and reader is None:
                reader = asyncio.ensure_future(_first_frame(track))

        room.on("track_subscribed", on_track)
        try:
            options = rtc.RoomOptions(auto_subscribe=False)
            await asyncio.wait_for(room.connect(settings.livekit_url, token, options), 30)
            job = room.remote_participants.get(self.identity)
            pub = next(
                (
                    p
                    for p in (job.track_publications.values() if job else [])
                    if p.name == TRACK_NAME
                ),
                None,
            )
            if pub is None:
                return None
            pub.set_subscribed(True)
            pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
            deadline = time.monotonic() + 30
            while reader is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if reader is None:
                return None
            frame = await asyncio.wait_for(reader, 30)
        except TimeoutError:
            return None
        finally:
            if reader is not None:
                reader.cancel()
            with contextlib.suppress(Exception):
                await room.disconnect()
        rgb = frame.convert(rtc.VideoBufferType.RGB24)
        image = Image.frombytes("RGB", (rgb.width, rgb.height), bytes(rgb.data))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    async def wait_first_frame(self, timeout: float = 10.0) -> None:
        live = asyncio.ensure_future(self._live.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({live, ended}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            live.cancel()
            ended.cancel()
        if self._live.is_set():
            return
        if self._ended.is_set():
            raise CompositorClosed(f"compositor ended: {self._closed_reason}")
        raise TimeoutError(f"the compositor job published no frame within {timeout:g} s")

    def on_close(self, callback: Callable[[str], object]) -> None:
        self._close_callbacks.append(callback)

    async def detach(self) -> None:
        """Stop watching the job and leave it running (another replica may adopt it)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def aclose(self) -> None:
        """Tell the job to stop (it takes its avatar along), then make sure it left."""
        if not self._ended.is_set():
            with contextlib.suppress(GreenroomError, TimeoutError, lkapi.TwirpError):
                await self.command(
                    "stop", {"reason": "stopped by the service"}, timeout=STOP_TIMEOUT
                )
            await self._withdraw()
            self._end("closed")
        await self.detach()


class DispatchedAvatar(StateEmitter):
    """The built-in avatar running inside a compositor job; speech goes through the job."""

    def __init__(self, job: DispatchedCompositor, provider: str) -> None:
        super().__init__()
        self._job = job
        self.provider = provider
        self.identity = job.avatar_identity

    def see(self, state: str) -> None:
        """The state the avatar's attributes say (from the job's watcher)."""
        with contextlib.suppress(ValueError):
            self._set_state(AvatarState(state))

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        text = check_speech(text, mode)
        await self._job.command("speak", {"text": text, "mode": mode})

    async def interrupt(self) -> None:
        await self._job.command("interrupt", {})

    async def keep_alive(self) -> None:
        """The built-in avatar has no idle timeout of its own."""

    async def aclose(self) -> None:
        """The job's stop ends the avatar too; remove it in case the job could not."""
        with contextlib.suppress(Exception):
            await self._job._lk.room.remove_participant(
                lkapi.RoomParticipantIdentity(room=self._job.room, identity=self.identity)
            )


class AvatarElsewhere(StateEmitter):
    """A vendor avatar held by another replica: its vendor session lives there, so speech
    must go through that replica."""

    def __init__(self, provider: str, identity: str, owner: str) -> None:
        super().__init__()
        self.provider, self.identity, self._owner = provider, identity, owner
        self.state = AvatarState.IDLE

    def _refuse(self) -> NoReturn:
        raise Conflict(
            f"this session's {self.provider} avatar is held by replica {self._owner}; send "
            "speech to that replica"
        )

    async def speak(self, text: str, *, mode: SpeakMode = "repeat") -> None:
        self._refuse()

    async def interrupt(self) -> None:
        self._refuse()

    async def keep_alive(self) -> None:
        self._refuse()

    async def aclose(self) -> None:
        """Nothing of it is here."""


def _outcome(reply: Reply) -> Any:
    if reply.ok:
        return reply.result
    error = reply.error
    message = str(error.get("message") or "the compositor job refused the command")
    if error.get("code") == "invalid_input":
        raise InvalidInput(message, field=error.get("field"))
    raise GreenroomError(message, code=str(error.get("code") or "compositor_error"), status=502)


def _json_or_none(raw: str | None) -> Any:
    """An attribute's JSON value; None when it is absent or not JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def _first_frame(track: rtc.Track) -> rtc.VideoFrame:
    stream = rtc.VideoStream(track)
    try:
        async for event in stream:
            return event.frame
        raise TimeoutError("the track ended before its first frame")
    finally:
        await stream.aclose()


def dispatch_options(keying: dict[str, object], session_id: str) -> dict[str, Any]:
    """A template's keying settings as the JSON ``options`` of a dispatch."""
    import dataclasses

    from greenroom.api.services.pipeline import compositor_options

    options = compositor_options(keying, session_id=session_id)
    defaults = type(options)()
    out: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if value == getattr(defaults, f.name):
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


__all__ = [
    "AvatarElsewhere",
    "DispatchedAvatar",
    "DispatchedCompositor",
    "dispatch_options",
]
