"""The layer IR: one immutable node type, one op enum, shape rules and a verifier."""
from .graph import Graph, VariableSpec, binary_op, constant, format_nodes, get_default_graph, placeholder, record
from .node import COMPUTE_DTYPES, FLOAT_DTYPES, NODE_DTYPES, Node, Tensor, TensorShape
from .ops import Group, Op, lookup, ops_in
from .shapes import SHAPE_RULES, infer
from .verify import VerificationError, verify

__all__ = [
    "Graph", "VariableSpec", "binary_op", "constant", "format_nodes", "get_default_graph", "placeholder",
    "record", "NODE_DTYPES", "COMPUTE_DTYPES", "FLOAT_DTYPES", "Node", "Tensor", "TensorShape", "Group", "Op",
    "lookup", "ops_in",
    "SHAPE_RULES", "infer", "VerificationError", "verify",
]
