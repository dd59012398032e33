"""Visualisation: architecture diagrams in the papers' style (:mod:`torchnas.viz.diagrams`)."""
from .diagrams import Cluster, Edge, Graph, Node, draw, graph_of, to_dot

__all__ = ["Cluster", "Edge", "Graph", "Node", "draw", "graph_of", "to_dot"]
