"""Readers and writers of preference data: pairs, unpaired (KTO) ratings (lessons 02, 08).

Sources: TRL's "Dataset formats and types" (preference with an explicit or implicit prompt,
unpaired preference with a boolean ``label``, stepwise supervision; each standard or
conversational, and TRL's ``extract_prompt`` for the implicit prompt), OpenAI's preference
fine-tuning rows (``input.messages`` / ``preferred_output`` / ``non_preferred_output``),
and seed 004's ``score`` / ``reject_reason``.

Canonical shapes: a pair is ``{"prompt": [msgs], "chosen": [msgs], "rejected": [msgs]}``
(plus ``score``, ``reject_reason``); an unpaired rating is ``{"prompt": [msgs],
"completion": [msgs], "label": bool}``, where ``label: false`` marks an answer *not* to
imitate; it is kept so that a KTO stage can use it and SFT can refuse it.
"""

from __future__ import annotations

from .chat import CHAT_ROLES, OPENAI_ROLES, openai_turn
from .turns import (
    CannotHold,
    clean,
    content_text,
    extras,
    kind,
    missing,
    msg,
    multimodal_fields,
    need_text,
    read_turns,
    tools_field,
    tools_out,
)

WHY = {"rejected": "a preference pair needs a rejected answer to compare with 'chosen'",
       "chosen": "a preference pair needs the chosen (better) answer"}
ANSWER_ROLES = {"assistant": "assistant"}


def _side(record: dict, side: str, problems: list, present, roles: dict):
    """A side of a pair as TRL writes it: a string (standard) or messages (conversational)."""
    if side not in record:
        problems.append((side, missing(side, present.get(side, 0), WHY.get(side, ""))))
        return None
    value = record[side]
    if isinstance(value, list):
        return read_turns(value, side, problems, roles)
    if not isinstance(value, str):
        problems.append((side, f"must be a string or a list of messages, got {kind(value)}"))
        return None
    return content_text(value, side, problems)


def _implicit_prompt(chosen, rejected, problems: list):
    """TRL's ``extract_prompt``: the longest shared beginning is the prompt (messages for
    conversational data, characters for standard data, a space left to the answers)."""
    if isinstance(chosen, list) != isinstance(rejected, list):
        problems.append(("rejected", "chosen and rejected must both be strings or both be messages"))
        return None, None, None
    idx = 0
    while idx < min(len(chosen), len(rejected)) and chosen[idx] == rejected[idx]:
        idx += 1
    if isinstance(chosen, str) and 0 < idx < min(len(chosen), len(rejected)) and chosen[idx - 1] == " ":
        idx -= 1
    if idx == 0:
        problems.append(("prompt", "no 'prompt' and chosen/rejected share no beginning to take "
                         "as the prompt (TRL's implicit prompt); add a 'prompt' field"))
        return None, None, None
    if isinstance(chosen, str):
        return [msg("user", chosen[:idx])], [msg("assistant", chosen[idx:])], \
            [msg("assistant", rejected[idx:])]
    prompt, chosen, rejected = chosen[:idx], chosen[idx:], rejected[idx:]
    for side, turns in (("chosen", chosen), ("rejected", rejected)):
        if not turns or turns[0]["role"] != "assistant":
            problems.append((side, "after the shared conversation (the implicit prompt) the "
                             "answer must start with an assistant turn"))
    return prompt, chosen, rejected


def _score(record: dict, problems: list):
    score = record.get("score")
    if score is None:
        return None
    if not (isinstance(score, dict) and score and set(score) <= {"chosen", "rejected"}
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in score.values())):
        problems.append(("score", 'must look like {"chosen": 5, "rejected": 1} (numbers), '
                                  f"got {kind(score)}"))
        return None
    return {k: float(v) for k, v in score.items()}


def parse_preference(record: dict, present) -> tuple:
    problems: list = []
    multimodal_fields(record, problems)
    explicit = "prompt" in record
    roles = ANSWER_ROLES if explicit else CHAT_ROLES
    chosen = _side(record, "chosen", problems, present, roles)
    rejected = _side(record, "rejected", problems, present, roles)
    if explicit:
        value = record["prompt"]
        prompt = (read_turns(value, "prompt", problems, CHAT_ROLES) if isinstance(value, list)
                  else content_text(value, "prompt", problems))
        if isinstance(prompt, str):
            prompt = [msg("user", prompt)]
        chosen, rejected = ([msg("assistant", s)] if isinstance(s, str) else s for s in (chosen, rejected))
    elif not problems:
        prompt, chosen, rejected = _implicit_prompt(chosen, rejected, problems)
    if not problems and chosen == rejected:
        problems.append(("rejected", "is the same as 'chosen', so the pair teaches nothing"))
    score = _score(record, problems)
    need_text(record, "reject_reason", problems, required=False)
    if problems:
        return None, problems
    out = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if score is not None:
        out["score"] = score
    return {**out, **extras(record, ("prompt", "chosen", "rejected", "score"))}, problems


