"""SAM 2 mask proposals (docs/method.md §1.1, §5) over ``transformers.Sam2Model``.

What the reference computes, and how this module gets the same numbers faster:

* :meth:`Sam2Proposer.embed` runs the Hiera image encoder and FPN neck, pre-projects the two
  high-resolution levels with the decoder's ``conv_s0``/``conv_s1`` (as
  ``Sam2Model.get_image_features`` does) and keeps the 64×64 embedding **without**
  ``no_memory_embedding`` (§1.1, §11.2 item 1). ``transformers``' own
  ``get_image_embeddings``/``forward`` add it, so they are not used for proposals.
* :meth:`Sam2Proposer.propose` prompts each point on its own (label 1; the prompt encoder
  adds +0.5 and a padding point, like Meta's), decodes all four mask tokens' IoU, keeps the
  best of tokens 1..3 and drops IoU ≤ threshold. Nothing is suppressed by the object-score
  head (the reference forces its logit to 10; ``transformers`` never applies it).
* The decoder is re-implemented over the ``transformers`` sub-modules (same weights, same
  maths, re-associated) in :mod:`fiftyone_ntt.models.sam2.decoder`: the IoU head runs
  first, and the expensive upscaling runs only for surviving prompts and only for their
  chosen token. Results equal ``Sam2MaskDecoder.forward`` to float rounding (tests check
  ~1e-5). On CPU the low-rank variant of :mod:`fiftyone_ntt.models.sam2.lowrank` runs
  instead (no per-prompt image tokens; same outputs in float32; under the CPU ``bfloat16``
  precision only its upscaling runs in bf16).
* :meth:`Sam2Proposer.segment_boxes` follows the official image predictor: the embedding
  **with** ``no_memory_embedding``, one box prompt each, single-mask output (token 0).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from fiftyone_ntt.models import resolve_device, resolve_precision
from fiftyone_ntt.models.imagenet import IMAGENET_MEAN, IMAGENET_STD
from fiftyone_ntt.models.sam2.decoder import FastMaskDecoder, UpscalePlan
from fiftyone_ntt.models.sam2.lowrank import LowRankMaskDecoder, supports_low_rank
from fiftyone_ntt.models.sam2.specs import hiera_arch_name

__all__ = ["Sam2Embedding", "Sam2Proposer"]

#: Version of the layout of :attr:`Sam2Proposer.identity` (bump when keys change).
IDENTITY_VERSION = 1


@dataclass(frozen=True)
class Sam2Embedding:
    """One image, embedded once for many prompts (float32, on the proposer's device).

    Attributes:
        image: ``(1, C, 64, 64)`` FPN level 2 **without** ``no_memory_embedding`` (§1.1).
        high_res_s0: ``(1, C/8, 256, 256)`` ``conv_s0`` of FPN level 0.
        high_res_s1: ``(1, C/4, 128, 128)`` ``conv_s1`` of FPN level 1.
        no_memory: ``(1, C, 1, 1)`` the model's ``no_memory_embedding``.
    """

    image: torch.Tensor
    high_res_s0: torch.Tensor
    high_res_s1: torch.Tensor
    no_memory: torch.Tensor

    def image_with_no_memory(self) -> torch.Tensor:
        """``(1, C, 64, 64)`` the embedding as SAM 2's image predictor uses it."""
        return self.image + self.no_memory


class Sam2Proposer:
    """A :class:`~fiftyone_ntt.models.protocols.MaskProposer` over a SAM 2 / 2.1 model.

    Attributes:
        input_size: side of the image :meth:`embed` takes (1024).
        mask_size: side of the low-resolution logits (256).
        device: where it runs; outputs live there too.
        precision: effective precision (``"float32"`` unless half precision on CUDA).
        decode_batch_size: prompts per decoder pass (memory/speed only, never results).
        identity: ``{"family", "version", "arch", "source", "precision",
            "identity_version"}``.
        model: the wrapped ``transformers.Sam2Model``.
    """

    def __init__(
        self,
        model: Any,
        *,
        source: str,
        version: str = "unknown",
        device: str | torch.device = "cpu",
        precision: str = "float32",
        decode_batch_size: int | None = None,
        arch: str | None = None,
    ) -> None:
        """Wrap a loaded model.

        Args:
            model: a ``transformers.Sam2Model``.
            source: where the weights came from, recorded in ``identity``.
            version: ``"2.0"``, ``"2.1"`` or ``"unknown"``.
            device: see :func:`fiftyone_ntt.models.resolve_device`.
            precision: ``"float32"``, or ``"bfloat16"``/``"float16"`` autocast on CUDA.
            decode_batch_size: prompts decoded together; default 64 on CPU (cache-friendly,
                ~1 GB peak), 256 on GPUs.
            arch: name for ``identity`` (default: recognised from the Hiera config).
        """
        from transformers import Sam2Model

        if not isinstance(model, Sam2Model):
            raise TypeError(f"model must be a transformers Sam2Model, got {type(model).__name__}")
        self.device = resolve_device(device)
        self._autocast = resolve_precision(precision, self.device)
        self.precision = precision if self._autocast is not None else "float32"
        if decode_batch_size is None:
            decode_batch_size = 256 if self.device.type == "cuda" else 64
        if not isinstance(decode_batch_size, int) or decode_batch_size < 1:
            raise ValueError(f"decode_batch_size={decode_batch_size!r} must be a positive int")
        self.decode_batch_size = decode_batch_size
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)

        config = model.config
        prompt_config = config.prompt_encoder_config
        self.input_size = int(prompt_config.image_size)
        embed_side = self.input_size // int(prompt_config.patch_size)
        self._embed_side = embed_side
        self.mask_size = 4 * embed_side
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        with torch.inference_mode():
            pe = self.model.get_image_wide_positional_embeddings()  # (1, C, h, w)
            pe = pe[0].flatten(1).transpose(0, 1).contiguous()  # (h*w, C)
        # CPU: the low-rank decoder (no per-prompt image tokens; float32 is exact, CPU
        # bfloat16 runs its upscaling in bf16 and the rest in float32); elsewhere (GPUs,
        # other decoder shapes) the materialised one. Same outputs in float32.
        self._decoder: FastMaskDecoder
        if (
            self.device.type == "cpu"
            and self._autocast in (None, torch.bfloat16)
            and supports_low_rank(self.model.mask_decoder)
        ):
            self._decoder = LowRankMaskDecoder(
                self.model.mask_decoder,
                pe,
                embed_side,
                upscale_dtype=self._autocast or torch.float32,
            )
        else:
            self._decoder = FastMaskDecoder(self.model.mask_decoder, pe, embed_side)
        backbone = config.vision_config.backbone_config
        self.identity: dict[str, Any] = {
            "family": "sam2",
            "version": str(version),
            "arch": arch or hiera_arch_name(backbone.hidden_size, backbone.blocks_per_stage),
            "source": str(source),
            "precision": self.precision,
            "identity_version": IDENTITY_VERSION,
        }

    def __repr__(self) -> str:
        return (
            f"Sam2Proposer(version={self.identity['version']!r}, arch={self.identity['arch']!r}, "
            f"device={str(self.device)!r}, precision={self.precision!r})"
        )

    def _autocast_context(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._autocast)

    # ----------------------------------------------------------------------------------------
    # Image
    # ----------------------------------------------------------------------------------------

    def embed(self, pixels: torch.Tensor) -> Sam2Embedding:
        """Embed one image.

        Args:
            pixels: ``(3, input_size, input_size)`` float RGB in ``[0, 1]``, not normalised.

        Returns:
            A :class:`Sam2Embedding` for :meth:`propose` and :meth:`segment_boxes`.

        Raises:
            ValueError: wrong shape.
        """
        expected = (3, self.input_size, self.input_size)
        if not torch.is_tensor(pixels) or tuple(pixels.shape) != expected:
            shape = tuple(pixels.shape) if torch.is_tensor(pixels) else type(pixels).__name__
            raise ValueError(
                f"pixels must be a {expected} tensor (resize the image to "
                f"{self.input_size}² first, §1.3), got {shape}"
            )
        x = pixels.to(device=self.device, dtype=torch.float32)[None]
        # §1.1: ImageNet normalisation of the [0, 1] image.
        x = (x - self._mean) / self._std
        decoder = self.model.mask_decoder
        with torch.inference_mode(), self._autocast_context():
            vision = self.model.vision_encoder(pixel_values=x)
            levels = vision.fpn_hidden_states  # high to low resolution: 256², 128², 64²
            s0 = decoder.conv_s0(levels[0])
            s1 = decoder.conv_s1(levels[1])
            image = levels[-1]
            no_memory = self.model.no_memory_embedding.reshape(1, -1, 1, 1)
        return Sam2Embedding(
            image=image.float(),
            high_res_s0=s0.float(),
            high_res_s1=s1.float(),
            no_memory=no_memory.float(),
        )

    def _check_embedding(self, embedding: Any) -> Sam2Embedding:
        if not isinstance(embedding, Sam2Embedding):
            raise TypeError(
                f"embedding must come from Sam2Proposer.embed, got {type(embedding).__name__}"
            )
        return embedding

    # ----------------------------------------------------------------------------------------
    # Prompts
    # ----------------------------------------------------------------------------------------

    def propose(
        self, embedding: Any, points: torch.Tensor, iou_threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One mask per single positive point, the best of the 3 multimask outputs (§5).

        Args:
            embedding: from :meth:`embed`.
            points: ``(N, 2)`` ``(x, y)`` in input-image pixels (``0..input_size``); any N,
                decoded in batches of :attr:`decode_batch_size` (none is dropped).
            iou_threshold: keep proposals whose predicted IoU is strictly greater (§5: 0.4).

        Returns:
            ``(index, logits, iou)``: ``(K,)`` int64 positions into ``points`` in increasing
            order, ``(K, mask_size, mask_size)`` float32 logits, ``(K,)`` float32 IoU.

        Raises:
            ValueError: points not ``(N, 2)`` finite, or a non-finite threshold.
        """
        emb = self._check_embedding(embedding)
        pts = self._check_coords(points, 2, "points")
        threshold = float(iou_threshold)
        if threshold != threshold:
            raise ValueError(f"iou_threshold={iou_threshold!r} must be a number")
        # §1.1 / §11.2 item 1: proposals use the embedding WITHOUT no_memory_embedding.
        return self._run(emb, emb.image, pts, None, threshold)

    def segment_boxes(
        self, embedding: Any, boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per box, as SAM 2's image predictor with ``multimask_output=False``.

        Uses the embedding **with** ``no_memory_embedding`` and the single-mask token 0
        (no stability-based fallback to the multimask tokens).

        Args:
            embedding: from :meth:`embed`.
            boxes: ``(N, 4)`` ``XYXY`` in input-image pixels.

        Returns:
            ``(logits, iou)``: ``(N, mask_size, mask_size)`` and ``(N,)`` float32.

        Raises:
            ValueError: boxes not ``(N, 4)`` finite.
        """
        emb = self._check_embedding(embedding)
        bxs = self._check_coords(boxes, 4, "boxes")
        _, logits, iou = self._run(emb, emb.image_with_no_memory(), None, bxs, None)
        return logits, iou

    def _check_coords(self, value: torch.Tensor, width: int, name: str) -> torch.Tensor:
        if not torch.is_tensor(value):
            value = torch.as_tensor(value, dtype=torch.float32)
        if value.ndim != 2 or value.shape[1] != width:
            raise ValueError(f"{name} must be an (N, {width}) tensor, got {tuple(value.shape)}")
        value = value.to(device=self.device, dtype=torch.float32)
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} contain NaN or infinite coordinates")
        return value

    def _run(
        self,
        emb: Sam2Embedding,
        image: torch.Tensor,
        points: torch.Tensor | None,
        boxes: torch.Tensor | None,
        threshold: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode prompts batch by batch; ``threshold=None`` means token 0, keep all."""
        prompts = points if points is not None else boxes
        assert prompts is not None
        total = prompts.shape[0]
        side = self.mask_size
        indices: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        ious: list[torch.Tensor] = []
        encoder = self.model.prompt_encoder
        # The low-rank decoder applies the precision itself (bf16 upscaling only): its
        # prompt embeddings, two-way blocks and IoU head stay float32, so under CPU bf16 the
        # kept prompts and IoU are the float32 ones.
        low_rank = isinstance(self._decoder, LowRankMaskDecoder)
        context = contextlib.nullcontext() if low_rank else self._autocast_context()
        with torch.inference_mode(), context:
            # Dense prompt = the learned "no mask" embedding, the same for every prompt.
            terms = None
            plan: UpscalePlan | None = None
            for start in range(0, total, self.decode_batch_size):
                chunk = prompts[start : start + self.decode_batch_size]
                n = chunk.shape[0]
                if points is not None:
                    labels = torch.ones((1, n, 1), dtype=torch.long, device=self.device)
                    sparse, dense = encoder(
                        input_points=chunk[None, :, None, :],
                        input_labels=labels,
                        input_boxes=None,
                        input_masks=None,
                    )
                else:
                    sparse, dense = encoder(
                        input_points=None,
                        input_labels=None,
                        input_boxes=chunk[None],
                        input_masks=None,
                    )
                if terms is None:
                    image_flat = (image + dense[:1]).float()[0].flatten(1).transpose(0, 1)
                    terms = self._decoder.image_terms(image_flat.contiguous())  # (h*w, C)
                    plan = self._decoder.plan(emb.high_res_s0, emb.high_res_s1, torch.float32)
                assert plan is not None
                keep, mask_logits, iou = self._decoder.decode(terms, sparse[0], plan, threshold)
                indices.append(keep + start)
                logits.append(mask_logits)
                ious.append(iou)
        # Concatenated outside inference mode: callers get ordinary tensors.
        if not indices:
            return (
                torch.zeros(0, dtype=torch.long, device=self.device),
                torch.zeros((0, side, side), dtype=torch.float32, device=self.device),
                torch.zeros(0, dtype=torch.float32, device=self.device),
            )
        return (
            torch.cat(indices).long(),
            torch.cat(logits).float(),
            torch.cat(ious).float(),
        )
