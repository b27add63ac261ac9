"""lifelong: continual learning by expert growth (PEER / MoE layers that grow per task)."""

__version__ = "0.1.0"
