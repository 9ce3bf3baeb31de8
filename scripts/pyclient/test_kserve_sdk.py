"""The kserve SDK's InferenceRESTClient and InferenceGRPCClient against a
running Chorus, as their users call them: set_data_from_numpy with its
defaults (binary tensor data), binary outputs on and off, raw and typed gRPC
contents, KServe's open shapes. Numbers are checked against the fixtures'
transformers logits; an unknown model raises the client's own error."""
import asyncio

import grpc
import httpx
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from clientcheck import MODELS, OUTPUTS, check, texts_array
from conftest import TEXTS


# ---- kserve SDK --------------------------------------------------------


def kserve_request(model, binary_in=True, shape=None):
    """A request built as the SDK's users build it: set_data_from_numpy
    (binary_data=True is its default), or, for KServe's open shapes, JSON
    data with that shape."""
    if shape is None:
        inp = InferInput(name="input-0", shape=[len(TEXTS)], datatype="BYTES")
        inp.set_data_from_numpy(texts_array(), binary_data=binary_in)
    else:
        inp = InferInput(name="input-0", shape=shape, datatype="BYTES", data=TEXTS)
    return InferRequest(model_name=model, infer_inputs=[inp], request_outputs=[RequestedOutput(name=o) for o in OUTPUTS])


def kserve_outputs(res):
    return {o.name: o.as_numpy() for o in res.outputs}


async def rest_infer(url, req, headers=None):
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    try:
        assert await client.is_server_live(url)
        assert await client.is_server_ready(url)
        assert await client.is_model_ready(url, req.model_name)
        return await client.infer(url, req, model_name=req.model_name, response_headers=headers)
    finally:
        await client.close()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_kserve_rest_set_data_from_numpy_defaults(chorus, model, binary_out):
    # set_data_from_numpy's default is binary_data=True: the body is JSON
    # plus binary tensor data, which Chorus answered 400 before.
    inp = InferInput(name="input-0", shape=[len(TEXTS)], datatype="BYTES")
    inp.set_data_from_numpy(texts_array())
    outs = [RequestedOutput(name=o, parameters={"binary_data": True} if binary_out else None) for o in OUTPUTS]
    headers = {}
    res = asyncio.run(rest_infer(chorus.url, InferRequest(model_name=model, infer_inputs=[inp], request_outputs=outs), headers))
    check(model, kserve_outputs(res))
    # Binary outputs came back as binary data, the others as JSON.
    assert ("inference-header-content-length" in {h.lower() for h in headers}) == binary_out


@pytest.mark.parametrize("shape", [[], [-1]], ids=["shape-empty", "shape-minus-one"])
def test_kserve_rest_open_shapes(chorus, shape):
    # KServe's own e2e fixtures send "shape": [].
    res = asyncio.run(rest_infer(chorus.url, kserve_request("distilbert", shape=shape)))
    check("distilbert", kserve_outputs(res))


def test_kserve_rest_unknown_model(chorus):
    async def go():
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        try:
            return await client.infer(chorus.url, kserve_request("nope"), model_name="nope")
        finally:
            await client.close()
    with pytest.raises(httpx.HTTPStatusError) as exc:
        asyncio.run(go())
    assert exc.value.response.status_code == 404


async def grpc_infer(target, req):
    async with InferenceGRPCClient(url=target, retries=0) as client:
        assert await client.is_server_live()
        assert await client.is_server_ready()
        assert await client.is_model_ready(req.model_name)
        return await client.infer(req)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("binary_in", [True, False], ids=["raw", "contents"])
def test_kserve_grpc_infer(chorus, model, binary_in):
    # binary_data=True (the default) sends raw_input_contents and gets
    # raw_output_contents; False sends and gets typed contents.
    res = asyncio.run(grpc_infer(chorus.grpc, kserve_request(model, binary_in)))
    check(model, kserve_outputs(res))
    # The answer mirrors the request: raw contents for raw inputs.
    assert all((o._raw_data is not None) == binary_in for o in res.outputs)


def test_kserve_grpc_unknown_model(chorus):
    async def go():
        async with InferenceGRPCClient(url=chorus.grpc, retries=0) as client:
            return await client.infer(kserve_request("nope"))
    with pytest.raises(grpc.RpcError) as exc:
        asyncio.run(go())
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
