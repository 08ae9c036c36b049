"""Print the results tables of ``docs/results.md`` from exported manifests, next to the paper's values.

    python -m training.results_table checkpoints results/pendulum-paper
    python -m training.results_table checkpoints results/      # folders are searched recursively

Only manifests are read: other JSON files in the folders (benchmark figures, configs) are skipped.

Every number comes from a manifest (test metrics on the full test split, epochs, wall time, hardware
and the exact training command), so the tables cannot drift from the shipped artifacts.
"""

import argparse
import json
from pathlib import Path

from artifact.export import read_manifest
from artifact.manifest import Manifest

# Paper Tables 1–3 (test accuracy in %, pendulum: the summed-MSE loss averaged over test batches of 8).
PAPER_RESULTS = {
    "mnist": {"afrnn": 97.2, "arnn": 95.2, "2-arnn": 91.9, "frnn": 89.1},
    "cifar10": {"afrnn": 49.3, "frnn": 50.3, "arnn": 48.6, "2-arnn": 48.4, "lstm": 28.4},
    "pendulum": {"afrnn": 19.4, "arnn": 19.8, "frnn": 25.8, "2-arnn": 33.5, "lstm": 50.3},
}


# The keys every manifest has (artifact.manifest.Manifest); a JSON file without them is something else
# (a benchmark's figures, a config) and is not a row.
MANIFEST_KEYS = frozenset({"schema_version", "name", "task", "architecture", "artifact", "metrics"})


def is_manifest(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError):
        return False
    return isinstance(data, dict) and MANIFEST_KEYS <= data.keys()


def collect(paths: list[Path]) -> list[tuple[Path, Manifest]]:
    """The manifests in ``paths`` (folders, searched recursively, or files), each validated; JSON files
    that are not manifests are skipped, and a file that is one but fails validation raises."""
    files = []
    for path in paths:
        files += [path] if path.is_file() else sorted(path.rglob("*.json"))
    return [(path, read_manifest(path)) for path in files if is_manifest(path)]


def _row(path: Path, m: Manifest) -> str:
    variant = m.architecture.variant
    paper = PAPER_RESULTS[m.task].get(variant)
    hours = m.training.wall_time_s / 3600
    if m.task == "pendulum":
        ours = f"{m.metrics['paper_metric']:.1f} (MSE {m.metrics['mse_rad2']:.4f} rad²)"
    else:
        ours = f"{100 * m.metrics['test_accuracy']:.2f} %"
    paper_text = "—" if paper is None else (f"{paper}" if m.task == "pendulum" else f"{paper} %")
    return (f"| `{path}` | {variant} | {m.parameters} | {ours} | {paper_text} | {m.training.epochs:.2f} | "
            f"{hours:.2f} h | {m.training.hardware} | `{m.training.command}` |")


def render(manifests: list[tuple[Path, Manifest]]) -> str:
    lines = []
    for task in ("pendulum", "mnist", "cifar10"):
        rows = [(path, m) for path, m in manifests if m.task == task]
        if not rows:
            continue
        metric = "paper metric (lower is better)" if task == "pendulum" else "test accuracy"
        lines += [f"### {task}", "",
                  f"| manifest | model | parameters | our {metric} | paper | epochs | wall time | hardware "
                  "| command |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [_row(path, m) for path, m in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path,
                        help="folders holding <name>.json manifests (searched recursively), or manifest "
                             "files")
    args = parser.parse_args(argv)
    print(render(collect(args.dirs)))


if __name__ == "__main__":
    main()
