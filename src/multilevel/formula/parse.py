"""Parse lme4/brms mixed-model formulas into a :class:`ParsedFormula`.

The parser works on the formula text only; it never touches data. Random-effect
bars ``( expr | g )`` are parsed here; everything else on the right-hand side is
left to formulaic, which builds the fixed-effect design later.

Supported: ``(1 + x | g)``, ``(0 + x | g)``, uncorrelated ``(x || g)``, nested
``(1 | a/b)`` (expanded as lme4 does to ``(1 | b:a) + (1 | a)``), interaction
groupings ``(1 | a:b)``, ``offset(expr)``, ``cbind(s, f) ~ ...`` and brms's
``y | se(s) ~ ...`` for known measurement error.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import FormulaError
from .terms import ParsedFormula, RandomTerm

_NAME = re.compile(r"^(?:[A-Za-z_.][A-Za-z0-9_.]*|`[^`]+`)$")


@dataclass(frozen=True)
class _Piece:
    sign: str  # "+" or "-"
    text: str
    start: int  # offset of text (stripped) in the full formula

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def _depth_scan(text: str, formula: str, offset: int) -> list[int]:
    """Bracket depth before each character; raises on unbalanced brackets."""
    depth = 0
    depths = []
    opened: list[int] = []
    for i, ch in enumerate(text):
        if ch in "([":
            depths.append(depth)
            depth += 1
            opened.append(i)
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                raise FormulaError(
                    "unbalanced ')' in formula: remove it or add the matching '('",
                    formula,
                    (offset + i, offset + i + 1),
                )
            opened.pop()
            depths.append(depth)
        else:
            depths.append(depth)
    if depth != 0:
        i = opened[-1]
        raise FormulaError(
            "unclosed '(' in formula: add the matching ')'", formula, (offset + i, offset + i + 1)
        )
    return depths


def _split_additive(text: str, formula: str, offset: int) -> list[_Piece]:
    """Split at top-level ``+`` and ``-`` into signed pieces with their positions."""
    depths = _depth_scan(text, formula, offset)
    pieces: list[_Piece] = []
    sign = "+"
    start = 0

    def flush(end: int) -> None:
        raw = text[start:end]
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            pieces.append(_Piece(sign, stripped, offset + start + lead))
        elif sign == "-" or pieces:
            raise FormulaError(
                "empty term in formula (two operators in a row?)",
                formula,
                (offset + max(start - 1, 0), offset + end),
            )

    for i, ch in enumerate(text):
        if depths[i] == 0 and ch in "+-":
            if text[start:i].strip() or pieces:
                flush(i)
            elif ch == "+":
                raise FormulaError("formula part starts with '+'", formula, (offset + i, offset + i + 1))
            sign = ch
            start = i + 1
    flush(len(text))
    return pieces


def _find_top(text: str, token: str) -> int:
    """Index of the first top-level occurrence of ``token`` or -1."""
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and text.startswith(token, i):
            if token == "|" and text.startswith("||", i):
                return -1
            return i
        i += 1
    return -1


def _strip_outer_parens(text: str) -> tuple[str, int]:
    """Remove parentheses enclosing the whole text; return it and the offset shift."""
    shift = 0
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text, shift
        inner = text[1:-1]
        lead = len(inner) - len(inner.lstrip())
        text = inner.strip()
        shift += 1 + lead
    return text, shift


def _call_args(text: str, fname: str) -> str | None:
    """Inside of ``fname(...)`` if ``text`` is exactly one such call."""
    if not (text.startswith(fname + "(") and text.endswith(")")):
        return None
    inner = text[len(fname) + 1 : -1]
    if _find_top(inner, ")") >= 0:
        return None
    depth = 0
    for ch in inner:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return None
    return inner


def _group_factors(group: str, formula: str, start: int) -> list[tuple[str, ...]]:
    """Expand a grouping expression into lists of factor names, lme4 style."""
    group, shift = _strip_outer_parens(group)
    start += shift
    comps = [c for c in _split_on(group, "/")]
    pos = start
    parsed: list[tuple[str, ...]] = []
    for comp in comps:
        names = tuple(n.strip() for n in comp.split(":"))
        for n in names:
            if not _NAME.match(n):
                raise FormulaError(
                    f"grouping factor {comp.strip()!r} is not a variable name or an "
                    "interaction a:b of names; create the grouping column first",
                    formula,
                    (pos, pos + len(comp)),
                )
        parsed.append(tuple(n.strip("`") for n in names))
        pos += len(comp) + 1
    # a/b/c -> c:b:a, b:a, a  (innermost first, as lme4's expandSlash)
    out = []
    for j in range(len(parsed) - 1, -1, -1):
        factors: tuple[str, ...] = ()
        for k in range(j, -1, -1):
            factors += parsed[k]
        out.append(factors)
    return out


def _split_on(text: str, sep: str) -> list[str]:
    depth = 0
    out: list[str] = []
    cur: list[str] = []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _uncorrelated_exprs(expr: str, formula: str, span: tuple[int, int]) -> list[str]:
    """Split ``(1 + x + z || g)`` into ``1``, ``0 + x``, ``0 + z``."""
    from formulaic import Formula

    try:
        terms = [str(t) for t in Formula(expr)]
    except Exception as exc:  # formulaic raises several types
        raise FormulaError(f"cannot parse random-effects expression {expr!r}: {exc}", formula, span) from exc
    out = []
    for t in terms:
        out.append("1" if t == "1" else f"0 + {t}")
    return out


def _parse_bar(piece: _Piece, formula: str) -> list[RandomTerm]:
    inner, shift = _strip_outer_parens(piece.text)
    span = (piece.start, piece.end)
    pos = piece.start + shift
    double = _find_top(inner, "||")
    single = _find_top(inner, "|")
    if double >= 0 and (single < 0 or double < single):
        cut, width, correlated = double, 2, False
    elif single >= 0:
        cut, width, correlated = single, 1, True
    else:  # pragma: no cover - callers check for a bar first
        raise FormulaError("expected a '|' in the random-effects term", formula, span)
    expr = inner[:cut].strip()
    group = inner[cut + width :].strip()
    if not expr:
        raise FormulaError(
            "random-effects term has nothing before '|': write (1 | g) for a random intercept",
            formula,
            span,
        )
    if not group:
        raise FormulaError(
            "random-effects term has no grouping factor after '|': write (1 | g)", formula, span
        )
    if _find_top(group, "|") >= 0 or _find_top(group, "||") >= 0:
        raise FormulaError("more than one '|' in a random-effects term", formula, span)
    group_start = pos + cut + width + (len(inner[cut + width :]) - len(inner[cut + width :].lstrip()))
    factor_sets = _group_factors(group, formula, group_start)
    exprs = _uncorrelated_exprs(expr, formula, span) if not correlated else [expr]
    terms = []
    for factors in factor_sets:
        for e in exprs:
            terms.append(RandomTerm(expr=e, factors=factors, span=span))
    return terms


def _parse_lhs(lhs: str, formula: str) -> tuple[str | None, tuple[str, str] | None, str | None]:
    bar = _find_top(lhs, "|")
    se = None
    if bar >= 0:
        aterm = lhs[bar + 1 :].strip()
        lhs_resp = lhs[:bar].strip()
        inner = _call_args(aterm, "se")
        if inner is None:
            start = formula.index(aterm)
            raise FormulaError(
                f"unsupported response addition {aterm!r}: only se(<sd column>) is supported "
                "(brms syntax for known measurement error)",
                formula,
                (start, start + len(aterm)),
            )
        args = _split_on(inner, ",")
        se = args[0].strip()
        for extra in args[1:]:
            if extra.replace(" ", "") not in ("sigma=FALSE", "sigma=False"):
                start = formula.index(aterm)
                raise FormulaError(
                    f"unsupported se() argument {extra.strip()!r}", formula, (start, start + len(aterm))
                )
        lhs = lhs_resp
    inner = _call_args(lhs, "cbind")
    if inner is not None:
        parts = [p.strip() for p in _split_on(inner, ",")]
        if len(parts) != 2 or not all(parts):
            raise FormulaError(
                "cbind() takes two arguments: cbind(successes, failures)",
                formula,
                (0, len(lhs)),
            )
        return None, (parts[0], parts[1]), se
    if not lhs:
        raise FormulaError("formula has no response before '~'", formula, (0, 1))
    return lhs, None, se


def _parse_rhs(pieces: list[_Piece], formula: str) -> tuple[str, list[RandomTerm], list[str]]:
    """The right-hand side's additive pieces as fixed-effect text, random terms and offsets."""
    fixed: list[str] = []
    random: list[RandomTerm] = []
    offsets: list[str] = []
    for piece in pieces:
        inner, _ = _strip_outer_parens(piece.text)
        is_paren = inner != piece.text
        has_bar = _find_top(inner, "|") >= 0 or _find_top(inner, "||") >= 0
        if is_paren and has_bar:
            if piece.sign == "-":
                raise FormulaError(
                    "a random-effects term cannot be subtracted", formula, (piece.start, piece.end)
                )
            random.extend(_parse_bar(piece, formula))
            continue
        if has_bar:
            raise FormulaError(
                "random-effects terms must be in parentheses: write (" + piece.text + ")",
                formula,
                (piece.start, piece.end),
            )
        off = _call_args(piece.text, "offset")
        if off is not None:
            if piece.sign == "-":
                raise FormulaError("an offset cannot be subtracted", formula, (piece.start, piece.end))
            offsets.append(off.strip())
            continue
        fixed.append(piece.text if piece.sign == "+" else f"- {piece.text}")
    if fixed and fixed[0] in ("- 1", "- 0"):
        fixed[0] = "0"
    fixed_text = " + ".join(fixed).replace("+ - ", "- ") if fixed else "1"
    if fixed_text.startswith("- "):
        fixed_text = "1 " + fixed_text
    return fixed_text, random, offsets


