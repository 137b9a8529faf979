"""Readers and writers of the chat and single-answer formats (lesson 02).

Each format is a pair: ``parse_X(record, present) -> (canonical or None, problems)`` and
``write_X(row) -> record`` (raising :class:`~ftkit.data.turns.CannotHold`). Sources:
OpenAI's chat fine-tuning format (``messages``, per-message ``weight`` 0/1, ``tool_calls``,
content parts); ChatGLM3's ``finetune_demo/README.md`` (``conversations`` with ``system``,
``user``, ``assistant``, ``observation``, its ``tool`` turn with ``name``/``parameters``/
``observation``, a per-turn ``loss`` flag, top-level ``tools``) and its input-output
``{"prompt", "response"}`` files (``preprocess_utils.InputOutputDataset``); Firefly's JSONL
and seed 000's CSV; TRL's language-modeling, prompt-only and prompt-completion types.

A tool call becomes an assistant message whose content is the call as JSON (ChatGLM3's
own template prints it as Python ``tool_call(...)``; JSON is what other templates expect),
and a tool's result a ``tool`` message, never learned.
"""

from __future__ import annotations

from .turns import (
    CannotHold,
    as_json_text,
    check_chat,
    clean,
    content_text,
    extras,
    kind,
    missing,
    msg,
    multimodal_fields,
    need_text,
    pairs,
    read_turns,
    split_system,
    tools_field,
    tools_out,
)

OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user",
                "assistant": "assistant", "tool": "tool", "function": "tool"}
CHAT_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
CHATGLM3_ROLES = {"system": "system", "user": "user", "assistant": "assistant",
                  "observation": "tool", "tool": "assistant"}


def _messages_or_text(value, field: str, problems: list, default_role: str, roles: dict,
                      present: int = 0) -> list | None:
    """A TRL field that is either standard (a string) or conversational (messages)."""
    if isinstance(value, list):
        return read_turns(value, field, problems, roles)
    if value is None:
        problems.append((field, missing(field, present)))
        return None
    text = content_text(value, field, problems)
    return None if text is None else [msg(default_role, text)]


def _done(out: dict, problems: list):
    return (None, problems) if problems else (out, problems)


# ---------------------------------------------------------------- OpenAI messages


def openai_turn(turn: dict, where: str, role: str, problems: list):
    """OpenAI's additions to a turn: ``weight`` (0 = do not learn this assistant message)
    and ``tool_calls`` (an assistant message that calls tools, content often null)."""
    weight = turn.get("weight")
    if "weight" in turn:
        if role != "assistant":
            problems.append((f"{where}.weight", "only assistant messages have a weight "
                             "(OpenAI fine-tuning: 0 = do not learn it, 1 = learn it)"))
            return []
        if isinstance(weight, bool) or weight not in (0, 1):
            problems.append((f"{where}.weight", f"must be 0 or 1, got {weight!r}"))
            return []
        weight = 0 if weight == 0 else None  # 1 is the default: only "do not learn" is recorded
    calls = turn.get("tool_calls") or turn.get("function_call")
    if role != "assistant" or (not calls and weight is None and "weight" not in turn):
        return None
    content = turn.get("content")
    text = "" if content is None and calls else content_text(
        content, f"{where}.content", problems, allow_empty=bool(calls))
    if text is None:
        return []
    if calls:
        calls = [c.get("function", c) if isinstance(c, dict) else c
                 for c in (calls if isinstance(calls, list) else [calls])]
        text = (text + "\n" if text.strip() else "") + as_json_text(calls)
    return [msg("assistant", text, weight)]


def parse_openai(record: dict, _present) -> tuple:
    problems: list = []
    multimodal_fields(record, problems)
    if "messages" not in record:
        return None, problems + [("messages", missing("messages"))]
    messages = read_turns(record["messages"], "messages", problems, OPENAI_ROLES,
                          special=openai_turn)
    if messages is not None:
        check_chat(messages, "messages", problems)
    tools = tools_field(record, "tools", problems)
    out = {"messages": messages, **extras(record, ("messages", "tools", "parallel_tool_calls"))}
    if tools:
        out["tools"] = tools
    return _done(out, problems)


def write_openai(row: dict) -> dict:
    return {"messages": clean(row["messages"]), **tools_out(row), **extras(row)}


# ---------------------------------------------------------------- ChatGLM3


