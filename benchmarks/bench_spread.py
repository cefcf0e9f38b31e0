"""How far the demo's table moves with the CPU's kernels, threads and op determinism, and where.

Runs ``mlml-tf demo`` (``--quick`` unless ``--full``) in a fresh process under each variant of
the environment: TensorFlow's defaults; oneDNN's operations off (``TF_ENABLE_ONEDNN_OPTS=0``,
Eigen's kernels instead); oneDNN capped at an older instruction set (``ONEDNN_MAX_CPU_ISA``,
which emulates a CPU without AVX-512, say); other thread counts (``TF_NUM_INTRAOP_THREADS``);
op determinism (``TF_DETERMINISTIC_OPS=1``). For each it prints the wall time and the CPU
time (user and system: less moved by other processes on a shared machine), the digest of each
intermediate artefact (the pretrained backbone's weights, the feature file, the predictions of
every run) and whether it equals the defaults', and the table's figures side by side.

With ``--stages`` each variant runs twice more: once from the defaults' pretrained backbone (so
that only the features and the runs are computed under the variant), once from the defaults'
backbone and feature cache (only the runs): which stage parts first.

    python benchmarks/bench_spread.py [--full] [--stages] [--variants default avx2 ...]
        [--work DIR [--summarize]]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: name -> (environment variables, extra arguments of ``mlml-tf demo``).
VARIANTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "default": ({}, []),
    "onednn-off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, []),
    "avx512-core": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, []),
    "avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, []),
    "sse41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, []),
    "threads-1": ({"TF_NUM_INTRAOP_THREADS": "1"}, []),
    "threads-4": ({"TF_NUM_INTRAOP_THREADS": "4"}, []),
    "deterministic": ({"TF_DETERMINISTIC_OPS": "1"}, []),
    "onednn-off-threads-1": ({"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "1"},
                             []),
}

#: The wall time of a demo, written beside it.
SECONDS = "bench_seconds.txt"

#: The table's figures compared.
METRICS = ("map", "f1_micro")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _predictions(out: Path) -> dict[str, np.ndarray]:
    return {p.parent.parent.name: np.loadtxt(p, delimiter=",")
            for p in sorted((out / "runs").rglob("predictions.out"))}


def run(name: str, out: Path, full: bool, seed_from: Path | None = None,
        stages: tuple[str, ...] = ()) -> dict:
    """One demo under variant ``name``; ``stages`` ("backbone", "features") copied first from
    ``seed_from``."""
    env_vars, extra = VARIANTS[name]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if "backbone" in stages:
        for file in ("backbone.keras", "backbone.json"):
            shutil.copy2(seed_from / file, out / file)
    if "features" in stages:
        shutil.copytree(seed_from / "features", out / "features")
    env = {**os.environ, **env_vars}
    command = [sys.executable, "-m", "mlml_tf.cli", "demo", "--out", str(out), *extra,
               *([] if full else ["--quick"])]
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(command, env=env, check=True, capture_output=True)
    (out / SECONDS).write_text(f"{time.perf_counter() - start:.1f} {_children_cpu() - cpu:.1f}\n")
    return collect(out)


def _children_cpu() -> float:
    """CPU seconds (user and system) of the finished child processes: less moved by other
    processes on the machine than the wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def collect(out: Path) -> dict:
    """What a demo folder holds: its time, the digests of its artefacts, its table."""
    backbone = json.loads((out / "backbone.json").read_text())["weights_sha256"][:12]
    features = out / "features" / "features.npy"
    seconds = [float(v) for v in (out / SECONDS).read_text().split()]
    return {"seconds": seconds[0], "cpu": seconds[1] if len(seconds) > 1 else float("nan"),
            "backbone": backbone,
            "features": _sha(features), "feature_array": np.load(features),
            "predictions": _predictions(out), "table": pd.read_csv(out / "results.csv")}


def _row(key: str, result: dict, reference: dict) -> str:
    """One line of the first table: time, artefacts against the defaults', table moved."""
    fa = reference["feature_array"].astype(np.float32)
    fb = result["feature_array"].astype(np.float32)
    pred = max(float(np.max(np.abs(reference["predictions"][k] - result["predictions"][k])))
               for k in reference["predictions"])
    moved = [np.max(np.abs(result["table"][f"{m}_mean"].to_numpy()
                           - reference["table"][f"{m}_mean"].to_numpy())) for m in METRICS]
    marks = {part: "=" if result[part] == reference[part] else "*"
             for part in ("backbone", "features")}
    return (f"{key:36} {result['seconds']:7.1f} {result['cpu']:7.1f}  "
            f"{result['backbone']}{marks['backbone']} "
            f"{result['features']}{marks['features']} {int(np.sum(fa != fb)):>8} "
            f"{np.max(np.abs(fa - fb)):>8.3g} {pred:>9.2g}  {moved[0]:>6.2f} {moved[1]:>7.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full demo, not --quick")
    parser.add_argument("--stages", action="store_true",
                        help="also run each variant from the defaults' backbone, and from "
                        "its backbone and features")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the demos' folders here (default: a temporary folder)")
    parser.add_argument("--summarize", action="store_true",
                        help="run nothing: print the figures of the demos already in --work")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_spread_"))
    names = ["default", *(v for v in args.variants if v != "default")]
    results: dict[str, dict] = {}
    try:
        for name in names:
            keys = [(name, ())]
            if args.stages and name != "default":
                keys += [(f"{name} from {'+'.join(s)}", s)
                         for s in (("backbone",), ("backbone", "features"))]
            for key, stages in keys:
                folder = work / key.replace(" ", "_")
                results[key] = (collect(folder) if args.summarize else
                                run(name, folder, args.full, work / "default", stages))
                done = results[key]
                print(f"{key:36} {done['seconds']:6.1f} s, CPU {done['cpu']:6.1f} s", flush=True)
        reference = results["default"]
        n_values = reference["feature_array"].size
        print()
        print(f"{'variant':36} {'seconds':>7} {'CPU s':>7}  {'backbone':13} {'features':13} "
              f"{'features differing':>17} {'max':>4} {'pred. max':>9}  {'mAP':>6} {'F1':>7}")
        for key, result in results.items():
            print(_row(key, result, reference))
        print(f"(digests: = the defaults', * another; features differing of {n_values}, their "
              "largest difference; the predictions' largest difference; the largest move of a "
              "cell of the table, mAP and micro F1, from the defaults')")
        print()
        alone = [k for k in results if " from " not in k]
        cells = [f"{m} {r}" for m, r in zip(reference["table"]["method"],
                                            reference["table"]["ratio"], strict=True)]
        for metric in METRICS:
            frame = pd.DataFrame({k: results[k]["table"][f"{metric}_mean"].to_numpy()
                                  for k in alone}, index=cells)
            frame["spread"] = frame.max(axis=1) - frame.min(axis=1)
            print(f"{metric} (mean over folds) by variant:")
            print(frame.to_string(float_format=lambda v: f"{v:.4f}"))
            print(f"largest spread of a cell: {frame['spread'].max():.4f}; mean "
                  f"{frame['spread'].mean():.4f}")
            print()
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
