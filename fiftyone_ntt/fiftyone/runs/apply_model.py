"""``NTTModel``: a FiftyOne model, so that ``dataset.apply_model(model, label_field=...)``
works as with FiftyOne's zoo models."""

from __future__ import annotations

from typing import Any

import fiftyone.core.models as fom
import numpy as np

from fiftyone_ntt.fiftyone.dataset.labels import predictions_to_detections
from fiftyone_ntt.fiftyone.runs.config import list_ntt_runs
from fiftyone_ntt.fiftyone.runs.output_field import check_output_field
from fiftyone_ntt.fiftyone.runs.settings import resolve_settings, segmenter_for
from fiftyone_ntt.images import to_rgb_uint8

__all__ = ["NTTModel"]


class NTTModel(fom.Model):
    """No Time to Train as a ``fiftyone.core.models.Model`` (media type ``"image"``).

    Args:
        bank: a :class:`~fiftyone_ntt.memory_bank.MemoryBank` or a bank file path.
        config: settings (default: those stored with the bank).
        score_threshold: drop detections below this (None keeps all, the paper).
        max_detections: detections per image.
        points_per_side: SAM 2 prompt grid.
        device: compute device.
        embeddings: True writes each detection's semantic feature as ``ntt_embedding``
            (docs/method.md §15).
        encoder, proposer: model instances instead of the configured ones.

    FiftyOne's ``apply_model`` replaces whatever ``label_field`` holds, for this model as
    for any other (it does not tell the model the field's name). :meth:`apply` runs it after
    the checks ``segment`` makes: it refuses a field holding labels that No Time to Train
    did not write (a person's labels, another model's predictions) unless ``overwrite``.

    Example:
        >>> from fiftyone_ntt.fiftyone import NTTModel, load_bank
        >>> model = NTTModel(load_bank(dataset, "coins"))
        >>> model.apply(dataset, "ntt")
        >>> model.apply(dataset, "ntt", batch_size=4)  # batches on a GPU
        >>> dataset.apply_model(model, label_field="ntt")  # FiftyOne's, no check
    """

    def __init__(
        self,
        bank: Any,
        config: Any = None,
        *,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        points_per_side: int | None = None,
        device: str | None = None,
        encoder: Any = None,
        proposer: Any = None,
        embeddings: bool | None = None,
    ) -> None:
        # deferred: torch loads only when this runs
        from fiftyone_ntt.bank_file import MemoryBank

        if not isinstance(bank, MemoryBank):
            bank = MemoryBank.load(bank)
        self.config = resolve_settings(
            bank.metadata.get("config"),
            config,
            score_threshold,
            max_detections,
            points_per_side,
            device,
            embeddings,
        )
        self.bank = bank
        self.segmenter = segmenter_for(bank, self.config, encoder, proposer)
        self._preprocess = False

    @property
    def media_type(self) -> str:
        return "image"

    @property
    def has_logits(self) -> bool:
        return False

    @property
    def has_embeddings(self) -> bool:
        return False

    @property
    def ragged_batches(self) -> bool:
        return True

    @property
    def transforms(self) -> None:
        return None

    @property
    def preprocess(self) -> bool:
        return self._preprocess

    @preprocess.setter
    def preprocess(self, value: bool) -> None:
        self._preprocess = value

    def predict(self, arg: np.ndarray) -> Any:
        """``fo.Detections`` of one image (numpy ``(H, W[, C])``, RGB(A) or grey)."""

        image = to_rgb_uint8(np.asarray(arg))
        return predictions_to_detections(self.segmenter.predict(image))

    def predict_all(self, args: Any) -> list[Any]:
        """``fo.Detections`` of several images, both encoders running once per batch (give
        ``apply_model(..., batch_size=B)``; images of different sizes may share a batch)."""

        images = [to_rgb_uint8(np.asarray(arg)) for arg in args]
        return [predictions_to_detections(p) for p in self.segmenter.predict_batch(images)]

    def apply(
        self, collection: Any, label_field: str, *, overwrite: bool = False, **kwargs: Any
    ) -> None:
        """``collection.apply_model(self, label_field=label_field, **kwargs)`` once
        ``label_field`` passed the output-field checks of ``segment``
        (:func:`~fiftyone_ntt.fiftyone.runs.output_field.check_output_field`).

        Raises:
            ValueError: ``label_field`` is refused: the bank's ground-truth field, a field
                of another type or of another run, the field of a segmentation run (its
                record would no longer describe it), or, unless ``overwrite``, a field
                holding labels No Time to Train did not write.
        """

        check_output_field(
            collection, label_field, self.bank.metadata.get("gt_field"), overwrite=overwrite
        )
        if label_field in list_ntt_runs(collection._root_dataset):
            raise ValueError(
                f"field {label_field!r} holds the predictions of a segmentation run; "
                "apply_model would replace them without the run's record: use segment() "
                "for that field, or choose another field"
            )
        collection.apply_model(self, label_field=label_field, **kwargs)