def _chatglm3_turn(turn: dict, where: str, role: str, problems: list):
    """ChatGLM3's ``loss`` flag and its ``tool`` turn (a call plus its observation)."""
    loss = turn.get("loss")
    if "loss" in turn and not isinstance(loss, bool):
        problems.append((f"{where}.loss", f"must be true or false, got {kind(loss)}"))
        return []
    source_role = turn.get("role")
    if source_role == "observation" and loss:
        problems.append((f"{where}.loss", "ftkit learns assistant turns only; a tool's "
                         "observation is never learned"))
        return []
    weight = 0 if loss is False and role == "assistant" else None
    if source_role == "tool":  # ChatGLM3 turns it into an assistant call + an observation
        before = len(problems)
        name = need_text(turn, "name", problems, where=f"{where}.name")
        if not isinstance(turn.get("parameters"), dict):
            problems.append((f"{where}.parameters", "a tool turn needs 'parameters' as an "
                             f"object, got {kind(turn.get('parameters'))}"))
        if "observation" not in turn:
            problems.append((f"{where}.observation", "a tool turn needs the tool's "
                             "'observation' (its result)"))
        if len(problems) > before:
            return []
        call = as_json_text({"name": name, "parameters": turn["parameters"]})
        return [msg("assistant", call, weight), msg("tool", as_json_text(turn["observation"]))]
    if weight is None:
        return None
    text = content_text(turn.get("content"), f"{where}.content", problems)
    return [] if text is None else [msg("assistant", text, weight)]


def parse_chatglm3(record: dict, _present) -> tuple:
    problems: list = []
    multimodal_fields(record, problems)
    if "conversations" not in record:
        return None, problems + [("conversations", missing("conversations"))]
    messages = read_turns(record["conversations"], "conversations", problems, CHATGLM3_ROLES,
                          special=_chatglm3_turn)
    if messages is not None:
        check_chat(messages, "conversations", problems)
    tools = tools_field(record, "tools", problems)
    out = {"messages": messages, **extras(record, ("conversations", "tools"))}
    if tools:
        out["tools"] = tools
    return _done(out, problems)


def write_chatglm3(row: dict) -> dict:
    turns = []
    for m in clean(row["messages"]):
        turn = {"role": "observation" if m["role"] == "tool" else m["role"], "content": m["content"]}
        if m.get("weight") == 0:
            turn["loss"] = False
        turns.append(turn)
    return {"conversations": turns, **tools_out(row), **extras(row)}


# ---------------------------------------------------------------- Firefly


def parse_firefly(record: dict, _present) -> tuple:
    problems: list = []
    pairs_ = record.get("conversation")
    if "conversation" not in record:
        return None, [("conversation", missing("conversation"))]
    if not isinstance(pairs_, list) or not pairs_:
        return None, [("conversation", "must be a non-empty list of {human, assistant} pairs, "
                       f"got {kind(pairs_) if pairs_ != [] else 'an empty list'}")]
    messages = []
    for i, pair in enumerate(pairs_):
        if not isinstance(pair, dict):
            problems.append((f"conversation[{i}]", "must be an object with 'human' and "
                             f"'assistant', got {kind(pair)}"))
            continue
        human = need_text(pair, "human", problems, where=f"conversation[{i}].human")
        answer = need_text(pair, "assistant", problems, where=f"conversation[{i}].assistant")
        messages += [msg("user", human), msg("assistant", answer)]
    return _done({"messages": messages, **extras(record, ("conversation",))}, problems)


def write_firefly(row: dict) -> dict:
    system, turns = split_system(row["messages"])
    if system is not None:
        raise CannotHold("firefly has no place for a system message")
    return {"conversation": [{"human": q, "assistant": a} for q, a in pairs(turns)], **extras(row)}


def parse_firefly_csv(record: dict, present) -> tuple:
    problems: list = []
    human = need_text(record, "human", problems, present=present.get("human", 0))
    answer = need_text(record, "assistant", problems, present=present.get("assistant", 0))
    out = {"messages": [msg("user", human), msg("assistant", answer)],
           **extras(record, ("human", "assistant"))}
    return _done(out, problems)


def write_firefly_csv(row: dict) -> dict:
    system, turns = split_system(row["messages"])
    if system is not None:
        raise CannotHold("firefly_csv has no place for a system message")
    found = pairs(turns)
    if len(found) != 1:
        raise CannotHold("a firefly_csv row holds one question and one answer")
    rest = extras(row)
    return {"category": rest.pop("category", ""), "human": found[0][0], "assistant": found[0][1],
            **rest}


