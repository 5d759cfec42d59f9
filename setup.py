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
    license="MIT",  # an SPDX expression; setuptools refuses License classifiers beside it
    python_requires=">=3.7",
    # The checkout root is the package root: an editable install then puts it
    # on sys.path with a plain .pth file (setuptools' static-path strategy),
    # so devtools/ and tests/ import as they do from a checkout.
    package_dir={"": "."},
    packages=find_packages(include=["pineapple", "pineapple.*"]),
    # The ranges OpenWrt's feeds ship: sh 1.14.3 (our feed, Python 3.7+)
    # and 2.x; paho-mqtt 1.5.1 (19.07, 21.02), 1.6.1 (22.03 to 24.10), 2.x.
    install_requires=["sh>=1.14.3,<3", "paho-mqtt>=1.5.1,<3"],
    entry_points={
        "console_scripts": [
            "pineapple-jobd=pineapple.daemon.main:main",
            "pineapple-jobs=pineapple.cli.main:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
    ],
)
