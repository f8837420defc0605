"""The console's only way to write: into the folder of the running config file, atomically, the
previous version kept beside it as `NAME.bak`. Nothing is written before it has been checked
exactly as `ventriloquist config check` would."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap

from firmware_app.config import Settings, settings_from_text
from firmware_app.errors import ConfigError
from firmware_app.platform.fileutil import write_atomically


class ConfigFolder:
    def __init__(self, config_path: Path | None) -> None:
        self.path = config_path.resolve() if config_path is not None else None
        self.folder = self.path.parent if self.path is not None else None

    def read(self) -> str:
        if self.path is None:
            return ""
        return self.path.read_text(encoding="utf-8", errors="replace")

    def check(self, text: str) -> Settings:
        """The settings `text` would give, or the ConfigError `config check` prints for it."""
        return settings_from_text(text, str(self.path or "the console's config"))

    def apply(self, text: str) -> Settings:
        """Check `text`, then make it the config file (the old one kept as NAME.bak)."""
        settings = self.check(text)
        self.store(self._require_path().name, text.encode())
        return settings

    def with_keys(self, changes: dict[str, Any]) -> str:
        """The config file's text with dotted keys set (`{"audio.passthrough_trim_ms": 20}`), its
        comments, order and quoting kept."""
        yaml = YAML()
        yaml.preserve_quotes = True
        yaml.width = 4096  # never re-wrap the operator's long lines
        try:
            data = yaml.load(self.read()) or CommentedMap()
        except YAMLError:  # the file itself is broken: `check` names the problem
            self.check(self.read())
            raise
        if not isinstance(data, dict):
            self.check(self.read())
        for dotted, value in changes.items():
            *sections, key = dotted.split(".")
            node = data
            for section in sections:
                if not isinstance(node.get(section), dict):
                    node[section] = CommentedMap()
                node = node[section]
            node[key] = value
        out = io.StringIO()
        yaml.dump(data, out)
        return out.getvalue()

    def store(self, name: str, data: bytes) -> Path:
        """Write `name` (a bare file name) into the config folder, keeping the old one as NAME.bak."""
        folder = self._require_path().parent
        if Path(name).name != name or name.startswith(".") or name in ("", "..") or name.endswith(".bak"):
            raise ConfigError(
                f"refusing to write {name!r}", "the console writes plain file names inside the config folder only"
            )
        target = folder / name
        if target.exists():
            write_atomically(folder / f"{name}.bak", target.read_bytes())
        write_atomically(target, data)
        return target

    def _require_path(self) -> Path:
        if self.path is None:
            raise ConfigError(
                "this kiosk runs on the built-in defaults, with no config file to write",
                "start it with --config FILE (the kiosk service uses /etc/ventriloquist/config.yaml)",
            )
        return self.path
