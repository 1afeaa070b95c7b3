"""Choosing a strategy by import path in settings.toml, so a user's own module works unchanged.

``strategy.path = "package.module:ClassName"`` and ``[strategy.params]`` become
``ClassName(**params)``. Anything wrong (no such module, no such class, not a strategy, a
parameter the class refuses) is a ``StrategyError`` whose text is one line for the operator.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from aegis.strategy.api import Strategy

__all__ = ["StrategyError", "load_strategy"]


class StrategyError(ValueError):
    """The configured strategy cannot be loaded (a configuration error: exit 2)."""


def load_strategy(path: str, params: Mapping[str, Any]) -> Strategy:
    module_name, _, class_name = path.partition(":")
    if not module_name or not class_name:
        raise StrategyError(f"strategy.path: expected 'package.module:ClassName', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failing to import
        raise StrategyError(f"strategy.path: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, class_name, None)
    if factory is None:
        raise StrategyError(f"strategy.path: {module_name!r} has no {class_name!r}")
    try:
        strategy = factory(**params)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise StrategyError(f"strategy.params: {class_name} refused them: {exc}") from None
    if not isinstance(strategy, Strategy):
        raise StrategyError(f"strategy.path: {path} is not a strategy (it needs name, window and on_candle(ctx))")
    window = strategy.window
    if not isinstance(window, int) or window < 1:
        raise StrategyError(f"strategy.path: {path} has window {window!r}; it must be a positive number of candles")
    return strategy
