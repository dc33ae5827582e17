"""The saved-activation meter of benchmarks/paper_memory.py against graphs whose saved bytes are known by hand."""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from paper_memory import SavedBytes  # noqa: E402


def _graph(x, w, view=False):
    # a linear layer saves x (for w's gradient) and w (for x's: a parameter, apart - as its view w.t() is);
    # relu saves its output
    return torch.relu(x @ w.t() if view else torch.nn.functional.linear(x, w)).sum()


def test_saved_bytes_are_counted_once_while_alive_and_parameters_apart():
    w = torch.nn.Parameter(torch.randn(10, 1000))
    x1, x2 = (torch.randn(1, 1000, requires_grad=True) for _ in range(2))
    one = 1000 * 4 + 10 * 4                                   # x (float32) + relu's 10 outputs
    with SavedBytes() as m:
        _graph(x1, w).backward()
    assert m.peak == one and m.params == {w.untyped_storage().data_ptr(): 10_000 * 4} and m.backwards == 1
    with SavedBytes() as m:                                   # one graph after the other: freed in between
        _graph(x1, w).backward()
        del x1
        _graph(x2, w).backward()
    assert m.peak == one and m.backwards == 2
    with SavedBytes() as m:                                   # two graphs alive at once add up ...
        a, b = _graph(x2, w), _graph(torch.randn(1, 1000, requires_grad=True), w, view=True)
        (a + b).backward()
    assert m.peak == 2 * one
    with SavedBytes() as m:                                   # ... and a storage saved twice counts once
        (_graph(x2, w) + _graph(x2, w)).backward()
    assert m.peak == 1000 * 4 + 2 * 10 * 4
    assert torch.autograd.backward.__module__ == "torch.autograd"   # the meter leaves backward as it was


def test_an_address_freed_and_given_to_a_later_storage_is_counted_again():
    w = torch.nn.Parameter(torch.randn(1000, 1000))

    def chain(n):                     # linear (saves x) + n + 1 relus, each saving its 1000 outputs
        h = torch.relu(torch.nn.functional.linear(torch.randn(1, 1000, requires_grad=True), w))
        for _ in range(n):
            h = torch.relu(h * 1.0)
        return h.sum()

    with SavedBytes() as m:
        chain(0).backward()           # frees its storages: the allocator hands their addresses out again
        chain(6).backward()
    assert m.peak == (1000 + 7 * 1000) * 4
