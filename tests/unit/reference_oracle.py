"""A literal, unoptimised transcription of docs/method.md §5 (the reference's ``forward_test``).

Tests compare :class:`fiftyone_ntt.segmenter.Segmenter` against this oracle. It follows the
pseudo-code of ``docs/method.md`` §5.7 step by step, with the reference's own tensor
layout: the DINOv2 grid is upsampled to 256 x 256 and pooled with one big matrix product,
NMS is greedy over a full IoU matrix, intersections are full-image products. It is slow on
purpose and shares no code with the library except the model protocol calls.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def _mask_to_box_inclusive(masks: torch.Tensor) -> torch.Tensor:
    boxes = []
    for m in masks:
        ys, xs = torch.nonzero(m, as_tuple=True)
        if len(xs) == 0:
            boxes.append([0.0, 0.0, 0.0, 0.0])
        else:
            boxes.append([xs.min().item(), ys.min().item(), xs.max().item(), ys.max().item()])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def _greedy_nms(boxes, scores, labels, thr):
    # torchvision's coordinate trick: offset boxes per class, then plain NMS (stable sort).
    offsets = labels.float() * (boxes.max() + 1)
    b = boxes + offsets[:, None]
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    removed = [False] * len(order)
    keep = []
    for pos, i in enumerate(order):
        if removed[pos]:
            continue
        keep.append(i)
        for pos2 in range(pos + 1, len(order)):
            j = order[pos2]
            if removed[pos2]:
                continue
            w = (torch.minimum(b[i, 2], b[j, 2]) - torch.maximum(b[i, 0], b[j, 0])).clamp(min=0)
            h = (torch.minimum(b[i, 3], b[j, 3]) - torch.maximum(b[i, 1], b[j, 1])).clamp(min=0)
            inter = w * h
            iou = inter / (area[i] + area[j] - inter)
            if iou > thr:
                removed[pos2] = True
    return torch.tensor(keep, dtype=torch.int64)


def hf_stock_decode(proposer):
    """``decode`` for :func:`oracle_predict`: transformers' own ``Sam2MaskDecoder.forward``
    with all four mask tokens, on the embedding without ``no_memory_embedding`` (§1.1)."""
    sam = proposer.model

    def decode(emb, points):
        sparse, dense = sam.prompt_encoder(
            input_points=points[None, :, None, :],
            input_labels=torch.ones(1, len(points), 1, dtype=torch.int32),
            input_boxes=None,
            input_masks=None,
        )
        decoder = sam.mask_decoder
        # multimask_output=True drops token 0; the reference asks for all four
        # (output_all_masks=True) and picks among 1..3, so call with the slice undone.
        masks, iou, _, _ = _all_tokens(decoder)(
            image_embeddings=emb.image,
            image_positional_embeddings=sam.get_image_wide_positional_embeddings(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            high_resolution_features=[emb.high_res_s0, emb.high_res_s1],
        )
        return masks[0], iou[0]

    return decode


def _all_tokens(decoder):
    """Prepend a dummy token-0 column so that indices 1..3 match the reference's."""

    def call(**kwargs):
        masks, iou, tokens, obj = decoder(**kwargs)
        pad_m = torch.full_like(masks[:, :, :1], float("nan"))
        pad_i = torch.full_like(iou[:, :, :1], float("-inf"))
        return torch.cat([pad_m, masks], 2), torch.cat([pad_i, iou], 2), tokens, obj

    return call


def oracle_predict(
    image: np.ndarray, encoder, proposer, bank, decode=None, points_per_side: int = 32
) -> dict:
    """Run docs/method.md §5.7 literally. ``decode(embedding, points) -> (logits[N,4,m,m],
    iou[N,4])`` may be given to bypass the proposer's own (optimised) selection; otherwise
    ``proposer.propose`` is used with threshold -inf and filtered here."""
    height, width = image.shape[:2]
    pil = Image.fromarray(image).resize((1024, 1024), Image.Resampling.BICUBIC)
    tar = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255.0
    dino_in = F.interpolate(tar[None], size=(518, 518), mode="bicubic")
    with torch.inference_mode():
        return _oracle(
            image, encoder, proposer, bank, decode, points_per_side, height, width, tar, dino_in
        )


