#!/usr/bin/env python3
"""A KServe Python ModelServer serving a Chorus model folder through onnxruntime.

It stands in for KServe's Hugging Face server (which needs PyTorch weights)
in tests: same kserve.Model API, same request/response helpers
(get_predict_input / get_predict_response) and the same sequence-
classification post-processing as huggingfaceserver's encoder model:
argmax by default, {j: float(f"{p:.4f}")} with --return_probabilities, and
{j: logit.item()} with --disable_postprocess (alias --return_raw_logits).

    python kserve_predictor.py --model_name sst2 --model_dir testdata/models/sst2-tiny-a \
        --disable_postprocess --http_port 8081 [--grpc_port 8082]
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response
from tokenizers import Tokenizer


class OnnxSequenceClassifier(Model):
    def __init__(self, name, model_dir, return_probabilities, return_raw_logits, max_length):
        super().__init__(name)
        self.model_dir = model_dir
        self.return_probabilities = return_probabilities
        self.return_raw_logits = return_raw_logits
        self.max_length = max_length
        self.ready = False

    def load(self):
        with open(os.path.join(self.model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.max_length = self.max_length or cfg.get("max_position_embeddings", 512)
        self.tok = Tokenizer.from_file(os.path.join(self.model_dir, "tokenizer.json"))
        self.tok.enable_truncation(self.max_length)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        graph = os.path.join(self.model_dir, "onnx", "model.onnx")
        if not os.path.exists(graph):
            graph = os.path.join(self.model_dir, "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        texts = [t.decode() if isinstance(t, bytes) else str(t) for t in get_predict_input(payload)]
        enc = self.tok.encode_batch(texts)
        feed = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}
        logits = self.session.run(["logits"], {k: v for k, v in feed.items() if k in self.inputs})[0]
        inferences = []
        for row in logits.astype(np.float32):
            if self.return_raw_logits:
                inferences.append({j: row[j].item() for j in range(row.shape[0])})
            elif self.return_probabilities:
                e = np.exp(row - row.max())
                p = (e / e.sum()).astype(np.float32)
                inferences.append({j: float(f"{p[j].item():.4f}") for j in range(p.shape[0])})
            else:
                inferences.append(int(row.argmax()))
        return get_predict_response(payload, inferences, self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--return_probabilities", action="store_true")
    parser.add_argument("--disable_postprocess", "--return_raw_logits", action="store_true", dest="raw")
    parser.add_argument("--max_length", type=int, default=0)
    args, _ = parser.parse_known_args()
    model = OnnxSequenceClassifier(args.model_name, args.model_dir, args.return_probabilities, args.raw, args.max_length)
    model.load()
    # gRPC only when a port is asked for: its default (8081) would collide
    # between tests running side by side.
    grpc = any(a.startswith("--grpc_port") for a in sys.argv[1:])
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, workers=1, enable_grpc=grpc).start([model])
