"""NVIDIA's tritonclient (http and grpc) against a running Chorus, as its
users call it: default options, and binary tensor data on and off.

Each infers labels, probabilities, logits and an ensemble and checks the
numbers against the fixtures' transformers logits; each reads liveness,
readiness and metadata; an unknown model raises the client's own
not-found error. (tritonclient.grpc and the kserve SDK register the same
protobuf package, "inference", so they cannot share a process: run.sh runs
this file on its own.)"""
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from clientcheck import MODELS, OUTPUTS, check, texts_array
from conftest import TEXTS, expected


# ---- tritonclient.http -------------------------------------------------


@pytest.fixture
def triton_http(chorus):
    c = thttp.InferenceServerClient(url=chorus.http)
    yield c
    c.close()


def test_tritonclient_http_health_and_metadata(triton_http):
    assert triton_http.is_server_live()
    assert triton_http.is_server_ready()
    assert triton_http.is_model_ready("distilbert")
    assert "binary_tensor_data" in triton_http.get_server_metadata()["extensions"]
    md = triton_http.get_model_metadata("distilbert")
    assert md["inputs"][0]["datatype"] == "BYTES"
    assert {o["name"] for o in md["outputs"]} >= set(OUTPUTS)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_tritonclient_http_infer(triton_http, model, binary_in, binary_out):
    inp = thttp.InferInput("input-0", [len(TEXTS)], "BYTES")
    inp.set_data_from_numpy(texts_array(), binary_data=binary_in)
    outputs = [thttp.InferRequestedOutput(o, binary_data=binary_out) for o in OUTPUTS]
    res = triton_http.infer(model, [inp], outputs=outputs)
    check(model, {o: res.as_numpy(o) for o in OUTPUTS})
    for o in res.get_response()["outputs"]:
        assert ("binary_data_size" in (o.get("parameters") or {})) == binary_out


@pytest.mark.parametrize("model", ["distilbert", "distilbert-probs"])
def test_tritonclient_http_defaults(triton_http, model):
    # No outputs named: tritonclient asks for every output in binary
    # (binary_data_output), and gets the model's default output-0.
    inp = thttp.InferInput("input-0", [len(TEXTS)], "BYTES")
    inp.set_data_from_numpy(texts_array())
    res = triton_http.infer(model, [inp])
    out = res.as_numpy("output-0")
    logits, _ = expected("distilbert")
    if model == "distilbert":
        assert out.tolist() == logits.argmax(axis=1).tolist()
    else:
        assert [s.decode() for s in out] == ["{0: 0.0004, 1: 0.9996}", "{0: 0.9989, 1: 0.0011}"]


def test_tritonclient_http_unknown_model(triton_http):
    inp = thttp.InferInput("input-0", [1], "BYTES")
    inp.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as exc:
        triton_http.infer("nope", [inp])
    assert exc.value.status() == "404"
    assert "model not found" in exc.value.message()


# ---- tritonclient.grpc -------------------------------------------------


@pytest.fixture
def triton_grpc(chorus):
    c = tgrpc.InferenceServerClient(url=chorus.grpc)
    yield c
    c.close()


def test_tritonclient_grpc_health_and_metadata(triton_grpc):
    assert triton_grpc.is_server_live()
    assert triton_grpc.is_server_ready()
    assert triton_grpc.is_model_ready("distilbert")
    assert triton_grpc.get_server_metadata().name == "chorus"
    md = triton_grpc.get_model_metadata("distilbert")
    assert md.inputs[0].datatype == "BYTES" and list(md.inputs[0].shape) == [-1]
    assert {o.name for o in md.outputs} >= set(OUTPUTS)


@pytest.mark.parametrize("model", MODELS)
def test_tritonclient_grpc_infer(triton_grpc, model):
    # tritonclient.grpc always sends raw_input_contents and reads
    # raw_output_contents: its one way.
    inp = tgrpc.InferInput("input-0", [len(TEXTS)], "BYTES")
    inp.set_data_from_numpy(texts_array())
    res = triton_grpc.infer(model, [inp], outputs=[tgrpc.InferRequestedOutput(o) for o in OUTPUTS])
    check(model, {o: res.as_numpy(o) for o in OUTPUTS})


def test_tritonclient_grpc_defaults(triton_grpc):
    inp = tgrpc.InferInput("input-0", [len(TEXTS)], "BYTES")
    inp.set_data_from_numpy(texts_array())
    res = triton_grpc.infer("sentiment3", [inp])
    out = [s.decode() for s in res.as_numpy("output-0")]
    assert all(s.startswith("{0: ") for s in out) and len(out) == len(TEXTS)


def test_tritonclient_grpc_unknown_model(triton_grpc):
    inp = tgrpc.InferInput("input-0", [1], "BYTES")
    inp.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as exc:
        triton_grpc.infer("nope", [inp])
    assert exc.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException):
        triton_grpc.get_model_metadata("nope")


