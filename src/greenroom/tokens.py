"""LiveKit access tokens, scoped to what each participant needs and always expiring.

- viewers: subscribe only (no publish, no data), short TTL;
- agents (avatar, compositor): kind ``agent``, publish + subscribe + data + own attributes.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

# The dev server's secret ("secret") is short by design; production secrets are checked by LiveKit.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

VIEWER_TTL = timedelta(hours=2)
AGENT_TTL = timedelta(hours=6)


def viewer_token(
    key: str,
    secret: str,
    *,
    room: str,
    identity: str,
    ttl: timedelta = VIEWER_TTL,
    can_publish_data: bool = True,
) -> str:
    """A subscribe-only token; ``can_publish_data`` lets the viewer call RPCs (background switch)."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_subscribe=True,
        can_publish=False,
        can_publish_data=can_publish_data,
        can_update_own_metadata=False,
    )
    return (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_ttl(ttl)
        .with_grants(grants)
        .to_jwt()
    )


def agent_token(
    key: str,
    secret: str,
    *,
    room: str,
    identity: str,
    name: str | None = None,
    attributes: dict[str, str] | None = None,
    ttl: timedelta = AGENT_TTL,
) -> str:
    """A token for a Greenroom participant that publishes (avatar, compositor)."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_subscribe=True,
        can_publish=True,
        can_publish_data=True,
        can_update_own_metadata=True,
        agent=True,
    )
    tok = (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_kind("agent")
        .with_ttl(ttl)
        .with_grants(grants)
    )
    if name:
        tok = tok.with_name(name)
    if attributes:
        tok = tok.with_attributes(attributes)
    return tok.to_jwt()
