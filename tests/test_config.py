from pathlib import Path

import pytest
import yaml

from firmware_app.config import Settings, default_yaml, load_settings, with_changes
from firmware_app.errors import ConfigError, ExitCode, MissingFileError

from conftest import PROJECT, cli

pytestmark = pytest.mark.wheels  # CI runs these again on the Jetson's pinned versions


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_shipped_default_is_the_generated_default():
    assert (PROJECT / "config" / "default.yaml").read_text() == default_yaml() + "\n"


def test_default_yaml_documents_every_key_and_parses_back_to_defaults():
    text = default_yaml()
    assert Settings.model_validate(yaml.safe_load(text)) == Settings()
    for line in text.splitlines():
        if ":" in line and not line.strip().startswith("#") and not line.rstrip().endswith(":"):
            assert "  # " in line, f"undocumented key: {line}"


def test_empty_file_means_defaults(tmp_path):
    assert load_settings(write(tmp_path, "")) == Settings()


def test_unknown_key_names_path_line_and_allowed_keys(tmp_path):
    path = write(tmp_path, "mode: mirror\nrenderer:\n  mouth_gain: 1.0\n  mouth_gian: 2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "renderer.mouth_gian" in message
    assert "line 4" in message
    assert "mouth_gain" in message and "max_open" in message  # the keys that are allowed


def test_bad_choice_names_value_and_choices(tmp_path):
    path = write(tmp_path, "\nmode: ventriloquist\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "`mode`" in message and "line 2" in message
    assert "'ventriloquist'" in message and "mirror" in message and "puppet" in message


def test_out_of_range_number(tmp_path):
    with pytest.raises(ConfigError, match=r"line 3: `video\.fps`.*greater than 0 \(got -5\)"):
        load_settings(write(tmp_path, "video:\n  width: 640\n  fps: -5\n"))


def test_broken_yaml_gives_line(tmp_path):
    with pytest.raises(ConfigError, match=r"line 4.*not valid YAML.*starts at line 3"):
        load_settings(write(tmp_path, "mode: mirror\nvideo:\n  width: [1280\n"))


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"))


def test_missing_config_file(tmp_path):
    with pytest.raises(MissingFileError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_loudness_floor_must_be_below_ceiling(tmp_path):
    with pytest.raises(ConfigError, match="floor_db"):
        load_settings(write(tmp_path, "model:\n  loudness:\n    floor_db: -10\n    ceil_db: -20\n"))


def test_recording_live_media_needs_consent():
    with pytest.raises(ConfigError, match="privacy.allow_recording"):
        with_changes(Settings(), {"output.uri": "file://visitors.mp4"})
    allowed = with_changes(Settings(), {"output.uri": "file://visitors.mp4", "privacy.allow_recording": True})
    assert allowed.output.uri == "file://visitors.mp4"


@pytest.mark.integration
def test_config_check_command_exit_codes(tmp_path):
    good = cli("config", "check", str(PROJECT / "config" / "default.yaml"))
    assert good.returncode == 0 and "OK" in good.stdout
    bad = cli("config", "check", str(write(tmp_path, "mode: [\n")))
    assert bad.returncode == ExitCode.CONFIG
    assert "config error" in bad.stderr and "Traceback" not in bad.stderr
    missing = cli("config", "check", str(tmp_path / "absent.yaml"))
    assert missing.returncode == ExitCode.MISSING_FILE and "Traceback" not in missing.stderr


@pytest.mark.integration
def test_config_default_command_prints_the_default():
    result = cli("config", "default")
    assert result.returncode == 0
    assert result.stdout == default_yaml() + "\n"
