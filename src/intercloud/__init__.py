"""intercloud: stretch virtual networks at layer 2 between federated clouds."""

__version__ = "0.1.0"
