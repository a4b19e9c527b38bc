"""The PyTorch twin of a clearconv ``Sequential``, built from its config.

``from_config(model.get_config())`` returns an ``nn.Sequential`` whose layer indices
are clearconv's, so the state dicts share their keys (``'0.weight'``, ``'3.bias'``, ...)
and ``load_weights`` copies clearconv's initial weights one to one: both frameworks then
start from the same numbers and do the same arithmetic.

This module imports torch and numpy only (not clearconv), so a PyTorch epoch measured
in its own process carries no clearconv memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


def _padding(value: Any) -> Any:
    """clearconv's padding config as nn.Conv2d's (``'same'``, ``'valid'``, int or pair)."""
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, int):
        return value
    if len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ValueError(f"padding {value!r} has no nn.Conv2d equivalent")


class Residual(nn.Module):
    """``main(x) + shortcut(x)``, clearconv's Residual (the same state-dict keys:
    ``main.0.weight``, ``shortcut.1.running_mean``, ...)."""

    def __init__(self, main: nn.Sequential, shortcut: nn.Sequential) -> None:
        super().__init__()
        self.main, self.shortcut = main, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


def _chain(specs: list[dict[str, Any]]) -> nn.Sequential:
    return nn.Sequential(*(_layer(spec["type"], spec["config"]) for spec in specs))


def _layer(kind: str, cfg: dict[str, Any]) -> nn.Module:
    if kind == "Conv2D":
        return nn.Conv2d(cfg["in_channels"], cfg["out_channels"], tuple(cfg["kernel_size"]),
                         stride=tuple(cfg["stride"]), padding=_padding(cfg["padding"]),
                         dilation=tuple(cfg["dilation"]), bias=cfg["bias"])
    if kind == "Dense":
        return nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"])
    if kind == "MaxPool2D":
        return nn.MaxPool2d(tuple(cfg["kernel_size"]), tuple(cfg["stride"]),
                            tuple(cfg["padding"]), ceil_mode=cfg["ceil_mode"])
    if kind in ("BatchNorm2D", "BatchNorm1D"):
        cls = nn.BatchNorm2d if kind == "BatchNorm2D" else nn.BatchNorm1d
        return cls(cfg["num_features"], cfg["eps"], cfg["momentum"], cfg["affine"],
                   cfg["track_running_stats"])
    if kind == "Residual":
        return Residual(_chain(cfg["main"]), _chain(cfg["shortcut"]))
    if kind == "AvgPool2D":
        return nn.AvgPool2d(tuple(cfg["kernel_size"]), tuple(cfg["stride"]),
                            tuple(cfg["padding"]), ceil_mode=cfg["ceil_mode"],
                            count_include_pad=cfg["count_include_pad"],
                            divisor_override=cfg.get("divisor_override"))
    if kind == "GlobalAvgPool2D":
        pool = nn.AdaptiveAvgPool2d(1)
        return nn.Sequential(pool, nn.Flatten()) if cfg.get("flatten") else pool
    if kind == "Dropout":
        return nn.Dropout(cfg["p"])
    if kind == "ReLU":
        return nn.ReLU()
    if kind == "Flatten":
        return nn.Flatten()
    raise ValueError(f"no PyTorch twin for clearconv layer {kind!r}")


def from_config(config: dict[str, Any], dtype: str = "float32") -> nn.Sequential:
    """``nn.Sequential`` with the same layers, in the same order, of ``dtype``
    ('float32' or 'float64')."""
    layers = [_layer(spec["type"], spec["config"]) for spec in config["layers"]]
    return nn.Sequential(*layers).to(getattr(torch, dtype))


def load_weights(net: nn.Module, state: dict[str, np.ndarray],
                 dtype: str = "float32") -> nn.Module:
    """Copy clearconv's parameters and buffers (name -> array) into ``net``, the float
    ones as ``dtype`` (batch norm's count as it is); names and shapes must match."""
    net.load_state_dict({k: torch.from_numpy(np.array(v, dtype if np.asarray(v).dtype.kind
                                                      == "f" else np.asarray(v).dtype))
                         for k, v in state.items()}, strict=True)
    return net
