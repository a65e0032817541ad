"""Chat templates and the system prompt, kept as data (method §3.2, §3.3, §1.1).

``CHAT_TEMPLATES`` maps a name to a Jinja source usable as a tokenizer's ``chat_template``:

* ``"luffy_think"`` -- the paper model's rendered form (method §3.2)::

      {system}\\nUser: This is the problem:\\n{question}\\nAssistant: <think>\\n

  When the messages carry no system message, :data:`LUFFY_SYSTEM_PROMPT` is inserted (the
  reference evaluation passes only the user turn, method §3.2 [inferred]).
* ``"tiny_think"`` -- the tiny task's form, ``User: {question}\\nAssistant: <think>\\n``; a
  system message is rendered (``{system}\\n`` first) only if the messages contain one.

Both end the generation prompt with ``"<think>\\n"``, which :func:`strip_think_prefix` relies
on. Earlier assistant turns (multi-turn chats; not used by LUFFY) render as
``Assistant: {content}`` followed by the tokenizer's eos token and a newline.
"""

from __future__ import annotations

from typing import Any

THINK_PREFIX = "<think>\n"

# Exact bytes of prompt[0].content in the reference parquets (method §3.3, paper App. C.2).
LUFFY_SYSTEM_PROMPT = (
    "Your task is to follow a systematic, thorough reasoning process before providing the final solution. "
    "This involves analyzing, summarizing, exploring, reassessing, and refining your thought process through "
    "multiple iterations. Structure your response into two sections: Thought and Solution. In the Thought "
    'section, present your reasoning using the format: "<think>\n {thoughts} </think>\n". Each thought should '
    'include detailed analysis, brainstorming, verification, and refinement of ideas. After "</think>\n," in '
    "the Solution section, provide the final, logical, and accurate answer, clearly derived from the "
    "exploration in the Thought section. If applicable, include the answer in \\boxed{} for closed-form "
    "results like multiple choices or mathematical solutions."
)


# Turns shared by both templates. Every tag trims the whitespace around it, so the layout
# below is for reading only; ``user_prefix`` is set by each template.
_TURNS = """
{%- for message in messages -%}
    {%- if message['role'] == 'system' -%}
        {%- if not loop.first -%}{{- raise_exception('a system message must come first') -}}{%- endif -%}
        {{- message['content'] + '\\n' -}}
    {%- elif message['role'] == 'user' -%}
        {{- 'User: ' + user_prefix + message['content'] + '\\n' -}}
    {%- elif message['role'] == 'assistant' -%}
        {{- 'Assistant: ' + message['content'] + eos_token + '\\n' -}}
    {%- else -%}
        {{- raise_exception('unknown chat role: ' + message['role']) -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- 'Assistant: <think>\\n' -}}
{%- endif -%}
"""


def _jinja_str(s: str) -> str:
    """A Jinja string literal for ``s`` (single-quoted, escaped)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


LUFFY_THINK_TEMPLATE = (
    "{%- set user_prefix = 'This is the problem:\\n' -%}\n"
    "{%- if messages[0]['role'] != 'system' -%}\n"
    "    {{- " + _jinja_str(LUFFY_SYSTEM_PROMPT) + " + '\\n' -}}\n"
    "{%- endif -%}" + _TURNS
)
TINY_THINK_TEMPLATE = "{%- set user_prefix = '' -%}" + _TURNS

CHAT_TEMPLATES: dict[str, str] = {"luffy_think": LUFFY_THINK_TEMPLATE, "tiny_think": TINY_THINK_TEMPLATE}


def get_chat_template(name: str) -> str:
    """The Jinja source registered under ``name``."""
    if name not in CHAT_TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}; known: {sorted(CHAT_TEMPLATES)}")
    return CHAT_TEMPLATES[name]


def render_prompt(tokenizer: Any, messages: list[dict[str, str]], template: str | None = None) -> str:
    """The generation prompt for ``messages`` as text (``add_generation_prompt=True``).

    ``template`` is a registry name overriding the tokenizer's own ``chat_template``.
    """
    chat_template = get_chat_template(template) if template is not None else None
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat_template; "
            f"pass template= one of {sorted(CHAT_TEMPLATES)}"
        )
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, add_generation_prompt=True, tokenize=False
    )


def strip_think_prefix(prompt_text: str, trace: str) -> str:
    """Drop a leading ``"<think>\\n"`` from ``trace`` when the prompt already ends with it.

    Reference behaviour (method §1.1, ``rl_dataset_with_target.py``): the 8 characters are removed
    only when *both* hold, so prompt + trace never repeats the tag.
    """
    if prompt_text.endswith(THINK_PREFIX) and trace.startswith(THINK_PREFIX):
        return trace[len(THINK_PREFIX) :]
    return trace
