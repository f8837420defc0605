"""The face's parts: the tracker, the puppet's expression, face packs (their format and enrollment)."""
