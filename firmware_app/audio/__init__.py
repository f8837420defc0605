"""The voice's own parts: features heard in it, its stop bursts, and its passthrough to the speaker."""
