"""Benchmark: what one sharpness estimate costs, cold and warm, and how close it is.

SeedNet (145,578 parameters) trains with SGD + momentum (or Adam) on batches of
64 images, and after every K steps its sharpness on the first M images (256 by
default) is measured three ways, back to back:

- warm: the `SharpnessMeter` a training run keeps, started from its last
  eigenvectors;
- cold: a fresh meter, started from a random vector;
- reference (``--reference``): Lanczos to a relative residual of 1e-6 (at most
  100 products), against which the other two's relative errors are printed.

For each estimate it prints λ_max (and λ₁(P⁻¹H) with Adam), the Hessian-vector
products and seconds of each, and the seconds of one product over the seconds
of one forward + backward pass on the same M images, timed side by side (the
machines are noisy; the ratio drifts less than the seconds).

Usage::

    python -m bench.sharpness [--images 256] [--every 50] [--estimates 3] [--reference]
        [--optimizer sgd|adam] [--threads N] [--data DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bench.cnn_throughput import load_data
from optlab.train.data import CIFAR10_MEAN, CIFAR10_STD
from optlab.train.data.batches import normalise
from optlab.train.models import build_model, count_parameters
from optlab.train.sharpness import LossHessian, SharpnessConfig, SharpnessMeter, lanczos_top

SEED = 0
BATCH = 64


def pass_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one forward + backward pass of the mean cross-entropy on ``x``."""
    started = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    torch.autograd.grad(loss, list(model.parameters()))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="M, the images measured on")
    parser.add_argument("--every", type=int, default=50, help="K, training steps between")
    parser.add_argument("--estimates", type=int, default=3)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--reference", action="store_true", help="also a tol=1e-6 estimate")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--data", default=None, help="a cifar-10-batches-py folder")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    data = load_data(args.data, synthetic=False)
    images = normalise(data.train.images[: args.images], CIFAR10_MEAN, CIFAR10_STD)
    labels = data.train.labels[: args.images]
    model = build_model("seednet", SEED)
    if args.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = SharpnessConfig(images=len(labels), every=args.every)
    warm = SharpnessMeter(images, labels, cfg)
    order = torch.Generator().manual_seed(SEED)
    print(f"data: {data.source}")
    print(
        f"SeedNet, {count_parameters(model):,} parameters; M = {len(labels)} images; "
        f"{args.optimizer}; measured every {args.every} steps; "
        f"{torch.get_num_threads()} intra-op threads; tol {cfg.tol}"
    )
    ratios = []
    for estimate in range(args.estimates):
        for _ in range(args.every):
            idx = torch.randint(0, len(data.train.labels), (BATCH,), generator=order)
            x = normalise(data.train.images[idx], CIFAR10_MEAN, CIFAR10_STD)
            opt.zero_grad()
            F.cross_entropy(model(x), data.train.labels[idx]).backward()
            opt.step()
        step = (estimate + 1) * args.every
        results = {}
        for name, meter in (("warm", warm), ("cold", SharpnessMeter(images, labels, cfg))):
            started = time.perf_counter()
            record = meter.measure(model, opt, step)
            results[name] = (record, meter.products, time.perf_counter() - started)
        one_pass = pass_seconds(model, images, labels)
        reference = None
        if args.reference:
            op = LossHessian(model, images, labels)
            start = torch.randn(op.dim, generator=torch.Generator().manual_seed(SEED + 1))
            reference = lanczos_top(op, start, tol=1e-6, max_iters=100).value
        print(f"step {step}:")
        for name, (record, products, seconds) in results.items():
            threshold = "none" if record.threshold is None else f"{record.threshold:.4g}"
            line = f"  {name}: λ_max {record.lambda_max:.5g} (threshold {threshold})"
            if record.lambda_max_preconditioned is not None:
                line += f", λ₁(P⁻¹H) {record.lambda_max_preconditioned:.5g}"
                line += f" (threshold {record.threshold_preconditioned:.4g})"
            line += f"; {products} HVPs in {seconds:.1f} s ({seconds / products:.2f} s each)"
            if reference is not None:
                line += f"; error {(record.lambda_max - reference) / reference:+.1e}"
            print(line)
            ratios.append(seconds / products / one_pass)
        if reference is not None:
            print(f"  reference: λ_max {reference:.7g}")
        print(f"  one forward + backward on the M images: {one_pass:.2f} s")
    print(f"median seconds of one HVP / one forward + backward: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
