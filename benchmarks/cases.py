"""The micro cases of issues 3 and 17, each a :class:`~benchmarks.harness.Case` with a
lazy setup.

- conv2d forward, and forward+backward, on six shapes (issue 3's list);
- max pooling 2x2/2 forward+backward on (64, 32, 28, 28);
- one training step (forward, softmax cross-entropy, backward, SGD momentum 0.9) of
  the MNIST CNN and of LeNet-5 at batch 64: float32 with the run's threads, float64,
  and float32 with one thread in both frameworks (issue 17);
- inference of both nets at batch 1,000, and the latency of one image and of 8;
- the first call in a fresh process: a new Python process that imports the framework,
  builds the MNIST CNN and classifies one image (what ``clearconv predict`` pays).

Everything is float32 unless the name says float64. Both sides get equal data (copies,
not shared memory). The
clearconv op cases run each call in ``clearconv.parallel()``, as a model's forward and
backward do (its batch split between clearconv's threads, the BLAS at one inside). The
PyTorch networks are twins of the clearconv ones (:mod:`benchmarks.torch_nets`) that
start from clearconv's initial weights.

Forward-only conv cases compare the two frameworks' forwards that keep nothing for a
backward: PyTorch's without autograd (plain tensors) and clearconv's with
``need_backward=False``. clearconv's training forward stores what its backward reuses
(all the im2col columns, all the Winograd input tiles: tens of MB written to memory
instead of one cache-sized buffer per thread); that cost is measured where it pays off,
in the forward+backward cases (PyTorch saves only references there, and recomputes in
its backward). Pool forward runs without autograd too; forward+backward uses ``requires_grad``
inputs and ``.backward`` of a fixed random upstream gradient, the ``.grad`` fields reset
to None before each call (clearconv returns fresh gradients too). Inference runs under
``torch.inference_mode()`` with ``model.eval()``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .flops import Work, conv2d_macs, conv_transpose2d_macs, model_work, with_backward
from .harness import Case, Pair, max_rel_diff, optional_torch

torch = optional_torch()
if torch is not None:
    import torch.nn.functional as F

    from . import torch_nets

#: the targets of issue 17 (toward the hardware floor), clearconv / PyTorch
TARGET_CONV_FORWARD = 1.0   # every conv case, forward only
TARGET_CONV = 1.0           # every conv case, forward+backward
TARGET_POOL = 0.5
TARGET_TRAIN = 0.7          # float32 training steps with the run's threads
TARGET_TRAIN_FLOOR = 1.3    # ... and their time / the floor (benchmarks.flops)
TARGET_FLOAT64 = 1.0        # float64 training steps
TARGET_ONE_THREAD = 1.0     # training steps, both frameworks at one thread
TARGET_INFERENCE = 0.7      # batch 1,000
TARGET_LATENCY = 1.0        # batch 1
TARGET_FIRST_CALL = 1.0     # import + build + first forward in a fresh process

SEED = 0
LR, MOMENTUM = 0.01, 0.9


class ConvShape(NamedTuple):
    """(N, C_in, H, W -> C_out, k, s, p) of a conv2d case."""

    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    k: int
    s: int
    p: int

    def label(self) -> str:
        return (f"{self.n}x{self.c_in}x{self.h}x{self.w}->{self.c_out} "
                f"k{self.k} s{self.s} p{self.p}")


CONV_SHAPES = [
    ConvShape(64, 1, 28, 28, 32, 3, 1, 1),
    ConvShape(64, 32, 14, 14, 64, 3, 1, 1),
    ConvShape(128, 3, 32, 32, 64, 3, 1, 1),
    ConvShape(128, 64, 16, 16, 128, 3, 1, 1),
    ConvShape(64, 64, 32, 32, 128, 3, 2, 1),
    ConvShape(64, 1, 28, 28, 6, 5, 1, 0),
]
POOL_SHAPE = (64, 32, 28, 28)
ARCHITECTURES = ("mnist_cnn", "lenet5")


def _randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))


def _tensor(a: np.ndarray, requires_grad: bool = False) -> Any:
    """A PyTorch copy of ``a`` (own memory)."""
    return torch.tensor(a, requires_grad=requires_grad)


# --------------------------------------------------------------------- conv2d
def _conv_setup(shape: ConvShape, backward: bool) -> Pair:
    from clearconv import parallel
    from clearconv.functional import conv2d_backward, conv2d_forward

    rng = np.random.default_rng(SEED)
    n, c_in, h, w, c_out, k, s, p = shape
    x = _randn(rng, n, c_in, h, w)
    weight = _randn(rng, c_out, c_in, k, k, scale=np.sqrt(2.0 / (c_in * k * k)))
    bias = _randn(rng, c_out, scale=0.1)
    h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    dy = _randn(rng, n, c_out, h_out, w_out)

    def ours() -> Any:
        with parallel():
            y, cache = conv2d_forward(x, weight, bias, stride=s, padding=p,
                                      need_backward=backward)
            return conv2d_backward(dy, cache) if backward else y

    if torch is None:
        return Pair(ours)
    xt, wt, bt = (_tensor(a, backward) for a in (x, weight, bias))
    dyt = _tensor(dy)

    def theirs() -> Any:
        if not backward:
            return F.conv2d(xt, wt, bt, stride=s, padding=p)
        xt.grad = wt.grad = bt.grad = None
        F.conv2d(xt, wt, bt, stride=s, padding=p).backward(dyt)
        return xt.grad, wt.grad, bt.grad

    def compare() -> dict[str, float]:
        a, b = ours(), theirs()
        if not backward:
            return {"max_rel_diff": max_rel_diff(a, b.detach().numpy())}
        return {f"max_rel_diff_{name}": max_rel_diff(u, v.numpy())
                for name, u, v in zip(("dx", "dw", "db"), a, b)}

    return Pair(ours, theirs, compare)


def conv_work(shape: ConvShape, backward: bool) -> Work:
    """Multiply-adds of a conv case: forward, and dW and dX when ``backward``."""
    n, c_in, h, w, c_out, k, s, p = shape
    h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    macs = conv2d_macs(n, c_in, h_out, w_out, c_out, k, k)
    return with_backward(macs) if backward else Work(macs)


def conv_case(shape: ConvShape, backward: bool) -> Case:
    kind = "fwd+bwd" if backward else "fwd"
    return Case(f"conv {kind} {shape.label()}", f"conv {kind}",
                TARGET_CONV if backward else TARGET_CONV_FORWARD,
                lambda: _conv_setup(shape, backward), work=lambda: conv_work(shape, backward))


# --------------------------------------------------------------------- max pooling
def _pool_setup(shape: tuple[int, int, int, int]) -> Pair:
    from clearconv import parallel
    from clearconv.functional import max_pool2d_backward, max_pool2d_forward

    rng = np.random.default_rng(SEED)
    n, c, h, w = shape
    x = _randn(rng, n, c, h, w)
    dy = _randn(rng, n, c, h // 2, w // 2)

    def ours() -> Any:
        with parallel():
            y, cache = max_pool2d_forward(x, 2, 2)
            return y, max_pool2d_backward(dy, cache)

    if torch is None:
        return Pair(ours)
    xt, dyt = _tensor(x, True), _tensor(dy)

    def theirs() -> Any:
        xt.grad = None
        y = F.max_pool2d(xt, 2, 2)
        y.backward(dyt)
        return y, xt.grad

    def compare() -> dict[str, float]:
        (y, dx), (yt, dxt) = ours(), theirs()
        return {"max_rel_diff_y": max_rel_diff(y, yt.detach().numpy()),
                "max_rel_diff_dx": max_rel_diff(dx, dxt.numpy())}

    return Pair(ours, theirs, compare)


def pool_case(shape: tuple[int, int, int, int] = POOL_SHAPE) -> Case:
    label = "x".join(map(str, shape))
    return Case(f"maxpool 2x2/2 fwd+bwd {label}", "pool", TARGET_POOL,
                lambda: _pool_setup(shape))


# --------------------------------------------------------------------- networks
def build_models(arch: str, seed: int = SEED, dtype: str = "float32") -> tuple[Any, Any]:
    """A clearconv zoo model of ``dtype`` and its PyTorch twin with the same initial
    weights (the twin is None without PyTorch)."""
    from clearconv.train import zoo

    model = getattr(zoo, arch)(rng=seed, dtype=dtype)
    if torch is None:
        return model, None
    net = torch_nets.from_config(model.get_config(), dtype)
    torch_nets.load_weights(net, model.state_dict(), dtype)
    return model, net


def _batch(batch: int, seed: int = SEED, dtype: str = "float32",
           shape: tuple[int, ...] = (1, 28, 28)) -> tuple[np.ndarray, np.ndarray]:
    """Images in [0, 1) like scaled MNIST (training on them stays stable), labels 0..9;
    ``shape`` (C, H, W) of one image."""
    rng = np.random.default_rng(seed)
    return (rng.random((batch, *shape), dtype=np.float32).astype(dtype),
            rng.integers(0, 10, batch).astype(np.int64))


def arch_work(arch: str, batch: int, backward: bool) -> Work:
    """Multiply-adds of a zoo network on a batch: its forward, or a training step."""
    from clearconv.train import zoo

    return model_work(getattr(zoo, arch)(rng=SEED), batch, backward=backward)


def _logits_diff(model: Any, net: Any, x: np.ndarray) -> dict[str, float]:
    with torch.inference_mode():
        theirs = net(torch.from_numpy(x)).numpy()
    return {"max_rel_diff_logits": max_rel_diff(model.forward(x), theirs)}


def _train_steps(arch: str, batch: int, dtype: str = "float32"
                 ) -> tuple[Any, Any, Any, Any]:
    """(model, net, ours, theirs): twin networks and one training step of each."""
    from clearconv.optim import SGD

    model, net = build_models(arch, dtype=dtype)
    x, y = _batch(batch, dtype=dtype)
    opt = SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def ours() -> float:
        return model.train_step(x, y, opt)

    if net is None:
        return model, None, ours, None
    xt, yt = _tensor(x), _tensor(y)
    topt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)

    def theirs() -> float:
        topt.zero_grad()
        loss = F.cross_entropy(net(xt), yt)
        loss.backward()
        topt.step()
        return loss.item()

    return model, net, ours, theirs


#: the training-step check: this many identical steps on fresh twins, then their logits
CHECK_STEPS = 5


def _train_setup(arch: str, batch: int, dtype: str = "float32") -> Pair:
    _, net, ours, theirs = _train_steps(arch, batch, dtype)
    if net is None:
        return Pair(ours)

    def compare() -> dict[str, float]:
        # the timed twins took different numbers of (settling) steps on one repeated
        # batch; fresh twins take the same few steps and must agree to rounding
        model, net, step_ours, step_theirs = _train_steps(arch, batch, dtype)
        for _ in range(CHECK_STEPS):
            step_ours()
            step_theirs()
        return _logits_diff(model, net, _batch(batch, dtype=dtype)[0])

    return Pair(ours, theirs, compare)


def train_case(arch: str, batch: int = 64, dtype: str = "float32",
               threads: int | None = None) -> Case:
    """One training step; float64, or with ``threads`` threads in both frameworks
    (instead of the run's ``--threads``), say so in the name and the target."""
    name = f"train step {arch} b{batch}"
    target, floor_target = TARGET_TRAIN, TARGET_TRAIN_FLOOR
    if dtype != "float32":
        name, target, floor_target = f"{name} {dtype}", TARGET_FLOAT64, None
    if threads is not None:
        name += f" {threads} thread" + ("s" if threads > 1 else "")
        target, floor_target = TARGET_ONE_THREAD if threads == 1 else target, None
    return Case(name, "train", target, lambda: _train_setup(arch, batch, dtype),
                work=lambda: arch_work(arch, batch, backward=True), dtype=dtype,
                threads=threads, floor_target=floor_target)


def _inference_setup(arch: str, batch: int) -> Pair:
    model, net = build_models(arch)
    x, _ = _batch(batch)

    def ours() -> np.ndarray:
        return model.predict(x, batch_size=batch)

    if net is None:
        return Pair(ours)
    net.eval()
    xt = _tensor(x)

    def theirs() -> Any:
        with torch.inference_mode():
            return net(xt)

    return Pair(ours, theirs, lambda: _logits_diff(model, net, x))


def inference_case(arch: str, batch: int = 1000, target: float | None = TARGET_INFERENCE
                   ) -> Case:
    return Case(f"inference {arch} b{batch}", "inference", target,
                lambda: _inference_setup(arch, batch),
                work=lambda: arch_work(arch, batch, backward=False))


def latency_cases() -> list[Case]:
    """Inference of one image (the issue's batch-1 target) and of a small batch of 8
    (no target in the issue: its ratio is shown for information)."""
    return [inference_case(a, 1, TARGET_LATENCY) for a in ARCHITECTURES] + \
        [inference_case(a, 8, None) for a in ARCHITECTURES]


# --------------------------------------------------------------------- a fresh process
FIRST_CALL_ARCH = "mnist_cnn"


def _first_call_setup(threads: int | None = None) -> Pair:
    """Each call starts a new Python process that imports one framework, builds the
    MNIST CNN and classifies one image (:func:`benchmarks.worker.first_call`); timed
    from outside, so the interpreter's start is in both sides' times. The breakdown
    the children report (import, build, first forward) goes into ``details``."""
    from clearconv.train import zoo

    from .worker import run_fresh

    config = getattr(zoo, FIRST_CALL_ARCH)(rng=SEED).get_config()
    reports: dict[str, list[dict[str, Any]]] = {"clearconv": [], "torch": []}

    def side(framework: str) -> Any:
        def call() -> dict[str, Any]:
            result = run_fresh({"kind": "first_call", "framework": framework,
                                "arch": FIRST_CALL_ARCH, "config": config,
                                "threads": threads})
            if "error" in result:
                raise RuntimeError(f"{framework} first call: {result['error']}")
            reports[framework].append(result)
            return result
        return call

    def details() -> dict[str, Any]:
        out = {}
        for framework, runs in reports.items():
            if runs:
                out[framework] = {key: float(np.median([r[key] for r in runs]))
                                  for key in runs[0] if key.endswith("_ms")}
        return out

    return Pair(side("clearconv"), side("torch") if torch is not None else None,
                details=details)


def first_call_case() -> Case:
    return Case(f"first call, fresh process: import + build {FIRST_CALL_ARCH} + predict 1",
                "fresh process", TARGET_FIRST_CALL, _first_call_setup, settle=False)


# --------------------------------------------------------------------- issue 13's ops
#: the targets of the modern-CNN issue, clearconv / PyTorch
TARGET_DEPTHWISE = 1.5
TARGET_TRANSPOSED = 1.5


def _grad_pair(ours_op: Any, torch_op: Any, arrays: list[np.ndarray], dy: np.ndarray) -> Pair:
    """Forward+backward of one op on both sides (ours: ``ours_op(*arrays) -> (y,
    backward(dy))`` inside clearconv.parallel(); theirs: autograd), compared on the
    gradients."""
    from clearconv import parallel

    def ours() -> Any:
        with parallel():
            return ours_op(*arrays, dy)

    if torch is None:
        return Pair(ours)
    tensors = [_tensor(a, True) for a in arrays]
    dyt = _tensor(dy)

    def theirs() -> Any:
        for t in tensors:
            t.grad = None
        torch_op(*tensors).backward(dyt)
        return tuple(t.grad for t in tensors)

    def compare() -> dict[str, float]:
        got, want = ours(), theirs()
        return {f"max_rel_diff_{i}": max_rel_diff(g, w.numpy())
                for i, (g, w) in enumerate(zip(got, want))}

    return Pair(ours, theirs, compare)


def _depthwise_setup() -> Pair:
    from clearconv.functional import conv2d_backward, conv2d_forward

    rng = np.random.default_rng(SEED)
    x = _randn(rng, 64, 128, 32, 32)
    w = _randn(rng, 128, 1, 3, 3, scale=1 / 3)
    b = _randn(rng, 128, scale=0.1)
    dy = _randn(rng, 64, 128, 32, 32)

    def ours(x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray) -> Any:
        y, cache = conv2d_forward(x, w, b, padding=1, groups=128)
        return conv2d_backward(dy, cache)

    return _grad_pair(ours, lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=128),
                      [x, w, b], dy)


