"""Segmentation losses (torch): a registry of keyword-only builders, ``build_loss(name, ...)``.

Every loss maps logits (N, K, H, W) and integer targets (N, H, W) to a scalar tensor and honours
``ignore_index``: pixels whose target is ``ignore_index`` contribute nothing to the value and get
exactly zero gradient (their logits are masked with ``torch.where``, never multiplied, so even
non-finite logits there cannot leak in). A batch with no valid pixel gives 0, not NaN. Targets
outside [0, K) that are not ``ignore_index`` raise DataError. Probabilities are computed in
float32 whatever the logits' dtype (safe under AMP).

Names (see each builder for its arguments):

- ``ce``: mean cross-entropy over valid pixels.
- ``weighted-ce``: class-weighted CE, sum(w_y * CE) / sum(w_y) over valid pixels (PyTorch's
  weighted mean), with ``class_weights`` given or computed by median-frequency balancing
  (:func:`edgeseg.metrics.median_frequency_weights`) from ``label_maps``.
- ``balanced-ce``: seed 000 Eq. 1-2, CE(p, y) = -beta_t log(p_t), beta_t = beta for a positive
  sample, 1 - beta otherwise. *Multi-class reading*: the paper states it for positive/negative
  samples only. We take the softmax over all K classes, p_t = softmax probability of the pixel's
  true class, and call a pixel negative when its target is ``background_index`` (default 0:
  background in VOC, the paper's data set, and in DSB2018) and positive for any other class. The
  loss is the mean of the per-pixel Eq. 2 over valid pixels (not re-normalised by the weights, so
  beta also scales the loss). For K = 2 this is exactly the binary Eq. 1-2 with p = sigmoid of
  the logit difference. (A one-vs-rest reading over all K softmax channels is not used: for K = 2
  its beta terms cancel and it collapses to plain CE.)
- ``bce-dice``: seed 003 Eq. 5-8, LOSS = beta * LOSS_BCE + LOSS_Dice.
  LOSS_BCE (Eq. 5-6) = (1/B) sum_u -alpha_y sum_v t_uv log o_uv over the B valid pixels: alpha_y
  stands outside the sum over classes v, so it is a per-pixel weight, alpha when the pixel is a
  positive sample (t = 1 for a foreground class) and 1 - alpha otherwise, i.e. the ``balanced-ce``
  above with alpha in place of beta. LOSS_Dice (Eq. 7) = 1 - sum_v Q_v 2 sum_u t_vu o_vu /
  sum_u (t_vu^2 + o_vu^2). *Reading of "log o"*: Eq. 5's text defines the softmax output as
  "log(o_u,v) in [0, 1]", so "log o" is the authors' name for the softmax probability itself;
  a real logarithm would make the Dice numerator negative and unbounded. We therefore use the
  softmax probability o. Sums over u run over all valid pixels of the batch; Q_v (``dice_weights``)
  are normalised to sum to 1 so the Dice term lies in [0, 1] (default uniform 1/K); ``smooth`` is
  added to numerator and denominator (default 1.0; 0 gives the equation as printed).
- ``dice``: the Dice term of ``bce-dice`` alone (``class_weights`` = Q_v).

The seeds give no values for alpha / beta: defaults are alpha = beta(balanced-ce) = 0.75 (the best
alpha of plain alpha-balanced CE in Lin et al., "Focal Loss", Table 1a) and beta(bce-dice) = 1.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import ConfigError, DataError, did_you_mean

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def _register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        return fn

    return deco


def loss_names() -> list[str]:
    return sorted(_REGISTRY)


def loss_args(name: str) -> list[str]:
    """Keyword arguments the loss ``name`` accepts besides num_classes / ignore_index."""
    sig = inspect.signature(_get_builder(name))
    return [p for p in sig.parameters if p not in ("num_classes", "ignore_index")]


def _get_builder(name: str) -> Callable[..., nn.Module]:
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown loss {name!r}{did_you_mean(name, loss_names())}; "
            f"valid losses: {', '.join(loss_names())}"
        )
    return _REGISTRY[name]


def build_loss(name: str, *, num_classes: int, ignore_index: int | None = None, **kw: Any) -> nn.Module:
    """Build loss ``name``: a module called as ``loss(logits_nkhw, target_nhw) -> scalar``.

    Unknown names and arguments raise ConfigError listing the valid ones (with the closest).
    """
    builder = _get_builder(name)
    valid = loss_args(name)
    for key in kw:
        if key not in valid:
            listing = ", ".join(valid) if valid else "none besides num_classes, ignore_index"
            raise ConfigError(
                f"loss {name!r} has no argument {key!r}{did_you_mean(key, valid)}; valid arguments: {listing}"
            )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2 for a softmax loss, got {num_classes!r}")
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise ConfigError(f"ignore_index must be an integer or None, got {ignore_index!r}")
    return builder(num_classes=num_classes, ignore_index=ignore_index, **kw)


# ----------------------------------------------------------------------------- shared pieces


def _prepare(
    logits: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes/values; return (valid mask nhw bool, target nhw long with ignored set to 0)."""
    if logits.ndim != 4 or logits.shape[1] != num_classes:
        raise ConfigError(
            f"logits must be (N, {num_classes}, H, W), got {tuple(logits.shape)}; "
            "build the loss with the model's num_classes"
        )
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise DataError(
            f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}; "
            "expected (N, H, W) integer class ids"
        )
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise DataError(f"target must hold integer class ids, got {target.dtype}")
    target = target.long()
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    bad = valid & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        values = sorted(set(target[bad].unique()[:10].tolist()))
        hint = f" and not ignore_index {ignore_index}" if ignore_index is not None else ""
        raise DataError(
            f"target has values {values} outside the class range 0..{num_classes - 1}{hint}; "
            "fix the masks or pass the right num_classes / ignore_index"
        )
    return valid, torch.where(valid, target, torch.zeros_like(target))


