"""The claims of ``experiment=init_claims`` tested on its sweep: each claim a hypothesis,
the measured effect with its 95 % CI, Welch's t-test over the seeds, and a verdict.

The claims are those an init study usually states in words:

* "Xavier struggles with ReLU": with ReLU, Xavier's best validation accuracy is lower
  than He's;
* "He prevents dying neurons": with ReLU, fewer hidden units are dead after training under
  He than under Xavier or random (the fractions at init are shown beside);
* "He accelerates convergence": with ReLU, He's validation accuracy after the first epoch
  is higher than Xavier's;
* "random causes vanishing or exploding gradients": at init, the gradient's std changes
  across the layers more under random than under the scheme matched to the activation
  (He for ReLU, Xavier for tanh/sigmoid): ``|log10(init_grad_std_ratio)|`` is larger.

Each init is read at its own best learning rate (summary.csv's ``at_best`` rows) when
optimizer keys are swept: one fixed lr favours whichever init it suits.  A comparison is
*supported* when Welch's p < 0.05 with the effect in the claimed direction, *not
supported* when p < 0.05 the other way, and *inconclusive* otherwise (the seeds cannot
tell).  A claim is supported when at least half of its comparisons are and none goes the
other way, not supported when some go the other way and none is supported, and
inconclusive at this size otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from initlab.results.aggregate import (
    SweepKeys,
    display_name,
    runs_at_best,
    tuned_keys,
)
from initlab.results.files import HISTORY_FILE
from initlab.results.stats import SIGNIFICANCE, mean_difference

STUDY = "init_claims"
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
MATCHED = {"relu": "he", "leaky_relu": "he", "tanh": "xavier", "sigmoid": "xavier"}


@dataclass(frozen=True)
class Claim:
    title: str
    hypothesis: str
    metric: str  # a column of the runs table
    metric_name: str
    direction: int  # +1: a > b claimed, -1: a < b
    pairs: tuple[tuple[str, str], ...]  # (a, b) init pairs; b "matched": by activation
    activations: tuple[str, ...] | None  # None: every activation swept
    completed_only: bool = True  # training metrics; init diagnostics: every run


CLAIMS = (
    Claim("Xavier struggles with ReLU",
          "With ReLU, Xavier's best validation accuracy (each at its best lr) is lower "
          "than He's.", "best_val_acc", "best val acc", -1, (("xavier", "he"),), ("relu",)),
    Claim("He prevents dying neurons",
          "With ReLU, fewer hidden units are dead after training (mean over the hidden "
          "layers, one batch) under He than under Xavier or random.",
          "final_dead_frac_mean", "dead fraction after training", -1,
          (("he", "xavier"), ("he", "random")), ("relu",)),
    Claim("He accelerates convergence",
          "With ReLU, He's validation accuracy after the first epoch is higher than "
          "Xavier's.", "val_acc_epoch1", "val acc after epoch 1", +1, (("he", "xavier"),),
          ("relu",)),
    Claim("Random causes vanishing or exploding gradients",
          "At init, the gradient's std changes across the layers more under random "
          "(N(0, 0.01\u00b2)) than under the scheme matched to the activation (He for "
          "ReLU, Xavier for tanh/sigmoid): |log10(grad std first layer / last layer)| is "
          "larger.", "abs_log10_grad_ratio", "|log10 grad std ratio| at init", +1,
          (("random", "matched"),), None, completed_only=False),
)


def is_claims_study(results: pd.DataFrame) -> bool:
    return "cfg.study.name" in results and bool(
        results["cfg.study.name"].astype(str).eq(STUDY).any())


def _with_measures(sweep: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the measures the claims use that are not results columns."""
    from initlab.results.plots import read_history

    out = runs.copy()
    epoch1 = []
    for _, r in out.iterrows():
        h = read_history(sweep / str(r["run"]) / HISTORY_FILE, ("epoch", "val_acc"))
        v = float("nan")
        if h and "val_acc" in h:
            first = np.flatnonzero(h["epoch"] == 1)
            if first.size:
                v = float(h["val_acc"][first[0]])
        epoch1.append(v)
    out["val_acc_epoch1"] = epoch1
    ratio = pd.to_numeric(out.get("init_grad_std_ratio", pd.Series(np.nan, index=out.index)),
                          errors="coerce")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["abs_log10_grad_ratio"] = np.abs(np.log10(ratio.where(ratio > 0)))
    return out


@dataclass(frozen=True)
class Row:
    setting: str
    a: str
    b: str
    mean_a: float
    mean_b: float
    effect: float
    ci95: float
    p: float
    n: str
    verdict: str
    note: str = ""
    extra: str = ""


def _verdict(effect: float, p: float, direction: int) -> str:
    if math.isnan(p) or p >= SIGNIFICANCE or math.isnan(effect) or effect == 0:
        return INCONCLUSIVE
    return SUPPORTED if effect * direction > 0 else NOT_SUPPORTED


