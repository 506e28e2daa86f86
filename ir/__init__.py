"""The IR: typed dataflow graph, op registry, weight store, numerics, verifier, text form."""
from .graph import Graph, GraphError, Node  # noqa: F401
from .ops import OPS, Cost, EvalContext, OpError, get_op, graph_cost  # noqa: F401
from .types import DTYPES, IRTypeError, QuantSpec, SparsitySpec, TensorType, parse_type  # noqa: F401
from .weights import WeightError, WeightInfo, WeightStore  # noqa: F401
from .verify import VerifyError, verify  # noqa: F401
from .text import ParseError, parse_graph, print_graph  # noqa: F401
from .interpreter import Interpreter, generate  # noqa: F401
