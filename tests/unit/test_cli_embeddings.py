"""``fiftyone-ntt predict --embeddings`` (issue 22 §1): a float16 ``.npy`` beside the results,
one row per result (the feature it was matched with); the results themselves unchanged; an
existing file that is not ours refused without ``--overwrite``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import dataset, pipeline  # noqa: F401  (the module's fixtures)

from fiftyone_ntt.cli import main
from fiftyone_ntt.cli._outputs import KINDS
from fiftyone_ntt.memory_bank import MemoryBank

_is_embeddings = KINDS["embeddings"].is_ours

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def test_predict_embeddings_writes_one_float16_row_per_result(pipeline, tmp_path):  # noqa: F811
    out = tmp_path / "with.json"
    assert main([*pipeline["predict"], "--out", str(out), "--embeddings"]) == 0
    results = json.loads(out.read_text())
    # the predictions are those of a run without embeddings
    assert results == json.loads(pipeline["results"].read_text())
    vectors = np.load(tmp_path / "with.embeddings.npy")
    bank = MemoryBank.load(pipeline["bank"])
    assert vectors.dtype == np.float16
    assert vectors.shape == (len(results), bank.feature_dim)
    norms = np.linalg.norm(vectors.astype(np.float32), axis=1)
    np.testing.assert_allclose(norms[np.isfinite(norms)], 1.0, atol=2e-3)
    # the file is recognised as ours (a rerun replaces it without --overwrite)
    assert _is_embeddings(tmp_path / "with.embeddings.npy")


def test_predict_embeddings_refuses_a_file_that_is_not_ours(pipeline, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "mine.json"
    theirs = tmp_path / "mine.embeddings.npy"
    np.save(theirs, np.arange(5, dtype=np.int64))
    assert main([*pipeline["predict"], "--out", str(out), "--embeddings"]) == 2
    err = capsys.readouterr().err
    assert str(theirs) in err and "--overwrite" in err
    assert np.load(theirs).tolist() == [0, 1, 2, 3, 4]
    assert not out.exists()
