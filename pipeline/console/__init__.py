"""The web console (``mkg ui``): review emerging classes, explore the graph with its evidence,
watch the stream and the models. Server-rendered pages, no JavaScript (see :mod:`.app`)."""
from .app import ConsoleError, check_binding, create_app, serve

__all__ = ["ConsoleError", "check_binding", "create_app", "serve"]
