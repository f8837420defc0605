"""The operator's console in a real browser (Debian's headless Chromium, driven by Selenium through
chromedriver) against a real `ventriloquist run`: a paced speech file as the microphone, the
portrait as the camera, Xvfb as the screen and a PulseAudio null sink as the passthrough's
speaker. One kiosk serves most checks; a second one, bound off 127.0.0.1, checks the token."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import PORTRAIT, PROJECT, SPEECH, _need, _wait_for, cli, free_port, speech_lasting
from test_kiosk_live import START_S, Kiosk

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1100",
)
TOKEN = "correct-horse-battery-staple"
WAIT_S = 45  # for the kiosk to do something it was asked to (a reload, a few quiet moments); CI is busy


STOP_WAIT_S = 60


class LoggedKiosk(Kiosk):
    """`run` logging to a file (it outlives what a pipe holds), reached at its own bind address."""

    def __init__(
        self, config: Path, env: dict, port: int, log_path: Path, host: str = "127.0.0.1", args: tuple[str, ...] = ()
    ) -> None:
        import os

        self.port, self.host, self.log_path = port, host, log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "firmware_app", "run", "--config", str(config), *args],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=self.log_path.open("w"), cwd=PROJECT,
        )  # fmt: skip

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def request(self, path: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url(path), data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def get(self, path: str) -> tuple[int, str]:
        return self.request(path, headers={"Authorization": f"Bearer {TOKEN}"})

    def wait_healthy(self, timeout: float = START_S) -> None:
        try:
            super().wait_healthy(timeout)
        except AssertionError:
            raise AssertionError(self.log()[-3000:]) from None

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> str:
        """SIGTERM and wait. How fast the kiosk stops is `test_kiosk_live`'s to prove, on the
        kiosk's own clock; here a machine starved by other suites may take longer than the
        unit's TimeoutStopSec to run the exit at all, so the wait is long, and a kiosk that never exits
        is killed and fails the test with its log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"the kiosk had not exited {STOP_WAIT_S} s after SIGTERM; its log ends:\n{self.log()[-3000:]}"
            ) from None
        return self.log()


def backend(kiosk: Kiosk) -> str:
    return next(k for k, v in kiosk.metrics().items() if k.startswith("ventriloquist_backend_info") and v == 1.0)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _need("chromium", "chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> Path:
    """Ten minutes of speech (with its pauses): the kiosk keeps talking through the module, which
    takes 3-4 minutes on a starved machine (a speech file that stands in for the microphone ends
    the run at its end: three minutes ended it mid-module with five suites sharing two cores)."""
    return speech_lasting(tmp_path_factory.mktemp("voice"), minutes=10)


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory, xvfb, pulse, voice):
    folder = tmp_path_factory.mktemp("etc-ventriloquist")  # the config folder, as /etc/ventriloquist
    port = free_port()
    config = folder / "config.yaml"
    config.write_text(
        "# the console test's kiosk\n"
        f"sources: {{audio: 'file://{voice}', camera: 'file://{PORTRAIT}'}}\n"
        "video: {width: 640, height: 360}\n"
        "audio: {passthrough: true, passthrough_device: pulse}\n"
        "output: {uri: 'display://0', window_title: Ventriloquist console test}\n"
        f"health: {{port: {port}}}\n"
        "console: {preview: true, upload_max_mb: 2}\n"
    )
    running = LoggedKiosk(config, {**pulse, "DISPLAY": xvfb}, port, tmp_path_factory.mktemp("log") / "kiosk.log")
    running.config, running.folder = config, folder
    try:
        running.wait_healthy()
        yield running
    finally:
        log = running.stop()
    assert "Traceback" not in log, log[-3000:]


def page(browser, kiosk) -> None:
    browser.get(kiosk.url("/"))
    wait(browser, lambda: browser.find_element("id", "config-text").get_attribute("value"), "the config in the editor")


