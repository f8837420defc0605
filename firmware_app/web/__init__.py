"""The web side of the kiosk: /healthz, /metrics and the operator's console, one server."""
