"""``afrnn-train`` / ``python -m training``: train an AFRNN-family model or the LSTM baseline, then export it.

Single process::

    python -m training --task mnist --model afrnn --max-minutes 240 --threads 2
    python -m training --task mnist --model afrnn --resume            # continue where it stopped
    python -m training --task pendulum --model afrnn --preset paper

Distributed (DistributedDataParallel; gloo on the CPU, nccl on CUDA)::

    torchrun --nproc_per_node=2 -m training --task mnist --model afrnn --threads 1

Outputs go to ``--out-dir`` (default ``checkpoints``): ``<name>.pt`` + ``<name>.json`` (TorchScript
artifact and manifest), ``<name>.metrics.jsonl``, ``<name>.curve.png`` and the training state
``<name>.train.pt`` used by ``--resume``.
"""

import argparse
import shlex
import sys

from pydantic import ValidationError

from training.config import ConfigError, RunOptions, TrainConfig, default_name
from training.data.errors import DataFormatError
from training.presets import REFERENCE_INIT, describe_paper_preset, preset_values, reference_init_std

S = argparse.SUPPRESS
RUN_FIELDS = set(RunOptions.model_fields)


def _grad_clip(text: str) -> float | None:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0 (0 disables clipping), got {text}")
    return value if value > 0 else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afrnn-train", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n", 1)[0].strip("`"),
        epilog=("Values: a flag given on the command line wins over --preset, which wins over the defaults.\n"
                "Defaults (no preset) are this project's, from learning-speed probes on this machine:\n"
                "  mnist/cifar10: eps 0.1, gamma 0.01, init-std 2, adam lr 1e-3, batch 128, 10 epochs,\n"
                "                 grad-clip 5, plateau (patience 2, factor 0.5), val-size 5000\n"
                "  pendulum:      eps 0.1, gamma 0.15, init-std 1, adam lr 1e-3, batch 8, 300 epochs,\n"
                "                 no clipping, plateau (patience 20, factor 0.5), val-size 100\n"
                "Widths and depths default to the paper's (hidden 128 / 100; 2 layers, ARNN 1 layer\n"
                "(200 units on the pendulum), LSTM 1 layer (2 on the pendulum)).\n\n"
                "--preset paper, with the source of every value ([paper] = the ACML 2022 text,\n"
                "[reference code] = the authors' public notebooks):\n" + describe_paper_preset()))
    what = parser.add_argument_group("what to train")
    what.add_argument("--task", required=True, choices=("pendulum", "mnist", "cifar10"))
    what.add_argument("--model", default=S, choices=("afrnn", "arnn", "2-arnn", "frnn", "lstm"),
                      help="network variant (default afrnn)")
    what.add_argument("--name", default=S, help="served model name (default: the task for afrnn, "
                                                "else <task>-<model>, e.g. mnist-frnn)")
    what.add_argument("--preset", default=S, choices=("paper",), help="the paper's protocol (see below)")
    arch = parser.add_argument_group("architecture")
    arch.add_argument("--hidden-size", type=int, default=S, help="units per recurrent layer")
    arch.add_argument("--layers", type=int, default=S, help="recurrent layers")
    arch.add_argument("--epsilon", type=float, default=S, help="Euler step ε")
    arch.add_argument("--gamma", type=float, default=S, help="diffusion γ (B = A − γI)")
    arch.add_argument("--init-std", type=float, default=S,
                      help="recurrent weights ~ N(0, (init_std/√H)²); the reference code's std 1/H is "
                           "init_std = 1/√H")
    arch.add_argument("--update", default=S, choices=("simultaneous", "sequential"),
                      help="paper eqs. 6-7 (simultaneous, default) or the reference code's layer sweep")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--optimizer", default=S, choices=("adagrad", "adam"))
    opt.add_argument("--lr", type=float, default=S, help="learning rate")
    opt.add_argument("--lr-schedule", default=S, choices=("none", "plateau"),
                     help="plateau: ReduceLROnPlateau on the validation loss (train loss without --val-size)")
    opt.add_argument("--plateau-patience", type=int, default=S)
    opt.add_argument("--plateau-factor", type=float, default=S)
    opt.add_argument("--batch-size", type=int, default=S, help="global batch (split over DDP ranks)")
    opt.add_argument("--epochs", type=int, default=S)
    opt.add_argument("--grad-clip", type=_grad_clip, default=S, help="max gradient norm (0: no clipping)")
    opt.add_argument("--seed", type=int, default=S, help="seed of weights, shuffling and val split (0)")
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=S, help="holds mnist/ and cifar10/ (default: $AFRNN_DATA_DIR, "
                                                    "else ../shared/data next to the repository)")
    data.add_argument("--cache-dir", default=S, help="generated pendulum data (default: $AFRNN_CACHE_DIR, "
                                                     "else ~/.cache/afrnn)")
    data.add_argument("--trajectories", type=int, default=S,
                      help="pendulum: generate N trajectories instead of the paper's 1000 (90 %% train)")
    data.add_argument("--val-size", type=int, default=S,
                      help="train samples held out for model selection; the best-by-validation model "
                           "is exported (0: export the last model)")
    data.add_argument("--limit-train", type=int, default=S, help="use only the first N train samples")
    data.add_argument("--limit-test", type=int, default=S, help="use only the first N test samples")
    data.add_argument("--eval-batch-size", type=int, default=S, help="batch for validation/test (256)")
    data.add_argument("--eval-every", type=int, default=S,
                      help="also validate every N steps (0, the default: only at epoch ends)")
    run = parser.add_argument_group("running")
    run.add_argument("--out-dir", default=S, help="output directory (default checkpoints)")
    run.add_argument("--device", default=S, choices=("auto", "cpu", "cuda"))
    run.add_argument("--threads", type=int, default=S, help="torch intra-op threads")
    run.add_argument("--max-minutes", type=float, default=S,
                     help="training wall-time budget, accumulated across --resume; then evaluate and export")
    run.add_argument("--max-steps", type=int, default=S, help="stop after N optimizer steps in total")
    run.add_argument("--resume", action="store_true", default=S,
                     help="continue from <out-dir>/<name>.train.pt (a new run if it does not exist)")
    run.add_argument("--checkpoint-minutes", type=float, default=S,
                     help="also save the training state every N minutes (5)")
    run.add_argument("--log-every", type=int, default=S, help="log a line every N steps (50)")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=S,
                     help="tqdm progress bars (default: only on a terminal)")
    return parser


