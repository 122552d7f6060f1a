"""dr-toolkit: disaster recovery for a two-region AWS estate."""

__version__ = "0.1.0"
