"""Human-readable text form of a graph, and its parser (they round-trip).

::

    graph "smollm2" {
      %tokens = input() : i64[1,S]
      %embed = param() {"weight": "model.embed_tokens.weight"} : f32[49152,576]
      %x = embedding(%embed, %tokens) : f32[1,S,576]   # model.embed_tokens
      ...
      return %logits
    }

Attributes are a JSON object; a trailing ``# ...`` comment records the node's
origin (the nn.Module path it came from).  ``meta`` holds graph metadata as JSON.
"""
from __future__ import annotations

import json
import re

from .graph import Graph
from .types import parse_type


class ParseError(ValueError):
    pass


def print_graph(graph: Graph) -> str:
    lines = [f"graph {json.dumps(graph.name)} {{"]
    if graph.meta:
        lines.append(f"  meta {json.dumps(graph.meta, sort_keys=True)}")
    for node in graph.nodes():
        args = ", ".join(f"%{i}" for i in node.inputs)
        attrs = f" {json.dumps(node.attrs, sort_keys=True)}" if node.attrs else ""
        line = f"  %{node.name} = {node.op}({args}){attrs} : {node.type.text()}"
        if node.origin:
            line += f"   # {node.origin}"
        lines.append(line)
    lines.append(f"  return {', '.join('%' + o for o in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


_NODE_RE = re.compile(
    r"^%(?P<name>[\w.]+) = (?P<op>\w+)\((?P<args>[^)]*)\)(?P<attrs> \{.*\})? : (?P<type>.+?)(?:   # (?P<origin>.*))?$")


def parse_graph(text: str) -> Graph:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if not lines or not lines[0].startswith("graph ") or not lines[0].endswith("{"):
        raise ParseError("line 1: expected 'graph \"name\" {'")
    try:
        g = Graph(json.loads(lines[0][6:-1].strip()))
    except json.JSONDecodeError:
        raise ParseError(f"line 1: bad graph name in {lines[0]!r}") from None
    for no, line in enumerate(lines[1:], start=2):
        if line == "}":
            return g
        if line.startswith("meta "):
            g.meta = json.loads(line[5:])
            continue
        if line.startswith("return"):
            g.outputs = [o.strip().lstrip("%") for o in line[6:].split(",") if o.strip()]
            continue
        m = _NODE_RE.match(line)
        if not m:
            raise ParseError(f"line {no}: cannot parse {line!r}")
        try:
            attrs = json.loads(m["attrs"]) if m["attrs"] else {}
            args = [a.strip().lstrip("%") for a in m["args"].split(",") if a.strip()]
            g.add(m["op"], args, attrs, name=m["name"], type=parse_type(m["type"]),
                  origin=m["origin"] or "", infer=False)
        except (ValueError, KeyError) as e:
            raise ParseError(f"line {no}: {e}") from None
    raise ParseError("missing closing '}'")
