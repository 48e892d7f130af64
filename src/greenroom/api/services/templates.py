"""Template rules: provider names, background values, keying settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greenroom.api.services import background_values
from greenroom.errors import InvalidInput
from greenroom.store import Repo
from greenroom.store.models import TemplateRow

KNOWN_PROVIDERS = ("local", "file", "liveavatar", "heygen", "attach")


def provider_names() -> list[str]:
    """Provider names the avatar registry knows (registered or built in), without importing
    them: a provider that fails to load is reported when a session starts."""
    try:
        from greenroom.avatars import base
    except ImportError:
        return list(KNOWN_PROVIDERS)
    return sorted(set(base.PROVIDERS) | set(base.BUILTIN_MODULES))


def check_provider(name: str) -> str:
    names = provider_names()
    if name not in names:
        raise InvalidInput(
            f"unknown provider {name!r}; available: {', '.join(names)}", field="provider"
        )
    return name


def chroma_params(keying: dict[str, Any]) -> Any:
    """``greenroom.keying.ChromaParams`` for a template's keying settings.

    Raises:
        InvalidInput: a combination the keyer refuses (field ``keying.<name>``).
    """
    from greenroom.keying import ChromaParams

    names = set(ChromaParams.__dataclass_fields__)
    kwargs = {k: v for k, v in keying.items() if k in names and k != "key_color"}
    color = keying.get("key_color", "auto")
    if color and color != "auto":
        kwargs["key_color"] = color
    try:
        return ChromaParams(**kwargs)
    except InvalidInput as exc:
        raise InvalidInput(
            exc.message, field=f"keying.{exc.field}" if exc.field else "keying"
        ) from None


def check_keying(keying: dict[str, Any]) -> None:
    if keying.get("mode", "chroma") != "segment":  # auto may key by colour too
        chroma_params(keying)


class TemplateService:
    def __init__(self, repo: Repo):
        self.repo = repo

    def create(self, data: dict[str, Any]) -> TemplateRow:
        data = self._checked(data)
        return self.repo.create_template(**data)

    def update(self, template_id: str, changes: dict[str, Any]) -> TemplateRow:
        self.repo.get_template(template_id)  # 404 before 422
        return self.repo.update_template(template_id, **self._checked(changes))

    def get(self, template_id: str) -> TemplateRow:
        return self.repo.get_template(template_id)

    def list(self) -> Sequence[TemplateRow]:
        return self.repo.list_templates()

    def delete(self, template_id: str) -> None:
        self.repo.delete_template(template_id)

    def _checked(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        if "provider" in out and out["provider"] is not None:
            check_provider(out["provider"])
        if "background" in out and out["background"] is not None:
            out["background"] = background_values.normalize(out["background"], self.repo)
        if out.get("keying") is not None:
            check_keying(out["keying"])
        if "name" in out and out["name"] is not None:
            out["name"] = out["name"].strip()
            if not out["name"]:
                raise InvalidInput("name must not be blank", field="name")
        return {k: v for k, v in out.items() if v is not None or k in ("voice", "max_duration")}
