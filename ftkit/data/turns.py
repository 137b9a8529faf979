"""What every format shares: text fields, message content, turns, and the canonical rules.

Each format's reader (``parse``) returns ``(canonical record or None, problems)``, where a
problem is ``(field, message)``. The helpers here phrase the problems the same way for
every format, and :func:`check_chat` applies the rules every canonical conversation obeys
(system only first, something to learn, an answer at the end).

Canonical messages are ``{"role", "content"}`` with roles ``system``, ``user``,
``assistant`` and ``tool`` (a tool's result, OpenAI's name for it); a message that must
not be learned carries ``"weight": 0`` (OpenAI's per-message weight, ChatGLM3's
``loss: false``), and :mod:`ftkit.data.tokenize` masks it.
"""

from __future__ import annotations

import json

# Content parts and record fields that carry pictures or sound (OpenAI, TRL, LLaMA-Factory).
MODALITY_PARTS = {"image": "an image", "image_url": "an image", "input_image": "an image",
                  "audio": "audio", "input_audio": "audio", "video": "a video",
                  "video_url": "a video", "file": "a file"}
MODALITY_FIELDS = {"images": "image", "image": "image", "videos": "video", "video": "video",
                   "audios": "audio", "audio": "audio"}
MULTIMODAL_ADVICE = ("ftkit trains text models, and training on the text alone would teach "
                     "answers about {what} the model never sees; remove these records or use a "
                     "multimodal trainer (e.g. LLaMA-Factory with a vision-language model)")


def kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def msg(role: str, content: str, weight=None) -> dict:
    out = {"role": role, "content": content}
    if weight is not None:
        out["weight"] = weight
    return out


def missing(field: str, present: int = 0, why: str = "") -> str:
    others = f" ({present} other record(s) in this file have it)" if present else ""
    return f"missing required field '{field}'{': ' + why if why else ''}{others}"


def need_text(record: dict, field: str, problems: list, required: bool = True,
              present: int = 0, where: str | None = None) -> str | None:
    """A required (or, when present, optional) string field; its value when it is one."""
    where = where or field
    if field not in record or (record[field] is None and not required):
        if required:
            problems.append((where, missing(field, present)))
        return None
    value = record[field]
    if not isinstance(value, str):
        problems.append((where, f"must be a string, got {kind(value)}"))
        return None
    if required and not value.strip():
        problems.append((where, "is empty"))
    return value


def multimodal_fields(record: dict, problems: list, fields=MODALITY_FIELDS) -> None:
    """Refuse a record that carries images, audio or video (never trained as text silently)."""
    for field, modality in fields.items():
        value = record.get(field)
        if value in (None, "", []):
            continue
        count = len(value) if isinstance(value, list) else 1
        what = {"image": "pictures", "video": "videos", "audio": "sounds"}[modality]
        problems.append((field, f"this record has {count} {modality} input(s); "
                         + MULTIMODAL_ADVICE.format(what=what)))


def content_text(value, where: str, problems: list, allow_empty: bool = False) -> str | None:
    """A message's content: a string, or a list of parts ``[{"type": "text", "text": ...}]``
    (OpenAI, TRL) whose texts are joined. Parts with pictures or sound are refused."""
    if isinstance(value, list):
        texts = []
        for i, part in enumerate(value):
            kind_of = part.get("type") if isinstance(part, dict) else None
            if kind_of == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind_of in MODALITY_PARTS:
                what = MODALITY_PARTS[kind_of]
                problems.append((f"{where}[{i}]", f"a content part of type '{kind_of}' holds "
                                 f"{what}; " + MULTIMODAL_ADVICE.format(what=what)))
                return None
            else:
                problems.append((f"{where}[{i}]", 'a content part must look like {"type": '
                                 f'"text", "text": "..."}}, got {kind(part) if kind_of is None else repr(kind_of)}'))
                return None
        value = "".join(texts)
    elif not isinstance(value, str):
        problems.append((where, f"must be a string, got {kind(value)}"))
        return None
    if not allow_empty and not value.strip():
        problems.append((where, "is empty"))
    return value