def write_preference(row: dict) -> dict:
    prompt, chosen, rejected = (clean(row[k]) for k in ("prompt", "chosen", "rejected"))
    simple = (len(prompt) == 1 and prompt[0]["role"] == "user" and len(chosen) == 1
              and len(rejected) == 1)
    out = ({"prompt": prompt[0]["content"], "chosen": chosen[0]["content"],
            "rejected": rejected[0]["content"]} if simple else
           {"prompt": prompt, "chosen": chosen, "rejected": rejected})
    for key in ("score", "reject_reason"):
        if row.get(key) is not None:
            out[key] = row[key]
    return {**out, **tools_out(row), **extras(row)}


# ---------------------------------------------------------------- OpenAI preference rows


def parse_openai_preference(record: dict, present) -> tuple:
    problems: list = []
    multimodal_fields(record, problems)
    source = record.get("input")
    prompt, tools = None, None
    if not isinstance(source, dict) or "messages" not in source:
        problems.append(("input", 'must be an object with "messages" (the conversation so far), '
                         f"got {kind(source)}"))
    else:
        prompt = read_turns(source["messages"], "input.messages", problems, OPENAI_ROLES)
        tools = tools_field(source, "tools", problems)
    sides = []
    for side in ("preferred_output", "non_preferred_output"):
        if side not in record:
            problems.append((side, missing(side, present.get(side, 0), "OpenAI preference rows "
                             "need preferred_output and non_preferred_output")))
            sides.append(None)
            continue
        turns = read_turns(record[side], side, problems, {"assistant": "assistant", "tool": "tool"},
                           special=openai_turn)
        if turns is not None and not any(m["role"] == "assistant" for m in turns):
            problems.append((side, "needs an assistant message"))
        sides.append(turns)
    if not problems and sides[0] == sides[1]:
        problems.append(("non_preferred_output", "is the same as preferred_output, so the pair "
                         "teaches nothing"))
    if problems:
        return None, problems
    out = {"prompt": prompt, "chosen": sides[0], "rejected": sides[1],
           **extras(record, ("input", "preferred_output", "non_preferred_output"))}
    if tools:
        out["tools"] = tools
    return out, problems


def write_openai_preference(row: dict) -> dict:
    source = {"messages": clean(row["prompt"]), **tools_out(row)}
    return {"input": source, "preferred_output": clean(row["chosen"]),
            "non_preferred_output": clean(row["rejected"]), **extras(row)}


# ---------------------------------------------------------------- unpaired (KTO)


def parse_unpaired(record: dict, present) -> tuple:
    """TRL's unpaired preference (prompt, completion, label), or a conversation with a
    label (LLaMA-Factory's ``kto_en_demo``: the last message is the rated answer)."""
    problems: list = []
    multimodal_fields(record, problems)
    label = record.get("label")
    if not isinstance(label, bool):
        problems.append(("label", "the KTO label must be true (a desirable answer) or false "
                         f"(an undesirable one), got {kind(label)}"))
    if "messages" in record and "prompt" not in record:
        turns = read_turns(record["messages"], "messages", problems, OPENAI_ROLES)
        if turns is not None and turns[-1]["role"] != "assistant":
            problems.append(("messages", "the last message must be the assistant answer being rated"))
        prompt, completion = (turns[:-1], turns[-1:]) if turns else (None, None)
        used = ("messages", "label")
    else:
        values = []
        for side, role in (("prompt", "user"), ("completion", "assistant")):
            value = record.get(side)
            if side not in record:
                problems.append((side, missing(side, present.get(side, 0))))
                values.append(None)
            elif isinstance(value, list):
                values.append(read_turns(value, side, problems, CHAT_ROLES))
            else:
                text = content_text(value, side, problems)
                values.append(None if text is None else [msg(role, text)])
        prompt, completion = values
        used = ("prompt", "completion", "label")
    if problems:
        return None, problems
    return {"prompt": prompt, "completion": completion, "label": label, **extras(record, used)}, problems


def write_unpaired(row: dict) -> dict:
    prompt, completion = clean(row["prompt"]), clean(row["completion"])
    simple = len(prompt) == 1 and prompt[0]["role"] == "user" and len(completion) == 1
    out = ({"prompt": prompt[0]["content"], "completion": completion[0]["content"]} if simple
           else {"prompt": prompt, "completion": completion})
    return {**out, "label": bool(row["label"]), **extras(row)}


def write_refused(_row: dict) -> dict:
    raise CannotHold("ftkit reads this format only to refuse it")


STEPWISE_REFUSAL = (
    "this is TRL's stepwise supervision (prompt, completions, labels: one label per reasoning "
    "step); it trains a process reward model (TRL's PRMTrainer), which ftkit does not train. "
    "For SFT keep only correct solutions as prompt/completion; for DPO pair a correct and a "
    "wrong solution as prompt/chosen/rejected")
