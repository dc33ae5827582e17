#!/usr/bin/env python3
"""Shell ``export`` lines that make ``uv pip install`` read the package sources pip is configured with here.

    eval "$(.venv/bin/python scripts/uv_env.py)"      # `make setup INSTALLER=uv` does this

uv does not read pip's configuration files or ``PIP_*`` variables. This reads what ``pip config list`` reports
(files and environment) and maps the keys that choose *which* packages install: ``index-url``,
``extra-index-url``, ``find-links``, ``constraint`` (a machine's local wheels and version caps) and ``cert``,
``default-timeout``. pip takes the best version across all its indexes; uv, by default, the first index that has
the package, so ``UV_INDEX_STRATEGY=unsafe-best-match`` is set too: both resolve the same versions. A variable
already set (``UV_...``) wins. Other pip keys do not change what installs and are not mapped.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

# pip key -> (uv variable, how uv separates several values)
KEYS = {"index-url": ("UV_INDEX_URL", None), "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
        "find-links": ("UV_FIND_LINKS", ","), "constraint": ("UV_CONSTRAINT", " "),
        "cert": ("SSL_CERT_FILE", None), "default-timeout": ("UV_HTTP_TIMEOUT", None)}
# which of pip's sections win, lowest first (pip: global < install < the PIP_* environment)
SECTIONS = ("global", "install", ":env:")


def parse(listing: str) -> dict[str, str]:
    """``pip config list`` lines (``section.key='value'``) -> {uv variable: value}; later sections win."""
    found: dict[str, dict[str, str]] = {s: {} for s in SECTIONS}
    for line in listing.splitlines():
        name, sep, value = line.partition("=")
        section, dot, key = name.rpartition(".")
        if not (sep and dot) or section not in found or key not in KEYS:
            continue
        found[section][key] = " ".join(shlex.split(value))
    env = {"UV_INDEX_STRATEGY": "unsafe-best-match"}
    for section in SECTIONS:
        for key, value in found[section].items():
            var, joiner = KEYS[key]
            env[var] = joiner.join(value.split()) if joiner else value
    return env


def main() -> int:
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             check=True).stdout
    for var, value in parse(listing).items():
        if var not in os.environ:
            print(f"export {var}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
