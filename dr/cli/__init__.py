"""The `dr` command line. Thin click commands: parse -> call a procedure -> render the result."""

from dr.cli.main import main

__all__ = ["main"]
