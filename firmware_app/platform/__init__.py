"""Helpers for the machine the kiosk runs on: real-time priority, systemd's notify, memory, atomic files, logs."""
