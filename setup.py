"""Distribution metadata for pineapple-jobd."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "pineapple" / "__init__.py").read_text()).group(1)

setup(
    name="pineapple-jobd",
    version=VERSION,
    description="Dependency job daemon for OpenWrt devices such as the WiFi Pineapple",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["pineapple", "pineapple.*"]),
    install_requires=["sh>=2.0", "paho-mqtt>=2.0"],
    entry_points={
        "console_scripts": [
            "pineapple-jobd=pineapple.daemon.main:main",
            "pineapple-jobs=pineapple.cli.main:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "License :: OSI Approved :: MIT License",
    ],
)