def wait(browser, condition, what: str, timeout: float = WAIT_S):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A submit or a live update can replace an element between finding it and reading it: look again.
    waiting = WebDriverWait(browser, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
    return waiting.until(lambda _: condition(), message=f"waiting for {what}")


def body_shows(browser, text: str) -> None:
    wait(browser, lambda: text in browser.find_element("tag name", "body").text, f"the page to say {text!r}")


def text_of(browser, element_id: str) -> str:
    return browser.find_element("id", element_id).text


def number_in(browser, element_id: str) -> float:
    """The number an element shows ("78 ms" → 78.0); NaN (never above anything) before it shows one."""
    shown = re.match(r"-?\d+(\.\d+)?", text_of(browser, element_id))
    return float(shown.group()) if shown else float("nan")


def upload(browser, path: Path) -> str:
    """Send a file through the page's portrait upload; what the page answers."""
    browser.find_element("id", "portrait-file").send_keys(str(path))
    browser.find_element("id", "portrait-upload").click()
    wait(browser, lambda: not text_of(browser, "portrait-result").startswith("Checking"), "the upload's verdict")
    return text_of(browser, "portrait-result")


def set_editor(browser, text: str) -> None:
    editor = browser.find_element("id", "config-text")
    editor.clear()
    editor.send_keys(text)


@pytest.mark.integration
def test_the_page_shows_the_kiosk_live(browser, kiosk, tmp_path):
    page(browser, kiosk)
    wait(browser, lambda: number_in(browser, "fps") > 0, "live fps")  # (2 fps with five suites on two cores)
    first = text_of(browser, "uptime")
    wait(browser, lambda: text_of(browser, "uptime") != first, "the page to update without reloading")
    assert re.fullmatch(r"in view( \(own mouth: \d+ exemplars?\))?", text_of(browser, "face"))
    assert number_in(browser, "latency") > 0 and text_of(browser, "latency").endswith(" ms")
    assert "learned model" in text_of(browser, "backend")
    assert text_of(browser, "provenance") == "on"
    docs = browser.find_element("id", "provenance-docs").get_attribute("href")
    assert docs.endswith("/docs/provenance")  # the README's section, served by the console
    assert number_in(browser, "memory") > 50 and text_of(browser, "memory").endswith(" MiB")
    assert browser.find_elements("css selector", "#chart-fps canvas") and browser.find_elements(
        "css selector", "#chart-latency canvas"
    )
    # console.preview: true shows the screen itself, refreshed a few times a second
    preview = browser.find_element("id", "preview")
    wait(
        browser,
        lambda: preview.is_displayed() and browser.execute_script("return arguments[0].naturalWidth", preview) == 640,
        "the preview",
    )
    shown = browser.execute_script("return arguments[0].src", preview)
    wait(
        browser,
        lambda: browser.execute_script("return arguments[0].src", preview) != shown,
        "a newer preview frame",
        10,
    )
    browser.save_screenshot(str(tmp_path / "console.png"))


@pytest.mark.integration
def test_metrics_are_prometheus_exposition_with_histograms(kiosk):
    from prometheus_client.parser import text_string_to_metric_families

    status, text = kiosk.get("/metrics")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert status == 200
    latency = families["ventriloquist_frame_latency_milliseconds"]
    assert latency.type == "histogram"
    count = next(s.value for s in latency.samples if s.name.endswith("_count"))
    assert count >= families["ventriloquist_frames"].samples[0].value - 1 > 0  # every frame shown is in it
    stages = {
        s.labels["stage"]
        for s in families["ventriloquist_stage_duration_milliseconds"].samples
        if s.name.endswith("_count")
    }
    assert {"voice", "tracker", "renderer", "display"} <= stages
    assert families["ventriloquist_frames"].type == "counter" and families["ventriloquist_fps"].type == "gauge"


@pytest.mark.integration
def test_a_bad_config_shows_the_keys_error_and_the_kiosk_keeps_running(browser, kiosk, tmp_path):
    good = kiosk.config.read_text()
    bad = good + "renderer: {mouth_gian: 2}\n"
    page(browser, kiosk)
    generation = kiosk.metrics()["ventriloquist_pipeline_generation"]
    set_editor(browser, bad)
    browser.find_element("id", "config-check").click()
    wait(browser, lambda: "mouth_gian" in text_of(browser, "config-result"), "the check's verdict")
    shown = text_of(browser, "config-result")
    # the same paragraph `ventriloquist config check` prints for that file
    copy = tmp_path / "config.yaml"
    copy.write_text(bad)
    checked = cli("config", "check", str(copy))
    assert checked.returncode == 3
    assert shown == checked.stderr.strip().replace(str(copy), str(kiosk.config)), (shown, checked.stderr)
    assert "line 8: `renderer.mouth_gian`: unknown key; allowed here: mouth_gain" in shown
    browser.find_element("id", "config-apply").click()
    wait(
        browser,
        lambda: (
            text_of(browser, "config-result") == shown
            and "bad" in browser.find_element("id", "config-result").get_attribute("class")
        ),
        "the refusal",
    )
    assert kiosk.config.read_text() == good and not (kiosk.folder / "config.yaml.bak").exists()
    wait(
        browser,
        lambda: "config not applied" in text_of(browser, "errors") and "mouth_gian" in text_of(browser, "errors"),
        "the log panel",
    )
    assert kiosk.frames_grow()
    assert kiosk.metrics()["ventriloquist_pipeline_generation"] == generation


@pytest.mark.integration
def test_a_good_config_is_applied_through_the_reload_and_metrics_show_it(browser, kiosk):
    previous = kiosk.config.read_text()
    assert "learned model" in backend(kiosk)
    generation = kiosk.metrics()["ventriloquist_pipeline_generation"]
    page(browser, kiosk)
    changed = previous + "model: {kind: loudness}\n"
    set_editor(browser, changed)
    browser.find_element("id", "config-apply").click()
    wait(browser, lambda: text_of(browser, "config-result").startswith("Applied"), "the apply")
    _wait_for(
        lambda: kiosk.metrics()["ventriloquist_pipeline_generation"] == generation + 1 and "loudness" in backend(kiosk),
        WAIT_S,
        "the reload",
    )
    assert kiosk.config.read_text() == changed
    assert (kiosk.folder / "config.yaml.bak").read_text() == previous
    kiosk.wait_healthy()
    assert "config reloaded" in kiosk.log()
    wait(browser, lambda: "loudness" in text_of(browser, "backend"), "the page to show the new model")


@pytest.mark.integration
def test_the_operators_tools_on_the_page(browser, kiosk):
    """Build and host health shown; the diff before Apply; a history entry's diff and its restore;
    check, then restart; the log view; the snapshot; the page fits a 420 px wide screen; and a
    kiosk that stops answering shows no stale numbers."""
    from selenium.webdriver.support.ui import Select

    from firmware_app.platform.host import build_info

    previous = kiosk.config.read_text()
    page(browser, kiosk)
    wait(browser, lambda: text_of(browser, "build").startswith(build_info()["version"]), "the build")
    assert text_of(browser, "host-disk").endswith(" GiB") and text_of(browser, "host-memory").endswith(" GiB")
    set_editor(browser, previous + "# changed from the console\n")
    wait(browser, lambda: "+# changed from the console" in text_of(browser, "config-diff"), "the diff before Apply")
    generation = kiosk.metrics()["ventriloquist_pipeline_generation"]

    def reloads(reached: float) -> None:
        _wait_for(lambda: kiosk.metrics()["ventriloquist_pipeline_generation"] >= reached, WAIT_S, "the reload")

    browser.find_element("id", "config-apply").click()
    wait(browser, lambda: text_of(browser, "config-result").startswith("Applied"), "the apply")
    reloads(generation + 1)
    history = Select(browser.find_element("id", "history"))
    wait(browser, lambda: len(history.options) >= 3, "the history")  # the placeholder, the new file, the one before
    history.select_by_index(2)
    wait(browser, lambda: "-# changed from the console" in text_of(browser, "config-diff"), "the entry's diff")
    browser.find_element("id", "history-restore").click()
    wait(browser, lambda: kiosk.config.read_text() == previous, "the restore")
    reloads(generation + 2)
    browser.find_element("id", "restart").click()
    wait(browser, lambda: "proved; restarting" in text_of(browser, "restart-result"), "check, then restart")
    reloads(generation + 3)
    wait(browser, lambda: "restarting the pipeline" in text_of(browser, "log-lines"), "the log view", 10)
    assert "config written to" in text_of(browser, "log-lines")
    kiosk.wait_healthy()  # the restarted pipeline's first frame: the snapshot shows it
    assert browser.find_element("id", "snapshot").is_displayed()
    fetched = browser.execute_async_script(
        "const done = arguments[0]; fetch('/api/snapshot.jpg').then((r) => done([r.status,"
        " r.headers.get('content-type'), r.headers.get('content-disposition')]));"
    )
    assert fetched[:2] == [200, "image/jpeg"] and fetched[2].startswith("attachment")
    browser.set_window_size(420, 1100)
    try:
        wide = (
            "return [...document.querySelectorAll('body *')]"
            ".filter((e) => e.getBoundingClientRect().right > innerWidth).map((e) => e.tagName + '.' + e.className)"
        )
        wait(browser, lambda: not browser.execute_script(wide), "every tile inside 420 px", 10)
        assert browser.execute_script("return document.documentElement.scrollWidth <= innerWidth")
    finally:
        browser.set_window_size(1400, 1100)
    wait(browser, lambda: number_in(browser, "fps") > 0, "live fps")
    browser.set_network_conditions(offline=True, latency=0, download_throughput=-1, upload_throughput=-1)
    try:  # a kiosk that stops answering: its last numbers are not shown as if they were live
        wait(browser, lambda: text_of(browser, "state") == "no connection", "the page to see it down", 10)
        assert text_of(browser, "fps") == "–" and text_of(browser, "latency") == "–"
    finally:
        browser.delete_network_conditions()
    kiosk.wait_healthy()


@pytest.mark.integration
def test_the_trim_slider_moves_the_passthrough_delay_live(browser, kiosk):
    """The trim is how much later than the picture the voice plays: the A/V offset the kiosk
    measures moves by it, the passthrough's own delay with it, and nothing is reloaded."""
    from selenium.webdriver.common.action_chains import ActionChains

    def offset() -> float:
        return kiosk.metrics()["ventriloquist_av_offset_milliseconds"]

    page(browser, kiosk)
    _wait_for(
        lambda: abs(offset()) < 40 and kiosk.metrics()["ventriloquist_passthrough_delay_milliseconds"] > 0,
        WAIT_S,
        "the passthrough to follow the picture",
    )
    metrics = kiosk.metrics()
    generation = metrics["ventriloquist_pipeline_generation"]
    slider = browser.find_element("id", "trim")
    wait(browser, lambda: slider.is_enabled(), "the slider")
    # a real drag: press in the middle (0 ms of the -500…500 range), pull right a fifth of the way
    ActionChains(browser).click_and_hold(slider).move_by_offset(slider.size["width"] // 5, 0).release().perform()
    wait(browser, lambda: "saved" in text_of(browser, "trim-result"), "the trim to be saved")
    trim = number_in(browser, "trim-value")
    assert 150 <= trim <= 250, trim
    assert f"passthrough_trim_ms: {trim}" in kiosk.config.read_text()
    _wait_for(lambda: offset() >= trim - 30, WAIT_S, "the voice to play later than the picture by the trim")
    # the voice is now later than the picture by the trim, so its own delay covers the trim too;
    # how much more depends on the load (the floor a starved voice thread raised, which expires
    # after 30 s: the delay may come down as the picture's wait gives way, 303 -> 248 ms seen)
    assert kiosk.metrics()["ventriloquist_passthrough_delay_milliseconds"] >= trim - 30
    assert kiosk.metrics()["ventriloquist_pipeline_generation"] == generation  # live: no reload
    wait(browser, lambda: number_in(browser, "av-offset") >= trim - 30, "the page to show the offset")


@pytest.mark.integration
def test_a_portrait_is_checked_before_it_replaces_the_current_one(browser, kiosk, tmp_path):
    page(browser, kiosk)
    generation = kiosk.metrics()["ventriloquist_pipeline_generation"]

    assert "not an image or a video clip" in upload(browser, SPEECH)
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), 128, np.uint8))
    assert "no face found" in upload(browser, blank)
    assert not list(kiosk.folder.glob("portrait.*")) and "portrait:" not in kiosk.config.read_text()
    assert kiosk.metrics()["ventriloquist_pipeline_generation"] == generation
    assert "still 270x360, one face" in upload(browser, PORTRAIT)
    stored = kiosk.folder / "portrait.jpg"
    assert stored.read_bytes() == PORTRAIT.read_bytes()
    assert f"portrait: file://{stored}" in kiosk.config.read_text()
    _wait_for(lambda: kiosk.metrics()["ventriloquist_pipeline_generation"] == generation + 1, WAIT_S, "the reload")
    # larger than console.upload_max_mb (2): refused without being held whole, and the refusal
    # reaches the client (answered before the body was read, the connection was reset about 1 in 40)
    csrf = browser.find_element("css selector", 'meta[name="csrf-token"]').get_attribute("content")
    for _ in range(5):
        status, body = kiosk.request("/api/portrait", b"\xff\xd8\xff" + bytes(3 * 1024 * 1024), {"X-CSRF-Token": csrf})
        assert status == 413 and "upload_max_mb" in body
    assert sorted(p.name for p in kiosk.folder.iterdir()) == [
        ".history",
        "config.yaml",
        "config.yaml.bak",
        "portrait.jpg",
    ]


