"""Joining benchmark records run in separate processes (methods, seeds) into one comparison."""
from __future__ import annotations

import json

import pytest

from continual.combine import combine, markdown, plot


def _record(methods: dict[str, list[float]], seed: int = 42, epochs: int = 2, wrapped: bool = True) -> dict:
    summary = {"benchmark": "imre-sep10", "metric": "micro-F1 without None",
               "config": {"epochs": epochs, "lr": 1e-4, "limit": None, "test_limit": None, "seed": seed,
                          "methods": list(methods), "out_dir": f"var/x-{seed}", "progress": False},
               "stream": [{"task": 0, "new_classes": ["a"]}, {"task": 1, "new_classes": ["b"]}],
               "methods": {m: {"A": a, "U": [x / 2 for x in a], "mean_A": sum(a) / len(a), "final_A": a[-1]}
                           for m, a in methods.items()}}
    return {"benchmark": "continual_x", "metrics": summary, "command": "..."} if wrapped else summary


def test_methods_of_separate_runs_share_one_table():
    c = combine([_record({"mspt": [90.0, 40.0]}), _record({"replay": [88.0, 30.0]}, wrapped=False)])
    assert list(c["methods"]) == ["mspt", "replay"]
    assert c["methods"]["replay"]["final_A"] == 30.0 and c["methods"]["replay"]["tasks"][1]["U"] == 15.0
    md = markdown(c)
    assert "| mspt | 42 | 90.00 | 40.00 | 65.00 |" in md and "| replay | 42 | 88.00 | 30.00 | 59.00 |" in md


def test_seeds_are_averaged_with_their_spread():
    c = combine([_record({"mspt": [90.0, 40.0]}, seed=42), _record({"mspt": [80.0, 50.0], "replay": [1.0, 2.0]},
                                                                    seed=1), _record({"joint": [9.0, 9.0]}, seed=10)])
    m = c["methods"]["mspt"]
    assert m["seeds"] == [1, 42] and m["final_A_per_seed"] == [50.0, 40.0]
    assert m["final_A"] == pytest.approx(45.0) and m["final_A_std"] == pytest.approx(7.0711, abs=1e-3)
    assert m["mean_A"] == pytest.approx(65.0) and c["methods"]["replay"]["final_A_std"] == 0.0
    assert c["config"]["seed"] == [1, 10, 42]
    assert "45.00 ± 7.1" in markdown(c)


def test_records_of_different_settings_are_refused():
    with pytest.raises(ValueError, match="epochs"):
        combine([_record({"mspt": [1.0, 2.0]}), _record({"replay": [1.0, 2.0]}, epochs=3)], names=["a.json", "b.json"])
    with pytest.raises(ValueError, match="mspt with seed 42 is in both a.json and b.json"):
        combine([_record({"mspt": [1.0, 2.0]}), _record({"mspt": [3.0, 4.0]})], names=["a.json", "b.json"])
    other = _record({"mspt": [1.0, 2.0]})
    other["metrics"]["benchmark"] = "imre-sep5"
    with pytest.raises(ValueError, match="imre-sep5"):
        combine([_record({"replay": [1.0, 2.0]}), other])


def test_only_some_methods_of_a_record_can_be_taken():
    old = _record({"mspt": [1.0, 2.0], "replay": [3.0, 4.0]})  # its mspt was redone in the second record
    c = combine([old, _record({"mspt": [5.0, 6.0]})], names=["old.json", "new.json"], only=[["replay"], None])
    assert c["methods"]["mspt"]["final_A"] == 6.0 and c["methods"]["replay"]["final_A"] == 4.0
    with pytest.raises(ValueError, match="old.json has no joint"):
        combine([old], names=["old.json"], only=[["joint"]])


def test_a_full_report_combines_with_a_record():
    full = _record({"mspt": [90.0, 40.0]}, wrapped=False)
    full["methods"] = {"mspt": {"tasks": [{"task": k, "A": a, "U": 1.0} for k, a in enumerate([90.0, 40.0])]}}
    c = combine([full, _record({"replay": [88.0, 30.0]})])
    assert c["methods"]["mspt"]["final_A"] == 40.0 and c["methods"]["mspt"]["mean_A"] == 65.0
    with pytest.raises(ValueError, match="x.json is not a continual benchmark result"):
        combine([{"benchmark": "b", "metrics": {"mrr": 0.3}}], names=["x.json"])


def test_mkg_benchmark_compare_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    from pipeline.cli import main

    paths = []
    for i, methods in enumerate(({"mspt": [90.0, 40.0]}, {"replay": [88.0, 30.0]})):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(_record(methods)))
    assert main(["benchmark", "compare", *map(str, paths), "--plot", str(tmp_path / "plots" / "a.png")]) == 0
    out = capsys.readouterr().out
    assert "| replay | 42 | 88.00 | 30.00 |" in out
    assert (tmp_path / "plots" / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot(combine([_record({"m": [1.0, 2.0]}, seed=s) for s in (1, 2)]), tmp_path / "b.png").stat().st_size > 0
    assert main(["benchmark", "compare", str(paths[0]), str(paths[0])]) == 2
    assert "mspt with seed 42 is in both" in capsys.readouterr().err
    assert main(["benchmark", "compare", str(paths[0]), f"{paths[0]}:mspt"]) == 2
    assert main(["benchmark", "compare", f"{paths[1]}:replay", f"{paths[0]}:mspt"]) == 0
    assert "| mspt | 42 | 90.00 | 40.00 |" in capsys.readouterr().out