def _r_powers(formula: str) -> str:
    """``^`` inside ``I(...)`` as a power, as in R: ``I(Days^2)`` is ``Days**2`` (Python
    would read it as bitwise exclusive or, silently a different column).

    >>> _r_powers("y ~ I(x^2) + (1 | g)")
    'y ~ I(x**2) + (1 | g)'
    """
    out: list[str] = []
    i = 0
    while True:
        j = formula.find("I(", i)
        while j > 0 and (formula[j - 1].isalnum() or formula[j - 1] in "_."):
            j = formula.find("I(", j + 1)
        if j < 0:
            return "".join(out) + formula[i:]
        depth, k = 0, j + 1
        for k in range(j + 1, len(formula)):
            depth += {"(": 1, ")": -1}.get(formula[k], 0)
            if depth == 0:
                break
        out += [formula[i:j], formula[j : k + 1].replace("^", "**")]
        i = k + 1


def parse_formula(formula: str) -> ParsedFormula:
    """Parse a mixed-model formula.

    Parameters
    ----------
    formula:
        lme4-style formula such as ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        With the offending part of the formula underlined.

    Examples
    --------
    >>> p = parse_formula("y ~ x + (1 | a/b)")
    >>> [str(t) for t in p.random]
    ['(1 | b:a)', '(1 | a)']
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    return _parse(formula)


@functools.lru_cache(maxsize=256)
def _parse(formula: str) -> ParsedFormula:
    """The parse of a string (cached: the record is frozen and refits reuse formulas)."""
    _depth_scan(formula, formula, 0)
    tilde = _find_top(formula, "~")
    if tilde < 0:
        raise FormulaError(
            "formula has no '~': write it as 'response ~ predictors + (1 | group)'",
            formula,
            (0, len(formula)),
        )
    if _find_top(formula[tilde + 1 :], "~") >= 0:
        second = tilde + 1 + _find_top(formula[tilde + 1 :], "~")
        raise FormulaError("formula has more than one '~'", formula, (second, second + 1))
    lhs = formula[:tilde].strip()
    response, cbind, se = _parse_lhs(lhs, formula)
    rhs_start = tilde + 1
    rhs = formula[rhs_start:]
    if "^" in rhs:
        rhs = _r_powers(rhs)
    if not rhs.strip():
        raise FormulaError("formula has nothing after '~'", formula, (tilde, tilde + 1))
    fixed_text, random, offsets = _parse_rhs(_split_additive(rhs, formula, rhs_start), formula)
    return ParsedFormula(
        formula=formula,
        response=response,
        fixed=fixed_text,
        random=tuple(random),
        cbind=cbind,
        se=se,
        offsets=tuple(offsets),
    )
