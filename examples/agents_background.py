"""A LiveKit Agents app whose LiveAvatar avatar speaks in front of your own background.

The background is keyed in on the server by the agent itself; every viewer, on every
client, sees the composited picture (LiveKit's agent frontends pick it up as the agent's
camera). The agent can also change it when asked, through a function tool.

    pip install greenroom livekit-plugins-liveavatar
    export LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    export LIVEAVATAR_API_KEY=... LIVEAVATAR_AVATAR_ID=...   # an avatar on a green screen
    python agents_background.py dev

Without a LiveAvatar account, point the plugin at Greenroom's emulator
(``greenroom emulate liveavatar``): ``export LIVEAVATAR_API_URL=http://127.0.0.1:8091/v1/sessions``.
"""

from __future__ import annotations

import os

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, RunContext, cli
from livekit.agents.llm import function_tool
from livekit.plugins import liveavatar

from greenroom.agents import BackgroundHandle, add_background

BACKGROUND = os.environ.get("BACKGROUND", "office.jpg")  # an image, a video, "#0b3d91", "blur"

server = AgentServer(initialize_process_timeout=60)  # the keyer compiles on first import


class Presenter(Agent):
    def __init__(self, background: BackgroundHandle) -> None:
        super().__init__(instructions="You are a friendly presenter in a studio.")
        self.background = background

    @function_tool
    async def change_background(self, context: RunContext, background: str) -> str:
        """Change the background behind you.

        Args:
            background: a colour like #0b3d91, "blur" or "none".
        """
        spec = await self.background.set_background(background, transition=0.5)
        return f"The background is now {spec}."


@server.rtc_session(agent_name="presenter")
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session = AgentSession()  # your stt=, llm=, tts= (or a realtime llm=) go here

    api_url = os.environ.get("LIVEAVATAR_API_URL")
    avatar = liveavatar.AvatarSession(**({"api_url": api_url} if api_url else {}))
    await avatar.start(session, room=ctx.room)

    # the three lines: a background behind the avatar, a handle to switch it, closed at the end
    background = await add_background(ctx.room, avatar=avatar, background=BACKGROUND)
    ctx.add_shutdown_callback(background.aclose)

    await session.start(agent=Presenter(background), room=ctx.room)


if __name__ == "__main__":
    cli.run_app(server)
