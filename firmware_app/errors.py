"""User-facing errors: each names the cause and the fix, and maps to a distinct exit code.

The CLI catches `VentriloquistError` and prints its message as one paragraph, never a traceback.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    MISSING_FILE = 4
    BAD_MODEL = 5
    DEVICE = 6
    MEDIA = 7
    RESTART = 75  # EX_TEMPFAIL: a planned restart (memory limit); systemd starts it again


class VentriloquistError(Exception):
    """An error the operator can fix. `fix` says how."""

    exit_code = ExitCode.FAILURE
    title = "error"

    def __init__(self, cause: str, fix: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        text = f"{self.title}: {self.cause}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(VentriloquistError):
    exit_code = ExitCode.CONFIG
    title = "config error"


class MissingFileError(VentriloquistError):
    exit_code = ExitCode.MISSING_FILE
    title = "missing file"


class ModelError(VentriloquistError):
    exit_code = ExitCode.BAD_MODEL
    title = "model error"


class DeviceError(VentriloquistError):
    exit_code = ExitCode.DEVICE
    title = "device unavailable"


class CameraMissingError(DeviceError):
    """No camera where the config says one is: `run` may fall back to the bundled demo."""


class MediaError(VentriloquistError):
    exit_code = ExitCode.MEDIA
    title = "media error"
