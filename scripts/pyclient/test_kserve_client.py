"""KServe's own Python REST client against a running Chorus (bin/chorus).

The server (conftest.py) is started on free ports with configs/local.yaml,
and stopped with SIGTERM at the end (it must exit 0). Expected answers are
computed from the fixtures' reference logits (transformers, PyTorch), with
KServe's own formatting code paths reproduced in Python.
"""
import ast
import asyncio
import json
import os

import numpy as np
import pytest
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEXTS = ["Hello, my dog is cute", "I am feeling sad"]


def reference(model_dir):
    with open(os.path.join(ROOT, model_dir, "reference.json")) as f:
        rows = json.load(f)["texts"]
    by_text = {r["text"]: np.array(r["logits"], dtype=np.float32) for r in rows}
    return np.stack([by_text[t] for t in TEXTS])


def run(coro):
    return asyncio.run(coro)


async def v1_infer(url, model, body):
    client = InferenceRESTClient(RESTConfig(protocol="v1"))
    try:
        assert await client.is_model_ready(url, model)
        return await client.infer(url, body, model_name=model)
    finally:
        await client.close()


async def v2_infer(url, request):
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    try:
        assert await client.is_server_live(url)
        assert await client.is_server_ready(url)
        assert await client.is_model_ready(url, request.model_name)
        return await client.infer(url, request, model_name=request.model_name)
    finally:
        await client.close()


def v2_request(model, outputs=None, request_id=None):
    inp = InferInput(name="input-0", shape=[len(TEXTS)], datatype="BYTES", data=TEXTS)
    req = InferRequest(model_name=model, infer_inputs=[inp], request_id=request_id)
    if outputs:
        req.request_outputs = [RequestedOutput(name=o) for o in outputs]
    return req


def kserve_probability_strings(logits):
    # What KServe's Hugging Face server does with --return_probabilities:
    # softmax in float32, then {j: float(f"{p:.4f}")} printed with str().
    out = []
    for row in logits:
        e = np.exp(row - row.max())
        p = (e / e.sum()).astype(np.float32)
        out.append(str({j: float(f"{p[j].item():.4f}") for j in range(len(p))}))
    return out


@pytest.fixture
def server(chorus):
    return chorus.url


def test_v1_predict_labels(server):
    got = run(v1_infer(server, "distilbert", {"instances": TEXTS}))
    assert got == {"predictions": [1, 0]}  # the KServe docs' answer
    assert got["predictions"] == reference("models/demo-sentiment").argmax(axis=1).tolist()


def test_v1_predict_logits_parameter(server):
    got = run(v1_infer(server, "distilbert", {"instances": TEXTS, "parameters": {"output": "logits"}}))
    np.testing.assert_allclose(np.array(got["predictions"]), reference("models/demo-sentiment"), atol=1e-4)


def test_v2_infer_labels(server):
    res = run(v2_infer(server, v2_request("distilbert", request_id="kserve-sdk-1")))
    assert res.id == "kserve-sdk-1"
    assert res.model_name == "distilbert"
    out = res.outputs[0]
    assert (out.name, out.datatype, out.shape) == ("output-0", "INT64", [2])
    assert list(out.data) == reference("models/demo-sentiment").argmax(axis=1).tolist()


def test_v2_typed_outputs(server):
    res = run(v2_infer(server, v2_request("sentiment3", outputs=["label", "logits", "probabilities"])))
    outs = {o.name: o for o in res.outputs}
    ref = reference("testdata/models/sentiment3-tiny")
    assert outs["label"].datatype == "INT64"
    assert list(outs["label"].data) == ref.argmax(axis=1).tolist()
    assert (outs["logits"].datatype, outs["logits"].shape) == ("FP32", [2, 3])
    np.testing.assert_allclose(np.array(outs["logits"].data).reshape(2, 3), ref, atol=1e-4)
    probs = np.array(outs["probabilities"].data).reshape(2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_v2_return_probabilities_strings(server):
    res = run(v2_infer(server, v2_request("distilbert-probs")))
    out = res.outputs[0]
    assert (out.datatype, out.shape) == ("BYTES", [2])
    assert list(out.data) == kserve_probability_strings(reference("models/demo-sentiment"))


def test_v2_disable_postprocess_strings(server):
    res = run(v2_infer(server, v2_request("sentiment3")))
    out = res.outputs[0]
    assert out.datatype == "BYTES"
    ref = reference("testdata/models/sentiment3-tiny")
    for s, want in zip(out.data, ref):
        parsed = ast.literal_eval(s)
        # Byte-for-byte what Python prints for this dict of float32 values.
        assert s == str({j: float(np.float32(v)) for j, v in parsed.items()})
        np.testing.assert_allclose([parsed[j] for j in range(3)], want, atol=1e-4)


def test_v1_unknown_model_is_404(server):
    client = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
    with pytest.raises(Exception) as exc:
        run(client.infer(server, {"instances": TEXTS}, model_name="nope"))
    assert "404" in str(exc.value)
