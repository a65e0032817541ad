"""A corpus of adversarial model answers for the grader (>= 200, built deterministically).

Each entry is ``(category, response, ground_truth)``. Responses put the payload after ``</think>``
(so the grader really parses it, method §4) -- boxed, bare, or inside ``$...$`` -- except the
``empty_binary`` entries, which attack the framing itself.
"""

from __future__ import annotations

import random

GOLDS = ["42", "\\frac{1}{2}", "x^2+1", "(1, 2)", "\\sqrt{2}", "-3", "\\{1,2,3\\}", "2\\pi"]


def _wrap(payload: str, how: int) -> str:
    body = f"The answer is \\boxed{{{payload}}}." if how == 0 else payload if how == 1 else f"${payload}$"
    return "reasoning</think>\n" + body


def _huge_powers() -> list[str]:
    out = []
    for depth in range(2, 8):
        out.append("2^{" * (depth - 1) + "2" + "}" * (depth - 1))
    for k in (10, 100, 1000, 10**6, 10**9):
        out += [f"10^{{10^{{{k}}}}}", f"9^{{9^{{9^{{{k}}}}}}}", f"{k}^{{{k}}}^{{{k}}}"]
    out += ["2^{2^{2^{2^{2^{30}}}}}", "(10^{100})^{10^{100}}", "e^{e^{e^{e^{100}}}}", "7\\uparrow\\uparrow 7",
            "2**2**2**2**2**2", "10^(10^(10^10))", "(-1)^{10^{100}}", "0^{0^{0}}", "1^{\\infty}",
            "x^{10^{9}} - 1", "(x+1)^{100000}", "(1+\\frac{1}{10^{9}})^{10^{9}}"]
    return out


def _factorials() -> list[str]:
    out = [f"{n}!" for n in (1000, 10**5, 10**6, 10**7, 10**9, 10**18)]
    out += ["(10^6)!", "((5!)!)!", "(((3!)!)!)!", "100!!", "\\Gamma(10^{9})", "\\binom{10^{9}}{5 \\cdot 10^{8}}",
            "10^{6}! / (5 \\cdot 10^{5})!", "\\prod_{k=1}^{10^{9}} k", "(2^{64})!", "0!!!!!!!!!!!!!!!!!!!!!",
            "n! \\text{ for } n = 10^{12}", "\\frac{(10^{6})!}{(10^{6}-1)!}", "1000000!-1000000!"]
    return out


def _nesting() -> list[str]:
    out = []
    for d in (50, 200, 1000, 3000):
        out += ["(" * d + "1" + ")" * d, "\\frac{" * d + "1" + "}{2}" * d, "\\sqrt{" * d + "2" + "}" * d,
                "{" * d + "x" + "}" * d]
    out += ["-" * 5000 + "1", "+" * 5000 + "1", "\\left(" * 300 + "1" + "\\right)" * 300,
            "[" * 500 + "]" * 500, "\\{" * 400 + "\\}" * 400, "1/" * 3000 + "1", "x^{" * 500 + "2" + "}" * 500,
            "\\log(" * 400 + "2" + ")" * 400]
    return out


