#!/usr/bin/env python3
"""KServe's Python ModelServer with a trivial in-memory model: answers every
V1 instance with label 1. The bar for Chorus's cache-hit path."""
import argparse

from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response


class Trivial(Model):
    def load(self):
        self.ready = True
        return True

    def predict(self, payload, headers=None):
        return get_predict_response(payload, [1] * len(get_predict_input(payload)), self.name)


if __name__ == "__main__":
    args, _ = argparse.ArgumentParser(parents=[model_server.parser]).parse_known_args()
    m = Trivial(args.model_name)
    m.load()
    ModelServer(http_port=args.http_port, workers=1, enable_grpc=False).start([m])
