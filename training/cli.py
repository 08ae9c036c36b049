"""``afrnn-train`` / ``python -m training``: train an AFRNN-family model or the LSTM baseline, then export it.

Single process::

    python -m training --task mnist --model afrnn --max-minutes 240 --threads 2
    python -m training --task mnist --model afrnn --resume            # continue where it stopped
    python -m training --task pendulum --model afrnn --preset paper

Distributed (DistributedDataParallel; gloo on the CPU, nccl on CUDA)::

    torchrun --nproc_per_node=2 -m training --task mnist --model afrnn --threads 1

Outputs go to ``--out-dir`` (default ``checkpoints``): ``<name>.pt`` + ``<name>.json`` (TorchScript
artifact and manifest), ``<name>.metrics.jsonl``, ``<name>.curve.png`` and the training state
``<name>.train.pt`` used by ``--resume``. With ``--signing-key``, ``--out-dir`` is a model version folder
``<models>/<name>/<version>`` and the run ends by signing it as one unit (``model.sig``,
``artifact.signing``; docs/signing.md).
"""

import argparse
import os
import shlex
import sys
import types
from pathlib import Path
from typing import Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from model.paper import PAPER_TASKS
from physics.encoding import ENCODINGS
from training.config import ConfigError, RunOptions, TrainConfig
from training.data.errors import DataFormatError
from training.presets import describe_defaults, describe_paper_preset

S = argparse.SUPPRESS
RUN_FIELDS = set(RunOptions.model_fields)
SIGNING_FIELDS = {"signing_key", "signing_key_password_env"}     # used by main() after training only


def _choices(field: str, schema: type[BaseModel] = TrainConfig) -> tuple:
    """The allowed values of a Literal field (``T | None`` unwrapped), so the choices live once."""
    annotation = schema.model_fields[field].annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return get_args(annotation)


def _default(field: str, schema: type[BaseModel] = TrainConfig) -> str:
    """'default X' from the field's own default; 'default per task' for those in the presets' tables."""
    info = schema.model_fields[field]
    if info.is_required():                  # TrainConfig takes it from training.presets.DEFAULTS
        return "default per task, see below"
    value = info.default
    if value is None:
        return "default none"
    return f"default {value:g}" if isinstance(value, float) else f"default {value}"


def _paper_sizes() -> str:
    """The paper's widths and depths per task (``model.paper.PAPER_TASKS``), for the epilog."""
    return "".join(f"\n  {task}: {spec.hidden_size} units x 2 layers (ARNN 1 x {spec.arnn_hidden_size}, "
                     f"LSTM {spec.lstm_layers} x {spec.hidden_size})" for task, spec in PAPER_TASKS.items())


