#!/usr/bin/env python3
"""Times a peer library's full Hessian of the same MLP as `npm run bench`: `jax` (jax.jit(jax.hessian)
over the ravelled parameter vector) or `torch` (torch.func.hessian; torch.autograd.functional.hessian
where torch.func is missing, e.g. Debian's torch 1.13). Reads the request JSON (the service's format:
dense tanh layers, a linear last layer, softmax cross-entropy from logits) on stdin; float32 like the
service; prints {"seconds": best of `runs` timed runs after one untimed (compiling) run, "peer": ...,
"version": ..., "mode": ..., "size": P, "trace": trace of H, "corner": H[0, P-1]} for the bench to check
that it computed the same matrix.
Usage: peer_hessian.py jax|torch [threads] [runs]"""
import json
import sys
import time

peer = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
request = json.load(sys.stdin)
layers = request["model"]["layers"]
shapes = [((len(l["kernel"]), len(l["kernel"][0])), (len(l["bias"]),)) for l in layers]
flat_values = []
for l in layers:
    flat_values += [v for row in l["kernel"] for v in row] + list(l["bias"])
x_values, y_values = request["data"]["x"], request["data"]["y"]


def timed(compute, finish):
    finish(compute())  # compiles (jax) or warms up; not timed
    best, result = None, None
    for _ in range(runs):
        start = time.perf_counter()
        result = compute()
        finish(result)
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    return best, result


def make_loss(x, y, tanh, log_softmax):
    """The mean softmax cross-entropy of the MLP whose parameters are the flat vector theta (either library)."""

    def loss(theta):
        a, offset = x, 0
        for i, (ks, bs) in enumerate(shapes):
            kn, bn = ks[0] * ks[1], bs[0]
            kernel = theta[offset : offset + kn].reshape(ks)
            bias = theta[offset + kn : offset + kn + bn]
            offset += kn + bn
            a = a @ kernel + bias
            if i < len(shapes) - 1:
                a = tanh(a)
        return -(y * log_softmax(a)).sum(1).mean()

    return loss


if peer == "jax":
    import jax  # XLA's CPU client uses every core, as the service's workers do
    import jax.numpy as jnp

    x = jnp.asarray(x_values, dtype=jnp.float32)
    y = jnp.asarray(y_values, dtype=jnp.float32)
    flat = jnp.asarray(flat_values, dtype=jnp.float32)

    loss = make_loss(x, y, jnp.tanh, lambda a: jax.nn.log_softmax(a, axis=1))
    hessian = jax.jit(jax.hessian(loss))
    seconds, h = timed(lambda: hessian(flat), lambda h: h.block_until_ready())
    version, mode = jax.__version__, "jit(hessian)"
elif peer == "torch":
    import torch

    torch.set_num_threads(threads)
    x = torch.tensor(x_values, dtype=torch.float32)
    y = torch.tensor(y_values, dtype=torch.float32)
    flat = torch.tensor(flat_values, dtype=torch.float32)

    loss = make_loss(x, y, torch.tanh, lambda a: torch.log_softmax(a, dim=1))

    try:
        from torch.func import hessian as func_hessian

        compute, mode = (lambda: func_hessian(loss)(flat)), "torch.func.hessian"
    except ImportError:
        compute, mode = (lambda: torch.autograd.functional.hessian(loss, flat)), "autograd.functional.hessian"
    seconds, h = timed(compute, lambda h: None)
    version = torch.__version__
else:
    sys.exit(f"unknown peer {peer!r}: jax or torch")

size = int(h.shape[0])
print(json.dumps({"seconds": seconds, "peer": peer, "version": version, "mode": mode, "size": size,
                  "trace": float(h.trace()), "corner": float(h[0, size - 1])}))