def _depthwise_work() -> Work:
    return with_backward(conv2d_macs(64, 128, 32, 32, 128, 3, 3, groups=128))


def _transposed_work() -> Work:
    return with_backward(conv_transpose2d_macs(64, 64, 16, 16, 32, 4, 4))


def _transposed_setup() -> Pair:
    from clearconv.functional import conv_transpose2d_backward, conv_transpose2d_forward

    rng = np.random.default_rng(SEED)
    x = _randn(rng, 64, 64, 16, 16)
    w = _randn(rng, 64, 32, 4, 4, scale=1 / 16)
    b = _randn(rng, 32, scale=0.1)
    dy = _randn(rng, 64, 32, 32, 32)

    def ours(x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray) -> Any:
        y, cache = conv_transpose2d_forward(x, w, b, stride=2, padding=1)
        return conv_transpose2d_backward(dy, cache)

    return _grad_pair(ours, lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1),
                      [x, w, b], dy)


def modern_cases() -> list[Case]:
    """The ops of the modern-CNN issue."""
    return [Case("depthwise 3x3 fwd+bwd 64x128x32x32 groups 128", "modern", TARGET_DEPTHWISE,
                 _depthwise_setup, work=_depthwise_work),
            Case("conv transpose 4x4 s2 fwd+bwd 64x64x16x16->32", "modern",
                 TARGET_TRANSPOSED, _transposed_setup, work=_transposed_work)]