CONSENT = "NASA's public-domain astronaut portrait, enrolled only to test the console"


@pytest.fixture(scope="module")
def face_pack(tmp_path_factory) -> Path:
    """A small real face pack, made by `ventriloquist enroll` from a 16-frame clip of the bundled
    portrait (its zoom breathing a little, as a person at rest does)."""
    import av

    folder = tmp_path_factory.mktemp("enroll")
    face = cv2.imread(str(PORTRAIT))
    height, width = face.shape[:2]
    clip = folder / "rest.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(16):
            zoom = cv2.getRotationMatrix2D((width / 2, height / 2), 0, 1 + 0.01 * (i % 4))
            frame = cv2.warpAffine(face, zoom, (width, height), borderMode=cv2.BORDER_REPLICATE)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())
    pack = folder / "astronaut.face"
    enrolled = cli("enroll", str(clip), "--out", str(pack), "--consent", CONSENT)
    assert enrolled.returncode == 0 and pack.is_file(), enrolled.stderr
    return pack


@pytest.mark.integration
def test_a_face_pack_is_checked_shown_with_its_consent_and_applied(browser, kiosk, face_pack, tmp_path):
    """The same upload takes a face pack: a damaged one is refused with the reason and nothing
    changes; a good one is stored beside the config, its consent statement shown, and the kiosk,
    once in puppet mode, speaks with it."""
    page(browser, kiosk)
    generation = kiosk.metrics()["ventriloquist_pipeline_generation"]
    before = kiosk.config.read_text()
    files = sorted(p.name for p in kiosk.folder.iterdir())

    data = face_pack.read_bytes()
    damaged = tmp_path / "damaged.face"
    damaged.write_bytes(
        data[:2000] + bytes(b ^ 0xFF for b in data[2000:8000]) + data[8000:]
    )  # a bad copy: bytes flipped
    cut = tmp_path / "cut.face"
    cut.write_bytes(data[: len(data) // 2])  # an upload that stopped half way
    for bad, reason in (
        (damaged, r"the uploaded face pack is (damaged|not a readable face pack) \("),
        (cut, r"the uploaded face pack is not a readable face pack \("),
    ):
        shown = upload(
            browser, bad
        )  # (which one a flipped byte gives depends on where it lands: a deflate stream or a checksum)
        assert re.search(reason, shown) and "fix: enroll the clip again" in shown and "Traceback" not in shown, shown
    assert kiosk.config.read_text() == before and sorted(p.name for p in kiosk.folder.iterdir()) == files
    assert kiosk.metrics()["ventriloquist_pipeline_generation"] == generation

    shown = upload(browser, face_pack)
    assert "face pack 270x360, one face" in shown and CONSENT in shown, shown
    stored = kiosk.folder / "portrait.face"
    assert stored.read_bytes() == data
    assert f"portrait: file://{stored}" in kiosk.config.read_text()
    _wait_for(lambda: kiosk.metrics()["ventriloquist_pipeline_generation"] == generation + 1, WAIT_S, "the reload")
    if (
        "mode: puppet" not in kiosk.config.read_text()
    ):  # the kiosk mirrors its camera: the portrait shows in puppet mode
        page(browser, kiosk)
        set_editor(browser, kiosk.config.read_text() + "mode: puppet\n")
        browser.find_element("id", "config-apply").click()
        wait(browser, lambda: text_of(browser, "config-result").startswith("Applied"), "the apply")
    _wait_for(
        lambda: "face pack portrait.face: " in kiosk.log() and f"consent: {CONSENT}" in kiosk.log(),
        WAIT_S,
        "the kiosk to load the pack",
    )
    kiosk.wait_healthy()
    assert kiosk.frames_grow()
    page(browser, kiosk)  # a fresh page, as anyone opening the console later, says whose likeness speaks
    wait(browser, lambda: text_of(browser, "mode") == "puppet", "the page to show puppet mode")
    wait(browser, lambda: CONSENT in text_of(browser, "portrait-now"), "the page to show the pack's consent")
    assert text_of(browser, "portrait-now").startswith("Speaking with the face pack portrait.face (enrolled 20")


@pytest.mark.integration
def test_writes_from_anywhere_but_the_page_are_refused(browser, kiosk):
    page(browser, kiosk)
    csrf = browser.find_element("css selector", 'meta[name="csrf-token"]').get_attribute("content")
    before = kiosk.config.read_text()
    body = json.dumps({"text": before + "# sent from elsewhere\n"}).encode()  # a text that proves
    json_type = {"Content-Type": "application/json"}
    assert kiosk.request("/api/config/apply", body, json_type)[0] == 403  # no CSRF token
    assert kiosk.request("/api/config/apply", body, {**json_type, "X-CSRF-Token": "guess"})[0] == 403
    other_site = {**json_type, "X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    assert kiosk.request("/api/config/apply", body, other_site)[0] == 403
    rebound = {"Host": f"evil.example:{kiosk.port}"}  # DNS rebinding: another name for 127.0.0.1
    assert kiosk.request("/api/status", None, rebound)[0] == 403
    assert kiosk.config.read_text() == before
    assert kiosk.request("/api/config/check", body, {**json_type, "X-CSRF-Token": csrf})[0] == 200


@pytest.mark.integration
def test_a_kiosk_that_cannot_start_is_fixed_from_the_console(browser, tmp_path, xvfb, voice):
    """`run --kiosk` with a broken file shows the error card and waits; the console serves the
    file's editor meanwhile (on the file's own health section, which is valid)."""
    port = free_port()
    config = tmp_path / "config.yaml"
    fixed = (f"sources: {{audio: 'file://{voice}', camera: 'file://{PORTRAIT}'}}\nvideo: {{width: 480, height: 270}}\n"
             f"output: {{uri: 'null://'}}\nhealth: {{port: {port}}}\n")  # fmt: skip
    config.write_text(fixed + "renderer: {mouth_gian: 2}\n")
    kiosk = LoggedKiosk(config, {"DISPLAY": xvfb}, port, tmp_path / "kiosk.log", args=("--kiosk",))
    try:
        _wait_for(lambda: _answers(kiosk), 60, "the console of the waiting kiosk")
        assert kiosk.request("/healthz")[0] == 503  # no frames: it is waiting
        page(browser, kiosk)
        assert "mouth_gian" in browser.find_element("id", "config-text").get_attribute("value")
        set_editor(browser, fixed)
        browser.find_element("id", "config-apply").click()
        wait(browser, lambda: text_of(browser, "config-result").startswith("Applied"), "the apply")
        kiosk.wait_healthy()
        assert config.read_text() == fixed
        wait(browser, lambda: number_in(browser, "fps") > 5, "the page to show the kiosk running")
        browser.find_element("id", "config-check").click()  # the same page still may write
        wait(
            browser,
            lambda: text_of(browser, "config-result").startswith("OK (mode mirror"),
            "a check by the running kiosk",
        )
    finally:
        log = kiosk.stop()
    assert "refusing to start" in log and "config error" in log


def _answers(kiosk: LoggedKiosk) -> bool:
    if kiosk.process.poll() is not None:
        raise AssertionError(kiosk.log()[-3000:])
    try:
        return kiosk.request("/healthz")[0] in (200, 503)
    except OSError:
        return False


@pytest.mark.integration
def test_off_loopback_the_token_is_required(browser, tmp_path, voice):
    port = free_port()
    config = tmp_path / "config.yaml"
    base = (f"sources: {{audio: 'file://{voice}', camera: 'file://{PORTRAIT}'}}\nvideo: {{width: 480, height: 270}}\n"
            f"output: {{uri: 'null://'}}\nhealth: {{bind: 127.0.0.2, port: {port}}}\n")  # fmt: skip
    config.write_text(base)
    refused = cli("config", "check", str(config))
    assert refused.returncode == 3 and "console.token must be set" in refused.stderr
    config.write_text(base + f"console: {{token: {TOKEN}}}\n")
    kiosk = LoggedKiosk(config, {}, port, tmp_path / "kiosk.log", host="127.0.0.2")
    try:
        kiosk.wait_healthy()
        for path in ("/", "/metrics", "/healthz", "/api/status", "/api/config"):
            assert kiosk.request(path)[0] == 401, path
            assert kiosk.request(path, headers={"Authorization": "Bearer not-the-token-at-all"})[0] == 401, path
        assert kiosk.get("/metrics")[0] == 200  # how Prometheus scrapes it: authorization: {credentials: TOKEN}
        browser.get(kiosk.url("/"))
        body_shows(browser, "needs the token")
        browser.find_element("id", "token").send_keys("a-wrong-guess-of-it")
        browser.find_element("id", "sign-in").click()
        body_shows(browser, "not the one in console.token")  # on the page the sign-in answers with
        browser.find_element("id", "token").send_keys(TOKEN)
        browser.find_element("id", "sign-in").click()
        wait(browser, lambda: browser.find_elements("id", "fps") and number_in(browser, "fps") > 5, "the console")
        assert TOKEN not in json.dumps(browser.get_cookies())  # the session cookie is not the token itself
        # console.preview is off here: nothing of the screen (the camera's face) is served, even signed in
        assert kiosk.get("/api/preview.jpg")[0] == 404
        wait(
            browser,
            lambda: browser.find_element("id", "preview-off").is_displayed(),
            "the page to say the preview is off",
        )
        assert not browser.find_element("id", "preview").is_displayed()
    finally:
        kiosk.stop()


def test_the_hardened_unit_lets_the_console_write_the_config_folder_only():
    """Under ProtectSystem=strict the kiosk may write its engine cache and the config folder that
    the console writes into (its config file is there); `systemd-analyze verify` of the unit is
    `test_appliance.test_systemd_unit_verifies`."""
    lines = [line.strip() for line in (PROJECT / "systemd" / "ventriloquist.service").read_text().splitlines()]
    assert "ProtectSystem=strict" in lines
    writable = {line.partition("=")[2] for line in lines if line.startswith("ReadWritePaths=")}
    assert writable == {"/etc/ventriloquist", "/var/cache/ventriloquist"}
    start = next(line for line in lines if line.startswith("ExecStart="))
    assert "--config /etc/ventriloquist/config.yaml" in start


def test_the_console_writes_plain_names_inside_the_config_folder_only(tmp_path):
    from firmware_app.errors import ConfigError
    from firmware_app.web.console.configfile import ConfigFolder

    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "config.yaml"
    # a file stands in for the camera: Apply proves the config, and this machine has none
    config.write_text(
        f"# mine\nvideo: {{width: 640, height: 360}}  # small\nsources: {{camera: 'file://{PORTRAIT}'}}\n"
    )
    files = ConfigFolder(config)
    for name in ("../escape.jpg", "/etc/passwd", "sub/portrait.jpg", ".hidden", "config.yaml.bak", ".."):
        with pytest.raises(ConfigError):
            files.store(name, b"x")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["config.yaml", "etc"]
    changed = files.with_keys({"audio.passthrough_trim_ms": 40.0})
    assert (
        changed.startswith("# mine\nvideo: {width: 640, height: 360}  # small\n")
        and "passthrough_trim_ms: 40.0" in changed
    )
    files.apply(changed)
    assert config.read_text() == changed and (folder / "config.yaml.bak").read_text().startswith("# mine")
    with pytest.raises(ConfigError, match="passthrough_trim_ms"):
        files.apply(files.with_keys({"audio.passthrough_trim_ms": 900}))  # out of range: nothing written
    assert config.read_text() == changed
    with pytest.raises(ConfigError, match="no config file"):
        ConfigFolder(None).store("portrait.jpg", b"x")


def test_on_loopback_only_loopback_names_are_answered():
    from firmware_app.config import Settings, with_changes
    from firmware_app.web.console.security import Policy

    loopback = Policy(Settings())
    assert not loopback.token_required
    for host in ("127.0.0.1:8095", "localhost:9000", "[::1]:8095", "localhost"):
        assert loopback.host_allowed(host), host
    for host in ("evil.example:8095", "127.0.0.1.evil.example", "", "kiosk.local:8095"):
        assert not loopback.host_allowed(host), host
    bound = Policy(with_changes(Settings(), {"health.bind": "0.0.0.0", "console.token": TOKEN}))
    assert bound.token_required and bound.host_allowed("kiosk.local:8095")
    assert Policy(with_changes(Settings(), {"console.token": TOKEN})).token_required  # set: always asked for


def test_a_portrait_clip_is_checked_like_a_still(tmp_path):
    """A clip passes on its first frame's one face; a cut-off clip or a huge still is refused
    with the reason, never a traceback."""
    import av

    from firmware_app.config import DisclosureSettings
    from firmware_app.errors import MediaError
    from firmware_app.web.console.portrait import check_portrait

    face = cv2.resize(cv2.imread(str(PORTRAIT)), (360, 480))
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 360, 480, "yuv420p"
        for _ in range(25):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(face, format="bgr24")))
        container.mux(stream.encode())
    model, marked = "bundled://models/face_landmarker.task", DisclosureSettings()
    checked = check_portrait(clip.read_bytes(), model, marked)
    assert checked.clip and checked.extension == "mp4" and (checked.width, checked.height) == (360, 480)
    for data, reason in (
        (clip.read_bytes()[:3000], "upload"),  # cut off in the middle of its header or first frame
        (b"", "empty"),
        (cv2.imencode(".png", np.zeros((9000, 200, 3), np.uint8))[1].tobytes(), "9000"),
    ):
        with pytest.raises(MediaError, match=reason):
            check_portrait(data, model, marked)


@pytest.mark.integration
def test_a_face_pack_must_record_consent_and_keep_the_mark(face_pack, monkeypatch):
    """What the kiosk would refuse to load is refused at the upload, each with its reason: a pack
    without a consent statement, one of another format, any pack while the mark is off, and one
    that unpacks to more than a pack holds (here with the limit lowered below this small pack's)."""
    import io
    import zipfile

    from firmware_app.config import DisclosureSettings
    from firmware_app.errors import ConfigError, MediaError
    from firmware_app.web.console.portrait import check_portrait

    def changed(edit) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(face_pack) as pack, zipfile.ZipFile(out, "w") as copy:
            for name in pack.namelist():
                member = pack.read(name)
                if name == "manifest.json":
                    manifest = json.loads(member)
                    edit(manifest)
                    member = json.dumps(manifest).encode()
                copy.writestr(name, member)
        return out.getvalue()

    model, marked = "bundled://models/face_landmarker.task", DisclosureSettings()
    assert check_portrait(face_pack.read_bytes(), model, marked).consent == CONSENT
    with pytest.raises(MediaError, match="the uploaded face pack records no consent statement"):
        check_portrait(changed(lambda m: m.pop("consent")), model, marked)
    with pytest.raises(
        MediaError, match="the uploaded face pack is a face pack of format 2; this version reads format 1"
    ):
        check_portrait(changed(lambda m: m.update(format_version=2)), model, marked)
    with pytest.raises(ConfigError, match="cannot be switched off while a face pack is in use"):
        check_portrait(face_pack.read_bytes(), model, DisclosureSettings(enabled=False))
    monkeypatch.setattr("firmware_app.web.console.portrait.MAX_PACK_UNPACKED", 64 * 1024)
    with pytest.raises(MediaError, match=r"the uploaded face pack unpacks to \d+ MiB; a face pack holds at most 0 MiB"):
        check_portrait(face_pack.read_bytes(), model, marked)
