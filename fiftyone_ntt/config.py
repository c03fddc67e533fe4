"""Every setting of the pipeline, as frozen dataclasses with the paper's defaults.

Section numbers (§) refer to ``docs/method.md``, the specification of what the
reference implementation computes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FEATURE_GRID",
    "PRESETS",
    "ModelConfig",
    "NTTConfig",
    "encoder_input_size",
    "get_preset",
]

Precision = Literal["float32", "tf32", "bfloat16", "float16"]
BoxConvention = Literal["exact", "paper"]

#: Hub ids of the models the presets name (the presets: :mod:`fiftyone_ntt.presets`; what
#: each hub repo holds: :mod:`fiftyone_ntt.models.hub`).
SAM2_1_LARGE = "facebook/sam2.1-hiera-large"
SAM2_0_LARGE = "facebook/sam2-hiera-large"
DINOV2_LARGE = "facebook/dinov2-large"
SAM2_1_TINY = "facebook/sam2.1-hiera-tiny"
DINOV2_SMALL = "facebook/dinov2-small"
DINOV3_LARGE = "facebook/dinov3-vitl16-pretrain-lvd1689m"


@dataclass(frozen=True)
class ModelConfig:
    """Which weights to load and how to run them.

    The field names are historical: ``sam2`` is the mask proposer and ``dinov2`` the
    semantic encoder, whichever supported family they name.

    Attributes:
        sam2: the mask proposer: a hub id, a local Hugging Face folder, or one of Meta's
            original checkpoint files (``sam2_hiera_large.pt``, ``sam2.1_hiera_*.pt``); SAM 2
            / 2.1 of any size, or EdgeTAM (hub id or folder; its RepViT runs without ``timm``).
        dinov2: the semantic encoder: a hub id, a local folder, or Meta's original file;
            DINOv2 (``dinov2_vit*14*_pretrain.pth``, with or without registers) or DINOv3
            ViT (``dinov3_vit*16*_pretrain_*.pth``; the official hub repos are gated).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"``.
        precision: ``"float32"`` is what the paper ran (§1.3), and the default. Opt-in
            speed-ups, at the cost of small score differences (docs/benchmarks.md):
            ``"bfloat16"`` or ``"float16"``: autocast on a CUDA GPU; ``"bfloat16"`` also on
            CPUs with native bfloat16 (AVX512-BF16 or AMX; elsewhere a warning says why
            float32 runs instead); ``"tf32"``: float32 with TF32 matrix products on CUDA
            GPUs (Ampere or newer).
    """

    sam2: str = SAM2_1_LARGE
    dinov2: str = DINOV2_LARGE
    device: str = "auto"
    precision: Precision = "float32"

    def __post_init__(self) -> None:
        if self.precision not in ("float32", "tf32", "bfloat16", "float16"):
            raise ValueError(
                f"precision={self.precision!r} is not supported; "
                "use 'float32', 'tf32', 'bfloat16' or 'float16'"
            )


@dataclass(frozen=True)
class NTTConfig:
    """The hyper-parameters of No Time to Train (§3, §5). Defaults are the paper's.

    Attributes:
        models: weights, device and precision.
        reference_context_ratio: a reference crop is a square of side
            ``max(box w, box h) * (1 + ratio)`` around the box centre (§3; yaml
            ``fill_memory.context_ratio`` = 0.2).
        reference_size: side of the resized reference crop fed to the semantic encoder.
            ``None`` (the default) follows the encoder: :data:`FEATURE_GRID` = 37 patches of
            its size, i.e. the paper's 518 px for DINOv2's 14-px patches (§1.3) and 592 px for
            DINOv3's 16-px patches, so any encoder gets the paper's 37×37 feature grid (see
            :data:`FEATURE_GRID` for why the grid, not the pixel size, is kept). An explicit
            side must be a multiple of the encoder's patch (checked when the encoder is
            known), so that the patch grid covers the whole crop; ``paper`` sets 518.
        target_size: side of the squashed target image fed to SAM2 (§1.3: 1024).
        semantic_size: side of the target image fed to the semantic encoder (§1.3: 518
            for DINOv2); ``None`` (the default) follows the encoder, as ``reference_size``.
        points_per_side: the point grid is ``points_per_side**2`` prompts (§5: 32).
        points_batch_size: prompts per decoder call (§5 ``testing_point_bs``: 256). Only
            memory and speed depend on it, never results.
        pred_iou_threshold: proposals with SAM predicted IoU ``<=`` this are dropped
            (§5 ``iou_thr``: 0.4).
        nms_iou_threshold: class-wise box NMS threshold (§5 ``nms_thr``: 0.5).
        max_detections: detections kept per image after merging (§5 ``num_out_instance``).
        nms_keep_factor: NMS keeps ``max_detections * nms_keep_factor`` (§5: hard-coded 8).
        merge_decay_exponent: soft merging multiplies a score by
            ``(1 - ios * cos) ** exponent`` (§5: hard-coded 0.5, the square root).
        score_threshold: drop final detections scoring below this; ``None`` keeps all, as
            the paper does (§5: "no score threshold").
        box_convention: ``"paper"`` writes COCO boxes 1 px short, as the reference does
            (§11.2 item 7); ``"exact"`` writes the true pixel extent.
        negative_margin: how much closer than its class a proposal must be to a negative
            to be dropped (not in the paper; used only by banks holding negatives). Right
            after class assignment (§5), before NMS, a proposal of class ``c`` with class
            score ``s`` (its cosine to the prototype of ``c``, clamped at 0) is dropped when
            ``n >= s + negative_margin`` and ``n > 0``, ``n`` being its best cosine (clamped
            at 0) to the individual negatives of ``c`` and the global negatives. 0 (the
            default) drops what looks at least as much like a rejected instance as like its
            class; a positive margin drops less, a negative one more. In ``[-1, 1]``.
            See :func:`fiftyone_ntt.matching.suppressed_by_negatives`.
        keep_features: keep, with each final detection, the L2-normalised pooled semantic
            feature it was matched with (:attr:`fiftyone_ntt.types.Predictions.features`;
            written on FiftyOne labels as ``ntt_embedding``, docs/method.md §15). Off by
            default and in every preset: it changes no prediction, only what is kept.
        class_score_thresholds: ``{class name: threshold}``: drop final detections of a
            class scoring below its threshold, where ``score_threshold`` is applied (both
            apply; a class not named keeps all). ``None`` (the default, and every preset)
            keeps all. Chosen from an evaluation or from decisions by
            :mod:`fiftyone_ntt.curation.thresholds` (docs/method.md §16.1). Each value in
            ``[0, 1]``; a class the bank lacks is refused when the segmenter is built.
    """

    models: ModelConfig = field(default_factory=ModelConfig)
    reference_context_ratio: float = 0.2
    reference_size: int | None = None
    target_size: int = 1024
    semantic_size: int | None = None
    points_per_side: int = 32
    points_batch_size: int = 256
    pred_iou_threshold: float = 0.4
    nms_iou_threshold: float = 0.5
    max_detections: int = 100
    nms_keep_factor: int = 8
    merge_decay_exponent: float = 0.5
    score_threshold: float | None = None
    box_convention: BoxConvention = "exact"
    negative_margin: float = 0.0
    keep_features: bool = False
    # a dict in a frozen config: left out of the hash (a config stays usable as a key)
    class_score_thresholds: dict[str, float] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        positive_ints = (
            "reference_size",
            "target_size",
            "semantic_size",
            "points_per_side",
            "points_batch_size",
            "max_detections",
            "nms_keep_factor",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if value is None and name in ("reference_size", "semantic_size"):
                continue  # follows the encoder (encoder_input_size)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        for name in ("pred_iou_threshold", "nms_iou_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value!r} must lie in [0, 1]")
        if self.reference_context_ratio < 0:
            raise ValueError(
                f"reference_context_ratio={self.reference_context_ratio!r} must be >= 0"
            )
        if self.merge_decay_exponent <= 0:
            raise ValueError(f"merge_decay_exponent={self.merge_decay_exponent!r} must be > 0")
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(
                f"score_threshold={self.score_threshold!r} must be None or lie in [0, 1]"
            )
        if not -1.0 <= self.negative_margin <= 1.0:
            raise ValueError(f"negative_margin={self.negative_margin!r} must lie in [-1, 1]")
        if not isinstance(self.keep_features, bool):
            raise ValueError(f"keep_features={self.keep_features!r} must be True or False")
        if self.box_convention not in ("exact", "paper"):
            raise ValueError(f"box_convention={self.box_convention!r}; use 'exact' or 'paper'")
        if self.class_score_thresholds is not None:
            object.__setattr__(
                self, "class_score_thresholds", _class_thresholds(self.class_score_thresholds)
            )

    @property
    def nms_keep(self) -> int:
        """How many proposals survive NMS (§5: ``num_out_instance * 8`` = 800)."""
        return self.max_detections * self.nms_keep_factor

    def replace(self, **changes: Any) -> NTTConfig:
        """A copy with some fields changed; ``models`` may be given as a dict of changes."""
        models = changes.pop("models", None)
        if isinstance(models, dict):
            changes["models"] = dataclasses.replace(self.models, **models)
        elif models is not None:
            changes["models"] = models
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(
                f"unknown NTTConfig field(s) {sorted(unknown)}; "
                f"known: {sorted(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (for banks, runs and provenance).

        Fields added after the paper's settings (:data:`_OMIT_WHEN_DEFAULT`) are left out at
        their default value, so that settings, bank and run fingerprints recorded before
        those fields existed stay equal.
        """
        data = dataclasses.asdict(self)
        for name in _OMIT_WHEN_DEFAULT:
            if data[name] == _DEFAULTS[name]:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NTTConfig:
        """Inverse of :meth:`to_dict`; unknown keys are rejected, not ignored."""
        data = dict(data)
        models = ModelConfig(**data.pop("models", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise TypeError(f"unknown NTTConfig field(s) {sorted(unknown)}")
        return cls(models=models, **data)


#: Method extensions, written by :meth:`NTTConfig.to_dict` only when not at their default.
_OMIT_WHEN_DEFAULT = ("negative_margin", "keep_features", "class_score_thresholds")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(NTTConfig)}


def _class_thresholds(value: Any) -> dict[str, float]:
    """``class_score_thresholds`` checked: a dict of class name -> number in [0, 1]."""
    example = "e.g. {'cat': 0.42}"
    if not isinstance(value, dict):
        raise ValueError(
            f"class_score_thresholds={value!r} must be a dict of class name -> threshold, "
            f"{example}, or None"
        )
    out = {}
    for name, threshold in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"class_score_thresholds: class name {name!r} must be a string")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValueError(
                f"class_score_thresholds[{name!r}]={threshold!r} must be a number in [0, 1]"
            )
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(
                f"class_score_thresholds[{name!r}]={threshold!r} must lie in [0, 1] (scores "
                "are cosines clamped at 0)"
            )
        out[name] = float(threshold)
    return out