def _grad_clip(text: str) -> float | None:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0 (0 disables clipping), got {text}")
    return value if value > 0 else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afrnn-train", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n", 1)[0].replace("``", ""),
        epilog=("Values: a flag given on the command line wins over --preset, which wins over the task's\n"
                "defaults. Sources: [paper] = the ACML 2022 text, [reference code] = the authors' public\n"
                "notebooks, [measured] = runs of this trainer, recorded where named (docs/results.md),\n"
                "[choice] = ours.\n\n"
                "Defaults per task (training/presets.py), and what they rest on:\n" + describe_defaults()
                + "\n\nWidths and depths default to the paper's (model/paper.py):" + _paper_sizes() + "\n\n"
                "--preset paper, with the source of every value:\n" + describe_paper_preset()))
    what = parser.add_argument_group("what to train")
    what.add_argument("--task", required=True, choices=_choices("task"))
    what.add_argument("--model", default=S, choices=_choices("model"),
                      help=f"network variant ({_default('model')})")
    what.add_argument("--name", default=S, help=TrainConfig.model_fields["name"].description)
    what.add_argument("--description", default=S, help=TrainConfig.model_fields["description"].description)
    what.add_argument("--preset", default=S, choices=_choices("preset"),
                      help="the paper's protocol (see below)")
    arch = parser.add_argument_group("architecture")
    arch.add_argument("--hidden-size", type=int, default=S, help="units per recurrent layer")
    arch.add_argument("--layers", type=int, default=S, help="recurrent layers")
    arch.add_argument("--epsilon", type=float, default=S, help="Euler step ε")
    arch.add_argument("--gamma", type=float, default=S, help="diffusion γ (B = A − γI)")
    arch.add_argument("--init-std", type=float, default=S,
                      help="recurrent weights ~ N(0, (init_std/√H)²); the reference code's std 1/H is "
                           "init_std = 1/√H")
    arch.add_argument("--update", default=S, choices=_choices("update"),
                      help=f"paper eqs. 6-7 (simultaneous) or the reference code's layer sweep "
                           f"({_default('update')})")
    arch.add_argument("--step-bound", type=float, default=S, metavar="BETA",
                      help="keep ε‖A‖₂ ≤ BETA by rescaling A at every step (spectral normalisation; every "
                           "Euler step radius of the linear part ≤ √((1 − εγ)² + BETA²)); off by default")
    arch.add_argument("--step-norm-penalty", type=float, default=S, metavar="WEIGHT",
                      help="add WEIGHT · mean max(0, ‖I + ε D_t B‖₂ − 1)² over sampled (row, step) pairs "
                           "to the training loss (training.step_penalty); off by default")
    arch.add_argument("--step-norm-samples", type=int, default=S, metavar="K",
                      help="(row, step) pairs per batch for --step-norm-penalty (4)")
    arch.add_argument("--discretisation", default=S, choices=_choices("discretisation"),
                      help="euler: the paper's explicit step; imex: the linear part B z by the trapezoidal "
                           "rule (Cayley), tanh's remainder explicit: every step's spectral radius ≤ 1 for "
                           "any ε (model.afrnn): the paper's guarantee is for the ODE, and IMEX keeps it "
                           "after discretisation; measured in docs/results.md, 'Pixel MNIST' (default: the "
                           "task's, below: imex for mnist; euler with --preset paper or --update sequential)")
    arch.add_argument("--damping", default=S, choices=_choices("damping"),
                      help=f"fixed: B = A − γI; euler: γ follows the coupling, the least damping that keeps "
                           f"the Euler step of the linear part non-expansive ({_default('damping')})")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--optimizer", default=S, choices=_choices("optimizer"), help=_default("optimizer"))
    opt.add_argument("--lr", type=float, default=S, help="learning rate")
    opt.add_argument("--lr-schedule", default=S, choices=_choices("lr_schedule"),
                     help="plateau: ReduceLROnPlateau on the validation loss (train loss without "
                          "--val-size); cosine: lr·½(1 + cos(π step/total)) per optimizer step, to 0")
    opt.add_argument("--weight-decay", type=float, default=S,
                     help=f"decoupled weight decay (AdamW; {_default('weight_decay')})")
    opt.add_argument("--init", default=S, choices=_choices("init"),
                     help="notebook: the reference notebook's init (recurrent std 0.25, input 1, "
                          "readout 1/H)")
    opt.add_argument("--init-from", default=S, metavar="PATH",
                     help="start from these weights (fine-tuning, a curriculum): an exported model's "
                          "<name>.json or a training state <name>.train.pt of the same architecture; the "
                          "optimizer, schedule and data start afresh")
    opt.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=S,
                     help="pendulum: standardised initial state and targets (stored in the manifest)")
    opt.add_argument("--loss-weights", type=float, nargs=4, default=S,
                     metavar=("THETA1", "THETA2", "OMEGA1", "OMEGA2"),
                     help="pendulum: per-variable weights of the training loss")
    opt.add_argument("--pendulum-input", default=S, choices=ENCODINGS,
                     help="pendulum: the initial state at step 0 then the placeholder 1.0 (the paper's, "
                          "the default), or the initial state at every step (physics.encoding)")
    opt.add_argument("--plateau-patience", type=int, default=S)
    opt.add_argument("--plateau-factor", type=float, default=S)
    opt.add_argument("--batch-size", type=int, default=S, help="global batch (split over DDP ranks)")
    opt.add_argument("--epochs", type=int, default=S)
    opt.add_argument("--grad-clip", type=_grad_clip, default=S, help="max gradient norm (0: no clipping)")
    opt.add_argument("--seed", type=int, default=S,
                     help=f"seed of weights, shuffling and val split ({_default('seed')})")
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=S, help="holds mnist/ and cifar10/ (default: $AFRNN_DATA_DIR, "
                                                    "else ../shared/data next to the repository)")
    data.add_argument("--cache-dir", default=S, help="generated pendulum data (default: $AFRNN_CACHE_DIR, "
                                                     "else ~/.cache/afrnn)")
    data.add_argument("--trajectories", type=int, default=S,
                      help="pendulum: generate N trajectories instead of the paper's 1000 (90 %% train)")
    data.add_argument("--points", type=int, default=S,
                      help="pendulum: points per trajectory at dt 0.1 s (paper: 30 = 2.9 s; 101 = 10 s)")
    data.add_argument("--data-seed", type=int, default=S,
                      help="pendulum: seed of the generated initial states (standard set: 2022; larger "
                           "sets need another, so that they do not contain the standard test trajectories)")
    data.add_argument("--solver", default=S, choices=("each", "joint"),
                      help="pendulum: integrate each trajectory alone (the standard set) or each chunk of "
                           "250 as one system to the same per-component tolerance (about 20x faster)")
    data.add_argument("--val-size", type=int, default=S,
                      help="train samples held out for model selection; the best-by-validation model "
                           "is exported (0: export the last model)")
    data.add_argument("--limit-train", type=int, default=S, help="use only the first N train samples")
    data.add_argument("--limit-test", type=int, default=S, help="use only the first N test samples")
    data.add_argument("--eval-batch-size", type=int, default=S,
                      help=f"batch for validation/test ({_default('eval_batch_size')})")
    data.add_argument("--eval-every", type=int, default=S,
                      help=f"also validate every N steps, 0: only at epoch ends ({_default('eval_every')})")
    run = parser.add_argument_group("running")
    run.add_argument("--out-dir", default=S, help=f"output directory ({_default('out_dir', RunOptions)})")
    run.add_argument("--device", default=S, choices=_choices("device", RunOptions),
                     help=_default("device", RunOptions))
    run.add_argument("--threads", type=int, default=S, help="torch intra-op threads")
    run.add_argument("--max-minutes", type=float, default=S,
                     help="training wall-time budget, accumulated across --resume; then evaluate and export")
    run.add_argument("--max-steps", type=int, default=S, help="stop after N optimizer steps in total")
    run.add_argument("--resume", action="store_true", default=S,
                     help="continue from <out-dir>/<name>.train.pt (a new run if it does not exist); the "
                          "saved config is kept, except --epochs, --eval-every, --eval-batch-size, the "
                          "data and cache dirs, and --lr (a step decay)")
    run.add_argument("--recurrence", default=S, choices=_choices("recurrence", RunOptions),
                     help="how the AFRNN family's training recurrence runs: fused (one autograd node, a "
                          "hand-written reverse sweep with one GEMM per step), fused-bf16 (the same with "
                          "bf16 GEMMs; state, tanh and sums in fp32), autograd (per-step ops), or auto: "
                          "fused-bf16 on a CPU with bf16 instructions (avx512_bf16, AMX), where it trained "
                          "pixel MNIST as well per step at 0.54x the step time, else fused. The same "
                          "arithmetic up to rounding, so --resume may change it (docs/performance.md; "
                          f"{_default('recurrence', RunOptions)})")
    run.add_argument("--checkpoint-minutes", type=float, default=S,
                     help=f"also save the training state every N minutes "
                          f"({_default('checkpoint_minutes', RunOptions)})")
    run.add_argument("--log-every", type=int, default=S,
                     help=f"log a line every N steps ({_default('log_every', RunOptions)})")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=S,
                     help="tqdm progress bars (default: only on a terminal)")
    sign = parser.add_argument_group("signing (docs/signing.md)")
    sign.add_argument("--signing-key", default=S, metavar="PEM",
                      help="sign the exported model with this EC private key (model.sig, as afrnn-sign): "
                           "--out-dir must then be a version folder <models>/<name>/<version>, signed as one "
                           "unit with everything the run writes into it")
    sign.add_argument("--signing-key-password-env", default=S, metavar="VAR",
                      help="the signing key's password is in environment variable VAR")
    return parser


