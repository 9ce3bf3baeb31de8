"""Every V2 answer Chorus gives, validated with KServe's own pydantic models
(kserve.protocol.rest.v2_datamodels): plain and typed outputs, KServe's
string outputs, cached answers, ensembles with their member logits, and the
metadata and health routes. OIP parameters must be scalars: an answer with a
list in "parameters" fails InferenceResponse, and a validating client (a
KServe transformer) rejects it. Errors have KServe's {"error": str} shape."""
import json
import urllib.error
import urllib.request

import pytest
from kserve.protocol.rest.v2_datamodels import (InferenceResponse, ListModelsResponse, ModelMetadataResponse,
                                                ModelReadyResponse, ServerLiveResponse, ServerMetadataResponse,
                                                ServerReadyResponse)

from conftest import TEXTS

ALL_OUTPUTS = ["output-0", "label", "probabilities", "logits", "calibrated_logits"]


def call(url, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def infer_body(outputs=None, shape=None, parameters=None, request_id=None):
    body = {"inputs": [{"name": "input-0", "shape": shape if shape is not None else [len(TEXTS)],
                        "datatype": "BYTES", "data": TEXTS}]}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    if parameters:
        body["parameters"] = parameters
    if request_id:
        body["id"] = request_id
    return body


CASES = {
    "labels": ("distilbert", infer_body()),
    "labels, id echoed": ("distilbert", infer_body(request_id="abc")),
    "probability strings": ("distilbert-probs", infer_body()),
    "raw-logit strings": ("sentiment3", infer_body()),
    "typed outputs": ("sentiment3", infer_body(ALL_OUTPUTS)),
    "shape []": ("distilbert", infer_body(shape=[])),
    "shape [-1]": ("distilbert", infer_body(shape=[-1])),
    "shape [n, 1]": ("distilbert", infer_body(shape=[len(TEXTS), 1])),
    "cache off": ("distilbert", infer_body(parameters={"cache": False})),
    "ensemble": ("distilbert-ensemble", infer_body()),
    "ensemble typed": ("distilbert-ensemble", infer_body(ALL_OUTPUTS + ["member_logits"])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_infer_answers_validate(chorus, name):
    model, body = CASES[name]
    # Twice: the second answer comes from the logits cache (cache_hits).
    for _ in range(2):
        status, raw = call(f"{chorus.url}/v2/models/{model}/infer", body)
        assert status == 200, raw
        resp = InferenceResponse.model_validate_json(raw)
        assert resp.model_name == model
        for out in resp.outputs:
            n = 1
            for d in out.shape:
                n *= d
            assert len(out.data) == n, (out.name, out.shape, len(out.data))
    if body.get("parameters", {}).get("cache") is not False:
        # An ensemble counts each member's hits.
        members = 2 if model == "distilbert-ensemble" else 1
        assert resp.parameters["cache_hits"] == members * len(TEXTS)
    if model == "distilbert-ensemble":
        assert resp.parameters["members_used"] == "distilbert,distilbert-b"
        assert resp.parameters["members_used_count"] == 2


def test_list_parameters_fail_validation():
    # The check above can fail: what ensembles answered before (a list in
    # parameters) is rejected by KServe's model.
    with pytest.raises(Exception):
        InferenceResponse.model_validate({"model_name": "e", "id": "1", "parameters": {"members_used": ["a", "b"]},
                                          "outputs": []})


@pytest.mark.parametrize("path, model", [
    ("/v2", ServerMetadataResponse), ("/v2/health/live", ServerLiveResponse),
    ("/v2/health/ready", ServerReadyResponse), ("/v2/models", ListModelsResponse),
    ("/v2/models/distilbert", ModelMetadataResponse), ("/v2/models/distilbert-ensemble", ModelMetadataResponse),
    ("/v2/models/distilbert/ready", ModelReadyResponse),
])
def test_metadata_answers_validate(chorus, path, model):
    status, raw = call(chorus.url + path)
    assert status == 200, raw
    model.model_validate_json(raw, strict=False)
    if model is ListModelsResponse:
        assert "distilbert-ensemble" in json.loads(raw)["models"]


@pytest.mark.parametrize("path, body, status", [
    ("/v2/models/nope/infer", infer_body(), 404),
    ("/v2/models/distilbert/infer", infer_body(shape=[3]), 400),
    ("/v2/models/distilbert/infer", infer_body(["nope"]), 400),
    ("/v2/models/distilbert/infer", {"inputs": []}, 400),
    ("/v2/models/nope", None, 404),
    ("/v1/models/distilbert:explain", {"instances": TEXTS}, 501),
])
def test_error_answers_have_kserves_shape(chorus, path, body, status):
    got, raw = call(chorus.url + path, body)
    assert got == status, raw
    err = json.loads(raw)
    assert list(err) == ["error"] and isinstance(err["error"], str)