# ---------------------------------------------------------------- one question, one answer


def parse_multitask(record: dict, present) -> tuple:
    problems: list = []
    task, question, answer = (need_text(record, f, problems, present=present.get(f, 0))
                              for f in ("task", "input", "output"))
    # "<task>: <input>", the T5 convention, so that one model can tell the tasks apart
    out = {"messages": [msg("user", f"{task}: {question}"), msg("assistant", answer)],
           **extras(record, ("input", "output"))}
    return _done(out, problems)


def write_multitask(row: dict) -> dict:
    system, turns = split_system(row["messages"])
    found = pairs(turns)
    rest = extras(row)
    task = rest.pop("task", None)
    if system is not None or len(found) != 1 or not task:
        raise CannotHold("multitask holds one question and answer with a 'task' field")
    question, prefix = found[0][0], f"{task}: "
    return {"task": task, "input": question[len(prefix):] if question.startswith(prefix) else question,
            "output": found[0][1], **rest}


def parse_prompt_completion(record: dict, present) -> tuple:
    """TRL's prompt-completion type, standard (strings) or conversational (messages)."""
    problems: list = []
    prompt = _messages_or_text(record.get("prompt"), "prompt", problems, "user", CHAT_ROLES,
                               present.get("prompt", 0))
    answer = _messages_or_text(record.get("completion"), "completion", problems, "assistant",
                               CHAT_ROLES, present.get("completion", 0))
    if prompt is not None and answer is not None:
        check_chat(prompt + answer, "completion", problems)
    out = {"messages": (prompt or []) + (answer or []), **extras(record, ("prompt", "completion"))}
    return _done(out, problems)


def write_prompt_completion(row: dict) -> dict:
    messages = clean(row["messages"])
    system, turns = split_system(messages)
    if system is None and len(turns) == 2 and [m["role"] for m in turns] == ["user", "assistant"] \
            and "weight" not in turns[1]:
        return {"prompt": turns[0]["content"], "completion": turns[1]["content"], **extras(row)}
    if messages[-1]["role"] != "assistant":
        raise CannotHold("the conversation must end with an assistant turn")
    if any(m.get("weight") == 0 for m in messages):
        raise CannotHold("has no place for a turn that is not learned (weight 0)")
    return {"prompt": messages[:-1], "completion": messages[-1:], **extras(row)}


def parse_prompt_response(record: dict, present) -> tuple:
    """ChatGLM3's input-output files: ``{"prompt": ..., "response": ...}``."""
    problems: list = []
    prompt = need_text(record, "prompt", problems, present=present.get("prompt", 0))
    answer = need_text(record, "response", problems, present=present.get("response", 0))
    out = {"messages": [msg("user", prompt), msg("assistant", answer)],
           **extras(record, ("prompt", "response"))}
    return _done(out, problems)


def write_prompt_response(row: dict) -> dict:
    system, turns = split_system(row["messages"])
    found = pairs(turns)
    if system is not None or len(found) != 1:
        raise CannotHold("prompt_response holds one question and one answer")
    return {"prompt": found[0][0], "response": found[0][1], **extras(row)}


# ---------------------------------------------------------------- no answer to learn from


def parse_prompt_only(record: dict, present) -> tuple:
    """TRL's prompt-only type: prompts for online methods (GRPO, online DPO); nothing in it
    can be learned by SFT, so tokenize_sft refuses it."""
    problems: list = []
    prompt = _messages_or_text(record.get("prompt"), "prompt", problems, "user", CHAT_ROLES,
                               present.get("prompt", 0))
    return _done({"prompt": prompt, **extras(record, ("prompt",))}, problems)


def write_prompt_only(row: dict) -> dict:
    if row.get("prompt") is None:
        raise CannotHold("prompt_only holds a prompt and nothing else")
    prompt = clean(row["prompt"])
    simple = len(prompt) == 1 and prompt[0]["role"] == "user"
    return {"prompt": prompt[0]["content"] if simple else prompt, **extras(row)}


def parse_text(record: dict, present) -> tuple:
    problems: list = []
    text = need_text(record, "text", problems, present=present.get("text", 0))
    return _done({"text": text, **extras(record, ("text",))}, problems)


def write_text(row: dict) -> dict:
    return {"text": row["text"], **extras(row)}
