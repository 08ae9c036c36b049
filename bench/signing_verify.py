"""What verifying a model version's signature costs, per shipped checkpoint, and what the verifier adds
to an install.

    python bench/signing_verify.py            # 200 verifications per model, install size measured
    python bench/signing_verify.py --quick    # 20 per model (under 45 s)

Per checkpoint in ``checkpoints/`` (``<name>.json`` + ``<name>.pt``): a copy in a temporary version
folder ``<name>/1/``, signed once with a throwaway EC P-256 key (``artifact.signing.sign_folder``), then
verified N times (``verify_folder``: hash every file, check the ECDSA signature) against the median of the
manifest's own SHA-256 check (read and validate the manifest, hash the artifact: what ``load_exported``
does before ``torch.jit.load``). Then the one-time cost of importing ``model_signing`` in a fresh
interpreter (median of 3, 1 with --quick), paid once by a server that has a trusted key.

Install size: a temporary virtual environment, ``pip install --no-deps --require-hashes`` of exactly the
locked lines of ``requirements/runtime.txt`` that the commit adding model-signing added (its closure
beyond the rest of the service's), and the growth of its site-packages (``du -sk``). ``--no-install``
skips it.

The last line of the output is a JSON object of the figures, with the machine (bench/machine.py).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from artifact.export import read_manifest, sha256_of  # noqa: E402
from artifact.signing import sign_folder, verify_folder  # noqa: E402

LOCK = "requirements/runtime.txt"
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def manifest_check(manifest_path: Path) -> None:
    """The manifest's own integrity check: parse and validate it, hash the artifact, compare."""
    manifest = read_manifest(manifest_path)
    if sha256_of(manifest_path.parent / manifest.artifact.file) != manifest.artifact.sha256:
        raise RuntimeError(f"{manifest_path}: SHA-256 mismatch")


def write_key_pair(directory: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / "bench-key.pem", directory / "bench-trusted.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def verification_costs(work: Path, repeats: int) -> list[dict]:
    private, public = write_key_pair(work)
    rows = []
    for manifest_path in sorted((REPO / "checkpoints").glob("*.json")):
        name = manifest_path.stem
        folder = work / "models" / name / "1"
        folder.mkdir(parents=True)
        artifact = read_manifest(manifest_path).artifact.file
        for file in (manifest_path, manifest_path.parent / artifact):
            shutil.copy2(file, folder / file.name)
        sign_folder(folder, private)
        verify_folder(folder, public)                    # imports and caches warmed
        verify_ms = _median_ms(lambda f=folder: verify_folder(f, public), repeats)
        sha_ms = _median_ms(lambda m=folder / manifest_path.name: manifest_check(m), repeats)
        size = sum(p.stat().st_size for p in folder.iterdir())
        rows.append({"model": name, "folder_bytes": size, "verify_ms": round(verify_ms, 3),
                     "manifest_sha256_ms": round(sha_ms, 3), "extra_ms": round(verify_ms - sha_ms, 3)})
        print(f"{name:16s} {size / 1e3:8.0f} kB  verify {verify_ms:7.2f} ms  "
              f"manifest SHA-256 {sha_ms:6.2f} ms", flush=True)
    return rows


def import_cost_ms(repeats: int) -> float:
    """Wall time of a fresh interpreter importing model_signing's verifier, minus one that imports nothing."""
    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return (time.perf_counter() - start) * 1e3

    base = statistics.median(run("pass") for _ in range(repeats))
    full = statistics.median(run("import model_signing.verifying, model_signing.hashing")
                             for _ in range(repeats))
    return full - base


def _blocks(text: str) -> dict[str, str]:
    """name → its locked lines (``name==version \\`` and the ``--hash`` lines under it)."""
    blocks, current = {}, None
    for line in text.splitlines():
        match = REQUIREMENT.match(line)
        if match:
            current = match.group(1).lower()
            blocks[current] = line
        elif current and line.lstrip().startswith("--hash"):
            blocks[current] += "\n" + line
        elif not line.startswith(" "):
            current = None
    return blocks


def signing_closure() -> tuple[str, list[str]]:
    """(commit, the locked requirement blocks that the commit adding model-signing added to the lock)."""
    added_by = subprocess.run(["git", "log", "-S", "model-signing==", "--format=%H", "--", LOCK], cwd=REPO,
                              check=True, capture_output=True, text=True).stdout.split()[-1]
    before = _blocks(subprocess.run(["git", "show", f"{added_by}~1:{LOCK}"], cwd=REPO, check=True,
                                    capture_output=True, text=True).stdout)
    now = _blocks((REPO / LOCK).read_text())
    return added_by, [now[name] for name in sorted(now) if name not in before]


def du_kb(path: Path) -> int:
    return int(subprocess.run(["du", "-sk", str(path)], check=True, capture_output=True,
                              text=True).stdout.split()[0])


def install_growth(work: Path) -> dict:
    commit, blocks = signing_closure()
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    before = du_kb(site)
    requirements = work / "signing-closure.txt"
    requirements.write_text("\n".join(blocks) + "\n")
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "--require-hashes",
                          "-r", str(requirements)], capture_output=True, text=True)
    if pip.returncode != 0:
        raise SystemExit(f"pip install of the signing closure failed:\n{pip.stdout}{pip.stderr}")
    after = du_kb(site)
    human = subprocess.run(["du", "-sh", str(site)], check=True, capture_output=True,
                           text=True).stdout.split()[0]
    packages = [b.split("==")[0] + "==" + b.split("==")[1].split()[0] for b in blocks]
    print(f"install: {len(packages)} packages added by {commit[:12]}: site-packages {before / 1024:.1f} "
          f"→ {after / 1024:.1f} MiB (+{(after - before) / 1024:.1f} MiB; du -sh {human})")
    return {"lock_commit": commit[:12], "packages": packages, "site_packages_kib_before": before,
            "site_packages_kib_after": after, "growth_mib": round((after - before) / 1024, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 verifications per model, 1 import run")
    parser.add_argument("--repeats", type=int, help="verifications per model (default 200, --quick 20)")
    parser.add_argument("--no-install", action="store_true", help="skip the install-size measurement")
    args = parser.parse_args(argv)
    repeats = args.repeats or (20 if args.quick else 200)
    figures: dict = {"repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="afrnn-signing-") as tmp:
        work = Path(tmp)
        figures["models"] = verification_costs(work, repeats)
        figures["import_model_signing_ms"] = round(import_cost_ms(1 if args.quick else 3), 1)
        print(f"import model_signing.verifying in a fresh interpreter: "
              f"{figures['import_model_signing_ms']:.0f} ms (once per process)")
        if not args.no_install:
            figures["install"] = install_growth(work)
    figures["machine"] = machine.describe()
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
