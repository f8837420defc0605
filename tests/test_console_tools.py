"""The operator's tools on the console's API, against a kiosk in this process (a paced speech file
as the microphone, the portrait as the camera, the `null://` screen): the build on the page, in
/api/status and /metrics; host health; the log view (token never in it, audit lines never folded);
the config history with its diff and restore (through the proof an Apply takes); check, then
restart; and the snapshot (downloaded, never stored)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import cv2
import numpy as np
from test_appliance_lifecycle import (  # noqa: F401 - fixtures
    config_text,
    log,
    long_voice,
    run_driven,
    wait_until,
)

import firmware_app
from firmware_app.appliance.kiosk import Appliance
from firmware_app.errors import ExitCode
from firmware_app.platform.host import build_info, hottest_zone
from firmware_app.sinks.provenance import read_manifest
from firmware_app.web.console.configfile import KEPT_HISTORY, ConfigHistory
from firmware_app.web.console.security import PROCESS_CSRF

from conftest import free_port

TOKEN = "correct-horse-battery-staple"


def call(port: int, path: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET, or of a POST of `body` as JSON, with the token."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "X-CSRF-Token": PROCESS_CSRF, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except OSError:  # nothing answers yet
        return 0, {}, b""


def json_of(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    status, _, data = call(port, path, body)
    return status, json.loads(data)


def test_the_operators_tools(tmp_path, long_voice, log):  # noqa: F811
    port = free_port()
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "config.yaml"
    original = config_text(long_voice, port, console=f"{{preview: true, token: '{TOKEN}'}}")
    config.write_text(original)
    appliance = Appliance(config)
    seen: dict = {}

    def frames() -> float:
        lines = call(port, "/metrics")[2].decode().splitlines()
        return float(next(line.split()[1] for line in lines if line.startswith("ventriloquist_frames_total ")))

    def healthy() -> bool:
        return call(port, "/healthz")[0] == 200

    def reloaded(times: int) -> None:
        wait_until(appliance, lambda: log.count("config reloaded") >= times, f"reload {times}", timeout=60)
        wait_until(appliance, healthy, "frames again")

    def script() -> None:
        wait_until(appliance, healthy, "frames on the screen")
        seen["status"] = json_of(port, "/api/status")[1]
        seen["metrics"] = call(port, "/metrics")[2].decode()
        logging.getLogger("firmware_app.test").info("a line with the token %s in it", TOKEN)
        changed = original + "model: {kind: loudness}\n"
        seen["diff"] = json_of(port, "/api/config/diff", {"text": changed})[1]["diff"]
        for n in range(2):  # the same Apply twice within a second: two audit lines, not one and a count
            assert json_of(port, "/api/config/apply", {"text": changed})[0] == 200
            reloaded(n + 1)
        entries = json_of(port, "/api/config/history")[1]["entries"]
        seen["entries"] = entries
        seen["entry"] = json_of(port, f"/api/config/history/{entries[-1]['id']}")[1]
        seen["restore"] = json_of(port, "/api/config/restore", {"id": entries[-1]["id"]})
        reloaded(3)
        seen["restored"] = config.read_text()
        seen["restore traversal"] = json_of(port, "/api/config/restore", {"id": "../config.yaml"})[0]
        generation = json_of(port, "/api/status")[1]["generation"]
        seen["restart"] = json_of(port, "/api/restart", {})
        # "config reloaded" is logged before the next pipeline starts: wait for that pipeline itself
        wait_until(appliance, lambda: json_of(port, "/api/status")[1]["generation"] > generation, "the restart", 60)
        reloaded(4)
        config.write_text(original.replace(str(long_voice), str(tmp_path / "gone.wav")))
        seen["bad restart"] = json_of(port, "/api/restart", {})
        config.write_text(original)
        seen["snapshot"] = call(port, "/api/snapshot.jpg")
        seen["log"] = json_of(port, "/api/log")[1]["lines"]
        seen["log.txt"] = call(port, "/api/log.txt")
        seen["docs"] = call(port, "/docs/provenance")
        seen["no docs"] = call(port, "/docs/nothing-here")
        before = frames()
        wait_until(appliance, lambda: frames() > before + 10, "frames going on")

    assert run_driven(appliance, script) == ExitCode.OK

    status = seen["status"]
    assert status["build"] == build_info() and status["build"]["version"] == firmware_app.__version__
    host = status["host"]
    assert host["cpus"] >= 1 and host["load_1m"] >= 0 and host["temperature_c"] == hottest_zone()
    assert (
        0 < host["disk_free_mb"] <= host["disk_total_mb"] and 0 < host["memory_available_mb"] <= host["memory_total_mb"]
    )
    build = f'ventriloquist_build_info{{commit="{build_info()["commit"]}",version="{firmware_app.__version__}"}} 1.0'
    assert build in seen["metrics"]

    assert "+model: {kind: loudness}" in seen["diff"] and TOKEN not in seen["diff"]
    assert len(seen["entries"]) == 3  # the file before the first Apply, then the two applied
    assert seen["entry"]["text"] == original.replace(TOKEN, "<console.token: unchanged>")
    assert "-model: {kind: loudness}" in seen["entry"]["diff"] and TOKEN not in json.dumps(seen["entry"])
    assert seen["restore"][0] == 200 and seen["restored"] == original
    assert seen["restore traversal"] == 404
    assert seen["restart"][0] == 200 and "proved; restarting" in seen["restart"][1]["summary"]
    assert seen["bad restart"][0] == 422 and "gone.wav" in seen["bad restart"][1]["error"]

    code, headers, jpeg = seen["snapshot"]
    assert code == 200 and headers["content-disposition"].startswith('attachment; filename="ventriloquist-')
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)
    (tmp_path / "snapshot.jpg").write_bytes(jpeg)  # the download carries its content credentials
    store = read_manifest(tmp_path / "snapshot.jpg")
    assert store is not None and store["validation_state"] == "Valid", store
    assert "trainedAlgorithmicMedia" in json.dumps(store)
    assert sorted(p.name for p in folder.iterdir()) == [".history", "config.yaml", "config.yaml.bak"]

    code, _, text = seen["docs"]  # the status line's link: the README's Provenance section
    assert code == 200 and text.startswith(b"## Provenance") and b"ventriloquist verify FILE" in text
    assert b"\n## " not in text and seen["no docs"][0] == 404

    messages = [line["message"] for line in seen["log"]]
    assert sum("console: config written to" in m for m in messages) == 2
    assert any("<console.token: unchanged>" in m for m in messages)
    code, headers, text = seen["log.txt"]
    assert code == 200 and headers["content-disposition"].startswith('attachment; filename="ventriloquist-log-')
    assert TOKEN.encode() not in text and b"INFO firmware_app.test: a line with the token" in text


def test_the_history_keeps_the_last_ten_and_refuses_other_names(tmp_path):
    history = ConfigHistory(tmp_path)
    ids = [history.record(f"n: {n}\n".encode()) for n in range(KEPT_HISTORY + 2)]
    assert [entry["id"] for entry in history.entries()] == ids[::-1][:KEPT_HISTORY]
    assert history.read(ids[-1]) == f"n: {KEPT_HISTORY + 1}\n"
    for name in ("../config", ids[0], ""):
        try:
            history.read(name)
        except Exception as exc:  # noqa: BLE001
            assert "no applied config" in str(exc)
        else:
            raise AssertionError(name)