def _one_input_setup(ours_op: Any, torch_op: Any, x_shape: tuple[int, ...],
                     dy_shape: tuple[int, ...]) -> Pair:
    """Forward+backward of a one-input op without parameters (pooling, upsampling)."""
    rng = np.random.default_rng(SEED)
    x = _randn(rng, *x_shape)
    dy = _randn(rng, *dy_shape)

    def ours(x: np.ndarray, dy: np.ndarray) -> Any:
        y, cache = ours_op[0](x)
        return (ours_op[1](dy, cache),)

    return _grad_pair(ours, torch_op, [x], dy)


def pooling_cases() -> list[Case]:
    """Global pooling and upsampling (issue 13's pooling item): ratios for information,
    no target in the issue."""
    from clearconv.functional import adaptive_pool, upsample

    def up(kind: Any) -> Any:
        return lambda x: kind(x, scale_factor=2)

    gap = (adaptive_pool.global_avg_pool2d_forward, adaptive_pool.global_avg_pool2d_backward)
    near = (up(upsample.upsample_nearest2d_forward), upsample.upsample_nearest2d_backward)
    bil = (up(upsample.upsample_bilinear2d_forward), upsample.upsample_bilinear2d_backward)
    return [
        Case("global avg pool fwd+bwd 128x64x8x8", "modern", None,
             lambda: _one_input_setup(gap, lambda x: F.adaptive_avg_pool2d(x, 1),
                                      (128, 64, 8, 8), (128, 64, 1, 1))),
        Case("upsample nearest 2x fwd+bwd 64x32x16x16", "modern", None,
             lambda: _one_input_setup(near, lambda x: F.interpolate(x, scale_factor=2),
                                      (64, 32, 16, 16), (64, 32, 32, 32))),
        Case("upsample bilinear 2x fwd+bwd 64x32x16x16", "modern", None,
             lambda: _one_input_setup(bil, lambda x: F.interpolate(
                 x, scale_factor=2, mode="bilinear", align_corners=False),
                 (64, 32, 16, 16), (64, 32, 32, 32))),
    ]


