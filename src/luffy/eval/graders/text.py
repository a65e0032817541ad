"""Text helpers shared by the graders: ``\\boxed{}`` extraction, ``$`` removal, scientific notation."""

from __future__ import annotations

import re

SCI = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
BOX_START = re.compile(r"\\(?:boxed|fbox)\b")
#: ``\text{...}``-style wrappers whose content is kept (one level, no nested braces).
WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\{([^{}]*)\}")


def sci_to_latex(text: str) -> str:
    """Rewrite ``4.5e33`` / ``1e-5`` as ``4.5\\times10^{33}`` / ``1\\times10^{-5}`` (a deviation, see
    :mod:`luffy.eval.graders`)."""
    return SCI.sub(lambda m: f"{m.group(1)}\\times10^{{{m.group(2)}}}", text)


def strip_dollars(text: str) -> str:
    """Remove every ``$`` that is not an escaped ``\\$`` (dollar amounts keep their ``\\$``)."""
    return re.sub(r"(?<!\\)\$", "", text)


def skip_spaces(text: str, i: int) -> int:
    """The first index at or after ``i`` that is not a space."""
    while i < len(text) and text[i] == " ":
        i += 1
    return i


def brace_end(text: str, i: int) -> int:
    """Index of the ``}`` matching the ``{`` at ``text[i]`` (escaped braces ignored); -1 if none."""
    if i >= len(text) or text[i] != "{":
        return -1
    depth = 0
    for j in range(i, len(text)):
        if text[j] in "{}" and text[j - 1] != "\\":
            depth += 1 if text[j] == "{" else -1
            if depth == 0:
                return j
    return -1


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (brace-matched), also ``\\boxed 5``.

    Returns None if there is none or the last one is unbalanced (e.g. a truncated response).
    """
    starts = list(BOX_START.finditer(text))
    if not starts:
        return None
    i = skip_spaces(text, starts[-1].end())
    if i < len(text) and text[i] == "{":
        end = brace_end(text, i)
        return text[i + 1 : end] if end >= 0 else None
    if i == starts[-1].end():  # "\\boxedX" is not a box
        return None
    m = re.match(r"[^\s$]+", text[i:])  # "\\boxed 5" form
    return m.group(0) if m else None
