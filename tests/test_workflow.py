"""The Snakemake DAG: config validation before any job, the targets each table needs, determinism."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, fmnist_available, run_env, run_vem

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def dry_run(tmp_path, config_text=None, target="results/table4.csv", configfile=None):
    args = [SNAKEMAKE, "-n", "--forceall", "-s", str(ROOT / "Snakefile"), "-d", str(ROOT), target]
    if config_text is not None:
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(config_text)
        args += ["--configfile", str(cfg)]
    elif configfile:
        args += ["--configfile", configfile]
    return subprocess.run(args, capture_output=True, text=True, env=run_env(), timeout=120)


@pytest.mark.parametrize("text, bad", [
    ("tasks: [fmnist_nope]", "fmnist_nope"),
    ("checkpoint_selection: best", "best"),
    ("methods: [omgd, gcc2]", "gcc2"),
    ("addons: [vem, foo]", "foo"),
    ("seeds: [zero]", "zero"),
    ("bogus_key: 1", "bogus_key"),
    ("overrides: {omgd.itres: 3}", "omgd.itres"),
    ("overrides: {omgd.iters: fast}", "omgd.iters"),
    ("lambda_mi_sweep: [-0.1]", "-0.1"),
    # values every job would reject: caught while the DAG is built, by the code the jobs run
    ("overrides: {addon.vem.on_nonfinite: ignore}", "addon.vem.on_nonfinite"),
    ("overrides: {addon.vem.step_ref_size: 0}", "addon.vem.step_ref_size"),
    ("overrides: {omgd.init: xavier}", "omgd.init"),
    ("overrides: {omgd.teacher.iterz: 3}", "omgd.teacher.iterz"),
    ("overrides: {omgd.n_share: 5}", "omgd.n_share"),   # the mini D (n_layers_d 2) has 4 stages
    ("overrides: {cat.teacher.micro_batch: 3}", "cat.teacher.micro_batch 3 must divide"),   # of batch 8
    ("methods: {omgd: [fmnist_nope]}", "fmnist_nope"),
    ("overrides: {gan_compression.search.budget_macs: 1000}", "gan_compression.search.budget_macs"),
    ("overrides: {cagc.batch: 6}", "cagc.batch"),
    ("overrides: {teachers.original.batch: 6}", "teachers.original.batch"),    # StyleGAN2's stddev group of 4
    ("overrides: {teachers.original.channel_max: 0}", "teachers.original.channel_max"),
    ("overrides: {eval.test_images: 0}", "eval.test_images"),
    ("overrides: {eval.val_images: 1}", "eval.val_images"),           # a Fréchet distance of one image
    ("overrides: {eval.latency.backends: [torchscript]}", "eval.latency.backends"),
    ("overrides: {addon.crd.nce_k: 5500}", "addon.crd.nce_k 5500"),  # the 5,500 training sneakers
    ("overrides: {addon.vem.n_blocks: 5}", "addon.vem.n_blocks 5 is too deep for 32 px"),   # 16 px pooled: 4
    ("lambda_mi_sweep: [0.1, 0.1]", "lambda_mi_sweep"),
    ("methods: {gcc: [fmnist_uncond_sg2]}", "fmnist_uncond_sg2"),
    ("tasks: [fmnist_edges2shoes, fmnist_scenes]\nmethods: [omgd]\ntables: [1]\n"
     "dose_response: {tasks: [fmnist_sneaker2boot], lambdas: [1.0], addons: [vem], seeds: [0]}", "dose_response.tasks"),
])
def test_bad_config_fails_dry_run_with_one_line(tmp_path, text, bad):
    res = dry_run(tmp_path, text)
    assert res.returncode != 0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("config error")]
    assert len(lines) == 1, res.stdout + res.stderr
    assert bad in lines[0]


def test_best_on_val_selection_keeps_snapshots_and_selects_at_evaluation(tmp_path):
    res = dry_run(tmp_path, "checkpoint_selection: best_on_val")
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    cmds = [ln for ln in out.splitlines() if "python -m vem" in ln]
    compress = [c for c in cmds if "--stage" in c and "/omgd/vem_lam0.1/" in c and "--out results/runs/" in c]
    evaluate = [c for c in cmds if "python -m vem evaluate" in c and "/omgd/" in c]
    assert compress and all("--keep-snapshots" in c for c in compress), compress[:1]
    assert evaluate and all("--selection best_on_val" in c for c in evaluate), evaluate[:1]
    assert not any("--selection best_on_val" in c for c in cmds if "/gan_compression/" in c)   # no trajectory


def test_table4_dag_has_every_addon_for_every_task(tmp_path):
    res = dry_run(tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    # OMGD: tasks x addons x seeds; CAT and GAN-Compression: sneaker2boot only; the tuning: per method and tuning
    # task (OMGD 2, CAT 1) 3 add-ons x 4 trials on seed 100 (table 4's tuned runs follow once the tune checkpoint
    # has chosen)
    # + GCC on fmnist_uncond (4 add-ons x 3 seeds) and Slimming there (no add-on, 3 seeds), CAGC on
    # fmnist_uncond_sg2 (4 add-ons x 3 seeds); GCC and Slimming skip fmnist_uncond_sg2 (its Original is a StyleGAN2)
    assert int(jobs["compress"]) == 4 * 4 * 3 + 4 * 3 + 4 * 3 + (2 + 1) * 3 * 4 + 4 * 3 + 3 + 4 * 3
    assert int(jobs["tune"]) == 2 and int(jobs["tuned_runs"]) == 2 and int(jobs["render_table"]) == 1
    assert "results/runs/fmnist_edges2shoes/omgd/vem_lam0.1/seed100/student.pt" in out        # trial 0
    assert re.search(r"results/runs/fmnist_sneaker2boot/cat/crd_lam[0-9.]+\+t3/seed100/curve\.csv", out)
    # OMGD's shared stages: the online teachers per paired task x seed (+ the tuning seed on edges2shoes), the
    # CycleGAN teacher per unpaired task; CAT's teacher and prune on sneaker2boot; GAN-Compression's supernet
    # and search per run (its add-on trains with the supernet)
    # + GCC's, Slimming's pretrain, prune, CAGC's prune
    assert int(jobs["method_stage"]) == 2 * 3 + 1 + 2 + 2 + 4 * 3 * 2 + 2 + 2 + 1
    assert "results/runs/fmnist_uncond_sg2/cagc/shared/prune.pt" in out
    assert "results/runs/fmnist_uncond_sg2/gcc" not in out and "results/runs/fmnist_uncond/cagc" not in out
    gc = "results/runs/fmnist_sneaker2boot/gan_compression"
    assert "--stage supernet --seed 2 --addon vem --lambda-mi 0.1 --input original=" in out
    assert f"--stage search --seed 1 --addon none --input supernet={gc}/none_lam0/seed1/supernet.pt" in out
    cat = "results/runs/fmnist_sneaker2boot/cat"
    assert f"{cat}/shared/teacher.pt" in out and f"{cat}/shared/prune.pt" in out
    assert f"--stage prune --seed 0 --input teacher={cat}/shared/teacher.pt" in out
    for addon in ["none_lam0", "vid_lam0.1", "crd_lam0.1", "vem_lam0.1"]:
        for seed in range(3):
            assert f"{cat}/{addon}/seed{seed}/student.pt" in out and f"{cat}/{addon}/seed{seed}/metrics.json" in out
    assert "results/runs/fmnist_pullover2coat/cat" not in out
    for task in ["fmnist_edges2shoes", "fmnist_scenes"]:
        for seed in range(3):
            assert f"results/runs/{task}/omgd/shared/seed{seed}/teachers.pt" in out
    assert "results/runs/fmnist_sneaker2boot/omgd/shared/teacher.pt" in out
    for task in ["fmnist_edges2shoes", "fmnist_scenes", "fmnist_sneaker2boot", "fmnist_pullover2coat"]:
        for addon in ["none_lam0", "vid_lam0.1", "crd_lam0.1", "vem_lam0.1"]:
            for seed in range(3):
                assert f"results/runs/{task}/omgd/{addon}/seed{seed}/metrics.json" in out


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup installs it)")
def test_numbers_given_through_the_command_line_config_keep_their_types():
    """`--config 'seeds=[0,3]' 'overrides={omgd.iters: 18, ...}'` means what the same YAML means in a config
    file (snakemake itself reads the values nested in --config as text: '0', '18')."""
    base = [SNAKEMAKE, "-n", "-p", "--forceall", "-s", str(ROOT / "Snakefile"), "-d", str(ROOT),
            "--configfile", str(ROOT / "config/smoke.yaml"), "--config"]
    ok = subprocess.run(base + ["seeds=[0,3]", "overrides={omgd.iters: 18, addon.vem.train_energy: false}",
                                "--", "results/table1.csv"], capture_output=True, text=True, env=run_env(), timeout=120)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    runs = re.findall(r"python -m vem stage .*--stage distill .*--seed (\d+) .*--overrides '([^']*)'", ok.stdout)
    assert {seed for seed, _ in runs} == {"0", "3"}
    overrides = json.loads(runs[0][1])         # a run-scoped stage: the add-on's keys too
    assert overrides["omgd.iters"] == 18 and overrides["addon.vem.train_energy"] is False
    assert overrides["omgd.eval_every"] == 6          # the config file's other overrides stay (merged)
    bad = subprocess.run(base + ["seeds=[0,zero]", "--", "results/table1.csv"], capture_output=True, text=True,
                         env=run_env(), timeout=120)
    lines = [ln for ln in (bad.stdout + bad.stderr).splitlines() if ln.startswith("config error")]
    assert bad.returncode != 0 and len(lines) == 1 and "'zero'" in lines[0], bad.stdout + bad.stderr


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    """The determinism guarantee: the same CLI pipeline twice gives byte-identical metric values (the two
    trainings and evaluations in processes of their own; what they read is made in this one)."""
    py = [sys.executable, "-m", "vem"]
    env = run_env()

    def run(*a):
        r = subprocess.run([*py, *a], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]

    def prepare(*a):
        r = run_vem(a)
        assert r.returncode == 0, r.stderr[-2000:]

    d = tmp_path
    task = "fmnist_sneaker2boot"
    prepare("prepare-data", "--task", task, "--fmnist", str(ROOT / "resources" / "fmnist"),
            "--out", str(d / "d.npz"))
    for kind, iters in (("feature", 15), ("perceptual", 5)):
        prepare("train-evalnet", "--kind", kind, "--fmnist", str(ROOT / "resources" / "fmnist"), "--threads", "1",
                "--set", f"evalnets.{kind}.iters={iters}", "--out", str(d / f"{kind}.pt"),
                "--quality", str(d / f"{kind}.json"))
    ov = ["--set", "omgd.teacher.iters=6", "--set", "omgd.teacher.snapshot_every=3", "--set", "omgd.eval_every=3",
          "--set", "addon.probe_every=2"]
    prepare("stage", "--task", task, "--method", "omgd", "--stage", "teacher", "--data", str(d / "d.npz"),
            "--evalnet", str(d / "feature.pt"), "--threads", "1", *ov,
            "--out", str(d / "t.pt"), "--table", str(d / "t.csv"))
    prepare("real-stats", "--task", task, "--data", str(d / "d.npz"), "--featnet", str(d / "feature.pt"),
            "--images", str(d / "real.zip"), "--out", str(d / "stats.npz"))
    values = []
    for rep in range(2):
        run("stage", "--task", task, "--method", "omgd", "--addon", "vem", "--seed", "3",
            "--data", str(d / "d.npz"), "--input", f"perceptual={d / 'perceptual.pt'}",
            "--evalnet", str(d / "feature.pt"), "--input", f"teacher={d / 't.pt'}",
            "--threads", "1", *ov, "--out", str(d / f"s{rep}.pt"), "--table", str(d / f"c{rep}.csv"))
        run("evaluate", "--task", task, "--method", "omgd", "--addon", "vem", "--generator", str(d / f"s{rep}.pt"),
            "--data", str(d / "d.npz"), "--evalnet", str(d / "feature.pt"), "--real-stats", str(d / "stats.npz"),
            "--images", str(d / f"i{rep}.zip"), "--curve", str(d / f"c{rep}.csv"), "--out", str(d / f"m{rep}.json"))
        values.append(json.loads((d / f"m{rep}.json").read_text()))
    assert values[0]["metric"] == values[1]["metric"]
    assert values[0]["config_hash"] == values[1]["config_hash"]
    # the same run gives the same checkpoint, byte for byte
    assert (d / "s0.pt").read_bytes() == (d / "s1.pt").read_bytes()
    import pandas as pd

    c0, c1 = (pd.read_csv(d / f"c{i}.csv").drop(columns=["seconds"]) for i in (0, 1))
    pd.testing.assert_frame_equal(c0, c1, check_exact=True)
    rec = values[0]
    for key in ("protocol", "cost", "versions", "seed", "config_hash"):
        assert rec[key] is not None
    # the metric's feature network is the one the evalnet's quality record and the real statistics name
    import numpy as np

    from vem.utils import file_sha256

    quality = json.loads((d / "feature.json").read_text())
    assert rec["protocol"]["evalnet_sha256"] == quality["evalnet_sha256"] == file_sha256(d / "feature.pt")
    with np.load(d / "stats.npz") as z:
        assert str(z["evalnet_sha256"]) == quality["evalnet_sha256"]
    # and the student says what it was made from, by content: its teacher stage, perceptual net and data
    assert rec["inputs_sha256"] == {"data": file_sha256(d / "d.npz"), "perceptual": file_sha256(d / "perceptual.pt"),
                                    "teacher": file_sha256(d / "t.pt")}
    assert rec["protocol"]["checkpoint_selection"].startswith("final")
    assert rec["metric"]["name"] == "FD-FMNIST"
    # the gradient probe of the run (every 2nd of its 6 iterations), summarised from its curve
    probe = rec["gradient_probe"]
    assert probe["points"] >= 1 and -1 <= probe["cos_to_positive"] <= 1 and probe["ratio_params"] > 0
    assert rec["train_seconds"] > 0


@pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST is not installed (make setup installs it)")
def test_denoiser_example_runs():
    """The plug-in example (VEM on a non-GAN student) runs and reports three finite PSNRs."""
    env = {**run_env(), "FMNIST_DIR": str(ROOT / "resources" / "fmnist")}
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "denoiser_vem.py"), "--iters", "3"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    psnrs = [float(x) for x in re.findall(r"PSNR (-?[0-9.]+) dB", r.stdout)]
    assert len(psnrs) == 3 and all(5 < p < 60 for p in psnrs)


def test_weights_rule_without_weights_fails_with_one_message(tmp_path):
    """The Inception FID weights come from their rule only; with neither network nor a usable path the
    rule stops with one line naming the missing file and the two ways to provide it."""
    import shutil

    work = tmp_path / "w"
    work.mkdir()
    shutil.copytree(ROOT / "config", work / "config")
    missing = tmp_path / "nowhere" / "pt_inception-2015-12-05-6726825d.pth"
    target = "resources/weights/pt_inception-2015-12-05-6726825d.pth"
    (work / "extra.yaml").write_text(f"weights: {{inception_legacy: {missing}}}\n")
    res = subprocess.run([SNAKEMAKE, "--cores", "1", "-s", str(ROOT / "Snakefile"), "-d", str(work), target,
                          "--configfile", str(work / "config" / "config.yaml"), str(work / "extra.yaml")],
                         capture_output=True, text=True, env=run_env(), timeout=300)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("vem: error:")]
    assert len(lines) == 1, res.stderr[-3000:]
    assert str(missing) in lines[0] and "download" in lines[0] and "weights.inception_legacy" in lines[0]
    assert not (work / target).exists()


@pytest.mark.parametrize("table, expected", [
    # CAT's horse2zebra rows (teacher + prune + 4 add-ons x 3 seeds), GAN-Compression's (supernet + search per
    # run) in Tables 2 and 4; GCC's CelebA rows (pretrain + prune, 4 add-ons x 3 seeds) and Slimming's (pretrain +
    # prune, no add-on) in Tables 3 and 4; CAGC's FFHQ rows (one prune, 4 add-ons x 3 seeds; its Original imported)
    (4, {"compress": 4 * 4 * 3 + 12 + 12 + 12 + 3 + 12, "evaluate_run": 99, "prepare_paper_data": 6, "real_stats": 5,
         "method_stage": 2 + 2 + 24 + 2 + 2 + 1, "import_teacher": 2}),
    (3, {"compress": 3 + 3 + 3 + 3 + 3, "evaluate_run": 15, "method_stage": 4 + 1, "train_teacher": 1,
         "evaluate_teacher": 2, "import_teacher": 1, "prepare_paper_data": 2, "paper_dataset": 2}),
    (1, {"compress": 2 * 4 * 3, "evaluate_teacher": 2, "train_teacher": 2}),
    (2, {"compress": 2 * 4 * 3 + 12 + 12, "evaluate_teacher": 2, "import_teacher": 1, "train_teacher": 1,
         "method_stage": 2 + 2 + 24}),
    (5, {"compress": 3 + 3 * 3, "evaluate_run": 12}),
])
def test_paper_grid_dag_builds_fast_and_lists_every_job(tmp_path, table, expected):
    """`snakemake -n --configfile=config/paper.yaml results/tableN.csv`: the whole paper DAG, offline, in <= 10 s.
    (--configfile takes several files: write it with '=' or put the target first.)

    The time is the workflow's own: run_env() shadows the host's `scontrol` (see conftest), which the SLURM
    executor plugin calls at every Snakemake start and which waits ~9 s where a SLURM controller is down."""
    import time

    env = run_env()
    t0 = time.time()
    res = subprocess.run([SNAKEMAKE, "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "work"),
                          "--configfile=" + str(ROOT / "config/paper.yaml"), f"results/table{table}.csv"],
                         capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.time() - t0
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert elapsed <= 10, f"paper DAG took {elapsed:.1f} s"
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, flags=re.M))
    for rule, n in expected.items():
        assert int(jobs[rule]) == n, (rule, jobs)
    out = res.stdout
    if table == 4:
        for task in ["edges2shoes", "cityscapes", "horse2zebra", "summer2winter"]:
            for addon in ["none_lam0", "vid_lam0.1", "crd_lam0.1", "vem_lam0.1"]:
                for seed in range(3):
                    assert f"results/runs/{task}/omgd/{addon}/seed{seed}/metrics.json" in out
        assert "train_teacher" not in jobs   # paper: the paired teachers train inside each compress job
        assert "results/runs/horse2zebra/omgd/shared/teacher.pt" in out
        assert "results/runs/horse2zebra/cat/shared/prune.pt" in out
        assert "results/runs/horse2zebra/cat/vem_lam0.1/seed2/metrics.json" in out
        assert "results/runs/celeba/gcc/shared/prune.pt" in out
        assert "results/runs/celeba/gcc/crd_lam0.1/seed1/metrics.json" in out
        assert "results/runs/celeba/slimming/none_lam0/seed0/metrics.json" in out
        assert "results/runs/celeba/slimming/vem_lam0.1" not in out   # Slimming is not combined with add-ons
        assert "results/runs/ffhq/cagc/shared/prune.pt" in out
        assert "results/runs/ffhq/cagc/crd_lam0.1/seed2/metrics.json" in out
        assert "resources/teachers/cagc/stylegan2/ffhq256/generator.pt" in out
        assert "resources/weights/lpips-vgg-v0.1.pth" in out and "resources/weights/79999_iter.pth" in out
        assert "resources/weights/pt_inception-2015-12-05-6726825d.pth" in out
        assert "resources/weights/vgg16-397923af.pth" in out and "--selection best_on_test" in out
    if table == 5:
        for lam in ("0.01", "0.05", "0.1"):
            assert f"results/runs/cityscapes/omgd/vem_lam{lam}/seed0/metrics.json" in out
        assert "resources/weights/drn-d-105_ms_cityscapes.pth" in out
    if table == 2:
        assert "resources/teachers/gan_compression/cycle_gan/horse2zebra/generator.pt" in out


def test_dose_response_dag_has_every_lambda_of_every_addon(tmp_path):
    res = dry_run(tmp_path, target="results/dose_response.csv")
    assert res.returncode == 0, res.stderr
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, flags=re.M))
    # (OMGD on edges, OMGD, CAT and GAN-Compression on sneaker2boot) x (none + 3 add-ons x 5 lambdas) x 3 seeds
    assert int(jobs["compress"]) == 4 * (1 + 3 * 5) * 3 and int(jobs["dose_response"]) == 1
    for lam in ("0.01", "0.1", "1", "10", "100"):
        assert f"results/runs/fmnist_edges2shoes/omgd/crd_lam{lam}/seed2/metrics.json" in res.stdout
        assert f"results/runs/fmnist_sneaker2boot/cat/vem_lam{lam}/seed0/metrics.json" in res.stdout
    assert "fmnist_scenes" not in res.stdout


def test_shell_values_are_quoted_for_the_shell(tmp_path):
    """A Fashion-MNIST folder with a space and a quote, and overrides, reach the job as one argument each."""
    import shlex

    res = dry_run(tmp_path, "fmnist_dir: \"/data/my fmnist/it's\"\noverrides: {omgd.iters: 7}",
                  target="resources/fmnist/train-images-idx3-ubyte.gz")
    assert res.returncode == 0, res.stderr[-2000:]
    cmd = next(ln for ln in res.stdout.splitlines() if "vem fetch-fmnist" in ln).split("Shell command: ")[-1]
    argv = shlex.split(cmd.split(" > ")[0])
    assert argv[argv.index("--source") + 1] == "/data/my fmnist/it's"
    res = dry_run(tmp_path, "overrides: {omgd.iters: 7, evalnets.feature.iters: 5}",
                  target="results/evalnets/feature.pt")
    cmd = next(ln for ln in res.stdout.splitlines() if "vem train-evalnet" in ln).split("Shell command: ")[-1]
    argv = shlex.split(cmd.split(" > ")[0])
    assert json.loads(argv[argv.index("--overrides") + 1]) == {"evalnets.feature.iters": 5}


def test_a_job_is_given_and_reruns_for_only_the_overrides_of_what_it_reads(tmp_path):
    """An OMGD key reaches OMGD's jobs only, an add-on key the run-scoped method jobs only; the evaluation
    networks, real statistics, teachers and evaluations see neither (Snakemake would rerun them: their params
    would change). A YAML 1.1 float ('2e-4', a string to PyYAML) is the number meant, as on the CLI."""
    import shlex

    res = dry_run(tmp_path, "\n".join([
        "overrides: {omgd.iters: 7, omgd.lr: 2e-4, addon.vem.step_size: 10.0, teachers.original.iters: 9, "
        "eval.batch: 64}", "methods: [omgd, gcc]", "tasks: [fmnist_edges2shoes, fmnist_uncond]", "tables: [1, 3, 4]",
        "control: {tasks: [], methods: []}", "tuning: {tasks: [], methods: []}",
        "dose_response: {tasks: [fmnist_edges2shoes]}"]), target="all")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    seen = {}
    for ln in res.stdout.splitlines():
        if "Shell command: python -m vem " not in ln or "--overrides" not in ln:
            continue
        argv = shlex.split(ln.split("Shell command: ")[-1].split(" > ")[0])
        sub = argv[3]
        if sub == "stage":
            sub = f"stage {argv[argv.index('--method') + 1]} {argv[argv.index('--stage') + 1]}"
        seen.setdefault(sub, set()).add(json.dumps(json.loads(argv[argv.index("--overrides") + 1]), sort_keys=True))
    shared = {"eval.batch": 64, "teachers.original.iters": 9}
    want = {"train-evalnet": {}, "real-stats": {"eval.batch": 64, "teachers.original.iters": 9},
            "train-teacher": shared, "evaluate": shared,
            "stage omgd teachers": {**shared, "omgd.iters": 7, "omgd.lr": 2e-4},
            "stage omgd distill": {**shared, "omgd.iters": 7, "omgd.lr": 2e-4, "addon.vem.step_size": 10.0},
            "stage gcc pretrain": shared, "stage gcc prune": shared,
            "stage gcc distill": {**shared, "addon.vem.step_size": 10.0}}
    assert set(want) <= set(seen), sorted(seen)
    for sub, ov in want.items():
        values = {json.loads(x).get("addon.vem.step_size") for x in seen[sub]}
        if sub.endswith("distill"):         # the method alone (none) is given the add-on keys too: one run scope
            assert values == {10.0}, (sub, seen[sub])
        assert json.dumps(ov, sort_keys=True) in seen[sub] and len(seen[sub]) == 1, (sub, seen[sub])
