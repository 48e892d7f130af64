"""Settings, read once from ``GREENROOM_*`` environment variables and an optional ``.env``.

Secrets are ``SecretStr``: they never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "greenroom"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "greenroom"


class Settings(BaseSettings):
    """Everything configurable about a Greenroom process."""

    model_config = SettingsConfigDict(
        env_prefix="GREENROOM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    livekit_url: str = Field("ws://127.0.0.1:7880", description="LiveKit server WebSocket URL")
    livekit_public_url: str | None = Field(
        None, description="URL clients use to reach LiveKit, if different from livekit_url"
    )
    livekit_api_key: str = "devkey"
    livekit_api_secret: SecretStr = SecretStr("secret")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file")
    data_dir: Path = DEFAULT_DATA_DIR
    cache_dir: Path = DEFAULT_CACHE_DIR
    api_key: SecretStr | None = Field(None, description="Key clients send to the Greenroom API")
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    public_base_url: str | None = Field(None, description="Base URL of the API as clients see it")
    liveavatar_api_key: SecretStr | None = None
    liveavatar_base_url: str = "https://api.liveavatar.com"
    heygen_api_key: SecretStr | None = None
    heygen_base_url: str = "https://api.heygen.com"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'greenroom.db'}"

    @property
    def client_livekit_url(self) -> str:
        return self.livekit_public_url or self.livekit_url


def get_settings() -> Settings:
    """Read settings from the environment now (no module-level singleton, so tests stay apart)."""
    return Settings()
