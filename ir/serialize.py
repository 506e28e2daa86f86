"""Save and load a graph with its weights: ``graph.plait`` (text) + ``weights.safetensors``."""
from __future__ import annotations

from pathlib import Path

from .graph import Graph
from .text import parse_graph, print_graph
from .weights import WeightStore

GRAPH_FILE = "graph.plait"
WEIGHTS_FILE = "weights.safetensors"


def save(graph: Graph, weights: WeightStore, directory) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / GRAPH_FILE).write_text(print_graph(graph))
    if not weights.shape_only:
        weights.save(d / WEIGHTS_FILE, sorted(graph.weight_names()))
    return d


def load(directory, lazy: bool = True) -> tuple[Graph, WeightStore]:
    d = Path(directory)
    graph = parse_graph((d / GRAPH_FILE).read_text())
    wf = d / WEIGHTS_FILE
    weights = WeightStore.load(wf, lazy=lazy) if wf.exists() else WeightStore()
    return graph, weights
