"""The console's only way to write: into the folder of the running config file, atomically, the
previous version kept beside it as `NAME.bak` and the last 10 applied ones in `.history/`.
Nothing is written before it has been proved exactly as `ventriloquist config check` and SIGHUP
prove it (`pipeline.prove_pipeline`): the schema, then every file the config names read with the
kiosk's own readers. File outputs stay inside `output.recordings_dir`."""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from firmware_app.config import Settings, read_yaml, settings_from_text
from firmware_app.errors import ConfigError
from firmware_app.platform.fileutil import write_atomically

STAGED = ".staged-"  # an upload waiting for its proof; never a name the console stores under
HISTORY = ".history"  # beside the config: the last KEPT_HISTORY applied files
KEPT_HISTORY = 10
HISTORY_ID = re.compile(r"\d{8}T\d{12}Z")  # an entry's name: when it was applied, UTC to the microsecond


class ConfigHistory:
    """The last KEPT_HISTORY applied config files, each kept whole in `.history/` beside the config
    under the time it was applied; an entry is restored through the same proof as an Apply."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / HISTORY

    def record(self, data: bytes) -> str:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        entry = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        write_atomically(self.folder / f"{entry}.yaml", data)
        for old in self._files()[KEPT_HISTORY:]:
            old.unlink(missing_ok=True)
        return entry

    def entries(self) -> list[dict]:
        """Newest first: its id, when it was applied (ISO, UTC) and its size."""
        return [
            {"id": path.stem, "applied": datetime.strptime(path.stem, "%Y%m%dT%H%M%S%fZ").isoformat() + "Z",
             "bytes": path.stat().st_size}
            for path in self._files()
        ]  # fmt: skip

    def read(self, entry: str) -> str:
        path = self.folder / f"{entry}.yaml"
        if not HISTORY_ID.fullmatch(entry) or not path.is_file():
            raise ConfigError(f"no applied config {entry!r} in the history", "pick one of the history's entries")
        return path.read_text(encoding="utf-8", errors="replace")

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted((p for p in self.folder.glob("*.yaml") if HISTORY_ID.fullmatch(p.stem)), reverse=True)


class ConfigFolder:
    def __init__(self, config_path: Path | None) -> None:
        self.path = config_path.resolve() if config_path is not None else None
        self.folder = self.path.parent if self.path is not None else None
        self.history = ConfigHistory(self.folder) if self.folder is not None else None

    def read(self) -> str:
        if self.path is None:
            return ""
        return self.path.read_text(encoding="utf-8", errors="replace")

    def check(self, text: str) -> Settings:
        """The settings `text` would give, or the ConfigError `config check` prints for it; a
        file:// output must be inside the recordings folder."""
        settings = settings_from_text(text, str(self.path or "the console's config"))
        self._confine_outputs(settings)
        return settings

    def prove(self, text: str) -> tuple[Settings, list[str]]:
        """`check`, then the files and camera it names as the kiosk would open them (slow: call
        it off the event loop); the settings and any warnings."""
        from firmware_app.pipeline import prove_pipeline

        settings = self.check(text)
        return settings, prove_pipeline(settings)

    def apply(self, text: str) -> Settings:
        """Prove `text`, then make it the config file (the old one kept as NAME.bak)."""
        settings, _ = self.prove(text)
        self.store(self._require_path().name, text.encode())
        return settings

    def save(self, text: str) -> Settings:
        """`check` `text` and write it without a new NAME.bak: a small live edit of a proved file
        (the trim slider), so the .bak stays the file before the last Apply."""
        settings = self.check(text)
        self.store(self._require_path().name, text.encode(), backup=False)
        return settings

    def with_keys(self, changes: dict[str, Any], text: str | None = None) -> str:
        """The config file's text (or `text`) with dotted keys set (`{"audio.passthrough_trim_ms":
        20}`), its comments, order and quoting kept; read as every reader of the file reads it."""
        text = self.read() if text is None else text
        data = read_yaml(text, str(self.path or "the console's config"))
        if data is None:
            data = CommentedMap()
        if not isinstance(data, dict):
            self.check(text)  # names the problem
        for dotted, value in changes.items():
            *sections, key = dotted.split(".")
            node = data
            for section in sections:
                if not isinstance(node.get(section), dict):
                    node[section] = CommentedMap()
                node = node[section]
            node[key] = value
        yaml = YAML()
        yaml.width = 4096  # never re-wrap the operator's long lines
        out = io.StringIO()
        yaml.dump(data, out)
        return out.getvalue()

    def store(self, name: str, data: bytes, backup: bool = True) -> Path:
        """Write `name` (a bare file name) into the config folder, keeping the old one as NAME.bak."""
        folder = self._require_path().parent
        if Path(name).name != name or name.startswith(".") or name in ("", "..") or name.endswith(".bak"):
            raise ConfigError(
                f"refusing to write {name!r}", "the console writes plain file names inside the config folder only"
            )
        target = folder / name
        applied = backup and target == self.path  # an applied config goes into the history too
        if backup and target.exists():
            if applied and not self.history.entries():  # the file before the first Apply can be restored too
                self.history.record(target.read_bytes())
            write_atomically(folder / f"{name}.bak", target.read_bytes())
        write_atomically(target, data)
        if applied:
            self.history.record(data)
        return target

    def replace_portrait(self, name: str, data: bytes) -> tuple[Path, Settings]:
        """Store an upload as `name` and point `sources.portrait` at it, together or not at all:
        the upload is staged under a hidden name, the whole config proved on it, and only then are
        the file and the config written (each old one kept as .bak)."""
        folder = self._require_path().parent
        staged = folder / f"{STAGED}{name}"
        try:
            write_atomically(staged, data)
            self.prove(self.with_keys({"sources.portrait": f"file://{staged}"}))
            target = folder / name
            text = self.with_keys({"sources.portrait": f"file://{target}"})
            settings = self.check(text)
            self.store(name, data)
            self.store(self._require_path().name, text.encode())
        finally:
            staged.unlink(missing_ok=True)
        return target, settings

    def applied(self, entry: str) -> str:
        """An earlier applied file, from the history."""
        self._require_path()
        return self.history.read(entry)

    def diff(self, text: str, secret: str = "", redacted: str = "") -> str:
        """The change from the config file to `text` as a unified diff (`secret` shown as `redacted`)."""
        import difflib

        old = self.read()
        if secret:
            old, text = old.replace(secret, redacted), text.replace(secret, redacted)
        name = self.path.name if self.path else "config.yaml"
        lines = difflib.unified_diff(
            old.splitlines(keepends=True), text.splitlines(keepends=True), f"{name} (running)", f"{name} (new)"
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def _confine_outputs(self, settings: Settings) -> None:
        from firmware_app.uri import parse_uri

        allowed = self._recordings_dir_on_disk()
        if settings.output.recordings_dir != allowed:
            raise ConfigError(
                f"output.recordings_dir {settings.output.recordings_dir!r} differs from the file's "
                f"{allowed!r}; the console cannot move the folder it is confined to",
                "change output.recordings_dir in the file on the appliance itself",
            )
        uri = parse_uri(settings.output.uri, ("display", "file", "null"))
        if uri.scheme != "file":
            return
        recordings = self.recordings(settings)
        if not uri.path.resolve().is_relative_to(recordings):
            raise ConfigError(
                f"output.uri {settings.output.uri} writes outside the recordings folder {recordings}",
                f"write into it, e.g. file://{recordings}/out.mp4, or change output.recordings_dir",
            )

    def _recordings_dir_on_disk(self) -> str:
        try:
            return settings_from_text(self.read(), str(self.path)).output.recordings_dir
        except (ConfigError, OSError):
            return Settings().output.recordings_dir  # a broken file: the default

    def recordings(self, settings: Settings) -> Path:
        """Where file outputs set from the console may go: `output.recordings_dir`, beside the
        config file when relative."""
        folder = self.folder or Path.cwd()
        return (folder / Path(settings.output.recordings_dir).expanduser()).resolve()

    def _require_path(self) -> Path:
        if self.path is None:
            raise ConfigError(
                "this kiosk runs on the built-in defaults, with no config file to write",
                "start it with --config FILE (the kiosk service uses /etc/ventriloquist/config.yaml)",
            )
        return self.path
