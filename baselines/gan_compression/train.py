"""GAN-Compression's stages: ``supernet``, ``search`` and ``export`` (see ``baselines.gan_compression``).

Supernet step, in GAN-Compression's order (``ResnetSupernet.optimize_parameters``): both optimisers'
gradients cleared; one configuration sampled uniformly; the Original's output and maps without gradient;
the D loss 0.5 (D(s) fake + D(b) real) backward; D frozen; the G loss (with the D *before* its update)
backward; then the D and the G step. The adaptors (1x1 convolutions from the widest stream to the
Original's, N(0, 0.02) as ``init_net``) take the front input slices of their weights, as ``SuperConv2d``.

Search (``evolution_search.py``): the first population is drawn with arithmetic weights by position in each
choice list (``weighted_sample``; the lists are widest first, so the weights favour the *narrower* widths),
every later child by mutation (each gene redrawn uniformly with ``mutate_prob``) of a random parent or by
uniform crossover of two; a sample over the MAC budget is redrawn. Each generation ranks the population,
keeps the best ``parent_ratio`` as parents, records the best parent and adds ``population`` children.
The chosen configuration is the last recorded best (so the last generation's children are evaluated but not
ranked, as in the original). Scores are cached per configuration string.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vem.losses import gan_loss
from vem.metrics.cost import count_macs, count_macs_v001
from vem.metrics.slimmable import config_str, macs, parse_config
from vem.models import build, init_weights, load_generator, record
from vem.train import build_discriminator, check_finite, linear_decay
from vem.utils import seed_all

BACKBONE = "slimmable_mobile_resnet"


# ---- shared pieces ---------------------------------------------------------------------------------
def _original(ctx):
    """The Original as it is evaluated (its final weights, GAN-Compression's latest_net_G), frozen."""
    return load_generator(ctx.load("original")).eval().requires_grad_(False)


def _record(ctx, channels) -> dict:
    spec, c = ctx.spec, ctx.section
    return record(BACKBONE, in_nc=spec.in_channels, out_nc=spec.out_channels, channels=[int(v) for v in channels],
                  n_blocks=c["n_blocks"], dropout=0.0)


def _macs(ctx, config) -> int:
    spec = ctx.spec
    return macs(config, ctx.section["n_blocks"], spec.in_channels, spec.out_channels, spec.size, norms=True)


class Adaptors(nn.Module):
    """GAN-Compression's learnable 1x1 maps from the student's stream to the teacher's, one per tap; a
    narrower student uses the front input slices."""

    def __init__(self, s_width: int, t_widths: list[int]):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(s_width, t, 1) for t in t_widths])

    def forward(self, feats):
        return [F.conv2d(f, conv.weight[:, :f.shape[1]], conv.bias) for f, conv in zip(feats, self.convs)]


def _distill_loss(adaptors, s_feats, t_feats):
    return sum(F.mse_loss(a, t) for a, t in zip(adaptors(s_feats), t_feats))


