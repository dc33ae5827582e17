import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from threads, and with 2 intra-op threads on a 2-core machine that
    is also running other work, OpenMP spin-waiting made single tests 30x slower (1.6 s -> 50 s)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def run_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def fmnist_available() -> bool:
    from vem.data import fmnist

    try:
        fmnist.find_file("train_images", ROOT / "resources" / "fmnist")
        return True
    except fmnist.DataMissingError:
        return False
