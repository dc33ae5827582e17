"""What a stage is given when it runs (job time; imports torch): :class:`StageContext`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .base import Stage


@dataclasses.dataclass
class StageContext:
    """One stage of one method on one task.

    ``cfg`` is the resolved configuration (``cfg[method]`` is the method's section), ``data`` the task's
    prepared data, ``inputs`` the checkpoints of the stages and shared inputs the stage ``needs`` (by
    name), ``evalnet`` the file of the task's metric network (val curves). ``addon`` / ``lambda_mi`` are the
    run's for run-scoped stages ("none" / None otherwise; ``lambda_mi`` None = the configured default);
    ``trains_addon``: this stage is the method's add-on stage (the only one that may build it).
    ``keep_snapshots``: keep the student's weights at every curve point (best-on-test selection).
    """

    cfg: dict
    method: str
    stage: Stage
    data: object
    seed: int
    inputs: dict[str, Path]
    evalnet: Path
    addon: str = "none"
    lambda_mi: float | None = None
    resumer: object = None
    keep_snapshots: bool = False
    trains_addon: bool = True

    @property
    def spec(self):
        return self.data.spec

    @property
    def section(self) -> dict:
        return self.cfg[self.method]

    @property
    def image_size(self) -> int:
        """The side of the images this stage trains on (``data.crop_size`` at paper scale, else the task's size):
        what an add-on built for them is told (``build_addon``)."""
        from ..config import image_size

        return image_size(self.cfg)

    def load(self, name: str) -> dict:
        """The checkpoint of an input the stage needs."""
        from ..utils import load_checkpoint

        if name not in self.inputs:
            raise ValueError(f"stage {self.stage.name} of {self.method} needs the input {name!r} "
                             f"(python -m vem stage ... --input {name}=PATH)")
        return load_checkpoint(self.inputs[name])

    def perceptual(self):
        from ..models.evalnets import load_perceptual

        if "perceptual" not in self.inputs:
            raise ValueError(f"stage {self.stage.name} of {self.method} needs --input perceptual=PATH")
        return load_perceptual(self.inputs["perceptual"], self.spec.scale)

    def lpips(self):
        """The frozen LPIPS distance of the task's scale (``forward(x, y)``: per sample); needs ``perceptual``
        (and at paper scale ``lpips``, the linear heads)."""
        from ..models.evalnets import load_lpips

        if "perceptual" not in self.inputs:
            raise ValueError(f"stage {self.stage.name} of {self.method} needs --input perceptual=PATH")
        if self.spec.scale == "paper" and "lpips" not in self.inputs:
            raise ValueError(f"stage {self.stage.name} of {self.method} needs --input lpips=PATH (the linear heads)")
        return load_lpips(self.spec.scale, self.inputs["perceptual"], self.inputs.get("lpips"))

    def scorer(self):
        """A new scorer of the held-out val metric (call it where the stage's RNG order expects it)."""
        from ..eval import ValScorer

        return ValScorer(self.data, self.evalnet, self.cfg)

    def build_addon(self, channels: int, image_size: int, n_data: int, t_channels: int | None = None):
        from ..config import addon_kwargs
        from ..mi import build_addon

        if not self.trains_addon:
            raise ValueError(f"stage {self.stage.name} of {self.method} does not train with the add-on; its add-on "
                             "stage does (vem.methods.Method.addon_stage)")
        return build_addon(self.addon, channels=channels, t_channels=t_channels or channels, image_size=image_size,
                           n_data=n_data, **addon_kwargs(self.cfg, self.addon, self.lambda_mi))

    def probe_due(self, it: int) -> bool:
        """Whether student iteration ``it`` runs the gradient probe (``addon.probe_every``; never for 'none')."""
        k = self.cfg["addon"]["probe_every"]
        return self.addon != "none" and k > 0 and it % k == 0

    def mi_term(self, addon, positive, s, idx, it: int, loss, params, what: str = "student"):
        """The add-on's part of one iteration: its own ``fit_step`` on (positive, s detached), its loss term on
        s, and the gradient probe when due (``loss`` = the method's own loss, ``params`` the student's);
        (mi, stats). For 'none', or ``addon`` None (a phase without the add-on): (0, {}). A non-finite value stops
        the run, naming the iteration (``what`` names the phase)."""
        from ..mi import NonFiniteError, gradient_probe

        if addon is None or self.addon == "none":
            return s.new_zeros(()), {}
        try:
            stats = dict(addon.fit_step(positive, s.detach(), idx))
            mi = addon.loss(positive, s, idx)
        except NonFiniteError as e:
            raise NonFiniteError(f"{e} (at {what} iteration {it}; the run is stopped, no metrics are "
                                 "written)") from None
        if self.probe_due(it):
            stats.update(gradient_probe(loss, mi, s, params, positive))
        return mi, stats

    def loop(self, desc: str, total: int, state: dict, rng, **kw):
        """A :class:`vem.train.Loop` that saves to and resumes from this stage's resume file."""
        from ..train import Loop

        return Loop(desc, total, state, rng, resumer=self.resumer, **kw)
