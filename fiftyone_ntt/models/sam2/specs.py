"""SAM 2's Hiera image-encoder sizes, as Meta published them (``sam2{,.1}_hiera_*.yaml``): the
settings that the tensors of a checkpoint cannot show (heads, window sizes, global blocks)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HIERA_SPECS", "HieraSpec", "hiera_arch_name"]


@dataclass(frozen=True)
class HieraSpec:
    """One SAM 2 image-encoder size, as in Meta's ``sam2{,.1}_hiera_*.yaml``.

    Attributes:
        arch: our name (``hiera_tiny``, ``hiera_small``, ``hiera_base_plus``, ``hiera_large``).
        embed_dim: width of stage 1 (doubles at each stage).
        blocks_per_stage: Hiera ``stages``.
        heads_per_stage: attention heads per stage (``num_heads`` × 2 per stage).
        window_sizes: ``window_spec`` per stage (windowed attention outside global blocks).
        global_attention_blocks: ``global_att_blocks`` (0-based block indices).
        window_pos_embed_bkg: ``window_pos_embed_bkg_spatial_size``.
        decoder_heads: attention heads of the mask decoder's two-way transformer.
        fpn_top_down_levels: FPN levels that receive the top-down path.
    """

    arch: str
    embed_dim: int
    blocks_per_stage: tuple[int, ...]
    heads_per_stage: tuple[int, ...]
    window_sizes: tuple[int, ...]
    global_attention_blocks: tuple[int, ...]
    window_pos_embed_bkg: tuple[int, int]
    decoder_heads: int = 8
    fpn_top_down_levels: tuple[int, ...] = (2, 3)

    @property
    def key(self) -> tuple[int, tuple[int, ...]]:
        return (self.embed_dim, self.blocks_per_stage)

    @property
    def embed_dims(self) -> list[int]:
        return [self.embed_dim * 2**i for i in range(len(self.blocks_per_stage))]


def _specs(*specs: HieraSpec) -> dict[tuple[int, tuple[int, ...]], HieraSpec]:
    return {spec.key: spec for spec in specs}


#: The four released Hiera sizes (identical in SAM 2.0 and 2.1), keyed by
#: ``(embed_dim, blocks_per_stage)``. Tests may add entries for tiny random models.
HIERA_SPECS: dict[tuple[int, tuple[int, ...]], HieraSpec] = _specs(
    HieraSpec("hiera_tiny", 96, (1, 2, 7, 2), (1, 2, 4, 8), (8, 4, 14, 7), (5, 7, 9), (7, 7)),
    HieraSpec("hiera_small", 96, (1, 2, 11, 2), (1, 2, 4, 8), (8, 4, 14, 7), (7, 10, 13), (7, 7)),
    HieraSpec(
        "hiera_base_plus",
        112,
        (2, 3, 16, 3),
        (2, 4, 8, 16),
        (8, 4, 14, 7),
        (12, 16, 20),
        (14, 14),
    ),
    HieraSpec(
        "hiera_large", 144, (2, 6, 36, 4), (2, 4, 8, 16), (8, 4, 16, 8), (23, 33, 43), (7, 7)
    ),
)


def hiera_arch_name(embed_dim: int, blocks_per_stage: list[int] | tuple[int, ...]) -> str:
    """Our name for a Hiera size (``"hiera_large"``), or ``"hiera_custom"``."""
    spec = HIERA_SPECS.get((int(embed_dim), tuple(int(b) for b in blocks_per_stage)))
    return spec.arch if spec else "hiera_custom"
