"""What every client test checks, whatever the client decoded."""
import numpy as np

from conftest import TEXTS, expected, softmax

MODELS = ["distilbert", "sentiment3", "distilbert-ensemble"]
OUTPUTS = ["label", "probabilities", "logits"]


def check(model, outs):
    """outs: output name -> numpy array, as the client decoded it."""
    logits, t = expected(model)
    n, k = logits.shape
    assert outs["label"].shape == (n,) and outs["label"].tolist() == logits.argmax(axis=1).tolist()
    assert outs["logits"].shape == (n, k)
    np.testing.assert_allclose(outs["logits"], logits, atol=1e-4)
    np.testing.assert_allclose(outs["probabilities"], softmax(logits, t), atol=1e-5)


def texts_array():
    return np.array([t.encode() for t in TEXTS], dtype=np.object_)
