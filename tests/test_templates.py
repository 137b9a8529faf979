"""Named chat templates render as their models' own.

Gemma: the reference is the ``chat_template`` of google/gemma-2-2b-it's tokenizer_config.json
(the same for Gemma 3 instruct text turns), copied below. It has no system role and raises on one;
ftkit's ``gemma`` puts a system message before the first user turn instead, as LLaMA-Factory's
``gemma`` template (src/llamafactory/data/template.py) does.
"""

import pytest

from ftkit import data
from ftkit.data.templates import get_template

GEMMA_2_IT = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
CHAT = [{"role": "user", "content": "Who are you? "}, {"role": "assistant", "content": "I am Ferret."},
        {"role": "user", "content": "你是谁？"}, {"role": "assistant", "content": "我是 Ferret。"}]


@pytest.fixture(scope="module")
def tokenizer():
    from ftkit import models

    return models.load_tokenizer()


@pytest.mark.parametrize("generation", [False, True])
def test_gemma_renders_as_gemmas_own_template(tokenizer, generation):
    messages = CHAT[:3] if generation else CHAT
    ours = data.render(messages, tokenizer, "gemma", add_generation_prompt=generation)
    theirs = tokenizer.apply_chat_template(messages, chat_template=GEMMA_2_IT, tokenize=False,
                                           add_generation_prompt=generation)
    assert ours == theirs
    assert get_template("gemma2") == get_template("gemma3") == get_template("gemma")


def test_gemma_puts_a_system_message_before_the_first_user_turn(tokenizer):
    system = [{"role": "system", "content": "You are Ferret."}]
    text = data.render(system + CHAT[:2], tokenizer, "gemma")
    assert text == (f"{tokenizer.bos_token}<start_of_turn>user\nYou are Ferret.\n\nWho are you?<end_of_turn>\n"
                    "<start_of_turn>model\nI am Ferret.<end_of_turn>\n")
    with pytest.raises(Exception, match="System role not supported"):  # Gemma's own refuses
        tokenizer.apply_chat_template(system + CHAT[:2], chat_template=GEMMA_2_IT, tokenize=False)


def test_gemma_learns_the_answers_and_their_end_of_turn(tokenizer):
    example = data.tokenize_messages(CHAT, tokenizer, "gemma", 256)
    learned = tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != -100])
    assert learned.startswith("I am Ferret.<end_of_turn>") and learned.count("<end_of_turn>") == 2
    assert "Who are you" not in learned and "你是谁" not in learned