def all_cases() -> list[Case]:
    """Every micro case, in the order of the table."""
    return ([conv_case(s, backward=False) for s in CONV_SHAPES]
            + [conv_case(s, backward=True) for s in CONV_SHAPES]
            + [pool_case()]
            + [train_case(a) for a in ARCHITECTURES]
            + [train_case(a, dtype="float64") for a in ARCHITECTURES]
            + [train_case(a, threads=1) for a in ARCHITECTURES]
            + [inference_case(a) for a in ARCHITECTURES]
            + latency_cases()
            + [first_call_case()]
            + modern_cases()
            + bn_cases()
            + pooling_cases())


def find_case(name: str) -> Case:
    """The case called ``name`` (for a fresh worker process)."""
    for case in all_cases():
        if case.name == name:
            return case
    raise KeyError(f"no benchmark case named {name!r}")


# ------------------------------------------------------------- batch norm and ResNet-20
#: the targets of the modern-CNN issue (13) for its batch-norm cases, clearconv / PyTorch:
#: the op, the ResNet-20 and BN MNIST CNN training steps and ResNet-20's inference
TARGET_BN = 1.0
TARGET_BN_TRAIN = 1.0
TARGET_BN_INFERENCE = 1.0
BN_ARCHITECTURES = {"resnet20": (3, 32, 32), "mnist_bn_cnn": (1, 28, 28)}


