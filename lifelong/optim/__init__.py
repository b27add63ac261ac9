"""Optimizers for models with PEER layers (row-sparse expert gradients)."""

from .lazy_adamw import LazyAdamW

__all__ = ["LazyAdamW"]