def _zero(like: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), device=like.device)


def _rounded(values: torch.Tensor) -> list[float]:
    return [round(v, 6) for v in values.tolist()]


def _masked_logits(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """float32 logits with ignored pixels replaced by 0 (no gradient reaches them)."""
    return torch.where(valid.unsqueeze(1), logits.float(), _zero(logits))


def _pixel_ce(logits: torch.Tensor, valid: torch.Tensor, safe: torch.Tensor) -> torch.Tensor:
    """Per-pixel -log softmax(logits)[target], (N, H, W) float32, 0 at ignored pixels."""
    nll = F.cross_entropy(_masked_logits(logits, valid), safe, reduction="none")
    return torch.where(valid, nll, _zero(nll))


def _check_unit(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_class_index(name: str, value: int, num_classes: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_classes:
        raise ConfigError(f"{name} must be a class id in 0..{num_classes - 1}, got {value!r}")
    return value


def _check_weights(name: str, weights: Sequence[float] | Any, num_classes: int) -> torch.Tensor:
    """Validated (K,) float32 tensor of non-negative, finite, not-all-zero weights."""
    try:
        values = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {num_classes} numbers, got {weights!r}") from None
    if len(values) != num_classes:
        raise ConfigError(f"{name} has {len(values)} entries for {num_classes} classes; give one per class")
    if any(not math.isfinite(w) or w < 0 for w in values) or not any(values):
        raise ConfigError(f"{name} must be finite, >= 0 and not all 0, got {values}")
    return torch.tensor(values, dtype=torch.float32)


class _SegLoss(nn.Module):
    """Base: holds num_classes / ignore_index and the config a run log records."""

    def __init__(self, name: str, num_classes: int, ignore_index: int | None, **config: Any) -> None:
        super().__init__()
        self.name, self.num_classes, self.ignore_index = name, num_classes, ignore_index
        self.config = {"name": name, "num_classes": num_classes, "ignore_index": ignore_index, **config}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "name")


# ----------------------------------------------------------------------------- the losses


class CrossEntropy(_SegLoss):
    """Mean CE over valid pixels, optionally class-weighted: sum(w_y CE) / sum(w_y)."""

    # registered buffers (declared here so that they type as tensors, not as Module attributes)
    class_weights: torch.Tensor | None

    def __init__(self, name: str, num_classes: int, ignore_index: int | None,
                 class_weights: torch.Tensor | None = None) -> None:
        cfg = {} if class_weights is None else {"class_weights": _rounded(class_weights)}
        super().__init__(name, num_classes, ignore_index, **cfg)
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid, safe = _prepare(logits, target, self.num_classes, self.ignore_index)
        nll = _pixel_ce(logits, valid, safe)
        if self.class_weights is None:
            w = valid.float()
        else:
            w = torch.where(valid, self.class_weights.to(nll.device)[safe], _zero(nll))
        return (w * nll).sum() / w.sum().clamp_min(1e-12)


class BalancedCrossEntropy(_SegLoss):
    """Seed 000 Eq. 1-2: mean over valid pixels of -beta_t log p_t (see the module docstring)."""

    def __init__(self, name: str, num_classes: int, ignore_index: int | None,
                 beta: float, background_index: int) -> None:
        super().__init__(name, num_classes, ignore_index, beta=beta, background_index=background_index)
        self.beta, self.background_index = beta, background_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid, safe = _prepare(logits, target, self.num_classes, self.ignore_index)
        return _balanced_ce(logits, valid, safe, self.beta, self.background_index)


def _balanced_ce(logits: torch.Tensor, valid: torch.Tensor, safe: torch.Tensor,
                 beta: float, background_index: int) -> torch.Tensor:
    nll = _pixel_ce(logits, valid, safe)
    weight = torch.where(safe == background_index, 1.0 - beta, beta)
    return (weight * nll).sum() / valid.sum().clamp_min(1)


def _soft_dice_loss(logits: torch.Tensor, valid: torch.Tensor, safe: torch.Tensor,
                    q: torch.Tensor, smooth: float) -> torch.Tensor:
    """Seed 003 Eq. 7 with o = softmax probability: 1 - sum_v q_v (2 sum t o + s) / (sum t^2 + o^2 + s)."""
    num_classes = logits.shape[1]
    mask = valid.unsqueeze(1)
    prob = torch.where(mask, torch.softmax(_masked_logits(logits, valid), dim=1), _zero(logits))
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float() * mask
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    denom = (onehot * onehot).sum(dims) + (prob * prob).sum(dims)
    dice = (2.0 * inter + smooth) / (denom + smooth).clamp_min(1e-12)
    return 1.0 - (q.to(dice.device) * dice).sum()


class DiceLoss(_SegLoss):
    """Class-weighted soft Dice (seed 003 Eq. 7); weights normalised to sum 1."""

    # registered buffers (declared here so that they type as tensors, not as Module attributes)
    q: torch.Tensor

    def __init__(self, name: str, num_classes: int, ignore_index: int | None,
                 q: torch.Tensor, smooth: float) -> None:
        super().__init__(name, num_classes, ignore_index,
                         class_weights=_rounded(q), smooth=smooth)
        self.register_buffer("q", q, persistent=False)
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid, safe = _prepare(logits, target, self.num_classes, self.ignore_index)
        return _soft_dice_loss(logits, valid, safe, self.q, self.smooth)


class BceDiceLoss(_SegLoss):
    """Seed 003 Eq. 8: beta * LOSS_BCE(alpha) + LOSS_Dice(Q) (see the module docstring)."""

    # registered buffers (declared here so that they type as tensors, not as Module attributes)
    q: torch.Tensor

    def __init__(self, name: str, num_classes: int, ignore_index: int | None, *, alpha: float,
                 beta: float, q: torch.Tensor, smooth: float, background_index: int) -> None:
        super().__init__(name, num_classes, ignore_index, alpha=alpha, beta=beta,
                         dice_weights=_rounded(q), smooth=smooth,
                         background_index=background_index)
        self.alpha, self.beta, self.smooth, self.background_index = alpha, beta, smooth, background_index
        self.register_buffer("q", q, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid, safe = _prepare(logits, target, self.num_classes, self.ignore_index)
        bce = _balanced_ce(logits, valid, safe, self.alpha, self.background_index)
        return self.beta * bce + _soft_dice_loss(logits, valid, safe, self.q, self.smooth)


# ----------------------------------------------------------------------------- builders


def _dice_q(name: str, weights: Sequence[float] | None, num_classes: int) -> torch.Tensor:
    q = torch.ones(num_classes) if weights is None else _check_weights(name, weights, num_classes)
    return q / q.sum()


def _check_smooth(smooth: float) -> float:
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not smooth >= 0:
        raise ConfigError(f"smooth must be a number >= 0, got {smooth!r}")
    return float(smooth)


@_register("ce")
def _build_ce(*, num_classes: int, ignore_index: int | None) -> nn.Module:
    return CrossEntropy("ce", num_classes, ignore_index)


@_register("weighted-ce")
def _build_weighted_ce(*, num_classes: int, ignore_index: int | None,
                       class_weights: Sequence[float] | None = None,
                       label_maps: Iterable[Any] | None = None) -> nn.Module:
    """``class_weights`` (K numbers) or ``label_maps`` (iterable of HW integer masks) -> median
    frequency weights; exactly one of the two."""
    if (class_weights is None) == (label_maps is None):
        raise ConfigError(
            "weighted-ce needs exactly one of class_weights=[K numbers] or label_maps=<training masks> "
            "(median-frequency balancing)"
        )
    if label_maps is not None:
        from edgeseg.metrics import median_frequency_weights

        class_weights = median_frequency_weights(label_maps, num_classes, ignore_index).tolist()
    weights = _check_weights("class_weights", class_weights, num_classes)
    return CrossEntropy("weighted-ce", num_classes, ignore_index, class_weights=weights)


@_register("balanced-ce")
def _build_balanced_ce(*, num_classes: int, ignore_index: int | None, beta: float = 0.75,
                       background_index: int = 0) -> nn.Module:
    return BalancedCrossEntropy("balanced-ce", num_classes, ignore_index, _check_unit("beta", beta),
                                _check_class_index("background_index", background_index, num_classes))


@_register("dice")
def _build_dice(*, num_classes: int, ignore_index: int | None,
                class_weights: Sequence[float] | None = None, smooth: float = 1.0) -> nn.Module:
    return DiceLoss("dice", num_classes, ignore_index, _dice_q("class_weights", class_weights, num_classes),
                    _check_smooth(smooth))


@_register("bce-dice")
def _build_bce_dice(*, num_classes: int, ignore_index: int | None, alpha: float = 0.75, beta: float = 1.0,
                    dice_weights: Sequence[float] | None = None, smooth: float = 1.0,
                    background_index: int = 0) -> nn.Module:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise ConfigError(f"beta (BCE proportion) must be a finite number >= 0, got {beta!r}")
    return BceDiceLoss(
        "bce-dice", num_classes, ignore_index, alpha=_check_unit("alpha", alpha), beta=float(beta),
        q=_dice_q("dice_weights", dice_weights, num_classes), smooth=_check_smooth(smooth),
        background_index=_check_class_index("background_index", background_index, num_classes),
    )
