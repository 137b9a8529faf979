"""Chat templates: the model's own, or a named one for a base model without one (lesson 02).

An instruction-tuned model ships its chat template (``tokenizer.chat_template``, Jinja);
training must render conversations with exactly the template used at inference, or the
model learns one format and is asked in another (LLaMA-Factory's "endless repetition"
issues). A base model has none: pick one here by name (``template=`` in the run config)
and :func:`use_template` installs it on the tokenizer so chat uses it too.
"""

from __future__ import annotations

from .report import DataError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

ALPACA = (
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}"
    "{% else %}{{ 'Below is an instruction that describes a task. '"
    " + 'Write a response that appropriately completes the request.\\n\\n' }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)

VICUNA = (
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + ' ' }}"
    "{% else %}{{ 'A chat between a curious user and an artificial intelligence assistant. '"
    " + 'The assistant gives helpful, detailed, and polite answers to the user\\'s questions. ' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content']"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# Gemma's own template (Gemma 2 and 3 instruct): the assistant is "model", no system role. Gemma's
# raises on a system message; this one puts it before the first user turn, as LLaMA-Factory's
# gemma template does, so a conversation with a system message can be trained on.
GEMMA = (
    "{{ bos_token }}{% set system = '' %}"
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] | trim + '\n\n' %}"
    "{% set messages = messages[1:] %}{% endif %}"
    "{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (system if loop.first else '') + message['content'] | trim"
    " + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

TEMPLATES = {"chatml": CHATML, "alpaca": ALPACA, "vicuna": VICUNA, "llama3": LLAMA3, "gemma": GEMMA}
# Names the seeds' configs use (Firefly's template_name, LLaMA-Factory's template).
TEMPLATE_ALIASES = {"qwen": "chatml", "qwen2": "chatml", "smollm": "chatml", "yi": "chatml",
                    "llama-3": "llama3", "llama_3": "llama3", "gemma2": "gemma", "gemma3": "gemma"}
OWN = {None, "", "default", "auto", "own", "model"}


def get_template(name: str | None) -> str | None:
    """The Jinja text of a named template; None means "the tokenizer's own"."""
    if name in OWN:
        return None
    key = TEMPLATE_ALIASES.get(name.lower(), name.lower())
    if key not in TEMPLATES:
        raise DataError(f"unknown chat template '{name}'; choose one of: "
                        + ", ".join(TEMPLATES) + " (or leave it unset for the model's own)")
    return TEMPLATES[key]


def resolve_template(tokenizer, name: str | None = None) -> str:
    """The template to render with: the named one, else the tokenizer's own."""
    template = get_template(name)
    if template is None:
        template = getattr(tokenizer, "chat_template", None)
        if not template:
            raise DataError("this tokenizer has no chat template (a base model?): pass "
                            f"template= one of {', '.join(TEMPLATES)} so that training and chat "
                            "render conversations the same way")
    return template


def use_template(tokenizer, name: str | None):
    """Install a named template on the tokenizer (chat then renders the same way); returns it."""
    template = get_template(name)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def render(messages: list[dict], tokenizer, template: str | None = None,
           add_generation_prompt: bool = False) -> str:
    """A conversation as the text the model reads."""
    return tokenizer.apply_chat_template(
        messages, chat_template=resolve_template(tokenizer, template), tokenize=False,
        add_generation_prompt=add_generation_prompt)
