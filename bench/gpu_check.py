#!/usr/bin/env python3
"""Compares the CUDA engine against PyTorch on the same GPU (bench/gpu-check.sh runs it).

    gpu_check.py DIR WINDOWS STEPS

DIR holds what `GpuCheck gradients` wrote: the network (network.json), its parameters, one batch,
the engine's loss and gradients, and the engine's images/s per window. This script builds the same
network in PyTorch from network.json, loads the same parameters and batch, computes the loss and
every parameter's gradient with TF32 off, and compares: each parameter's gradient must match within
1e-3 relative (||engine - torch|| / ||torch||), or, where PyTorch's own fp32 gradient is farther
than that from the exact one (computed here in float64: ResNet-18 at initialization on random data is
conditioned so that PyTorch's fp32 gradients are up to 5.5e-3 from it), be no farther from the exact
gradient than PyTorch's fp32 gradient is, with 25% to spare. Then it times PyTorch eager fp32 steps (forward,
backward, SGD with momentum 0.9) in the same windows and prints images/s and the ratio of medians.
Exits 1 when a gradient or the loss is off.
"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TOLERANCE = 1e-3
# Where PyTorch's fp32 gradient is itself farther than TOLERANCE from the float64 one: how much
# farther than it the engine's may be.
AS_EXACT = 1.25


def load(directory):
    spec = json.loads((directory / "network.json").read_text())
    flat = np.fromfile(directory / "parameters.bin", dtype="<f4")
    images = np.fromfile(directory / "images.bin", dtype="<f4")
    labels = np.fromfile(directory / "labels.bin", dtype="<i4")
    gradients = np.fromfile(directory / "gradients.bin", dtype="<f4")
    loss = float((directory / "loss.txt").read_text())
    engine = [float(v) for v in (directory / "engine.txt").read_text().split()]
    return spec, flat, images, labels, gradients, loss, engine


def parameters(spec, flat, device):
    tensors = {}
    for p in spec["parameters"]:
        size = int(np.prod(p["shape"]))
        values = flat[p["offset"]:p["offset"] + size].reshape(p["shape"])
        tensors[p["name"]] = torch.tensor(values, device=device, requires_grad=True)
    return tensors


def forward(spec, params, state, x):
    outs = []

    def get(i):
        return x if i == -1 else outs[i]

    for node in spec["nodes"]:
        op, name, inputs = node["op"], node["name"], node["inputs"]
        a = get(inputs[0])
        if op == "conv":
            y = F.conv2d(a, params[name + ".weight"], params.get(name + ".bias"),
                         stride=node["stride"], padding=node["pad"])
        elif op == "batch_norm":
            channels = a.shape[1]
            if state.get(name) is None:
                state[name] = (torch.zeros(channels, device=a.device, dtype=a.dtype),
                              torch.ones(channels, device=a.device, dtype=a.dtype))
            mean, var = state[name]
            y = F.batch_norm(a, mean, var, params[name + ".weight"], params[name + ".bias"],
                             training=True, momentum=node["momentum"], eps=node["eps"])
        elif op == "relu":
            y = F.relu(a)
        elif op == "max_pool":
            y = F.max_pool2d(a, node["kernel"], node["stride"], node["pad"])
        elif op == "global_average":
            y = a.mean((2, 3), keepdim=True)
        elif op == "dense":
            y = F.linear(a.flatten(1), params[name + ".weight"], params.get(name + ".bias"))
            y = y.reshape(y.shape[0], -1, 1, 1)
        elif op == "add":
            y = a + get(inputs[1])
        else:
            raise SystemExit(f"gpu_check.py: unknown op {op} in network.json")
        outs.append(y)
    return outs[-1].flatten(1)


def relative(a, b):
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-30)).item()


def time_torch(spec, flat, x, y, device, windows, steps):
    params = parameters(spec, flat, device)
    optimizer = torch.optim.SGD(params.values(), lr=0.01, momentum=0.9)
    state = {}

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(forward(spec, params, state, x), y).backward()
        optimizer.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        rates.append(x.shape[0] * steps / (time.perf_counter() - start))
    return rates


def main():
    if len(sys.argv) != 4:
        raise SystemExit("usage: gpu_check.py DIR WINDOWS STEPS")
    directory, windows, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device("cuda")
    spec, flat, images, labels, engine_gradients, engine_loss, engine_rates = load(directory)
    c, h, w = spec["input"]
    batch = labels.shape[0]
    x = torch.tensor(images.reshape(batch, c, h, w), device=device)
    y = torch.tensor(labels.astype(np.int64), device=device)
    params = parameters(spec, flat, device)
    state = {}
    loss = F.cross_entropy(forward(spec, params, state, x), y)
    loss.backward()
    # The same in float64: how far each fp32 result is from the exact gradient.
    exact = parameters(spec, flat.astype(np.float64), device)
    loss64 = F.cross_entropy(forward(spec, exact, {}, x.double()), y)
    loss64.backward()
    failures = 0
    loss_error = abs(loss.item() - engine_loss) / max(abs(loss.item()), 1e-12)
    print(f"{directory.name}: loss torch {loss.item():.6f} engine {engine_loss:.6f} relative {loss_error:.2e}"
          f" (float64 {loss64.item():.6f})")
    failures += loss_error > TOLERANCE
    worst = worst_engine64 = worst_torch64 = 0.0
    print(f"  {'parameter':28s} {'shape':20s} {'engine-torch':>12s} {'engine-fp64':>12s} {'torch-fp64':>12s}")
    for p in spec["parameters"]:
        size = int(np.prod(p["shape"]))
        mine = torch.tensor(engine_gradients[p["offset"]:p["offset"] + size], device=device, dtype=torch.float64)
        theirs = params[p["name"]].grad.reshape(-1).double()
        truth = exact[p["name"]].grad.reshape(-1)
        error = relative(mine, theirs)
        engine64 = relative(mine, truth)
        torch64 = relative(theirs, truth)
        worst = max(worst, error)
        worst_engine64 = max(worst_engine64, engine64)
        worst_torch64 = max(worst_torch64, torch64)
        if error <= TOLERANCE:
            flag = ""
        elif engine64 <= AS_EXACT * torch64:
            flag = "  (as exact as torch fp32)"
        else:
            flag = "  <-- off"
            failures += 1
        print(f"  {p['name']:28s} {str(p['shape']):20s} {error:12.2e} {engine64:12.2e} {torch64:12.2e}{flag}")
    print(f"{directory.name}: worst gradient relative error {worst:.2e} against torch fp32 (tolerance {TOLERANCE:g});"
          f" against float64: engine {worst_engine64:.2e}, torch fp32 {worst_torch64:.2e}")

    # PyTorch eager fp32, TF32 off: its defaults, then cuDNN free to time and pick its fastest
    # algorithms (benchmark), then restricted to deterministic ones as the engine is.
    engine_median = statistics.median(engine_rates)
    print(f"{directory.name}: images/s engine {engine_median:,.0f} (windows {', '.join(f'{r:,.0f}' for r in engine_rates)})")
    for mode in ("default", "benchmark", "deterministic"):
        torch.backends.cudnn.benchmark = mode == "benchmark"
        torch.backends.cudnn.deterministic = mode == "deterministic"
        rates = time_torch(spec, flat, x, y, device, windows, steps)
        torch_median = statistics.median(rates)
        print(f"{directory.name}: images/s torch {mode:13s} {torch_median:,.0f} (windows {', '.join(f'{r:,.0f}' for r in rates)})"
              f"  engine / torch = {engine_median / torch_median:.2f}")
    print(f"{directory.name}: batch {batch}, {steps} steps a window, medians of {windows} windows")
    if failures:
        print(f"{directory.name}: {failures} value(s) outside the tolerance")
        sys.exit(1)


if __name__ == "__main__":
    main()