#: Patches per side of the semantic feature grid when a size follows the encoder: the paper's
#: 37×37 (518 px at DINOv2's patch 14). Keeping the grid rather than the pixel size means the
#: same matching resolution (a proposal is pooled over the same number of feature cells) and
#: the same token count, so the same encoder cost, for every patch size: 592 px for DINOv3's
#: 16-px patches. DINOv3 uses RoPE, so 592 px needs no positional interpolation.
FEATURE_GRID = 37


def encoder_input_size(size: int | None, patch_size: int, name: str = "semantic_size") -> int:
    """The side in pixels fed to an encoder with ``patch_size``-px patches.

    Args:
        size: the configured side, or ``None`` for :data:`FEATURE_GRID` patches.
        patch_size: the encoder's patch side (14 for DINOv2, 16 for DINOv3).
        name: the config field, for messages.

    Raises:
        ValueError: ``size`` is not a multiple of the patch (the patch convolution would drop
            the remainder and the mask-to-grid sampling would no longer line up).
    """
    if size is None:
        return FEATURE_GRID * patch_size
    if size % patch_size:
        lower = max(patch_size, size // patch_size * patch_size)
        raise ValueError(
            f"{name}={size} is not a multiple of the encoder's {patch_size}-px patch; use "
            f"{lower} or {lower + patch_size}, or None to follow the encoder "
            f"({FEATURE_GRID} patches = {FEATURE_GRID * patch_size} px)"
        )
    return size


#: Named presets (``--preset`` on the command line, ``get_preset`` in Python, the "Model
#: preset" dropdown of the App forms). Each model can still be chosen freely on top
#: (``ModelConfig.sam2`` / ``ModelConfig.dinov2`` take any supported proposer / encoder).
#:
#: * ``paper``: exactly what the published numbers used (§1, §5, §11): SAM 2.0 Hiera-L,
#:   DINOv2 ViT-L/14 without registers at 518 px, COCO boxes 1 px short.
#: * ``default``: SAM 2.1 Hiera-L + DINOv2 ViT-L/14 (the paper's models, SAM 2's later
#:   release), exact boxes.
#: * ``fast``: SAM 2.1 Hiera-T + DINOv2 ViT-S/14 and a 16×16 prompt grid, for CPUs and
#:   laptops (both ungated, ~250 MB together). The grid is what makes it fast: the mask
#:   decoder costs the same for every Hiera size and dominates on a CPU (32×32 = 1024 prompts
#:   are ~25 s of a ~34 s image on our 2-core box, docs/benchmarks.md "Presets"), so 256
#:   prompts cut that part 4x; the price is recall on small objects, which a coarser grid
#:   can miss (set ``points_per_side=32`` to keep the paper's grid with the small models).
#:   EdgeTAM (``"yonigozlan/EdgeTAM-hf"``, no ``timm`` needed) is a free choice, not a preset.
#: * ``accurate``: SAM 2.1 Hiera-L + DINOv3 ViT-L/16 (stronger dense features than DINOv2
#:   in Meta's evaluations; a gated download) at 592 px, the paper's 37×37 grid. Not
#:   validated on the paper's benchmarks here: no weights can be downloaded on this machine.
PRESETS: dict[str, NTTConfig] = {
    "default": NTTConfig(),
    "paper": NTTConfig(
        models=ModelConfig(sam2=SAM2_0_LARGE, dinov2=DINOV2_LARGE),
        reference_size=518,
        semantic_size=518,
        box_convention="paper",
    ),
    "fast": NTTConfig(
        models=ModelConfig(sam2=SAM2_1_TINY, dinov2=DINOV2_SMALL), points_per_side=16
    ),
    "accurate": NTTConfig(models=ModelConfig(sam2=SAM2_1_LARGE, dinov2=DINOV3_LARGE)),
}


def get_preset(name: str) -> NTTConfig:
    """The configuration of a named preset (see :data:`PRESETS`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