def _images(batch: int, shape: tuple[int, int, int], seed: int = SEED
            ) -> tuple[np.ndarray, np.ndarray]:
    """Images in [0, 1) of per-sample ``shape``, labels 0..9."""
    rng = np.random.default_rng(seed)
    return (rng.random((batch, *shape), dtype=np.float32),
            rng.integers(0, 10, batch).astype(np.int64))


def _bn_train_steps(arch: str, batch: int, dropout: bool = True
                    ) -> tuple[Any, Any, Any, Any]:
    """(model, net, ours, theirs): twin batch-norm networks (train mode) and one SGD
    training step of each, on one fixed batch (``dropout=False``: dropout layers at p=0
    on both sides, whose masks cannot agree, for the check)."""
    from clearconv.optim import SGD

    from clearconv.layers import Dropout

    model, net = build_models(arch)
    if not dropout:
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.p = 0.0
        for module in [] if net is None else net.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    x, y = _images(batch, BN_ARCHITECTURES[arch])
    opt = SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def ours() -> float:
        return model.train_step(x, y, opt)

    if net is None:
        return model, None, ours, None
    net.train()
    xt, yt = _tensor(x), _tensor(y)
    topt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)

    def theirs() -> float:
        topt.zero_grad()
        loss = F.cross_entropy(net(xt), yt)
        loss.backward()
        topt.step()
        return loss.item()

    return model, net, ours, theirs


