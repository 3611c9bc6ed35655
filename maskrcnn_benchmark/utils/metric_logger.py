"""Smoothed training meters (windowed median / global average), as the training log and progress bar show."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable

import torch

__all__ = ["SmoothedValue", "MetricLogger"]


class SmoothedValue:
    """A series of numbers with a sliding-window median/average and a global average.

    Args:
        window_size: number of most recent values the windowed statistics use.
    """

    def __init__(self, window_size: int = 20):
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        self.deque: deque = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0

    def update(self, value: float) -> None:
        """Append one value."""
        value = float(value)
        self.deque.append(value)
        self.total += value
        self.count += 1

    @property
    def median(self) -> float:
        """Median of the window (the lower middle value for an even count, as torch.median)."""
        if not self.deque:
            return float("nan")
        return float(torch.tensor(list(self.deque)).median().item())

    @property
    def avg(self) -> float:
        """Mean of the window."""
        if not self.deque:
            return float("nan")
        return sum(self.deque) / len(self.deque)

    @property
    def global_avg(self) -> float:
        """Mean of every value ever added."""
        return self.total / self.count if self.count else float("nan")

    @property
    def value(self) -> float:
        """The most recent value."""
        return self.deque[-1] if self.deque else float("nan")


class MetricLogger:
    """Named ``SmoothedValue`` meters, formatted as "name: median (global avg)".

    Args:
        delimiter: separator between meters in ``str(logger)``.
        window_size: window of every meter.
    """

    def __init__(self, delimiter: str = "  ", window_size: int = 20):
        self.meters: dict[str, SmoothedValue] = defaultdict(lambda: SmoothedValue(window_size))
        self.delimiter = delimiter

    def update(self, **kwargs) -> None:
        """Add one value per named meter; tensors must be scalars."""
        for name, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ValueError(f"meter {name}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
                value = value.item()
            if not isinstance(value, (float, int)):
                raise TypeError(f"meter {name}: expected a number, got {type(value).__name__}")
            self.meters[name].update(value)

    def __getattr__(self, attr: str) -> SmoothedValue:
        meters = self.__dict__.get("meters")
        if meters is not None and attr in meters:
            return meters[attr]
        raise AttributeError(f"{type(self).__name__} has no meter or attribute {attr!r}")

    def medians(self, names: Iterable[str]) -> dict[str, float]:
        """Windowed medians of the given meters."""
        return {name: self.meters[name].median for name in names if name in self.meters}

    def __str__(self) -> str:
        return self.delimiter.join(
            f"{name}: {meter.median:.4f} ({meter.global_avg:.4f})" for name, meter in self.meters.items()
        )
