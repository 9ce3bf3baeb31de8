#!/usr/bin/env python3
"""KServe's Python ModelServer running a sequence classifier the way KServe's
Hugging Face runtime does: AutoTokenizer + AutoModelForSequenceClassification
(PyTorch, eval, no_grad), padding to the longest text, argmax. The bar for
Chorus's model path."""
import argparse

import torch
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response
from transformers import AutoModelForSequenceClassification, AutoTokenizer


class HF(Model):
    def __init__(self, name, model_dir, threads):
        super().__init__(name)
        self.model_dir, self.threads = model_dir, threads

    def load(self):
        torch.set_num_threads(self.threads)
        self.tok = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.model_dir).eval()
        self.ready = True
        return True

    def predict(self, payload, headers=None):
        texts = [str(t) for t in get_predict_input(payload)]
        enc = self.tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            logits = self.model(**enc).logits
        return get_predict_response(payload, logits.argmax(-1).tolist(), self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--threads", type=int, default=2)
    args, _ = parser.parse_known_args()
    m = HF(args.model_name, args.model_dir, args.threads)
    m.load()
    ModelServer(http_port=args.http_port, workers=1, enable_grpc=False).start([m])
