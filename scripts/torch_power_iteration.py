#!/usr/bin/env python3
"""Independent float64 reference for `npm run bench:curvature`: the largest-magnitude eigenvalue of the
Hessian of a tanh MLP under softmax cross-entropy (mean over the batch), by power iteration on
PyTorch autograd Hessian-vector products (double backward). Reads the weights and data the benchmark
wrote (raw little-endian float32 files and meta.json) and prints one JSON line."""
import json
import os
import sys
import time

try:
    import numpy as np
    import torch
except ImportError:  # torch lives in Debian's python3
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

torch.set_default_dtype(torch.float64)
torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))

d = sys.argv[1]
meta = json.load(open(os.path.join(d, "meta.json")))
sizes, batch = meta["sizes"], meta["batch"]
load = lambda name, shape: torch.tensor(np.fromfile(os.path.join(d, name), dtype="<f4").astype(np.float64).reshape(shape))
params = []
for l in range(len(sizes) - 1):
    params.append(load("kernel%d.f32" % l, (sizes[l], sizes[l + 1])).requires_grad_(True))
    params.append(load("bias%d.f32" % l, (sizes[l + 1],)).requires_grad_(True))
x = load("x.f32", (batch, sizes[0]))
y = torch.tensor(meta["labels"], dtype=torch.long)


def loss_fn():
    h = x
    for l in range(len(sizes) - 1):
        z = h @ params[2 * l] + params[2 * l + 1]
        h = torch.tanh(z) if l < len(sizes) - 2 else z
    return torch.nn.functional.cross_entropy(h, y)


grads = torch.autograd.grad(loss_fn(), params, create_graph=True)


def hvp(v):
    return torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)


gen = torch.Generator().manual_seed(0)
v = [torch.randn(p.shape, generator=gen) for p in params]
norm = torch.sqrt(sum((t * t).sum() for t in v))
v = [t / norm for t in v]
start = time.time()
value = 0.0
iterations = 0
for iterations in range(1, 501):
    hv = hvp(v)
    new_value = float(sum((a * b).sum() for a, b in zip(v, hv)))  # Rayleigh quotient
    norm = torch.sqrt(sum((t * t).sum() for t in hv))
    v = [t / norm for t in hv]
    if iterations > 5 and abs(new_value - value) <= 1e-7 * abs(new_value):
        value = new_value
        break
    value = new_value
print(json.dumps({"eigenvalue": value, "iterations": iterations, "seconds": time.time() - start}))
