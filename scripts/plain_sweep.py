"""The same init x seed study as ``python train.py -m init=xavier,he,random seed=0,1,2``,
written as a plain PyTorch script, the way a user would write it without initlab.

It is the baseline of ``scripts/bench_sweep.py``: same data (scikit-learn's digits, /16,
initlab's fixed split and train-split standardization), same model (initlab's default MLP:
3 hidden ReLU layers of 128 units), same initializations (biases zero), same optimizer
(SGD, lr 0.05, momentum 0.9), batch size 64, 10 epochs, a validation pass per epoch and a
test pass at the end. It writes one results CSV (a row per run) and one loss/accuracy plot.
It does not write what initlab writes besides (TensorBoard, per-run folders, diagnostics,
summary over seeds, report).

    python scripts/plain_sweep.py --out DIR [--inits xavier,he,random] [--seeds 0,1,2]
                                  [--epochs 10]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from torch import nn


def digits_splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Train/val/test as initlab's digits data module makes them (15 % val, 15 % test)."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    n_val = n_test = round(len(x) * 0.15)
    idx = {"val": perm[:n_val], "test": perm[n_val:n_val + n_test],
           "train": perm[n_val + n_test:]}
    mean, std = x[idx["train"]].mean(), x[idx["train"]].std()
    return {k: ((x[i] - mean) / std, y[i]) for k, i in idx.items()}


def make_model(init: str) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = 64
    for _ in range(3):
        layers += [nn.Linear(fan_in, 128), nn.ReLU()]
        fan_in = 128
    layers.append(nn.Linear(fan_in, 10))
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if init == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif init == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif init == "lecun":
                nn.init.normal_(m.weight, std=1 / math.sqrt(m.in_features))
            elif init == "random":
                nn.init.normal_(m.weight, std=0.01)
            else:
                raise ValueError(f"unknown init {init!r}")
            nn.init.zeros_(m.bias)
    return model


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), 512):
        out = model(x[i:i + 512])
        loss += nn.functional.cross_entropy(out, y[i:i + 512], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + 512]).sum().item()
    return loss / len(x), correct / len(x)


def train_one(data: dict, init: str, seed: int, epochs: int) -> tuple[dict, list[dict]]:
    torch.manual_seed(seed)
    model = make_model(init)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = data["train"]
    history = []
    for epoch in range(epochs):
        model.train()
        total, correct = 0.0, 0
        for idx in torch.randperm(len(x)).split(64):
            out = model(x[idx])
            loss = nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y[idx]).sum().item()
        val_loss, val_acc = evaluate(model, *data["val"])
        history.append({"epoch": epoch, "train_loss": total / len(x),
                        "train_acc": correct / len(x), "val_loss": val_loss, "val_acc": val_acc})
    test_loss, test_acc = evaluate(model, *data["test"])
    row = {"init": init, "seed": seed, "final_val_acc": history[-1]["val_acc"],
           "best_val_acc": max(h["val_acc"] for h in history),
           "final_val_loss": history[-1]["val_loss"], "test_acc": test_acc,
           "test_loss": test_loss}
    return row, history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--inits", default="xavier,he,random")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = digits_splits()
    rows, histories = [], {}
    for init in args.inits.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            row, history = train_one(data, init, seed, args.epochs)
            rows.append(row)
            histories[(init, seed)] = history
            print(f"{init} seed={seed}: val acc {row['final_val_acc']:.4f}", flush=True)
    with open(args.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {init: palette[i % len(palette)] for i, init in enumerate(args.inits.split(","))}
    for (init, seed), history in histories.items():
        epochs = [h["epoch"] + 1 for h in history]
        label = init if seed == int(args.seeds.split(",")[0]) else None
        ax_loss.plot(epochs, [h["val_loss"] for h in history], color=colors[init], label=label)
        ax_acc.plot(epochs, [h["val_acc"] for h in history], color=colors[init], label=label)
    ax_loss.set(xlabel="epoch", ylabel="val loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="val accuracy")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(args.out / "curves.png", dpi=100)


if __name__ == "__main__":
    main()
