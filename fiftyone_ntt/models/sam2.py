"""SAM 2 mask proposals (method §1.1, §5) over ``transformers.Sam2Model``.

What the reference computes, and how this module gets the same numbers faster:

* :meth:`Sam2Proposer.embed` runs the Hiera image encoder and FPN neck, pre-projects the two
  high-resolution levels with the decoder's ``conv_s0``/``conv_s1`` (as
  ``Sam2Model.get_image_features`` does) and keeps the 64×64 embedding **without**
  ``no_memory_embedding`` (§1.1, §11 Behavioural 1). ``transformers``' own
  ``get_image_embeddings``/``forward`` add it, so they are not used for proposals.
* :meth:`Sam2Proposer.propose` prompts each point on its own (label 1; the prompt encoder
  adds +0.5 and a padding point, like Meta's), decodes all four mask tokens' IoU, keeps the
  best of tokens 1..3 and drops IoU ≤ threshold. Nothing is suppressed by the object-score
  head (the reference forces its logit to 10; ``transformers`` never applies it).
* The decoder is re-implemented over the ``transformers`` sub-modules (same weights, same
  maths, re-associated): the IoU head runs first, and the expensive upscaling convolutions
  and hypernetwork product run only for surviving prompts and only for their chosen token.
  Attention against the 4096 image tokens is computed without materialising per-prompt
  K/V/Q projections of the image (the projections are folded into the few prompt tokens),
  and the first block shares the prompt-independent image projections across prompts.
  Results equal ``Sam2MaskDecoder.forward`` to float rounding (tests check ~1e-5).
* :meth:`Sam2Proposer.segment_boxes` follows the official image predictor: the embedding
  **with** ``no_memory_embedding``, one box prompt each, single-mask output (token 0).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from fiftyone_ntt.models import resolve_device, resolve_precision
from fiftyone_ntt.models.conversion import hiera_arch_name
from fiftyone_ntt.models.dinov2 import IMAGENET_MEAN, IMAGENET_STD

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


@dataclass(frozen=True)
class _UpscalePlan:
    """Channels-last weights/features of the mask upscaling (see ``_upscale_plan``)."""

    w1: torch.Tensor  # (C, 4·C/4)
    w2: torch.Tensor  # (C/4, 4·C/8)
    s1: torch.Tensor  # (h·w, 4·C/4): feat_s1 + conv1 bias
    s0: torch.Tensor  # (4·h·w, 4·C/8): feat_s0 + conv2 bias
    norm_weight: torch.Tensor
    norm_bias: torch.Tensor
    eps: float


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
            self._pe = pe[0].flatten(1).transpose(0, 1).contiguous()  # (h*w, C)
            decoder = self.model.mask_decoder
            # Output tokens in transformers' order: [object score, IoU, mask 0..M-1].
            self._output_tokens = torch.cat(
                [
                    decoder.obj_score_token.weight,
                    decoder.iou_token.weight,
                    decoder.mask_tokens.weight,
                ]
            ).contiguous()
        self._num_mask_tokens = int(decoder.num_mask_tokens)
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
        # §1.1 / §11 Behavioural 1: proposals use the embedding WITHOUT no_memory_embedding.
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
        with torch.inference_mode(), self._autocast_context():
            # Dense prompt = the learned "no mask" embedding, the same for every prompt.
            image_flat = None
            plan: _UpscalePlan | None = None
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
                if image_flat is None:
                    image_flat = (image + dense[:1]).float()[0].flatten(1).transpose(0, 1)
                    image_flat = image_flat.contiguous()  # (h*w, C)
                if plan is None:
                    plan = self._upscale_plan(emb, image_flat.dtype)
                keep, mask_logits, iou = self._decode(image_flat, sparse[0], plan, threshold)
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

    # ----------------------------------------------------------------------------------------
    # Decoder
    # ----------------------------------------------------------------------------------------

    def _decode(
        self,
        image: torch.Tensor,
        sparse: torch.Tensor,
        plan: _UpscalePlan,
        threshold: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mask decoder for ``n`` prompts sharing one image.

        Args:
            image: ``(L, C)`` image tokens (embedding + dense prompt), ``L = 64·64``.
            sparse: ``(n, S, C)`` sparse prompt embeddings.
            plan: upscaling weights and high-resolution features.
            threshold: ``None`` → token 0 for every prompt, none dropped; else the best of
                tokens 1..M-1 by predicted IoU, kept when IoU > threshold.

        Returns:
            ``(keep, logits, iou)`` for kept prompts: positions in the batch,
            ``(K, 4h, 4w)`` logits of the chosen token and ``(K,)`` its IoU.
        """
        decoder = self.model.mask_decoder
        n = sparse.shape[0]
        tokens = torch.cat(
            [self._output_tokens.to(sparse.dtype).expand(n, -1, -1), sparse], dim=1
        )  # (n, T, C): [object score, IoU, mask 0..M-1, prompt points...]
        queries, keys = self._two_way(tokens, image)
        # The final token→image attention treats every token independently, and only the
        # IoU token (all prompts) and the chosen mask token (kept prompts) are ever read, so
        # it runs for those alone (§1.1: the other outputs are discarded by the reference).
        iou_token = self._final_attention(queries[:, 1:2], tokens[:, 1:2], keys)
        iou_all = decoder.iou_prediction_head(iou_token[:, 0]).float()  # (n, M), sigmoid
        if threshold is None:
            chosen = torch.zeros(n, dtype=torch.long, device=image.device)
            score = iou_all[:, 0]
            keep = torch.arange(n, device=image.device)
        else:
            # §1.1: arg-max over the multimask tokens 1..3 (first on ties, as torch.argmax).
            chosen = torch.argmax(iou_all[:, 1:], dim=-1) + 1
            score = iou_all.gather(1, chosen[:, None])[:, 0]
            keep = torch.nonzero(score > threshold).flatten()
            chosen, score = chosen[keep], score[keep]
        if keep.numel() == 0:
            side = self.mask_size
            empty = torch.zeros((0, side, side), dtype=torch.float32, device=image.device)
            return keep, empty, score
        if keep.numel() != n:
            queries, tokens, keys = queries[keep], tokens[keep], keys.index_select(0, keep)
        rows = torch.arange(keep.numel(), device=image.device)
        slot = (chosen + 2)[:, None]  # mask token t sits at position 2 + t
        mask_token = self._final_attention(
            queries[rows[:, None], slot], tokens[rows[:, None], slot], keys
        )[:, 0]
        logits = self._upscale(keys, mask_token, chosen, plan)
        return keep, logits, score

    def _final_attention(
        self, queries: torch.Tensor, tokens: torch.Tensor, keys: torch.Tensor
    ) -> torch.Tensor:
        """``final_attn_token_to_image`` + ``layer_norm_final_attn`` for some tokens.

        Args:
            queries: ``(n, t, C)`` token states after the last two-way block.
            tokens: ``(n, t, C)`` their positional embeddings (the initial tokens).
            keys: ``(n, L, C)`` image states after the last block.

        Returns:
            ``(n, t, C)``.
        """
        transformer = self.model.mask_decoder.transformer
        attn = _token_to_image(
            transformer.final_attn_token_to_image,
            queries + tokens,
            keys,
            keys,
            pe=self._pe.to(keys.dtype),
        )
        return transformer.layer_norm_final_attn(queries + attn)

    def _upscale_plan(self, emb: Sam2Embedding, dtype: torch.dtype) -> _UpscalePlan:
        """Weights and high-res features of the upscaling path, rearranged channels-last.

        ``ConvTranspose2d(kernel=2, stride=2)`` is a per-pixel linear map to 2×2 sub-pixels,
        so both upscaling steps become matrix products on ``(pixels, channels)`` tensors,
        with the high-res features (and conv biases) folded in as the ``baddbmm`` input.
        """
        decoder = self.model.mask_decoder
        conv1, conv2 = decoder.upscale_conv1, decoder.upscale_conv2
        c4, c8 = conv1.out_channels, conv2.out_channels
        h = w = self._embed_side
        # Columns ordered (sub-pixel a·2+b, channel): weight (Cin, Cout, 2, 2) → (Cin, 2, 2, Cout).
        w1 = conv1.weight.permute(0, 2, 3, 1).reshape(conv1.in_channels, 4 * c4).to(dtype)
        w2 = conv2.weight.permute(0, 2, 3, 1).reshape(c4, 4 * c8).to(dtype)
        # feat_s1 (1, C/4, 2h, 2w) at (2y+a, 2x+b) → rows y·w+x, columns (a·2+b, channel).
        s1 = emb.high_res_s1[0].to(dtype).permute(1, 2, 0).reshape(h, 2, w, 2, c4)
        s1 = s1.permute(0, 2, 1, 3, 4).reshape(h * w, 4 * c4) + conv1.bias.to(dtype).repeat(4)
        # feat_s0 (1, C/8, 4h, 4w) at (4y+2a+c, 4x+2b+d) → rows (y·w+x)·4 + a·2+b,
        # columns (c·2+d, channel).
        s0 = emb.high_res_s0[0].to(dtype).permute(1, 2, 0).reshape(h, 2, 2, w, 2, 2, c8)
        s0 = s0.permute(0, 3, 1, 4, 2, 5, 6).reshape(h * w * 4, 4 * c8)
        s0 = s0 + conv2.bias.to(dtype).repeat(4)
        norm = decoder.upscale_layer_norm
        return _UpscalePlan(w1, w2, s1, s0, norm.weight.to(dtype), norm.bias.to(dtype), norm.eps)

    def _upscale(
        self,
        keys: torch.Tensor,
        mask_token: torch.Tensor,
        chosen: torch.Tensor,
        plan: _UpscalePlan,
    ) -> torch.Tensor:
        """Low-res logits of the chosen token only: ``(K, 4h, 4w)``.

        Args:
            keys: ``(K, L, C)`` image tokens after the two-way transformer.
            mask_token: ``(K, C)`` output of each prompt's chosen mask token.
            chosen: ``(K,)`` token per prompt.
            plan: from :meth:`_upscale_plan`.
        """
        decoder = self.model.mask_decoder
        k, length, _ = keys.shape
        h = w = self._embed_side
        c4 = plan.norm_weight.shape[0]
        c8 = plan.w2.shape[1] // 4
        # Hypernetwork MLP of each prompt's chosen token only: (K, C/8).
        hyper = torch.empty((k, c8), dtype=keys.dtype, device=keys.device)
        for token in torch.unique(chosen).tolist():
            rows = torch.nonzero(chosen == token).flatten()
            mlp = decoder.output_hypernetworks_mlps[token]
            hyper[rows] = mlp(mask_token[rows]).to(hyper.dtype)
        # Groups bound the 4h·4w·C/8 activations (8 MB per prompt at C = 256).
        group = 16 if keys.device.type == "cpu" else 64
        out: list[torch.Tensor] = []
        for start in range(0, k, group):
            src = keys[start : start + group]
            g = src.shape[0]
            # upscale_conv1 + feat_s1, then LayerNorm over channels and GELU.
            up = torch.baddbmm(plan.s1, src, plan.w1.expand(g, -1, -1))  # (g, L, 4·C/4)
            up = F.layer_norm(
                up.view(g, length * 4, c4), (c4,), plan.norm_weight, plan.norm_bias, plan.eps
            )
            up = torch.ops.aten.gelu_(up)  # exact (erf) GELU, as nn.GELU(); in place
            # upscale_conv2 + feat_s0, GELU.
            up = torch.baddbmm(plan.s0, up, plan.w2.expand(g, -1, -1))  # (g, 4L, 4·C/8)
            up = torch.ops.aten.gelu_(up)
            masks = torch.bmm(up.view(g, length * 16, c8), hyper[start : start + g, :, None])
            # Rows are (y, x, a, b, c, d) → pixel (4y+2a+c, 4x+2b+d).
            masks = masks.view(g, h, w, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4, 6)
            out.append(masks.reshape(g, 4 * h, 4 * w).float())
        return torch.cat(out)

    def _two_way(
        self, tokens: torch.Tensor, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two-way blocks of ``Sam2TwoWayTransformer`` for ``n`` prompts on one image
        (the final token→image attention is :meth:`_final_attention`).

        Args:
            tokens: ``(n, T, C)`` output + sparse prompt tokens (also their positional
                embedding, as in SAM).
            image: ``(L, C)`` image tokens.

        Returns:
            ``(queries (n, T, C), keys (n, L, C))`` after the last block.
        """
        transformer = self.model.mask_decoder.transformer
        pe = self._pe.to(image.dtype)
        queries = tokens
        keys: torch.Tensor | None = None  # None: still the shared image (first block)
        shared_key = image + pe
        for layer in transformer.layers:
            # Token self-attention (small: T tokens per prompt); the first block has no PE
            # and no residual, exactly as in SAM.
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(
                    query=queries[None], key=queries[None], value=queries[None]
                )[0][0]
            else:
                q = queries + tokens
                queries = (
                    queries + layer.self_attn(query=q[None], key=q[None], value=queries[None])[0][0]
                )
            queries = layer.layer_norm1(queries)

            if keys is None:
                attn = _token_to_shared_image(
                    layer.cross_attn_token_to_image, queries + tokens, shared_key, image
                )
            else:
                key_pe = keys + pe
                attn = _token_to_image(
                    layer.cross_attn_token_to_image, queries + tokens, key_pe, keys
                )
            queries = layer.layer_norm2(queries + attn)
            queries = layer.layer_norm3(queries + layer.mlp(queries))

            if keys is None:
                keys = layer.layer_norm4(
                    _shared_image_to_token(
                        layer.cross_attn_image_to_token,
                        shared_key,
                        queries + tokens,
                        queries,
                        residual=image,
                    )
                )
            else:
                keys = layer.layer_norm4(
                    _image_to_token(
                        layer.cross_attn_image_to_token,
                        key_pe,
                        queries + tokens,
                        queries,
                        residual=keys,
                    )
                )
        if keys is None:
            raise RuntimeError("the SAM 2 mask decoder has no two-way blocks")
        return queries, keys


# --------------------------------------------------------------------------------------------
# Attention against the image, re-associated (``Sam2Attention`` maths, fewer FLOPs)
# --------------------------------------------------------------------------------------------
#
# Sam2Attention(q_in, k_in, v_in) = o_proj(concat_h softmax(s · Q_h K_hᵀ) V_h) with
# Q = q_in W_qᵀ + b_q etc. Against L = 4096 image tokens and T ≈ 8 prompt tokens, projecting
# the image per prompt (L×C×C/2 each for Q/K/V) dominates. Because the projections are
# linear, they can be folded into the T tokens instead:
#   Q_h K_hᵀ = (Q_h W_k,h)(k_in)ᵀ + Q_h b_k,h        (token → image logits)
#   A_h V_h = (A_h v_in) W_v,hᵀ + b_v,h               (rows of A sum to 1)
#   Q_h K_hᵀ = (q_in)(W_q,hᵀ K_hᵀ) + b_q,h K_hᵀ        (image → token logits)
#   o_proj(concat_h A_h V_h) = Σ_h A_h (V_h W_o,hᵀ + b_o / H)     (image → token output)
# which halves the per-prompt work and leaves the result equal up to float rounding.


def _heads(attn: Any) -> tuple[int, int, float]:
    return int(attn.num_attention_heads), int(attn.head_dim), float(attn.scaling)


def _token_to_shared_image(
    attn: Any, q_tokens: torch.Tensor, k_image: torch.Tensor, v_image: torch.Tensor
) -> torch.Tensor:
    """Tokens attend to one image shared by all prompts: ``(n, T, C)``.

    ``k_image``/``v_image``: ``(L, C)``; their projections are computed once, and the heads
    are the batch dimension so nothing of size ``n × L`` is copied.
    """
    heads, dim, scale = _heads(attn)
    n, t, _ = q_tokens.shape
    length = k_image.shape[0]
    q = (attn.q_proj(q_tokens) * scale).view(n * t, heads, dim).transpose(0, 1)  # (H, nT, d)
    k = attn.k_proj(k_image).view(length, heads, dim).permute(1, 2, 0)  # (H, d, L)
    v = attn.v_proj(v_image).view(length, heads, dim).transpose(0, 1)  # (H, L, d)
    weights = torch.softmax(torch.bmm(q, k), dim=-1)  # (H, nT, L)
    out = torch.bmm(weights, v)  # (H, nT, d)
    return attn.o_proj(out.transpose(0, 1).reshape(n, t, heads * dim))


def _token_to_image(
    attn: Any,
    q_tokens: torch.Tensor,
    k_image: torch.Tensor,
    v_image: torch.Tensor,
    pe: torch.Tensor | None = None,
) -> torch.Tensor:
    """Tokens attend to per-prompt image tokens: ``(n, T, C)``.

    Args:
        q_tokens: ``(n, T, C)`` queries (tokens + their PE).
        k_image: ``(n, L, C)`` keys, or keys without PE when ``pe`` is given.
        v_image: ``(n, L, C)`` values.
        pe: ``(L, C)`` image PE to add to the keys; folded into the logits
            (``(Q W_k)(k + pe)ᵀ = (Q W_k) kᵀ + (Q W_k) peᵀ``), cheaper than ``k + pe``
            when T is small.
    """
    heads, dim, scale = _heads(attn)
    n, t, channels = q_tokens.shape
    q = attn.q_proj(q_tokens).view(n, t, heads, dim)  # (n, T, H, d)
    w_k = attn.k_proj.weight.view(heads, dim, channels)
    b_k = attn.k_proj.bias.view(heads, dim)
    folded = torch.einsum("nthd,hdc->nhtc", q, w_k).reshape(n, heads * t, channels) * scale
    offset = torch.einsum("nthd,hd->nht", q, b_k).reshape(n, heads * t, 1) * scale
    if pe is not None:
        offset = offset + torch.matmul(folded, pe.transpose(0, 1))  # (n, H*T, L)
    logits = torch.baddbmm(offset, folded, k_image.transpose(1, 2))  # (n, H*T, L)
    weights = torch.softmax(logits, dim=-1)
    mixed = torch.bmm(weights, v_image).view(n, heads, t, channels)  # (n, H, T, C)
    w_v = attn.v_proj.weight.view(heads, dim, channels)
    out = torch.einsum("nhtc,hdc->nthd", mixed, w_v) + attn.v_proj.bias.view(heads, dim)
    return attn.o_proj(out.reshape(n, t, heads * dim))


def _out_folded(attn: Any, v: torch.Tensor) -> torch.Tensor:
    """``V_h W_o,hᵀ + b_o / H`` for every head: ``(n, H*T, C)`` from ``v`` ``(n, T, H, d)``.

    The weights of each head sum to 1 over the tokens, so spreading ``b_o`` over the heads'
    rows adds exactly ``b_o`` to every output row.
    """
    heads, dim, _ = _heads(attn)
    n, t = v.shape[:2]
    w_o = attn.o_proj.weight.view(-1, heads, dim)  # (C, H, d)
    folded = torch.einsum("nthd,chd->nhtc", v, w_o).reshape(n, heads * t, -1)
    return folded + attn.o_proj.bias / heads


def _shared_image_to_token(
    attn: Any,
    q_image: torch.Tensor,
    k_tokens: torch.Tensor,
    v_tokens: torch.Tensor,
    residual: torch.Tensor,
) -> torch.Tensor:
    """One shared image (``(L, C)``) attends to each prompt's tokens.

    Returns:
        ``residual + attention`` ``(n, L, C)`` (the residual add is fused into the product).
    """
    heads, dim, scale = _heads(attn)
    n, t, _ = k_tokens.shape
    length = q_image.shape[0]
    q = (attn.q_proj(q_image) * scale).view(length, heads, dim).permute(1, 2, 0)  # (H, d, L)
    k = attn.k_proj(k_tokens).view(n * t, heads, dim).transpose(0, 1)  # (H, nT, d)
    v = attn.v_proj(v_tokens).view(n, t, heads, dim)
    # Logits laid out (n, H, T, L): the softmax over the T tokens then runs along a strided
    # axis with L contiguous values, far faster on CPU than L·H softmaxes of length T.
    logits = torch.bmm(k, q).view(heads, n, t, length).transpose(0, 1)  # (n, H, T, L)
    weights = torch.softmax(logits, dim=2).reshape(n, heads * t, length)
    return torch.baddbmm(residual, weights.transpose(1, 2), _out_folded(attn, v))


def _image_to_token(
    attn: Any,
    q_image: torch.Tensor,
    k_tokens: torch.Tensor,
    v_tokens: torch.Tensor,
    residual: torch.Tensor,
) -> torch.Tensor:
    """Per-prompt image tokens ``(n, L, C)`` attend to their prompt's tokens.

    Returns:
        ``residual + attention`` ``(n, L, C)`` (the residual add is fused into the product).
    """
    heads, dim, scale = _heads(attn)
    n, t, channels = k_tokens.shape
    length = q_image.shape[1]
    k = attn.k_proj(k_tokens).view(n, t, heads, dim)
    w_q = attn.q_proj.weight.view(heads, dim, channels)
    b_q = attn.q_proj.bias.view(heads, dim)
    folded = torch.einsum("hdc,nthd->nhtc", w_q, k).reshape(n, heads * t, channels) * scale
    offset = torch.einsum("hd,nthd->nht", b_q, k).reshape(n, heads * t, 1) * scale
    logits = torch.baddbmm(offset, folded, q_image.transpose(1, 2))  # (n, H*T, L)
    weights = torch.softmax(logits.view(n, heads, t, length), dim=2).view(n, heads * t, length)
    v = attn.v_proj(v_tokens).view(n, t, heads, dim)
    return torch.baddbmm(residual, weights.transpose(1, 2), _out_folded(attn, v))
