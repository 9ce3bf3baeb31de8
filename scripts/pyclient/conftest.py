"""One Chorus (bin/chorus, configs/local.yaml) for every client test: HTTP and
gRPC on free ports, ready before the first test, stopped with SIGTERM after
the last (it must exit 0)."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEXTS = ["Hello, my dog is cute", "I am feeling sad"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Chorus:
    url: str        # http://127.0.0.1:PORT
    http: str       # 127.0.0.1:PORT, as tritonclient.http wants it
    grpc: str       # 127.0.0.1:PORT


@pytest.fixture(scope="session")
def chorus():
    port, gport = free_port(), free_port()
    proc = subprocess.Popen(
        [os.path.join(ROOT, "bin", "chorus"), "serve", "--config", "configs/local.yaml",
         "--http_port", str(port), "--grpc_port", str(gport)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("chorus did not become ready:\n" + proc.stdout.read().decode())
        time.sleep(0.05)  # polling interval while the server starts
    yield Chorus(url=url, http=f"127.0.0.1:{port}", grpc=f"127.0.0.1:{gport}")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()


def reference(model_dir, texts=TEXTS):
    """The fixture's transformers logits for texts (reference.json)."""
    with open(os.path.join(ROOT, model_dir, "reference.json")) as f:
        rows = json.load(f)["texts"]
    by_text = {r["text"]: np.array(r["logits"], dtype=np.float32) for r in rows}
    return np.stack([by_text[t] for t in texts])


def softmax(z, t=1.0):
    z = np.asarray(z, dtype=np.float64) / t
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def expected(model):
    """What configs/local.yaml's model answers for TEXTS: raw logits, the
    temperature its probabilities use."""
    if model == "distilbert-ensemble":
        with open(os.path.join(ROOT, "configs", "calibration", "distilbert-ensemble.json")) as f:
            t = json.load(f)["temperature"]
        mean = (reference("models/demo-sentiment").astype(np.float64) + reference("models/demo-sentiment-b")) / 2
        return mean, t
    return reference({"distilbert": "models/demo-sentiment", "distilbert-probs": "models/demo-sentiment",
                      "sentiment3": "testdata/models/sentiment3-tiny"}[model]), 1.0
