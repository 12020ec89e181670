"""InitReport: rows, JSON records, DataFrame and a readable table."""

import json

import torch
from torch import nn

from initlab.initializers import initialize
from initlab.initializers.report import COLUMNS


def test_report_forms():
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    report = initialize(model, "lsuv", data=torch.randn(32, 6), seed=0)
    records = report.to_records()
    assert json.loads(json.dumps(records)) == records
    assert [r["layer"] for r in records] == ["0", "0", "2", "2"]
    assert records[0]["iterations"] is not None and records[0]["type"] == "Linear"
    frame = report.to_frame()
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 4
    text = str(report)
    assert "lsuv" in text and "final_var" in text and "Linear" in text
    assert repr(report) == "InitReport(scheme='lsuv', seed=0, rows=4)"
