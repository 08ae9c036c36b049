"""The learning-curve PNG of a run, drawn from its metrics JSON lines (matplotlib, Agg backend)."""

from pathlib import Path


def plot_learning_curve(history: list[dict], path: Path | str, title: str = "") -> Path:
    """Loss (left) and the task's quality metric (right) against epochs, train and validation.

    ``history`` holds the JSONL records (``kind`` 'epoch' or 'eval'); the quality metric is accuracy
    for classifiers and the per-value MSE for the pendulum. The final test value, if present
    (``kind`` 'test'), is drawn as a horizontal line.
    """
    import matplotlib  # imported here: matplotlib costs ~0.6 s at start-up

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in history if r.get("kind") in ("epoch", "eval", "stop")]
    quality = "accuracy" if any("train_accuracy" in r for r in points) else "mse_rad2"
    fig, (ax_loss, ax_quality) = plt.subplots(1, 2, figsize=(11, 4))
    for split, style in (("train", "-o"), ("val", "-s")):
        for ax, metric in ((ax_loss, "loss"), (ax_quality, quality)):
            series = [(r["epoch"], r[f"{split}_{metric}"]) for r in points if f"{split}_{metric}" in r]
            if series:
                xs, ys = zip(*series, strict=True)
                ax.plot(xs, ys, style, markersize=3, label=split)
    for record in history:
        if record.get("kind") == "test":
            candidates = ((ax_loss, "test_loss"), (ax_quality, f"test_{quality}"), (ax_quality, quality))
            for ax, metric in candidates:
                if metric in record:
                    ax.axhline(record[metric], color="k", linestyle="--", linewidth=1,
                               label=f"test {record[metric]:.4g}")
    ax_loss.set_ylabel("loss")
    ax_quality.set_ylabel(quality)
    if quality == "mse_rad2":
        ax_loss.set_yscale("log")
        ax_quality.set_yscale("log")
    for ax in (ax_loss, ax_quality):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
