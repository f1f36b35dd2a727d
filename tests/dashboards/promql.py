"""Just enough PromQL reading to check dashboards and rules against the metrics catalog.

``expressions()`` gathers every expression of every Grafana panel, template variable and
Prometheus rule; ``uses(expr)`` lists what an expression reads: metric selectors with the
labels they match on, and aggregations with the labels of their ``by``/``without`` clause and
the metrics they aggregate. ``grafana_to_prometheus`` turns a panel query into one the
Prometheus HTTP API evaluates (Grafana's ``$__`` variables and the dashboard variables).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
DASHBOARDS = ROOT / "dashboards" / "grafana" / "dashboards"
RULES = ROOT / "dashboards" / "prometheus" / "consentinel.rules.yaml"

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}  # fmt: skip
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "inf", "nan"}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)
  | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){},])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)


@dataclass
class Aggregation:
    op: str
    clause: str  # by | without | ""
    labels: list[str]
    metrics: list[str]  # metric names inside its argument


@dataclass
class Uses:
    selectors: list[Selector]
    aggregations: list[Aggregation]
    grouping: list[tuple[str, list[str]]]  # on/ignoring/group_left/right clauses


def tokenize(expr: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {expr[pos : pos + 30]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Token(kind, m.group()))
    return out


def _closing(tokens: list[Token], i: int, opening: str = "(", closing: str = ")") -> int:
    """Index of the token closing the bracket at ``i``."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == opening:
            depth += 1
        elif tokens[j].text == closing:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced brackets")


def _labels(tokens: list[Token], i: int) -> tuple[list[str], int]:
    """The label list of a ``(a, b)`` at ``i``; returns it and the index after it."""
    end = _closing(tokens, i)
    return [t.text for t in tokens[i + 1 : end] if t.kind == "ident"], end + 1


def uses(expr: str) -> Uses:
    tokens = tokenize(expr)
    selectors: list[Selector] = []
    metric_at: dict[int, str] = {}
    grouping: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1].text if i + 1 < len(tokens) else ""
        if t.kind == "ident" and t.text in GROUPING and nxt == "(":
            labels, after = _labels(tokens, i + 1)
            if t.text not in ("by", "without"):
                grouping.append((t.text, labels))
            i = after
            continue
        if t.kind == "ident" and (nxt == "(" or (t.text in AGGREGATIONS and nxt in GROUPING)):
            i += 1  # a function or an aggregation: its argument is read in turn
            continue
        if t.kind == "ident" and t.text.lower() not in KEYWORDS:
            sel = Selector(t.text)
            metric_at[i] = t.text
            if nxt == "{":
                end = _closing(tokens, i + 1, "{", "}")
                body = tokens[i + 2 : end]
                for k in range(0, len(body), 4):
                    name, op, value = body[k].text, body[k + 1].text, body[k + 2].text
                    sel.matchers.append((name, op, value[1:-1]))
                i = end
            selectors.append(sel)
        i += 1
    aggregations: list[Aggregation] = []
    for i, t in enumerate(tokens):
        if t.kind != "ident" or t.text not in AGGREGATIONS:
            continue
        j = i + 1
        clause, labels = "", []
        if j < len(tokens) and tokens[j].text in ("by", "without"):
            clause = tokens[j].text
            labels, j = _labels(tokens, j + 1)
        if j >= len(tokens) or tokens[j].text != "(":
            continue
        end = _closing(tokens, j)
        if not clause and end + 1 < len(tokens) and tokens[end + 1].text in ("by", "without"):
            clause = tokens[end + 1].text
            labels, _ = _labels(tokens, end + 2)
        inner = [name for k, name in metric_at.items() if j < k < end]
        aggregations.append(Aggregation(t.text, clause, labels, inner))
    return Uses(selectors, aggregations, grouping)


# -- where the expressions are ---------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    where: str  # dashboard file / panel title / refId, or rule file / rule name
    expr: str
    panel: bool  # a panel's query (evaluated against the real Prometheus)


def panel_expressions() -> list[Expr]:
    out: list[Expr] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                where = f"{path.name} / {panel['title']} / {target['refId']}"
                out.append(Expr(where, target["expr"], True))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(where, metric, label) of every ``label_values(metric, label)`` variable."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for var in board["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["definition"])
            if not m:
                raise AssertionError(f"{path.name}: variable {var['name']}: unexpected query")
            out.append((f"{path.name} / ${var['name']}", m.group(1), m.group(2)))
    return out


def rule_expressions() -> tuple[list[Expr], dict[str, str]]:
    """Every rule's expression, and recording rule name -> its expression."""
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    out, records = [], {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            out.append(Expr(f"{RULES.name} / {name}", rule["expr"], False))
            if "record" in rule:
                records[rule["record"]] = rule["expr"]
    return out, records


# -- Grafana variables, for Prometheus -------------------------------------------------------


def grafana_to_prometheus(expr: str, rate_interval: str = "1m", range_: str = "5m") -> str:
    """A panel query as Prometheus evaluates it: every dashboard variable set to "All"."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
    expr = expr.replace("$__interval", "15s")
    if "$" in expr:
        expr = re.sub(r"\$\{?\w+\}?", ".*", expr)
    return expr
