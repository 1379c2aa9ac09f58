#!/usr/bin/env python3
"""Times PyTorch's own Hessian of the same MLP as `npm run bench`, as the reference the benchmark
compares against. Reads the request JSON (the service's format: dense tanh layers, a linear last layer,
softmax cross-entropy from logits) on stdin; prints {"seconds": s, "size": P, "torch": version, "mode": ...}
for the faster of hessian(..., vectorize=False) (P reverse passes) and, when P <= MAX_VECTORIZED,
vectorize=True (vmap; on this machine's Debian build much slower, e.g. 4.4 s vs 0.48 s at P=1507),
the best of two runs of each."""
import json
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
request = json.load(sys.stdin)
layers = request["model"]["layers"]
x = torch.tensor(request["data"]["x"], dtype=torch.float32)
y = torch.tensor(request["data"]["y"], dtype=torch.float32)
pieces, shapes = [], []
for layer in layers:
    kernel = torch.tensor(layer["kernel"], dtype=torch.float32)
    bias = torch.tensor(layer["bias"], dtype=torch.float32)
    pieces += [kernel.reshape(-1), bias]
    shapes.append((kernel.shape, bias.shape))
flat = torch.cat(pieces)


def loss(theta):
    a, offset = x, 0
    for i, (ks, bs) in enumerate(shapes):
        kn, bn = ks.numel(), bs.numel()
        kernel = theta[offset : offset + kn].reshape(ks)
        bias = theta[offset + kn : offset + kn + bn]
        offset += kn + bn
        a = a @ kernel + bias
        if i < len(shapes) - 1:
            a = torch.tanh(a)
    return -(y * torch.log_softmax(a, dim=1)).sum(dim=1).mean()


MAX_VECTORIZED = 2000
best = None
for vectorize in (False, True):
    if vectorize and flat.numel() > MAX_VECTORIZED:
        continue
    for _ in range(2):  # the first run includes one-time set-up
        start = time.perf_counter()
        hessian = torch.autograd.functional.hessian(loss, flat, vectorize=vectorize)
        seconds = time.perf_counter() - start
        if best is None or seconds < best[0]:
            best = (seconds, f"vectorize={vectorize}", float(hessian[0, 0]))
        del hessian
print(json.dumps({"seconds": best[0], "mode": best[1], "size": int(flat.numel()), "torch": torch.__version__, "check": best[2]}))
