"""DistributedDataParallel: a 2-process gloo run (``torch.distributed.run``) on tiny data finishes, its
ranks end with identical weights, those weights match a single-process run on the same global batches,
and ``torchrun -m training`` exports from rank 0."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from training.cli import main

REPO = Path(__file__).resolve().parents[2]
# fp32 (--recurrence fused): the ranks' bf16 coupling gradients, each rounded before the all-reduce,
# would differ from one process's by bf16 rounding, not by the float32 tolerance this test asserts
ARGS = ["--task", "mnist", "--model", "afrnn", "--hidden-size", "8", "--batch-size", "16", "--epochs", "2",
        "--val-size", "16", "--seed", "2", "--lr", "0.01", "--threads", "1", "--recurrence", "fused"]

RANK_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from training.cli import resolve
    from training.distributed import setup_distributed, teardown_distributed
    from artifact.export import unwrap
    from training.trainer import Trainer

    dump = sys.argv[-1]
    cfg, run, explicit = resolve(sys.argv[1:-1])
    ctx, device = setup_distributed(run.device)
    trainer = Trainer(cfg, run, ctx, device, explicit)
    trainer.fit()
    torch.save(unwrap(trainer.model).state_dict(), f"{dump}/rank{ctx.rank}.pt")
    teardown_distributed(ctx)
""")


def torchrun(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_two_gloo_ranks_end_identical_and_match_one_process(tmp_path, mnist_dir):
    script = tmp_path / "rank_script.py"
    script.write_text(RANK_SCRIPT)
    dump = tmp_path / "dump"
    dump.mkdir()
    torchrun(str(script), *ARGS, "--data-dir", str(mnist_dir), "--out-dir", str(tmp_path / "ddp"),
             str(dump), cwd=REPO)
    rank0 = torch.load(dump / "rank0.pt", weights_only=True)
    rank1 = torch.load(dump / "rank1.pt", weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks disagree on {key}"

    # each rank takes samples r, r+2, … of the epoch's permutation, 8 per step: together the same 16
    # samples as one process's batch, so the averaged gradients equal the single-process gradients
    assert main(ARGS + ["--data-dir", str(mnist_dir), "--out-dir", str(tmp_path / "single")]) == 0
    single = torch.load(tmp_path / "single" / "mnist.train.pt", weights_only=True)["model"]
    for key in rank0:
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-4, atol=1e-5, msg=key)


def test_torchrun_module_entry_point_exports_from_rank_zero(tmp_path, mnist_dir):
    out = tmp_path / "out"
    torchrun("-m", "training", *ARGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out-dir", str(out),
             cwd=REPO)
    manifest = json.loads((out / "mnist.json").read_text())
    assert manifest["training"]["hardware"].startswith("2 processes x ")
    assert manifest["training"]["hyperparameters"]["world_size"] == 2
    assert manifest["metrics"]["test_samples"] == 40
    records = [json.loads(s) for s in (out / "mnist.metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["epoch", "test"]          # written once, by rank 0