def _train(ctx, G, teacher, D, adaptors, addon, iters, sample, desc, score):
    """The supernet loop (``sample(gen)`` -> the configuration of each iteration); shared with the fine-tune."""
    c, data, seed = ctx.section, ctx.data, ctx.seed
    params = list(G.parameters()) + list(adaptors.parameters()) + (addon.student_parameters() if addon else [])
    opt_g = torch.optim.Adam(params, lr=c["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=c["lr"], betas=(0.5, 0.999))
    scheds = [linear_decay(o, iters, c["decay_from"]) for o in (opt_g, opt_d)]
    gen = torch.Generator().manual_seed(seed)
    xa, xb = data.tensor("train", "A"), data.tensor("train", "B")
    mode = c["gan_mode"]

    def step(it):
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        config = sample(gen)
        idx = data.batch_indices(gen, c["batch"], side="A")
        a, b = xa[idx], xb[data.batch_indices(gen, c["batch"], side="B")]
        with torch.no_grad():
            t_out, t_feats = teacher.forward_features(a)
        s, s_feats = G.forward_features(a, config)
        D.requires_grad_(True)
        loss_d = 0.5 * (gan_loss(D(s.detach()), False, mode) + gan_loss(D(b), True, mode))
        loss_d.backward()
        D.requires_grad_(False)
        recon = F.l1_loss(s, t_out)
        adv = gan_loss(D(s), True, mode, for_discriminator=False)
        distill = _distill_loss(adaptors, s_feats, t_feats)
        loss = c["lambda_recon"] * recon + c["lambda_gan"] * adv + c["lambda_distill"] * distill
        mi, stats = ctx.mi_term(addon, t_out, s, idx, it, loss, G.parameters(), what="supernet")
        total = loss + mi
        check_finite(total, "supernet loss", it)
        total.backward()
        opt_d.step()
        opt_g.step()
        for sch in scheds:
            sch.step()
        stats.update(recon_loss=recon.item(), gan_loss=adv.item(), distill_loss=float(distill.detach()),
                     d_loss=loss_d.item(), method_loss=loss.item(), mi_loss=float(mi.detach()),
                     stream_width=s_feats[0].shape[1])
        return stats

    state = {"G": G, "adaptors": adaptors, "D": D, "opt_g": opt_g, "opt_d": opt_d, "sched_g": scheds[0],
             "sched_d": scheds[1]}
    if addon is not None:
        state["addon"] = addon
    loop = ctx.loop(desc, iters, state, gen, eval_every=c["eval_every"], score=score)
    return loop.run(step)


def _uniform(choices, gen) -> list[int]:
    return [ch[int(torch.randint(len(ch), (1,), generator=gen, device="cpu"))] for ch in choices]


def _weighted(choices, gen, w: float) -> list[int]:
    """GAN-Compression's ``ChannelConfigs.sample(weighted_sample=w)``, arithmetic weights by list position."""
    if w <= 1.0001:
        return _uniform(choices, gen)
    out = []
    for ch in choices:
        start = (len(ch) - 1) / (w - 1)
        weights = torch.tensor([start + i for i in range(len(ch))], dtype=torch.float64, device="cpu")
        out.append(ch[int(torch.multinomial(weights, 1, generator=gen))])
    return out


# ---- stages ----------------------------------------------------------------------------------------
def supernet(ctx) -> tuple[dict, list]:
    spec, c, data = ctx.spec, ctx.section, ctx.data
    seed_all(ctx.seed)
    teacher = _original(ctx)
    choices = c["choices"]
    widest, smallest = [max(ch) for ch in choices], [min(ch) for ch in choices]
    rec = _record(ctx, widest)
    G = init_weights(build(rec), "normal")                    # define_G: init_type normal, gain 0.02
    with torch.no_grad():
        t_widths = [f.shape[1] for f in teacher.forward_features(data.tensor("train", "A")[:1])[1]]
    adaptors = init_weights(Adaptors(G.stream_width(), t_widths), "normal")
    D = build_discriminator({"in_nc": spec.out_channels, "ndf": c["ndf"], "n_layers": c["n_layers_d"],
                             "norm": c["norm_d"]}, "normal")
    addon = ctx.build_addon(spec.out_channels, ctx.image_size, data.n("train", "A"))
    scorer = ctx.scorer()

    def score():   # GAN-Compression evaluates the largest and the smallest sub-network during training
        return {"val_largest": scorer(G.subnet(widest)), "val_smallest": scorer(G.subnet(smallest))}

    res = _train(ctx, G, teacher, D, adaptors, addon, c["iters"], lambda gen: _uniform(choices, gen),
                 f"GAN-Compression supernet+{ctx.addon} {spec.id} seed {ctx.seed}", score)
    ck = {"generator": rec, "state_dict": G.state_dict(), "adaptors": adaptors.state_dict(), "t_widths": t_widths,
          "discriminator": {"state_dict": D.state_dict()}, "curve": res.curve, "iters": c["iters"],
          "resumed_from": res.resumed_from}
    return ck, res.curve


class Search:
    """The evolutionary search's state (resumable: population, caches, best per generation, log)."""

    def __init__(self):
        self.population: list[dict] = []    # {"config", "macs", "val"}
        self.results: dict[str, float] = {}
        self.best: list[dict] = []
        self.log: list[dict] = []
        self.redraws = 0

    def state_dict(self) -> dict:
        return {"population": self.population, "results": self.results, "best": self.best, "log": self.log,
                "redraws": self.redraws}

    def load_state_dict(self, st: dict) -> None:
        self.population, self.results = list(st["population"]), dict(st["results"])
        self.best, self.log, self.redraws = list(st["best"]), list(st["log"]), int(st["redraws"])


def run_search(choices, budget: float, s: dict, count, evaluate, higher_is_better: bool, gen, resumer_loop):
    """The evolutionary search. ``count(config) -> MACs``, ``evaluate(config) -> val score`` (lower is better
    unless ``higher_is_better``), ``gen`` the torch generator of every draw, ``resumer_loop(state, step)``
    runs ``step(generation)`` for generations 1..G with resume. Returns the :class:`Search`."""
    state = Search()
    n_pop, n_mut = s["population"], int(round(s["mutation_ratio"] * s["population"]))
    n_par = int(round(s["parent_ratio"] * s["population"]))

    def draw(make, kind: str, generation: int) -> dict:
        for _ in range(s["max_redraws"]):
            config = make()
            m = count(config)
            if m <= budget:
                return {"config": config, "macs": m, "kind": kind, "generation": generation}
            state.redraws += 1
        raise RuntimeError(f"the search drew {s['max_redraws']} configurations over the budget {budget:.6g} in a "
                           f"row ({kind}); raise search.budget_macs or search.max_redraws")

    def scored(children: list[dict]) -> list[dict]:
        out = []
        for ch in children:
            key = config_str(ch["config"])
            cached = key in state.results
            if not cached:
                state.results[key] = float(evaluate(ch["config"]))
            item = {"config": ch["config"], "macs": ch["macs"], "val": state.results[key]}
            out.append(item)
            state.log.append({"generation": ch["generation"], "kind": ch["kind"], "config": key, "macs": ch["macs"],
                              "val": item["val"], "cached": cached})
        return out

    def rank_key(item):
        return -item["val"] if higher_is_better else item["val"]

    def step(generation: int) -> dict:
        if not state.population:    # the first population
            state.population = scored([draw(lambda: _weighted(choices, gen, s["weighted_sample"]), "initial", 0)
                                       for _ in range(n_pop)])
        parents = sorted(state.population, key=rank_key)[:n_par]
        top = parents[0]
        if not state.best or rank_key(top) < rank_key(state.best[-1]):
            state.best.append({**top, "generation": generation})
        children = []
        for _ in range(n_mut):
            par = parents[int(torch.randint(n_par, (1,), generator=gen, device="cpu"))]["config"]

            def mutate(par=par):
                flips = torch.rand(len(par), generator=gen, device="cpu")
                fresh = _uniform(choices, gen)
                return [fresh[i] if flips[i] < s["mutate_prob"] else par[i] for i in range(len(par))]

            children.append(draw(mutate, "mutation", generation))
        for _ in range(n_pop - n_mut):
            p1 = parents[int(torch.randint(n_par, (1,), generator=gen, device="cpu"))]["config"]
            p2 = parents[int(torch.randint(n_par, (1,), generator=gen, device="cpu"))]["config"]

            def cross(p1=p1, p2=p2):
                pick = torch.rand(len(p1), generator=gen, device="cpu")
                return [p1[i] if pick[i] < 0.5 else p2[i] for i in range(len(p1))]

            children.append(draw(cross, "crossover", generation))
        state.population = parents + scored(children)
        return {"best_val": state.best[-1]["val"], "evaluated": len(state.results)}

    resumer_loop(state, step)
    return state


def search(ctx) -> tuple[dict, list]:
    spec, c, s = ctx.spec, ctx.section, ctx.section["search"]
    seed_all(ctx.seed)
    sup = ctx.load("supernet")
    G = load_generator(sup).eval()
    scorer = ctx.scorer()
    gen = torch.Generator().manual_seed(ctx.seed)

    def evaluate(config):
        return scorer(G.subnet(config))

    def loop(state, step):
        ctx.loop(f"GAN-Compression search {spec.id} seed {ctx.seed}", s["generations"], {"search": state}, gen,
                 eval_every=1, save_every=1).run(step)

    st = run_search(c["choices"], s["budget_macs"], s, lambda cf: _macs(ctx, cf), evaluate,
                    spec.higher_is_better, gen, loop)
    chosen = st.best[-1]
    ck = {"config": chosen["config"], "config_str": config_str(chosen["config"]), "val": chosen["val"],
          "macs_gan_compression": chosen["macs"], "budget_macs": s["budget_macs"], "best": st.best,
          "evaluated": len(st.results), "redraws": st.redraws}
    return ck, st.log


def export(ctx) -> tuple[dict, list]:
    spec, c = ctx.spec, ctx.section
    seed_all(ctx.seed)
    sup, found = ctx.load("supernet"), ctx.load("search")
    G = load_generator(sup)
    config = parse_config(found["config_str"])
    student = G.subnet(config)
    rec = _record(ctx, config)
    scorer = ctx.scorer()
    curve = [dict(r, stage="supernet") for r in sup["curve"]]
    start = sup["iters"]
    resumed = 0
    if c["finetune_iters"]:
        # train_supernet.py with a fixed --config_str: the same losses at that configuration, from the
        # supernet's weights, adaptors and D; the MI add-on stays in the supernet stage
        teacher = _original(ctx)
        adaptors = Adaptors(G.stream_width(), sup["t_widths"])
        adaptors.load_state_dict(sup["adaptors"])
        D = build_discriminator({"in_nc": spec.out_channels, "ndf": c["ndf"], "n_layers": c["n_layers_d"],
                                 "norm": c["norm_d"]})
        D.load_state_dict(sup["discriminator"]["state_dict"])
        res = _train(ctx, student, teacher, D, adaptors, None, c["finetune_iters"], lambda gen: None,
                     f"GAN-Compression fine-tune {found['config_str']} {spec.id} seed {ctx.seed}",
                     lambda: {"val": scorer(student)})
        base = curve[-1]["seconds"] if curve else 0.0
        curve += [dict(r, iter=start + r["iter"], seconds=base + r["seconds"], stage="finetune") for r in res.curve]
        start, resumed = start + c["finetune_iters"], res.resumed_from
    else:
        seconds = curve[-1]["seconds"] if curve else 0.0    # the training time is the supernet's
        curve.append({"iter": start, "val": scorer(student), "seconds": seconds, "stage": "export"})
    ck = {"generator": rec, "state_dict": student.state_dict(), "config_str": found["config_str"],
          "macs_gan_compression": count_macs_v001(student, spec.in_channels, spec.size),
          "macs_harness": count_macs(student, spec.in_channels, spec.size),
          "params": sum(p.numel() for p in student.parameters()), "search_val": found["val"],
          "finetune_iters": c["finetune_iters"], "iters": start, "resumed_from": resumed}
    return ck, curve