def _oracle(image, encoder, proposer, bank, decode, points_per_side, height, width, tar, dino_in):
    feat = encoder.encode(dino_in)[0]  # (37, 37, D)
    emb = proposer.embed(tar)
    g = torch.linspace(0, 1023, points_per_side)
    x, y = torch.meshgrid(g, g, indexing="ij")
    points = torch.stack((x.reshape(-1), y.reshape(-1)), dim=-1) + 0.5
    lr_masks, ious = [], []
    for start in range(0, len(points), 256):
        pts = points[start : start + 256]
        if decode is not None:
            logits4, iou4 = decode(emb, pts)
            best = torch.argmax(iou4[:, 1:], dim=-1) + 1
            rows = torch.arange(len(pts))
            lr_masks.append(logits4[rows, best])
            ious.append(iou4[rows, best])
        else:
            _, logits, iou = proposer.propose(emb, pts, float("-inf"))
            lr_masks.append(logits)
            ious.append(iou)
    lr_masks = torch.cat(lr_masks)
    ious = torch.cat(ious)
    keep = ious > 0.4
    lr_masks, ious = lr_masks[keep], ious[keep]
    n = len(lr_masks)
    size = lr_masks.shape[-1]
    masks_bool = (lr_masks > 0).reshape(n, -1)
    up = (
        F.interpolate(
            feat.permute(2, 0, 1)[None],
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        .reshape(feat.shape[-1], -1)
        .t()
    )
    m = masks_bool.float()
    obj = F.normalize((m @ up) / m.sum(dim=-1, keepdim=True), dim=-1)
    protos = torch.zeros(len(bank.class_names), bank.feature_dim)
    feats = torch.from_numpy(bank.features)
    for c in range(len(bank.class_names)):
        protos[c] = feats[torch.from_numpy(bank.class_ids) == c].mean(0)
    protos = F.normalize(protos, dim=-1)
    sim = (obj @ protos.t()).clamp(min=0.0)
    top, labels = torch.topk(sim, k=1)
    scores, labels = top.flatten(), labels.flatten()
    boxes = _mask_to_box_inclusive(lr_masks > 0)
    nms_keep = _greedy_nms(boxes, ious, labels, 0.5)[: min(800, n)]
    scores, labels = scores[nms_keep], labels[nms_keep]
    lr_out, obj_out = lr_masks[nms_keep], obj[nms_keep]
    pos = scores > 0
    scores, labels, lr_out, obj_out = scores[pos], labels[pos], lr_out[pos], obj_out[pos]
    if len(scores) == 0:
        return {"masks": np.zeros((0, height, width), bool), "scores": np.zeros(0), "labels": []}
    full = (
        F.interpolate(
            lr_out[:, None],
            size=(height, width),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[:, 0]
        > 0
    )
    flat = full.reshape(len(full), -1).float()
    obj_sim = (obj_out @ obj_out.t()).clamp(min=0)
    ios = torch.zeros(len(full))
    for c in labels.unique().tolist():
        sel = labels == c
        fm = flat[sel]
        inter = fm @ fm.t()
        inter.fill_diagonal_(0.0)
        inter = torch.tril(inter)
        ios[sel] = (inter / fm.sum(-1)[:, None] * obj_sim[sel][:, sel]).max(dim=-1)[0]
    scores = scores * torch.pow(1 - ios, 0.5)
    visible = full.reshape(len(full), -1).any(dim=1)  # docs/method.md §11.1: drop vanished masks
    order = torch.argsort(scores, descending=True)
    order = order[visible[order]][:100]
    return {
        "masks": full[order].numpy(),
        "scores": scores[order].numpy(),
        "labels": [bank.class_names[i] for i in labels[order].tolist()],
    }