def _long_strings(rng: random.Random) -> list[str]:
    kb100 = 100 * 1024
    digits = "".join(rng.choice("0123456789") for _ in range(kb100))
    return [digits, "1+" * (kb100 // 2) + "1", "x" * kb100, "\\alpha" * (kb100 // 6), "a=b, " * (kb100 // 5),
            "\\boxed{" * (kb100 // 7), "\\frac{1}{2}" * (kb100 // 11), "1," * (kb100 // 2),
            "\\begin{pmatrix}" + "1 & " * (kb100 // 4) + "1\\end{pmatrix}", "0." + "9" * kb100,
            "(" + ",".join(str(i) for i in range(20000)) + ")", "\\{" + ",".join(f"x_{i}" for i in range(12000)) + "\\}",
            " " * kb100 + "42", "42" + "\n" * kb100, "$" * kb100]


def _unbalanced() -> list[str]:
    return ["\\boxed{", "\\frac{1}{", "}}}}{{", "\\left( 1", "1 \\right)", "$$$", "\\sqrt[", "\\frac", "{{{{{{{{42",
            "42}}}}}}}}", "\\begin{matrix} 1 & 2", "\\end{array}", "(((1)", "[1, 2", "\\boxed{\\boxed{\\boxed{",
            "\\frac{}{}", "^^^^", "____", "\\", "\\\\\\\\\\", "{\\}", "\\left. \\right|", "x^{", "a_{b_{c_{",
            "\\text{", "\\mathrm{unclosed"]


def _lookalikes() -> list[str]:
    return ["\uff14\uff12", "\u0664\u0662", "\u09ea\u09e8", "\u2212 3", "4\u200d2", "\u202e24", "\u00bd",
            "x\u00b2+1", "\u221a2", "2\u03c0", "\u0445^2+1", "\u24f5\u24f6", "\U0001d7d2\U0001d7d0", "\u2074\u00b2",
            "\u2153", "\ufe642\ufe65", "1\u20442", "\u2170\u2171", "4\ufe0f\u20e32\ufe0f\u20e3", "\u00a0 42 \u00a0",
            "\u2009-\u20093", "42\u0301", "\u0391\u0392", "\u2205", "\u221e", "\u2211", "\u212e", "\ud7ff\ue000",
            "\u03c0\u00b2"]


def _macros() -> list[str]:
    return ["\\def\\x{\\x}\\x", "\\newcommand{\\a}{\\a\\a}\\a", "\\renewcommand{\\frac}{\\frac}\\frac{1}{2}",
            "\\sum_{i=1}^{10^{10}} i", "\\sum_{i=1}^{\\infty} \\frac{1}{i^2}", "\\int_0^\\infty e^{-x^2} dx",
            "\\lim_{n\\to\\infty} (1+1/n)^n", "\\mathbb{R}", "\\infty - \\infty", "\\frac{0}{0}",
            "\\det\\begin{pmatrix}" + "\\\\".join("&".join(str((i * 7 + j) % 11) for j in range(30))
                                                  for i in range(30)) + "\\end{pmatrix}",
            "\\operatorname{lcm}(" + ",".join(str(i) for i in range(2, 400)) + ")",
            "\\gcd(10^{100}+1, 10^{99}+7)", "\\sin(10^{100})", "\\tan(\\pi/2)", "\\log(0)", "\\sqrt{-1}",
            "\\text{" + "the answer " * 500 + "}", "\\color{red}{42}", "\\href{http://x}{42}",
            "\\input{/etc/passwd}", "\\include{x}", "\\begin{verbatim}42\\end{verbatim}", "\\catcode`\\{=12",
            "\\mathbf{\\mathit{\\mathrm{42}}}", "\\overbrace{1+\\cdots+1}^{10^{9}}", "[0, \\infty)",
            "(-\\infty, \\infty) \\cup \\emptyset", "\\{x : x > 0\\}", "x = y = z = 42 = 43",
            "\\prod_{p \\text{ prime}} (1-p^{-s})^{-1}", "\\zeta(3)", "\\aleph_0^{\\aleph_0}"]


def _empty_binary(rng: random.Random) -> list[str]:
    """Whole responses (not wrapped): empty, framing attacks, control and binary bytes."""
    rand_bytes = bytes(rng.randrange(256) for _ in range(4096)).decode("latin-1")
    return ["", " ", "</think>", "</think></think></think>", "</think>" * 10000, "<think>" * 1000, "\x00" * 1000,
            "</think>\x00\\boxed{42}", "</think>\\boxed{\x00}", rand_bytes, "</think>" + rand_bytes,
            "</think>\ud800\udfff", "</think>\x1b[31m42\x1b[0m", "</think>\r\r\r42", "</think>\x7f\x08\x08",
            "\\boxed{42}", "</think>\\boxed{}", "</think>$$", "</think>\\boxed{ }", "</think>\t\n\v\f"]


def _symbolic() -> list[str]:
    return ["x^{1000000} - 1 = 0", "(x+y+z)^{500}", "\\frac{x^{1000}-1}{x-1}", "\\sin^2 x + \\cos^2 x",
            "e^{i\\pi} + 1", "\\sqrt{2}^{\\sqrt{2}^{\\sqrt{2}}}", "\\frac{1}{3} = 0.333\\ldots",
            "x \\in (-\\infty, 0) \\cup (0, \\infty)", ",".join(f"x_{{{i}}}^{{{i}}}" for i in range(300)),
            "\\begin{cases} 1 & x>0 \\\\ 0 & x\\le 0 \\end{cases}", "\\sum_{k=0}^{n} \\binom{n}{k} x^k",
            "(1, 2)", "\\frac{1}{2}", "42", "\\sqrt{2}", "x^2 + 1", "0.5", "42.0000000000000000000001",
            "1e100000", "1e-100000", "NaN", "inf", "-0", "0x2A", "4.2e1", "101010_2", "\\frac{84}{2}"]


def corpus() -> list[tuple[str, str, str]]:
    """The full corpus: ``(category, response, ground_truth)``; deterministic, >= 200 entries."""
    rng = random.Random(20260427)
    cats = {"huge_power": _huge_powers(), "factorial": _factorials(), "nesting": _nesting(),
            "long_100kb": _long_strings(rng), "unbalanced": _unbalanced(), "lookalike": _lookalikes(),
            "latex_macro": _macros(), "symbolic": _symbolic()}
    out = []
    for cat, payloads in cats.items():
        for i, p in enumerate(payloads):
            out.append((cat, _wrap(p, i % 3), GOLDS[i % len(GOLDS)]))
    for i, r in enumerate(_empty_binary(rng)):
        out.append(("empty_binary", r, GOLDS[i % len(GOLDS)]))
    return out
