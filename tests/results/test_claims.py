"""The Claims section of an init_claims sweep: verdicts from synthetic runs whose numbers
are known, and the real shrunk experiment end to end."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from initlab.results.aggregate import aggregate
from initlab.results.claims import CLAIMS, overall
from initlab.results.stats import mean_difference

STUDY = {"study.name": "init_claims"}
VERDICT = r"\*\*(supported|not supported|inconclusive)\*\*"


def _claims_sweep(root, make_run, relu_acc: dict[str, list[float]], seeds=(0, 1, 2)):
    """relu and tanh, one lr; best val acc per init and seed from ``relu_acc`` (tanh: 0.8);
    dead fraction after training and gradient ratio at init per init."""
    dead = {"he": [0.01, 0.02, 0.015], "xavier": [0.10, 0.12, 0.11],
            "random": [0.30, 0.28, 0.33]}
    ratio = {"he": 1.5, "xavier": 2.0, "random": 400.0}
    sweep = root / "sweep"
    n = 0
    for act in ("relu", "tanh"):
        for init in ("random", "xavier", "he"):
            for seed in seeds:
                acc = relu_acc[init][seed] if act == "relu" else 0.8 + 0.01 * seed
                make_run(sweep, n, init=init, activation=act, seed=seed, config=STUDY,
                         val=(acc - 0.1, acc),
                         extra={"final_dead_frac_mean": dead[init][seed],
                                "init_dead_frac_max": 0.0,
                                "init_grad_std_ratio": ratio[init] * (1 + 0.1 * seed)})
                n += 1
    return sweep


def _verdicts(report: str) -> dict[str, str]:
    return {c.title: re.search(rf"### {re.escape(c.title)}: {VERDICT}", report).group(1)
            for c in CLAIMS}


def test_verdicts_follow_the_numbers(tmp_path, make_run) -> None:
    acc = {"he": [0.95, 0.96, 0.955], "xavier": [0.85, 0.86, 0.84],
           "random": [0.1, 0.11, 0.1]}
    report = aggregate(_claims_sweep(tmp_path, make_run, acc), plots=False)["report"]
    text = report.read_text()
    verdicts = _verdicts(text)
    assert verdicts["Xavier struggles with ReLU"] == "supported"
    assert verdicts["He prevents dying neurons"] == "supported"
    assert verdicts["Random causes vanishing or exploding gradients"] == "supported"
    # epoch-1 accuracy is acc - 0.1: he ahead of xavier there too
    assert verdicts["He accelerates convergence"] == "supported"
    # the effect and CI printed are Welch's on the per-seed values
    d = mean_difference(acc["xavier"], acc["he"])
    row = (f"| activation=relu | xavier vs he | 0.8500 | 0.9550 | "
           f"{d.effect:.4f} (\u00b1{d.ci95:.4f})")
    assert row in text
    assert f"| {d.p:.3g} | 3 vs 3 | supported |" in text
    assert "- Xavier struggles with ReLU: **supported**" in text


def test_a_reversed_effect_is_not_supported_and_one_seed_is_inconclusive(
        tmp_path, make_run) -> None:
    acc = {"he": [0.80, 0.81, 0.79], "xavier": [0.95, 0.96, 0.955],
           "random": [0.1, 0.11, 0.1]}
    text = aggregate(_claims_sweep(tmp_path / "a", make_run, acc), plots=False)[
        "report"].read_text()
    assert _verdicts(text)["Xavier struggles with ReLU"] == "not supported"
    one = aggregate(_claims_sweep(tmp_path / "b", make_run, acc, seeds=(0,)), plots=False)[
        "report"].read_text()
    assert set(_verdicts(one).values()) == {"inconclusive"}
    assert "(a single seed)" in one


def test_overall_verdict_rule() -> None:
    assert overall(["supported", "inconclusive"]) == "supported"
    assert overall(["supported", "inconclusive", "inconclusive"]) == "inconclusive"
    assert overall(["supported", "not supported"]) == "inconclusive"
    assert overall(["not supported", "inconclusive"]) == "not supported"
    assert overall(["inconclusive"]) == "inconclusive"


def test_no_claims_section_outside_the_study(basic_sweep) -> None:
    assert "## Claims" not in aggregate(basic_sweep, plots=False)["report"].read_text()


@pytest.mark.slow
def test_init_claims_experiment_shrunk(run_train, tmp_path, png_ok) -> None:
    # the real one-command study, shrunk: 1 epoch, 2 seeds, 2 lrs, relu + tanh, one MLP
    proc = run_train(["-m", "experiment=init_claims", f"paths.output_root={tmp_path}",
                      "logger=none", "threads=1", "activation=relu,tanh",
                      "experiment/net=mlp_shallow", "optimizer.lr=0.01,0.2", "seed=0,1",
                      "trainer.max_epochs=1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = tmp_path.glob("multirun/*")
    results = pd.read_csv(sweep / "results.csv")
    assert len(results) == 3 * 2 * 2 * 2 and (results["status"] != "failed").all()
    assert set(results["cfg.model.depth"]) == {2}
    done = results[results["status"] == "completed"]
    dead = done["final_dead_frac_mean"]
    assert dead.notna().all() and ((dead >= 0) & (dead <= 1)).all()
    summary = pd.read_csv(sweep / "summary.csv")
    best = summary[summary["at_best"]]
    assert len(best) == 3 * 2  # one best lr per (init, activation)
    assert set(best["best_optimizer.lr"]) <= {0.01, 0.2}
    report = (sweep / "report.md").read_text()
    assert "## Claims" in report and "## Best optimizer.lr per init" in report
    verdicts = _verdicts(report)
    assert set(verdicts) == {c.title for c in CLAIMS}
    # the ReLU xavier-vs-he row: the seeds at each one's best lr, from results.csv
    at_best = {}
    for init in ("xavier", "he"):
        lr = best[(best["init"] == init) & (best["activation"] == "relu")][
            "cfg.optimizer.lr"].item()
        sel = done[(done["init"] == init) & (done["activation"] == "relu")
                   & np.isclose(done["cfg.optimizer.lr"], lr)]
        at_best[init] = sel["best_val_acc"].to_numpy()
    d = mean_difference(at_best["xavier"], at_best["he"])
    assert f"| activation=relu | xavier vs he | " \
           f"{at_best['xavier'].mean():.4f} | {at_best['he'].mean():.4f} | {d.effect:.4f}" \
           in report
    assert png_ok(sweep / "plots" / "lr_sensitivity.png")