def resolve(argv: list[str] | None = None) -> tuple[TrainConfig, RunOptions, set[str]]:
    """Parse ``argv`` into (config, run options, names of the explicitly given fields)."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    explicit = set(args) - {"task"}
    task, model = args["task"], args.get("model", "afrnn")
    values = preset_values(task, args.get("preset"))
    values.update({k: v for k, v in args.items() if k not in RUN_FIELDS})
    values.setdefault("model", model)
    values.setdefault("name", default_name(task, model))
    if model == "lstm":     # the AFRNN-only defaults do not apply to the LSTM
        for key in ("epsilon", "gamma", "init_std"):
            if key not in explicit:
                values.pop(key, None)
    reference_init = values.get("init_std") == REFERENCE_INIT
    if reference_init:
        values.pop("init_std")
    try:
        cfg = TrainConfig(**values)
        if reference_init:
            width = cfg.model_config_object().layer_sizes[0]
            cfg = TrainConfig(**{**cfg.model_dump(), "init_std": reference_init_std(width)})
        run = RunOptions(**{k: v for k, v in args.items() if k in RUN_FIELDS},
                         command=shlex.join(_program() + list(sys.argv[1:] if argv is None else argv)))
    except ValidationError as err:
        parser.error(_explain(err))
    return cfg, run, explicit


def _program() -> list[str]:
    if sys.argv and sys.argv[0].endswith("__main__.py"):
        return ["python", "-m", "training"]
    return ["afrnn-train"]


def _explain(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = "--" + "-".join(str(x) for x in e["loc"]).replace("_", "-") if e["loc"] else "config"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    cfg, run, explicit = resolve(argv)
    from training.trainer import train  # heavy imports after argument errors are reported

    try:
        train(cfg, run, explicit)
    except (ConfigError, DataFormatError, FileNotFoundError) as err:
        print(f"afrnn-train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