def resolve(argv: list[str] | None = None) -> tuple[TrainConfig, RunOptions, set[str]]:
    """Parse ``argv`` into (config, run options, names of the explicitly given fields)."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    for field in SIGNING_FIELDS:
        args.pop(field, None)
    explicit = set(args) - {"task"}
    try:            # TrainConfig fills the rest: the task's defaults and preset (training.presets)
        cfg = TrainConfig(**{k: v for k, v in args.items() if k not in RUN_FIELDS})
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


def signing_request(argv: list[str] | None, cfg: TrainConfig, run: RunOptions
                    ) -> tuple[Path, bytes | None] | None:
    """(key, password) of ``--signing-key``, checked before training: the key loads and ``--out-dir``
    is a version folder ``<models>/<name>/<version>``; exits 2 otherwise. None without the option."""
    from artifact.signing import check_signing_key, is_version_folder

    parser = build_parser()
    args = parser.parse_args(argv)
    key, variable = getattr(args, "signing_key", None), getattr(args, "signing_key_password_env", None)
    if key is None:
        if variable is not None:
            parser.error("--signing-key-password-env needs --signing-key")
        return None
    if not is_version_folder(run.out_dir, cfg.name):
        parser.error(f"--signing-key signs a model version folder as one unit, and --out-dir "
                     f"{run.out_dir} is not one: a flat directory holds several models side by side. "
                     f"Export into --out-dir <models>/{cfg.name}/<version> (a positive integer), or sign "
                     f"such a folder later with afrnn-sign")
    password = None
    if variable is not None:
        if variable not in os.environ:
            parser.error(f"--signing-key-password-env {variable}: the environment variable is not set")
        password = os.environ[variable].encode()
    try:
        check_signing_key(Path(key), password)
    except (OSError, ValueError) as err:
        parser.error(f"--signing-key: {err}")
    return Path(key), password


def main(argv: list[str] | None = None) -> int:
    cfg, run, explicit = resolve(argv)
    signing = signing_request(argv, cfg, run)
    from training.trainer import train  # heavy imports after argument errors are reported

    try:
        manifest = train(cfg, run, explicit)
    except (ConfigError, DataFormatError, FileNotFoundError) as err:
        print(f"afrnn-train: error: {err}", file=sys.stderr)
        return 2
    if signing is not None and manifest is not None:      # manifest: the process that exported
        from artifact.signing import folder_label, sign_folder

        signature = sign_folder(run.out_dir, signing[0], password=signing[1])
        print(f"afrnn-train: signed {folder_label(run.out_dir)} ({signature.name} covers every other file "
              f"of the folder)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
