"""report.md of a sweep: what was swept, the ranking per group with the winner and whether
its lead is significant over the seeds, the runs that diverged / failed / did not finish,
the init diagnostics and the plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from initlab.results.aggregate import (
    AXES_NO_SEED,
    PLOTS_DIR,
    SweepKeys,
    attributed,
    best_column,
    display_name,
    is_diag_column,
    rank_metric,
    status_line,
    sweep_keys,
    tuned_keys,
)
from initlab.results.stats import SIGNIFICANCE, welch

MAX_ERROR_CHARS = 300
MAX_LISTED_RUNS = 100  # rows of the diverged/failed and incomplete tables
PLOT_TITLES = {
    "val_acc": "Validation accuracy",
    "val_loss": "Validation loss",
    "train_loss": "Training loss",
    "heatmap": "Mean best validation metric",
    "epochs_to_target": "Epochs to target",
    "signal_propagation": "Signal propagation at initialization",
    "init_histograms": "Activation histograms at initialization (one seed per init)",
    "lr_sensitivity": "Learning-rate sensitivity per init",
}
METRIC_NAMES = {
    "best_val_acc": "best val acc",
    "final_val_acc": "final val acc",
    "test_acc": "test acc",
    "best_val_loss": "best val loss",
    "final_val_loss": "final val loss",
    "test_loss": "test loss",
    "final_train_loss": "final train loss",
    "epochs_to_target": "epochs to target",
}
DIAG_NAMES = {
    "init_act_std_last": "act std (last hidden)",
    "init_grad_std_ratio": "grad std first/last",
    "init_dead_frac_max": "dead frac (max)",
    "init_saturated_frac_max": "saturated frac (max)",
    "measured_chi1": "measured \u03c7\u2081",
    "meanfield_chi_1": "mean-field \u03c7\u2081",
    "meanfield_chi1": "mean-field \u03c7\u2081",
    "meanfield_q_star": "mean-field q*",
    "meanfield_xi_c": "mean-field depth scale \u03be_c",
    "meanfield_sigma_w2": "\u03c3_w\u00b2",
    "meanfield_sigma_b2": "\u03c3_b\u00b2",
    "mean_sq_singular_value": "Jacobian mean sq. singular value",
    "max_singular_value": "Jacobian max singular value",
    "min_singular_value": "Jacobian min singular value",
}
MEANFIELD_CHI1 = ("meanfield_chi_1", "meanfield_chi1")


# --------------------------------------------------------------------------- formatting


def cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, one line."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def num(value: Any, metric: str = "") -> str:
    """Accuracies with 4 decimals, everything else with 4 significant digits."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(v):
        return ""
    if metric.endswith("_acc"):
        return f"{v:.4f}"
    return f"{v:.4g}"


def mean_std(row: pd.Series, metric: str, ci: bool = False) -> str:
    mean = row.get(f"{metric}_mean")
    if mean is None or pd.isna(mean):
        return ""
    text = num(mean, metric)
    std = row.get(f"{metric}_std")
    if std is not None and pd.notna(std):
        text += f" \u00b1 {num(std, metric)}"
    if ci:
        half = row.get(f"{metric}_ci95")
        if half is not None and pd.notna(half):
            text += f" (\u00b1{num(half, metric)})"
    return text


def _short(text: Any) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= MAX_ERROR_CHARS else s[: MAX_ERROR_CHARS - 3] + "..."


def _label(row: pd.Series, keys: Sequence[str]) -> str:
    parts = []
    for k in keys:
        v = row.get(k)
        v = "-" if v is None or (not isinstance(v, str) and pd.isna(v)) else v
        parts.append(str(v) if k == "init" else f"{display_name(k)}={v}")
    return ", ".join(parts)


