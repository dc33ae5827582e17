"""scripts/uv_env.py: `make setup INSTALLER=uv` installs from the sources pip is configured with."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("uv_env", ROOT / "scripts" / "uv_env.py")
uv_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(uv_env)


def test_pip_keys_map_to_uv_variables_and_the_environment_wins_over_files():
    listing = "\n".join([
        "global.find-links='/opt/wheels /srv/more'",
        "global.extra-index-url='file:///a/simple file:///b/simple'",
        "global.constraint='/etc/caps.txt'",
        "global.index-url='https://mirror.example/simple'",
        "global.disable-pip-version-check='1'",        # does not change what installs: not mapped
        "install.default-timeout='60'",
        ":env:.default-timeout='180'",                 # PIP_DEFAULT_TIMEOUT beats the files
        ":env:.find-links='/opt/wheels'",
        "user.cert='/x.pem'",                          # a section pip's install does not read
    ])
    assert uv_env.parse(listing) == {
        "UV_INDEX_STRATEGY": "unsafe-best-match",      # pip's choice: the best version across indexes
        "UV_FIND_LINKS": "/opt/wheels",
        "UV_EXTRA_INDEX_URL": "file:///a/simple file:///b/simple",
        "UV_CONSTRAINT": "/etc/caps.txt",
        "UV_INDEX_URL": "https://mirror.example/simple",
        "UV_HTTP_TIMEOUT": "180",
    }
    assert uv_env.parse("global.find-links='/a /b'")["UV_FIND_LINKS"] == "/a,/b"   # uv's list is comma-separated
    assert uv_env.parse("") == {"UV_INDEX_STRATEGY": "unsafe-best-match"}


def test_the_script_prints_exports_a_shell_can_eval_and_keeps_variables_already_set(tmp_path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nfind-links = /opt/wheels\nextra-index-url = file:///a/simple file:///b/simple\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=str(conf), UV_HTTP_TIMEOUT="7")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "uv_env.py")], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout
    shown = subprocess.run(["bash", "-c", out + '\nprintf "%s|%s|%s" "$UV_FIND_LINKS" "$UV_EXTRA_INDEX_URL" '
                            '"$UV_HTTP_TIMEOUT"'], capture_output=True, text=True, env=env, check=True).stdout
    assert shown == "/opt/wheels|file:///a/simple file:///b/simple|7", out
    assert all(shlex.split(line)[0] == "export" for line in out.splitlines())