def overall(verdicts: Sequence[str]) -> str:
    """The claim's verdict from its comparisons' (see the module docstring)."""
    n_sup, n_not = verdicts.count(SUPPORTED), verdicts.count(NOT_SUPPORTED)
    if n_sup and not n_not and 2 * n_sup >= len(verdicts):
        return SUPPORTED
    if n_not and not n_sup:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def compare_claim(claim: Claim, runs: pd.DataFrame, settings: pd.Series) -> list[Row]:
    """One row per (setting, activation, pair) the sweep has both inits of."""
    rows: list[Row] = []
    acts = list(dict.fromkeys(runs["activation"].dropna().astype(str)))
    if claim.activations is not None:
        acts = [a for a in acts if a in claim.activations]
    values = pd.to_numeric(runs.get(claim.metric, pd.Series(np.nan, index=runs.index)),
                           errors="coerce")
    if claim.completed_only:
        values = values.where(runs["status"] == "completed")
    init = runs["init"].astype(str)
    for setting in dict.fromkeys(settings):
        for act in acts:
            here = (settings == setting) & (runs["activation"].astype(str) == act)
            for a, b in claim.pairs:
                b = MATCHED.get(act, "") if b == "matched" else b
                va, vb = values[here & (init == a)], values[here & (init == b)]
                if not (here & (init == a)).any() or not (here & (init == b)).any():
                    continue
                diff = mean_difference(va, vb)
                note = ""
                if va.notna().sum() == 0 or vb.notna().sum() == 0:
                    note = "not measured" if values[here].isna().all() else "no completed run"
                elif diff.reason:
                    note = diff.reason
                extra = ""
                if claim.metric == "final_dead_frac_mean" and "init_dead_frac_max" in runs:
                    at_init = pd.to_numeric(runs["init_dead_frac_max"], errors="coerce")
                    extra = (f"{at_init[here & (init == a)].mean():.3f} / "
                             f"{at_init[here & (init == b)].mean():.3f}")
                label = ", ".join(x for x in (setting, f"activation={act}") if x)
                rows.append(Row(label, a, b, float(va.mean()), float(vb.mean()),
                                diff.effect, diff.ci95, diff.p,
                                f"{va.notna().sum()} vs {vb.notna().sum()}",
                                _verdict(diff.effect, diff.p, claim.direction), note, extra))
    return rows


def _f(v: float, digits: int = 4) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _p(p: float) -> str:
    return "" if math.isnan(p) else f"{p:.3g}"


def claims_section(sweep: str | Path, results: pd.DataFrame, summary: pd.DataFrame,
                   keys: SweepKeys) -> str:
    """The report's "Claims" section for an ``init_claims`` sweep ("" for other sweeps)."""
    if results.empty or not is_claims_study(results):
        return ""
    tuned = tuned_keys(keys)
    runs = _with_measures(Path(sweep), runs_at_best(results, summary, keys))
    nets = [k for k in keys.facets if k not in tuned and k != "activation"]
    settings = _settings(runs, nets)
    at = (f"each init at its own best {', '.join(display_name(k) for k in tuned)} "
          "(summary.csv `at_best`)" if tuned else "every run (no learning rate swept)")
    out = ["## Claims",
           f"Each claim as a hypothesis, tested per setting on the seeds of {at}: effect = "
           "mean(first init) \u2212 mean(second init), 95 % CI of that difference "
           "(Welch-Satterthwaite), Welch's two-sided t-test. A comparison is *supported* at "
           f"p < {SIGNIFICANCE:g} in the claimed direction, *not supported* at p < "
           f"{SIGNIFICANCE:g} the other way, *inconclusive* otherwise; a claim is supported "
           "when at least half of its comparisons are and none goes the other way. Training "
           "metrics are over completed runs; init diagnostics over every run."]
    verdicts = []
    for claim in CLAIMS:
        rows = compare_claim(claim, runs, settings)
        verdict = overall([r.verdict for r in rows]) if rows else INCONCLUSIVE
        verdicts.append((claim.title, verdict, rows))
        n_sup = sum(r.verdict == SUPPORTED for r in rows)
        n_not = sum(r.verdict == NOT_SUPPORTED for r in rows)
        out.append(f"### {claim.title}: **{verdict}**"
                   + ("" if verdict != INCONCLUSIVE else " at this size"))
        out.append(f"Hypothesis: {claim.hypothesis} Measure: {claim.metric_name}. "
                   f"{n_sup} of {len(rows)} comparison(s) supported, {n_not} against.")
        if not rows:
            out.append("The sweep lacks the inits or activations this claim compares.")
            continue
        dead = claim.metric == "final_dead_frac_mean"
        header = ["setting", "a vs b", "mean a", "mean b", "effect a\u2212b (95 % CI)",
                  "Welch p", "seeds", "verdict"]
        if dead:
            header.insert(6, "dead frac at init (max layer) a / b")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in rows:
            ci = f" (\u00b1{_f(r.ci95)})" if not math.isnan(r.ci95) else ""
            cells = [r.setting, f"{r.a} vs {r.b}", _f(r.mean_a), _f(r.mean_b),
                     f"{_f(r.effect)}{ci}", _p(r.p), r.n,
                     r.verdict + (f" ({r.note})" if r.note else "")]
            if dead:
                cells.insert(6, r.extra)
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    out.append("### Verdicts\n\n" + "\n".join(
        f"- {title}: **{verdict}**" for title, verdict, _ in verdicts))
    return "\n\n".join(out)


def _settings(runs: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """A readable label per run of the swept keys other than the init, the activation and
    the tuned ones (the net: ``mlp, depth 2`` / ``cnn``)."""
    if not keys:
        return pd.Series("", index=runs.index)
    parts = []
    for _, r in runs.iterrows():
        bits = []
        for k in keys:
            v = r.get(k)
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                continue
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            bits.append(str(v) if k == "model" else f"{display_name(k)}={v}")
        parts.append(", ".join(bits))
    return pd.Series(parts, index=runs.index)
