"""The composition root: builds the engine from Settings, starts it against the exchange, runs it."""

from aegis.engine.engine import Engine
from aegis.engine.runner import run
from aegis.engine.startup import AuthFailure, StartupError

__all__ = ["AuthFailure", "Engine", "StartupError", "run"]
