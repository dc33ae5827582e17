"""The paper's figures and the harness's diagnostics, rendered from run outputs (PNG + PDF, matplotlib).

* :func:`figure2` - the Figure 2 analogue: per task, the same test inputs through the Original and every
  method with and without VEM (the generated test images are read back from the runs' PNG zips);
* :func:`curves` - held-out val learning curves per (method, add-on) cell: mean over seeds, min-max band;
* :func:`vem_diagnostics` - VEM's energy gap, Langevin displacement and the gradient probe over training;
* :func:`addon_effects` - a forest plot of every add-on's paired effect against its method, 95 % CI.

Each function takes plain paths/labels (the workflow's plan lists them) and writes ``out`` (.png) and its
.pdf twin. Nothing here trains or scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LABEL_COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                          [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]], np.uint8)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out) -> list[str]:
    from .utils import atomic_write_bytes

    out = Path(out)
    written = []
    for path in (out, out.with_suffix(".pdf")):
        import io

        buf = io.BytesIO()
        # fixed metadata: the same inputs give the same bytes
        meta = {"Software": None} if path.suffix == ".png" else {"CreationDate": None, "Producer": None}
        fig.savefig(buf, format=path.suffix[1:], dpi=150, bbox_inches="tight", metadata=meta)
        atomic_write_bytes(path, buf.getvalue())
        written.append(str(path))
    _plt().close(fig)
    return written


def _zip_images(path, n: int) -> list[np.ndarray]:
    from .eval.images import read_zip_u8

    out: list[np.ndarray] = []
    for batch in read_zip_u8(path, n):
        out.extend(batch)
        break
    return out[:n]


def input_images(task: str, data_path, n: int, overrides: dict | None = None) -> list[np.ndarray]:
    """The first ``n`` test inputs of a task as displayable uint8 images (label maps coloured; an unconditional
    task's real test images, its inputs being latents)."""
    from .config import resolve
    from .data.taskdata import open_task_data

    data = open_task_data(data_path, task, resolve(task, overrides or {}))
    side = "B" if data.spec.kind == "unconditional" else "A"
    x = data.tensor("test", side)[np.arange(min(n, data.n("test", "A")))]
    if x.shape[1] > 3:       # one-hot label maps: colour the class ids
        return [LABEL_COLOURS[ids % len(LABEL_COLOURS)] for ids in x.argmax(1).numpy()]
    u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().byte()
    return [im[0].numpy() if im.shape[0] == 1 else im.permute(1, 2, 0).numpy() for im in u8]


def figure2(panels: list[dict], out, n: int = 4, overrides: dict | None = None,
            unconditional: bool = False) -> list[str]:
    """``panels``: per task ``{"task", "data", "columns": [[label, images.zip], ...]}``; one row per test input
    (``n`` per task), the input first, then each column's image of the same input. ``unconditional``: the
    Figure 3 analogue (the first column real test images, the others the same test latents z)."""
    plt = _plt()
    n_cols = 1 + max(len(p["columns"]) for p in panels)
    n_rows = sum(n for _ in panels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.5 * n_cols, 1.5 * n_rows + 0.3), squeeze=False,
                             layout="constrained")
    row = 0
    for p in panels:
        ims = [input_images(p["task"], p["data"], n, overrides)] + [_zip_images(z, n) for _, z in p["columns"]]
        labels = ["real (test)" if unconditional else "input"] + [lab for lab, _ in p["columns"]]
        for i in range(n):
            for j in range(n_cols):
                ax = axes[row + i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(ims) and i < len(ims[j]):
                    im = ims[j][i]
                    ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
                else:
                    ax.axis("off")
                if i == 0 and j < len(labels):
                    ax.set_title(labels[j], fontsize=7)
            axes[row + i, 0].set_ylabel(p["task"] if i == 0 else "", fontsize=6)
        row += n
    fig.suptitle("Figure 3 analogue: real images, then the same latents z through the Original and each method"
                 if unconditional else "Figure 2 analogue: the same test inputs through the Original and each method",
                 fontsize=8)
    fig.text(0.5, 0.0, "seed of the first run; at mini scale these are not the paper's images", ha="center",
             fontsize=6)
    return _save(fig, out)


def _curve_stack(paths, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(iterations, values seeds x points) of one column over several runs' curves (common iterations)."""
    frames = [pd.read_csv(p) for p in paths]
    # the points that have the column (GAN-Compression's supernet rows carry val_largest/val_smallest, its
    # export row the student's val at the same iteration)
    frames = [f.dropna(subset=[column]).drop_duplicates("iter", keep="last") for f in frames if column in f.columns]
    if not frames:
        return None
    common = sorted(set.intersection(*(set(f["iter"]) for f in frames)))
    if not common:
        return None
    vals = np.stack([f.set_index("iter").loc[common, column].to_numpy(float) for f in frames])
    return np.array(common), vals


def curves(task: str, metric: str, cells: list[dict], out) -> list[str]:
    """``cells``: ``{"method", "label", "curves": [curve.csv per seed]}``; one panel per method, one line per
    add-on (mean over seeds) with the min-max band of the seeds."""
    plt = _plt()
    methods = list(dict.fromkeys(c["method"] for c in cells))
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.2), squeeze=False, layout="constrained")
    for ax, m in zip(axes[0], methods):
        for c in (c for c in cells if c["method"] == m):
            st = _curve_stack(c["curves"], "val")
            if st is None:
                continue
            it, v = st
            line, = ax.plot(it, v.mean(0), marker="o" if len(it) < 3 else None, label=f"{c['label']} (n={len(v)})")
            ax.fill_between(it, v.min(0), v.max(0), color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"val {metric}")
        ax.set_title(m, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{task}: held-out val curves (mean over seeds, band = min-max)", fontsize=9)
    return _save(fig, out)


DIAGNOSTICS = [("energy_gap", "energy gap E(neg) - E(pos)"), ("langevin_disp", "Langevin displacement |neg - s|"),
               ("probe_ratio_out", "|grad add-on| / |grad method| at s"),
               ("probe_cos_to_positive", "cos(-grad add-on, t+ - s)")]


def vem_diagnostics(rows: list[dict], out) -> list[str]:
    """``rows``: per (task, method) ``{"label", "curves": [VEM runs' curve.csv]}``; one row of panels each:
    the DIAGNOSTICS columns over training, mean over seeds with the min-max band."""
    plt = _plt()
    fig, axes = plt.subplots(len(rows), len(DIAGNOSTICS), figsize=(3.3 * len(DIAGNOSTICS), 2.4 * len(rows)),
                             squeeze=False, layout="constrained")
    for r, axrow in zip(rows, axes):
        for (col, title), ax in zip(DIAGNOSTICS, axrow):
            st = _curve_stack(r["curves"], col)
            if st is not None:
                it, v = st
                line, = ax.plot(it, np.nanmean(v, 0))
                ax.fill_between(it, np.nanmin(v, 0), np.nanmax(v, 0), color=line.get_color(), alpha=0.2, linewidth=0)
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, fontsize=7)
            if col == "probe_cos_to_positive":
                ax.axhline(0, color="k", linewidth=0.6)
                ax.set_ylim(-1.05, 1.05)
            if col == "probe_ratio_out":
                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(_plt().NullFormatter())
            ax.set_title(title, fontsize=7)
            if col == DIAGNOSTICS[0][0]:
                ax.set_ylabel(r["label"], fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle("VEM diagnostics over training (curve points average the iterations between them)", fontsize=9)
    return _save(fig, out)


def addon_effects(table_csv, out) -> list[str]:
    """Forest plot from a rendered table (table 4): per task, every add-on's paired difference to its method
    alone with its 95 % confidence interval; the sign convention follows the task's metric."""
    plt = _plt()
    df = pd.read_csv(table_csv)
    df = df[df["block"].astype(str).str.startswith("measured") & df["delta_paired"].notna()]
    tasks = list(dict.fromkeys(df["task"]))
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(4.0 * max(1, len(tasks)), 0.5 + 0.35 * max(
        (len(df[df.task == t]) for t in tasks), default=1)), squeeze=False, layout="constrained")
    for ax, t in zip(axes[0], tasks):
        g = df[df.task == t].iloc[::-1]
        y = np.arange(len(g))
        lo, hi = g["delta_ci_low"].to_numpy(float), g["delta_ci_high"].to_numpy(float)
        mid = g["delta_paired"].to_numpy(float)
        ax.errorbar(mid, y, xerr=[mid - lo, hi - mid], fmt="o", capsize=3, markersize=4)
        ax.axvline(0, color="k", linewidth=0.7)
        ax.set_yticks(y, g["method"], fontsize=7)
        better = "higher" if "higher is better" in str(g["metric"].iloc[0]) else "lower"
        ax.set_xlabel(f"paired difference to the method alone ({better} is better)", fontsize=7)
        ax.set_title(t, fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle("Add-on effects: paired difference over matching seeds, 95 % CI", fontsize=9)
    return _save(fig, out)