def _eval_logits_diff(model: Any, net: Any, x: np.ndarray) -> dict[str, float]:
    """Inference of both (running statistics), compared."""
    net.eval()
    try:
        return _logits_diff(model, net, x)
    finally:
        net.train()


def _bn_train_setup(arch: str, batch: int) -> Pair:
    _, net, ours, theirs = _bn_train_steps(arch, batch)
    if net is None:
        return Pair(ours)

    def compare() -> dict[str, float]:
        model, net, step_ours, step_theirs = _bn_train_steps(arch, batch, dropout=False)
        for _ in range(CHECK_STEPS):
            step_ours()
            step_theirs()
        return _eval_logits_diff(model, net, _images(batch, BN_ARCHITECTURES[arch])[0])

    return Pair(ours, theirs, compare)


def _bn_inference_setup(arch: str, batch: int) -> Pair:
    model, net = build_models(arch)
    x, _ = _images(batch, BN_ARCHITECTURES[arch])

    def ours() -> np.ndarray:
        return model.predict(x, batch_size=batch)

    if net is None:
        return Pair(ours)
    net.eval()
    xt = _tensor(x)

    def theirs() -> Any:
        with torch.inference_mode():
            return net(xt)

    return Pair(ours, theirs, lambda: _logits_diff(model, net, x))


def _batch_norm_setup() -> Pair:
    """BatchNorm2d training forward + backward (batch statistics, the running ones
    updated), 64x64x32x32 float32."""
    from clearconv.functional import batch_norm2d_backward, batch_norm2d_forward

    rng = np.random.default_rng(SEED)
    x = _randn(rng, 64, 64, 32, 32)
    gamma = 1 + _randn(rng, 64, scale=0.1)
    beta = _randn(rng, 64, scale=0.1)
    dy = _randn(rng, 64, 64, 32, 32)
    stats = [np.zeros(64, np.float32), np.ones(64, np.float32)]
    torch_stats = [_tensor(s) for s in stats]

    def ours(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, dy: np.ndarray) -> Any:
        y, cache = batch_norm2d_forward(x, gamma, beta, stats[0], stats[1], True)
        return batch_norm2d_backward(dy, cache)

    return _grad_pair(ours, lambda x, g, b: F.batch_norm(x, *torch_stats, g, b, True),
                      [x, gamma, beta], dy)


def bn_cases() -> list[Case]:
    """The batch-norm cases of the modern-CNN issue: ResNet-20 and the BN MNIST CNN."""
    return [Case("train step resnet20 b128", "train", TARGET_BN_TRAIN,
                 lambda: _bn_train_setup("resnet20", 128)),
            Case("train step mnist_bn_cnn b64", "train", TARGET_BN_TRAIN,
                 lambda: _bn_train_setup("mnist_bn_cnn", 64)),
            Case("batch norm fwd+bwd 64x64x32x32", "modern", TARGET_BN, _batch_norm_setup),
            Case("inference resnet20 b1000", "inference", TARGET_BN_INFERENCE,
                 lambda: _bn_inference_setup("resnet20", 1000))]
