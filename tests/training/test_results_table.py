"""``python -m training.results_table``: only manifests become rows, folders are searched recursively,
and a file that is a manifest but breaks the schema is an error, not a silent gap."""

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from training.results_table import collect, main

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "mnist-run"
    run.mkdir(parents=True)
    shutil.copy(CHECKPOINTS / "mnist.json", run / "mnist.json")
    (tmp_path / "runs" / "bench.json").write_text(json.dumps({"per_s": 527.6, "machine": {"cpu": "x"}}))
    (tmp_path / "runs" / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "runs" / "broken.json").write_text("{ not json")
    return tmp_path


def test_only_manifests_become_rows_and_folders_are_searched_recursively(tree, capsys):
    rows = collect([tree / "runs"])
    assert [path.name for path, _ in rows] == ["mnist.json"]
    assert rows[0][1].metrics == json.loads((CHECKPOINTS / "mnist.json").read_text())["metrics"]
    main([str(tree / "runs")])
    out = capsys.readouterr().out
    assert "### mnist" in out and "97.72 %" in out and "bench.json" not in out


def test_a_manifest_that_breaks_the_schema_is_an_error(tree):
    manifest = json.loads((CHECKPOINTS / "mnist.json").read_text())
    manifest["parameters"] = "many"
    (tree / "runs" / "bad-manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValidationError):
        collect([tree / "runs"])
