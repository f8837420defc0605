"""Ventriloquist: a face on a screen that speaks with a live voice."""

__version__ = "0.1.0"
