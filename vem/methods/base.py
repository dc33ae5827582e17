"""The method contract: a compression method is a short sequence of stages.

A method (one folder under ``baselines/``, registered through the ``vem.methods`` entry-point group)
declares its stages; the workflow derives every job from that declaration and the command
``python -m vem stage`` runs one. A stage has a *scope*:

=======  ===============================================================  ====================================
scope    runs once per                                                    file under results/runs/<task>/<method>/
=======  ===============================================================  ====================================
task     task (with the workflow's ``teacher_seed``); shared by every run  ``shared/<stage>.pt``
seed     (task, seed); shared by every add-on of that seed                ``shared/seed<s>/<stage>.pt``
run      (task, add-on, lambda_MI, seed)                                  ``<addon>_lam<λ>/seed<s>/<stage>.pt``
=======  ===============================================================  ====================================

The last stage yields the student; its files are ``student.pt`` and ``curve.csv`` (every other stage
writes ``<stage>.pt`` and ``<stage>.csv``: its checkpoint and its table - a learning curve, a pruning
trace, a search log). Exactly one stage trains with the MI add-on: the last one, unless a stage declares
``addon=True`` (GAN-Compression trains its supernet with the add-on, then searches and exports). That
stage and every later one run per run (scope ``run``); every run-scoped stage is told the run's add-on
and lambda_MI (they are in its record and configuration hash), only the add-on stage builds it. ``needs`` names the
earlier stages whose checkpoints a stage reads, and the shared inputs it uses (``SHARED_INPUTS``); the
prepared data and the task's evaluation network (val curves) reach every stage.

This module is torch-free: the workflow imports every method's declaration while it builds the DAG.
The training code of a method is imported by its ``run_stage`` only.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import ClassVar

SCOPES = ("task", "seed", "run")
SHARED_INPUTS = {
    "original": "the task's Original (uncompressed) generator, trained or imported",
    "perceptual": "the perceptual network of the task's scale (mini: PerceptualNet; paper: VGG16)",
    "lpips": "LPIPS's linear heads (paper: the lpips package's VGG v0.1 heads, on `perceptual`'s VGG16; "
             "mini: none - the PerceptualNet's taps channel-summed)",
    "face_parser": "the face parser of CAGC's content of interest (paper: BiSeNet 79999_iter.pth; mini: none)",
}
RESERVED = ("student", "curve", "metrics", "images", "samples")   # file names of the final stage and evaluation


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    scope: str
    needs: tuple[str, ...] = ()
    help: str = ""
    addon: bool = False      # trains the student with the MI add-on (default: the last stage does)

    def __post_init__(self):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name) or self.name in RESERVED:
            raise ValueError(f"stage name {self.name!r} must be a lower-case identifier other than {RESERVED}")
        if self.scope not in SCOPES:
            raise ValueError(f"stage {self.name!r}: scope must be one of {SCOPES}, got {self.scope!r}")


class Method:
    """Base class of a compression method. Subclasses set the class attributes and implement
    :meth:`stages` and :meth:`run_stage` (and :meth:`check` for cross-key rules)."""

    id: ClassVar[str]                 # e.g. "omgd": run folders results/runs/<task>/<id>/...
    title: ClassVar[str]              # the name tables print, e.g. "OMGD"
    config_file: ClassVar[Path]       # YAML: {mini|paper: {kinds: {<kind>: section}, tasks: {<task>: delta}}}
    schema: ClassVar[dict]            # JSON Schema of the resolved section cfg[<id>] (types, ranges, choices)
    # the keys of cfg[<id>] that weight the student's distillation from the teacher (not its GAN or
    # reconstruction-to-data terms): the positive control's 'nodistill' arm sets them to 0
    distill_keys: ClassVar[tuple[str, ...]] = ()
    # the last stage keeps the student at every curve point on request (checkpoint_selection best_on_val /
    # best_on_test);
    # False for a method whose student is not a training trajectory (a searched, exported sub-network)
    keeps_snapshots: ClassVar[bool] = True
    # combined with the MI add-ons (Table 4, dose-response, control, tuning); False: runs without one only
    # (a baseline row such as Slimming)
    combines_addons: ClassVar[bool] = True
    # the backbones of the Original it compresses (empty: any); ``methods: {m: all}`` skips other tasks
    originals: ClassVar[tuple[str, ...]] = ()

    def compresses(self, arch: str | None) -> bool:
        """Whether it compresses an Original of backbone ``arch`` (``originals``; empty: any)."""
        return not self.originals or arch in self.originals

    def stages(self, cfg: dict) -> tuple[Stage, ...]:
        """The stages for a resolved configuration (``cfg["kind"]``, ``cfg[<id>]``), in order."""
        raise NotImplementedError

    def check(self, cfg: dict) -> None:
        """Rules across keys that the schema cannot say; raise ``vem.schema.ConfigError`` naming the key."""

    def run_stage(self, stage: str, ctx) -> tuple[dict, list[dict]]:
        """Run one stage (``ctx``: :class:`vem.methods.context.StageContext`); return its checkpoint (a
        weights-only-loadable dict; the last stage's holds the student as ``backbone`` + ``state_dict``) and
        its table rows."""
        raise NotImplementedError

    # ---- derived ------------------------------------------------------------------------------------
    def checked_stages(self, cfg: dict) -> tuple[Stage, ...]:
        """:meth:`stages` with the contract's rules checked (names unique, needs resolvable, last = run)."""
        stages = tuple(self.stages(cfg))
        if not stages or stages[-1].scope != "run":
            raise ValueError(f"method {self.id}: the last stage must exist and have scope 'run'")
        flagged = [i for i, st in enumerate(stages) if st.addon]
        if len(flagged) > 1:
            raise ValueError(f"method {self.id}: only one stage trains with the add-on, got "
                             f"{[stages[i].name for i in flagged]}")
        for st in stages[flagged[0]:] if flagged else ():
            if st.scope != "run":
                raise ValueError(f"method {self.id}: stage {st.name!r} runs per {st.scope}; the add-on stage and every "
                                 "later stage train or use one run's student: it must have scope 'run'")
        seen: dict[str, Stage] = {}
        for st in stages:
            if st.name in seen:
                raise ValueError(f"method {self.id}: stage {st.name!r} is declared twice")
            for need in st.needs:
                if need not in seen and need not in SHARED_INPUTS:
                    raise ValueError(f"method {self.id}: stage {st.name!r} needs {need!r}, which is neither an "
                                     f"earlier stage nor one of {sorted(SHARED_INPUTS)}")
                if need in seen and SCOPES.index(seen[need].scope) > SCOPES.index(st.scope):
                    raise ValueError(f"method {self.id}: stage {st.name!r} (scope {st.scope}) cannot need "
                                     f"{need!r}, which runs per {seen[need].scope}")
            seen[st.name] = st
        return stages

    def stage(self, cfg: dict, name: str) -> Stage:
        stages = self.checked_stages(cfg)
        for st in stages:
            if st.name == name:
                return st
        raise ValueError(f"method {self.id} has no stage {name!r} for task {cfg['task']}; "
                         f"its stages: {[s.name for s in stages]}")

    def final(self, cfg: dict) -> Stage:
        return self.checked_stages(cfg)[-1]

    def addon_stage(self, cfg: dict) -> Stage:
        """The stage that trains with the MI add-on: the one declaring ``addon=True``, else the last."""
        stages = self.checked_stages(cfg)
        return next((st for st in stages if st.addon), stages[-1])
