"""The base classes of every run document, and the one place documents are loaded, checked and written.

`Part` is a nested object, `Document` a whole JSON file. Both keep keys they do not know (`extra="allow"`):
a newer edgekit may add fields without bumping `schema_version` (see docs/schemas/README.md), and an
older reader must still load its files. `unknown_fields` lists such keys, so tests can prove that the
models describe everything today's writers produce.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from toolkit.errors import RunDirError

SCHEMA_VERSION: Literal[1] = 1


class DocumentError(RunDirError):
    """A run document is missing, not JSON, of another schema version, or does not match its model.

    A `RunDirError` (so a `ToolkitError`: one line, exit 1), so callers that caught the errors of
    `toolkit.run.layout.read_json`/`load_manifest` keep working when they switch to `load_document`.
    """


def _require_schema_version(schema: dict[str, Any]) -> None:
    # The models give schema_version no default, but keep the published schema explicit about it.
    required = schema.setdefault("required", [])
    if "schema_version" not in required:
        required.insert(0, "schema_version")


def require_every_field(schema: dict[str, Any]) -> None:
    """For settings recorded whole (defaults included): the published schema requires every field, as the
    files always hold them, though Python code may leave some to their defaults."""
    schema["required"] = list(schema.get("properties", {}))


class Part(BaseModel):
    """A nested object of a run document."""

    # protected_namespaces=(): fields such as `model_sha256` and `model_spec` are part of the file format.
    # defer_build: a validator is built on first use, so a command that reads one document does not pay
    # for building all of them at import.
    model_config = ConfigDict(extra="allow", protected_namespaces=(), defer_build=True)
    # True where extra keys are expected and vary between machines or versions (environment, options).
    OPEN: ClassVar[bool] = False


class Document(Part):
    """A whole run document (one JSON file)."""

    model_config = ConfigDict(json_schema_extra=_require_schema_version)
    FILE: ClassVar[str] = ""  # its usual file name, e.g. "bench.json"
    FIX: ClassVar[str] = ""  # how to write it again, e.g. "re-run `edgekit bench`"

    schema_version: Literal[1]


D = TypeVar("D", bound=Document)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def first_problem(exc: ValidationError) -> str:
    """The first validation error as `where: what` (`results[3].p50_ms: Input should be a valid number`)."""
    errors = exc.errors(include_url=False)
    if not errors:
        return "invalid"
    first = errors[0]
    text = f"{_location(tuple(first['loc']))}: {first['msg']}"
    value = first.get("input")
    if first["type"] != "missing" and (value is None or isinstance(value, (str, int, float, bool))):
        shown = repr(value)
        text += f", got {shown if len(shown) <= 40 else shown[:39] + '…'}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


def parse_document(data: Any, kind: type[D], *, source: Path | str | None = None) -> D:
    """Check decoded JSON against `kind` and return the typed document.

    Args:
        data: what `json.loads` returned.
        kind: the document class, e.g. `BenchDocument`.
        source: how to name the file in messages (default: the class's usual file name).

    Raises:
        DocumentError: not an object, another schema version, or the first field that does not match.
    """
    where = str(source) if source is not None else kind.FILE
    if not isinstance(data, dict):
        raise DocumentError(f"{where} does not hold a JSON object; {kind.FIX}.")
    version = data.get("schema_version")
    if version is not None and version != SCHEMA_VERSION:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
        advice = "upgrade edgekit to read it" if newer else kind.FIX
        raise DocumentError(
            f"{where} has schema_version {version!r}; this edgekit reads {kind.FILE} schema_version "
            f"{SCHEMA_VERSION}; {advice}."
        )
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise DocumentError(f"{where} is not a valid {kind.FILE}: {first_problem(exc)}; {kind.FIX}.") from exc


def load_document(path: Path, kind: type[D]) -> D:
    """Read `path` and check it against `kind`.

    Example: `bench = load_document(run_dir / "bench.json", BenchDocument)`.

    Raises:
        DocumentError: missing, unreadable, not JSON, or not a valid document of that kind (one line
            naming the file and the first problem).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DocumentError(f"{path} does not exist; {kind.FIX}.") from exc
    except IsADirectoryError as exc:
        raise DocumentError(f"{path} is a directory, not a {kind.FILE}.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(f"{path} cannot be read ({' '.join(str(exc).split())}); {kind.FIX}.") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{path} is not valid JSON ({exc}); {kind.FIX}.") from exc
    return parse_document(data, kind, source=path)


def dump_document(doc: Part) -> dict[str, Any]:
    """The document as a JSON-ready dict: the fields that were given or read, in declaration order.

    Fields left at their default when the document was built are left out (`exclude_unset`), so an
    older file round-trips unchanged and a writer decides which optional fields it writes.
    """
    data: dict[str, Any] = doc.model_dump(mode="json", exclude_unset=True)
    return data


def write_document(path: Path, doc: Document) -> None:
    """Write `doc` to `path` atomically (indented JSON, as every edgekit writer does): `dump_document(doc)`."""
    from runtimes.files import write_json_atomic

    write_json_atomic(Path(path), dump_document(doc))


def unknown_fields(part: Any, where: str = "") -> list[str]:
    """Keys no model declares, as paths (`results[0].new_field`); keys of `OPEN` parts are not listed."""
    found: list[str] = []
    if isinstance(part, Part):
        if not part.OPEN:
            found += [f"{where}.{k}" if where else k for k in (part.model_extra or {})]
        for name in type(part).model_fields:
            found += unknown_fields(getattr(part, name), f"{where}.{name}" if where else name)
    elif isinstance(part, (list, tuple)):
        for i, item in enumerate(part):
            found += unknown_fields(item, f"{where}[{i}]")
    elif isinstance(part, dict):
        for key, item in part.items():
            found += unknown_fields(item, f"{where}[{key!r}]")
    return found
