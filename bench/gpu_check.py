#!/usr/bin/env python3
"""Compares the CUDA engine against PyTorch on the same GPU (bench/gpu-check.sh runs it).

    gpu_check.py DIR WINDOWS STEPS

DIR holds what `GpuCheck gradients` wrote: the network (network.json), its parameters, one batch,
the engine's loss and gradients, and the engine's images/s per window. This script builds the same
network in PyTorch from network.json, loads the same parameters and batch, computes the loss and
every parameter's gradient with TF32 off, and compares: each parameter's gradient must match within
1e-3 relative (||engine - torch|| / ||torch||). Then it times PyTorch eager fp32 steps (forward,
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
                state[name] = (torch.zeros(channels, device=a.device), torch.ones(channels, device=a.device))
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
    failures = 0
    loss_error = abs(loss.item() - engine_loss) / max(abs(loss.item()), 1e-12)
    print(f"{directory.name}: loss torch {loss.item():.6f} engine {engine_loss:.6f} relative {loss_error:.2e}")
    failures += loss_error > TOLERANCE
    worst = 0.0
    for p in spec["parameters"]:
        size = int(np.prod(p["shape"]))
        mine = torch.tensor(engine_gradients[p["offset"]:p["offset"] + size], device=device, dtype=torch.float64)
        theirs = params[p["name"]].grad.reshape(-1).double()
        error = (torch.linalg.vector_norm(mine - theirs) / torch.linalg.vector_norm(theirs).clamp_min(1e-30)).item()
        worst = max(worst, error)
        flag = "" if error <= TOLERANCE else "  <-- off"
        failures += error > TOLERANCE
        print(f"  {p['name']:28s} {str(p['shape']):20s} gradient relative error {error:.2e}{flag}")
    print(f"{directory.name}: worst gradient relative error {worst:.2e} (tolerance {TOLERANCE:g})")

    # PyTorch eager fp32, TF32 off, cuDNN free to pick its fastest (non-deterministic) algorithms.
    torch.backends.cudnn.benchmark = True
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
        rates.append(batch * steps / (time.perf_counter() - start))
    torch_median = statistics.median(rates)
    engine_median = statistics.median(engine_rates)
    print(f"{directory.name}: images/s engine {engine_median:,.0f} (windows {', '.join(f'{r:,.0f}' for r in engine_rates)})")
    print(f"{directory.name}: images/s torch  {torch_median:,.0f} (windows {', '.join(f'{r:,.0f}' for r in rates)})")
    print(f"{directory.name}: engine / torch images/s = {engine_median / torch_median:.2f} (batch {batch}, {steps} steps a window, medians of {windows})")
    if failures:
        print(f"{directory.name}: {failures} value(s) outside the tolerance")
        sys.exit(1)


if __name__ == "__main__":
    main()