def _ids(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """A text id per row from ``keys`` (missing values as empty text)."""
    if not keys:
        return pd.Series("", index=frame.index)
    parts = [frame[k].astype(object).where(frame[k].notna(), "").astype(str) for k in keys]
    out = parts[0]
    for p in parts[1:]:
        out = out + "\x1f" + p
    return out


def _label_keys(frame: pd.DataFrame, keys: SweepKeys) -> list[str]:
    """init, then every other swept key (no seed): what tells one configuration apart."""
    return [k for k in dict.fromkeys(("init", *keys.swept)) if k != "seed" and k in frame]


# --------------------------------------------------------------------------- sections


def _swept_section(results: pd.DataFrame, summary: pd.DataFrame, keys: SweepKeys) -> str:
    known = results[attributed(results)]
    rows = []
    shown = list(dict.fromkeys([*AXES_NO_SEED, *keys.swept]))
    for k in shown:
        if k not in known:
            continue
        vals = list(dict.fromkeys(known[k].dropna().astype(str)))
        if not vals:
            continue
        rows.append([display_name(k), ", ".join(vals), "swept" if k in keys.swept else "fixed"])
    parts = [table(["key", "values", ""], rows)] if rows else []
    seeds = sorted(pd.to_numeric(known.get("seed", pd.Series(dtype=float)),
                                 errors="coerce").dropna().astype(int).unique().tolist())
    n_cfg = len(summary)
    facts = [f"- runs: {len(results)} in {n_cfg} configuration(s); "
             f"seeds: {', '.join(map(str, seeds)) if seeds else 'none recorded'}"]
    unknown = len(results) - len(known)
    if unknown:
        facts.append(f"- {unknown} run folder(s) with no readable config (not in summary.csv)")
    if "cfg.target_metric" in known:
        t = pd.to_numeric(known["cfg.target_metric"], errors="coerce").dropna().unique()
        if len(t) == 1:
            facts.append(f"- target for *epochs to target*: {t[0]:g} "
                         "(val accuracy \u2265 target; regression: val loss \u2264 target)")
    facts.append("- statistics over seeds: mean \u00b1 std (ddof=1) of the **completed** runs; "
                 "(\u00b1x) = 95 % CI half-width, Student t; diverged/failed/incomplete runs "
                 "are counted, not averaged")
    return "\n\n".join(["## What was swept", *parts, "\n".join(facts)])


def _winner_text(
    ranked: pd.DataFrame, unranked: pd.DataFrame, per_run: dict[str, pd.Series],
    ids: pd.Series, hue: Sequence[str], metric: str, higher: bool,
) -> str:
    name = METRIC_NAMES.get(metric, metric)
    if ranked.empty:
        return "No configuration has a completed run: no winner."
    w = ranked.iloc[0]
    w_label = _label(w, hue)
    if len(ranked) == 1:
        extra = ""
        if len(unranked):
            extra = " (" + "; ".join(f"{_label(r, hue)}: no completed run"
                                     for _, r in unranked.iterrows()) + ")"
        only = ("the only configuration in this group" if not len(unranked) else
                "the only configuration with completed runs")
        return f"**Winner: {w_label}** - {only}{extra}; no comparison."
    r = ranked.iloc[1]
    r_label = _label(r, hue)
    wm, rm = float(w[f"{metric}_mean"]), float(r[f"{metric}_mean"])
    margin = wm - rm if higher else rm - wm
    cmp = welch(per_run.get(ids[w.name], []), per_run.get(ids[r.name], []))
    if cmp.significant is None:
        sig = f"significance: n/a ({cmp.reason})"
    elif cmp.significant:
        sig = (f"the difference is significant (Welch's t-test p = {cmp.p:.3g} < "
               f"{SIGNIFICANCE:g}, {cmp.n_a} vs {cmp.n_b} seeds)")
    else:
        sig = (f"the difference is not significant (Welch's t-test p = {cmp.p:.3g} \u2265 "
               f"{SIGNIFICANCE:g}, {cmp.n_a} vs {cmp.n_b} seeds)")
    tie = " (tie)" if margin == 0 else ""
    return (f"**Winner: {w_label}** - {name} {num(wm, metric)} vs {num(rm, metric)} for the "
            f"runner-up {r_label}: margin {num(margin, metric)}{tie}; {sig}.")


def _ranking_section(results: pd.DataFrame, summary: pd.DataFrame, keys: SweepKeys) -> str:
    out = ["## Ranking"]
    if summary.empty or "rank" not in summary:
        out.append("No run with a known configuration.")
        return "\n\n".join(out)
    context = [k for k in keys.context if k in summary]
    hue = [k for k in keys.hue if k in summary]
    # epochs to target only where a target was set (target_metric: null sets none)
    has_target = "cfg.target_metric" in results and bool(
        pd.to_numeric(results["cfg.target_metric"], errors="coerce").notna().any())
    ctx_ids = _ids(summary, context)
    group = [k for k in keys.group if k in summary]
    sum_ids = _ids(summary, group)
    known = results[attributed(results)]
    run_ids = _ids(known, group)
    done = known["status"].eq("completed")
    out.append("Configurations are ranked within each group below (only the init settings "
               "compete); configurations without a completed run are not ranked.")
    for ctx in dict.fromkeys(ctx_ids):
        block = summary[ctx_ids == ctx]
        task = str(block["task"].iloc[0]) if block["task"].notna().any() else "classification"
        metric, higher = rank_metric(task)
        title = _label(block.iloc[0], context) if context else "all runs"
        direction = "highest first" if higher else "lowest first"
        out.append(f"### {title}\n\nTask: {task}; ranked by mean {METRIC_NAMES[metric]}, "
                   f"{direction}.")
        if task == "classification":
            cols = ["best_val_acc", "final_val_acc", "test_acc", "final_train_loss",
                    "epochs_to_target"]
        else:
            cols = ["best_val_loss", "final_val_loss", "test_loss", "final_train_loss",
                    "epochs_to_target"]
        # epochs to target stays when no configuration reached it: "(0/2 reached)" says so
        cols = [c for c in cols if f"{c}_mean" in block and block[f"{c}_mean"].notna().any()
                or c == metric or (c == "epochs_to_target" and has_target
                                   and "n_reached_target" in block)]
        header = ["rank", "init" if hue == ["init"] else "init setting",
                  "runs (ok/div/fail/inc)"] + [METRIC_NAMES.get(c, c) for c in cols]
        rows = []
        for _, r in block.iterrows():
            counts = "/".join(str(int(r.get(f"n_{s}", 0))) for s in
                              ("completed", "diverged", "failed", "incomplete"))
            vals = []
            for c in cols:
                text = mean_std(r, c, ci=c == metric)
                if c == "epochs_to_target" and "n_reached_target" in r:
                    text = f"{text} ({int(r['n_reached_target'])}/{int(r['n_completed'])} " \
                           "reached)".strip()
                vals.append(text)
            rank = "" if pd.isna(r["rank"]) else int(r["rank"])
            rows.append([rank if rank != "" else "-", _label(r, hue), counts, *vals])
        out.append(table(header, rows))
        ranked = block[block["rank"].notna()]
        unranked = block[block["rank"].isna()]
        per_run: dict[str, pd.Series] = {}
        for sid in sum_ids[block.index]:
            sel = known[(run_ids == sid) & done]
            per_run[sid] = pd.to_numeric(sel[metric], errors="coerce").dropna()
        out.append(_winner_text(ranked, unranked, per_run, sum_ids, hue, metric, higher))
    return "\n\n".join(out)


def _best_lr_section(results: pd.DataFrame, summary: pd.DataFrame, keys: SweepKeys) -> str:
    """Each init at its own best setting of the swept optimizer keys (summary.csv's
    ``at_best`` rows), ranked within each value of the other swept keys, with the
    winner's Welch test and a warning where the best value is the end of the range."""
    tuned = [k for k in tuned_keys(keys) if k in summary]
    if not tuned or "at_best" not in summary:
        return ""
    names = ", ".join(display_name(k) for k in tuned)
    out = [f"## Best {names} per init",
           f"One fixed {names} favours whichever init it happens to suit, so each init "
           f"setting is read at its own best {names} (by the mean ranking metric over its "
           "completed seeds) and the inits are ranked at those; the tables at each fixed "
           "value follow under *Ranking*."]
    outer = [k for k in keys.context if k not in tuned and k in summary]
    hue = [k for k in keys.hue if k in summary]
    group = [k for k in keys.group if k in summary]
    sum_ids = _ids(summary, group)
    known = results[attributed(results)]
    run_ids = _ids(known, group)
    done = known["status"].eq("completed")
    best = summary[summary["at_best"].astype(bool)]
    if best.empty:
        out.append("No configuration has a completed run: no best value.")
        return "\n\n".join(out)
    ctx_ids = _ids(summary, outer)
    for ctx in dict.fromkeys(ctx_ids):
        block = summary[ctx_ids == ctx]
        chosen = block[block["at_best"].astype(bool)].sort_values("best_rank", kind="stable")
        task = str(block["task"].iloc[0]) if block["task"].notna().any() else "classification"
        metric, higher = rank_metric(task)
        if outer:
            out.append(f"### {_label(block.iloc[0], outer)}")
        header = ["rank", "init" if hue == ["init"] else "init setting",
                  *(f"best {display_name(k)}" for k in tuned),
                  f"{METRIC_NAMES[metric]} at best", "runs at best (ok/div/fail/inc)",
                  f"{names} tried", "note"]
        rows, warnings = [], []
        for _, r in chosen.iterrows():
            mine = block[_ids(block, hue) == _ids(chosen.loc[[r.name]], hue).iloc[0]]
            tried = "; ".join(", ".join(_order_text(mine[k])) for k in tuned)
            counts = "/".join(str(int(r.get(f"n_{st}", 0))) for st in
                              ("completed", "diverged", "failed", "incomplete"))
            notes = []
            for k in tuned:
                edge = r.get(f"{best_column(k)}_edge")
                if isinstance(edge, str) and edge:
                    notes.append(f"best {display_name(k)} is the {edge} swept: widen the "
                                 "range")
                    warnings.append(f"{_label(r, hue)}: best {display_name(k)} "
                                    f"{cell(r[k])} is the {edge} value swept")
            rows.append([cell(r["best_rank"]), _label(r, hue), *(cell(r[k]) for k in tuned),
                         mean_std(r, metric, ci=True), counts, tried, "; ".join(notes)])
        out.append(table(header, rows))
        per_run: dict[str, pd.Series] = {}
        for sid in sum_ids[chosen.index]:
            sel = known[(run_ids == sid) & done]
            per_run[sid] = pd.to_numeric(sel[metric], errors="coerce").dropna()
        unranked = block.iloc[0:0]
        out.append(_winner_text(chosen, unranked, per_run, sum_ids, hue, metric, higher)
                   .replace("**Winner:", "**Winner at each init's best "
                            f"{names}:"))
        if warnings:
            out.append("**Warning: the swept range may be too narrow** - " +
                       "; ".join(warnings) + ". A better value may lie beyond it.")
    return "\n\n".join(out)


def _order_text(values: pd.Series) -> list[str]:
    """Distinct values as text, numerically sorted when they are numbers."""
    uniq = list(dict.fromkeys(values.dropna().tolist()))
    try:
        uniq = sorted(uniq, key=float)
    except (TypeError, ValueError):
        pass
    return [cell(v) for v in uniq]


def _more(n: int) -> str:
    if n <= MAX_LISTED_RUNS:
        return ""
    return f"\n\n... and {n - MAX_LISTED_RUNS} more (all in `results.csv`, column `error`)."


def _problems_section(results: pd.DataFrame, keys: SweepKeys) -> str:
    out = ["## Diverged and failed runs"]
    label_keys = _label_keys(results, keys)
    bad = results[results["status"].isin(["diverged", "failed"])]
    if bad.empty:
        out.append("None: every finished run completed.")
    else:
        rows = []
        for _, r in bad.iterrows():
            step = ""
            if r["status"] == "diverged":
                st, ep = r.get("diverged_step"), r.get("diverged_epoch")
                step = f"step {cell(st)}" + (f" (epoch {cell(ep)})" if pd.notna(ep) else "") \
                    if pd.notna(st) else ""
            err = r.get("error")
            etype = r.get("error_type")
            reason = _short(f"{etype}: {err}" if pd.notna(etype) and pd.notna(err) else
                            err if pd.notna(err) else etype if pd.notna(etype) else "")
            rows.append([f"`{r['run']}`", r["status"], _label(r, label_keys), cell(r.get("seed")),
                         step, reason])
        out.append(table(["run", "status", "config", "seed", "diverged at", "reason"],
                         rows[:MAX_LISTED_RUNS]) + _more(len(rows)))
    if "warning" in results:
        warned = results[results["warning"].notna() & results["status"].ne("incomplete")]
        if not warned.empty:
            out.append("### Runs with warnings\n\nFinished runs whose files are not all "
                       "there (their numbers come from summary.json):")
            rows = [[f"`{r['run']}`", r["status"], _label(r, label_keys), cell(r.get("seed")),
                     _short(r["warning"])] for _, r in warned.iterrows()]
            out.append(table(["run", "status", "config", "seed", "warning"],
                             rows[:MAX_LISTED_RUNS]) + _more(len(rows)))
    inc = results[results["status"].eq("incomplete")]
    if not inc.empty:
        out.append("### Incomplete runs\n\nRun folders without a finished summary.json "
                   "(killed, still running, or broken files):")
        rows = [[f"`{r['run']}`", _label(r, label_keys) if pd.notna(r.get("init")) else "?",
                 cell(r.get("seed")), _short(r.get("error") if pd.notna(r.get("error")) else "")]
                for _, r in inc.iterrows()]
        out.append(table(["run", "config", "seed", "reason"], rows[:MAX_LISTED_RUNS])
                   + _more(len(rows)))
    return "\n\n".join(out)


def _diagnostics_section(summary: pd.DataFrame, keys: SweepKeys) -> str:
    out = ["## Initialization diagnostics"]
    diag = [c[: -len("_mean")] for c in summary.columns
            if c.endswith("_mean") and is_diag_column(c[: -len("_mean")])]
    diag = [d for d in diag if summary[f"{d}_mean"].notna().any()]
    if not diag:
        out.append("No init diagnostics in the run summaries (enable `diagnostics.probe`).")
        return "\n\n".join(out)
    order = [d for d in DIAG_NAMES if d in diag] + [d for d in diag if d not in DIAG_NAMES]
    label_keys = _label_keys(summary, keys)
    rows = [[_label(r, label_keys), *(num(r[f"{d}_mean"]) for d in order)]
            for _, r in summary.iterrows()]
    out.append("Measured on one batch at initialization, before training; mean over the "
               "runs that have them (all statuses).")
    out.append(table(["config", *(DIAG_NAMES.get(d, d) for d in order)], rows))
    if "measured_chi1" in diag:
        note = ("\u03c7\u2081 is the per-layer growth of the gradient variance going "
                "backwards: < 1 vanishing (ordered phase), > 1 exploding (chaotic), "
                "\u2248 1 at the edge of chaos.")
        if any(k in diag for k in MEANFIELD_CHI1):
            note += (" The mean-field \u03c7\u2081 is the theory's prediction from the init's "
                     "\u03c3_w\u00b2, \u03c3_b\u00b2 (MLPs with tanh/relu/linear only); "
                     "measured \u2248 mean-field means the network behaves as the theory "
                     "says.")
        out.append(note)
    return "\n\n".join(out)


def _plots_section(sweep: Path, plots: dict[str, Path]) -> str:
    out = ["## Plots"]
    if not plots:
        out.append("No plots (run `python scripts/aggregate.py DIR` without `--no-plots`).")
        return "\n\n".join(out)
    for name, path in plots.items():
        try:
            rel = Path(path).relative_to(sweep).as_posix()
        except ValueError:
            rel = f"{PLOTS_DIR}/{Path(path).name}"
        base, _, detail = name.partition(": ")
        title = PLOT_TITLES.get(base, base) + (f" ({detail})" if detail else "")
        out.append(f"### {title}\n\n![{title}]({rel})")
    return "\n\n".join(out)


def build_report(
    sweep_dir: str | Path,
    results: pd.DataFrame,
    summary: pd.DataFrame,
    keys: SweepKeys | None = None,
    plots: dict[str, Path] | None = None,
    duplicates: pd.DataFrame | None = None,
) -> str:
    """The text of report.md (markdown; plots linked relative to the sweep folder).
    ``duplicates``: run folders left out because they repeat another run (named)."""
    sweep = Path(sweep_dir)
    head = [f"# Sweep report: {sweep.name}",
            f"{status_line(results)}. Rebuild with `python scripts/aggregate.py {sweep}`; "
            "per-run rows in `results.csv`, per-configuration statistics in `summary.csv`."]
    if duplicates is not None and len(duplicates):
        pairs = ", ".join(f"`{r}` (= `{d}`)" for r, d in
                          zip(duplicates["run"], duplicates["duplicate_of"], strict=True))
        head.append(f"{len(duplicates)} run folder(s) repeat the configuration and seed of "
                    f"another run and are counted once (`duplicate_of` in results.csv): "
                    f"{pairs}.")
    if results.empty:
        return "\n\n".join([*head, "No run folders found."]) + "\n"
    keys = keys or sweep_keys(results)
    from initlab.results.claims import claims_section

    sections = [
        _swept_section(results, summary, keys),
        claims_section(sweep, results, summary, keys),
        _best_lr_section(results, summary, keys),
        _ranking_section(results, summary, keys),
        _problems_section(results, keys),
        _diagnostics_section(summary, keys),
        _plots_section(sweep, plots or {}),
    ]
    return "\n\n".join([*head, *(x for x in sections if x)]) + "\n"