def read_turns(turns, field: str, problems: list, roles: dict, role_key: str = "role",
               content_key: str = "content", special=None) -> list | None:
    """A list of ``{role_key, content_key}`` turns, roles mapped through ``roles`` (source
    role -> canonical role); None (with problems) when any turn is unusable.

    ``special(turn, where, role, problems)`` reads what a format adds to a turn (weights,
    tool calls): it returns the turn's canonical messages, or None for the plain reading."""
    if not isinstance(turns, list):
        problems.append((field, f"must be a list of turns, got {kind(turns)}"))
        return None
    if not turns:
        problems.append((field, "is an empty conversation"))
        return None
    out, before = [], len(problems)
    for i, turn in enumerate(turns):
        where = f"{field}[{i}]"
        if not isinstance(turn, dict):
            problems.append((where, f"a turn must be an object with '{role_key}' and "
                                    f"'{content_key}', got {kind(turn)}"))
            continue
        role = turn.get(role_key)
        if role_key not in turn:
            problems.append((f"{where}.{role_key}", f"missing '{role_key}'"))
        elif not isinstance(role, str) or role not in roles:
            problems.append((f"{where}.{role_key}", f"unknown role {role!r}; allowed: "
                             + ", ".join(sorted(roles))))
            role = None
        if role is not None and special is not None:
            made = special(turn, where, roles[role], problems)
            if made is not None:
                out.extend(made)
                continue
        if content_key not in turn:
            problems.append((f"{where}.{content_key}", f"missing '{content_key}'"))
            continue
        content = content_text(turn[content_key], f"{where}.{content_key}", problems)
        if role is not None and content is not None:
            out.append(msg(roles[role], content))
    return out if len(problems) == before else None


def check_chat(messages: list, field: str, problems: list) -> None:
    """The rules of a canonical conversation to learn from: system only first, at least one
    assistant turn that is learned, and an assistant turn at the end."""
    roles = [m["role"] for m in messages]
    for i, role in enumerate(roles):
        if role == "system" and i > 0:
            problems.append((f"{field}[{i}]", "a system turn may only come first"))
    if "assistant" not in roles:
        problems.append((field, "the conversation has no assistant turn, so there is "
                                "nothing to learn from it"))
    elif roles[-1] != "assistant":
        problems.append((field, f"the conversation ends with a {roles[-1]} turn that has "
                                "no answer; end it with an assistant turn or drop that turn"))
    elif all(m.get("weight") == 0 for m in messages if m["role"] == "assistant"):
        problems.append((field, "every assistant turn has weight 0 (not learned), so there "
                                "is nothing to learn from this record"))


def as_json_text(value) -> str:
    """Tool calls, arguments and results as the text a model reads."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def tools_field(record: dict, field: str, problems: list):
    """Tool descriptions (a JSON string or a list of them) kept as JSON text, or None."""
    value = record.get(field)
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError as error:
            problems.append((field, f"must hold JSON tool descriptions ({error.msg})"))
            return None
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    problems.append((field, f"must be a list of tool descriptions, got {kind(value)}"))
    return None


# ---------------------------------------------------------------- writing canonical rows back

CANONICAL_FIELDS = ("messages", "prompt", "completion", "chosen", "rejected", "label", "score",
                    "reject_reason", "text", "tools")


class CannotHold(Exception):
    """The target format cannot hold this record (the reason is the message)."""


def extras(row: dict, used=CANONICAL_FIELDS) -> dict:
    """The fields a reader or writer passes through untouched."""
    return {k: v for k, v in row.items() if k not in used and v is not None}


def clean(messages: list[dict]) -> list[dict]:
    """Messages as written out: no ``weight: None`` (a column filler of datasets)."""
    return [{k: v for k, v in m.items() if v is not None} for m in messages]


def kind_of_row(row: dict) -> str:
    """What a canonical row holds: sft, preference, unpaired, prompt or text."""
    if row.get("chosen") is not None:
        return "preference"
    if row.get("label") is not None and row.get("completion") is not None:
        return "unpaired"
    if row.get("messages") is not None:
        return "sft"
    if row.get("text") is not None:
        return "text"
    return "prompt"


def pairs(messages: list[dict]) -> list[tuple[str, str]]:
    """user/assistant alternation as (question, answer) pairs; CannotHold otherwise."""
    if len(messages) % 2 or any(m["role"] != ("user", "assistant")[i % 2]
                                for i, m in enumerate(messages)):
        raise CannotHold("needs strictly alternating user/assistant turns")
    if any(m.get("weight") == 0 for m in messages):
        raise CannotHold("has no place for a turn that is not learned (weight 0)")
    return [(messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages), 2)]


def split_system(messages: list[dict]) -> tuple[str | None, list[dict]]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], messages[1:]
    return None, messages


def tools_out(row: dict) -> dict:
    """``{"tools": [...]}`` for a writer, from the canonical JSON text."""
    if not row.get("tools"):
        return {}
    try:
        return {"tools": json.loads(row["tools"])}
    except json.JSONDecodeError:
        return {"tools": row["tools"]}
