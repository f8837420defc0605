"""Outputs behind one interface, chosen by URI scheme: display://0, file://out.mp4, null://."""

from __future__ import annotations

from firmware_app.sinks.base import Sink
from firmware_app.sinks.provenance import Provenance
from firmware_app.uri import parse_uri

SINK_SCHEMES = ("display", "file", "null")


def open_sink(text: str, window_title: str = "Ventriloquist", provenance: Provenance | None = None) -> Sink:
    """`provenance` signs what a file sink writes (sinks/provenance.py)."""
    uri = parse_uri(text, SINK_SCHEMES)
    if uri.scheme == "display":
        from firmware_app.sinks.display import DisplaySink

        return DisplaySink(uri.location or "0", window_title)
    if uri.scheme == "file":
        from firmware_app.sinks.file import FileSink

        return FileSink(uri.path, provenance)
    from firmware_app.sinks.null import NullSink

    return NullSink()


__all__ = ["Sink", "open_sink"]
