#!/usr/bin/env python3
"""The model-only limit: ONNX Runtime in Python, no server, no HTTP.

    model_limit.py --model FOLDER --graph onnx/model.onnx --texts texts.txt --threads 2

Runs the graph on the given texts (one per line), tokenised beforehand with
the folder's tokenizer.json, at each batch size of --batches for --seconds
each, and prints JSON {"batch_sizes": {B: seq/s}, "best_batch": B,
"best_seq_per_s": X}. cmd/chorus-bench compares Chorus end to end against
it. Needs scripts/onnx_tools/requirements.txt (make venv-onnx).
"""
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model folder (config.json, tokenizer.json)")
    ap.add_argument("--graph", default="onnx/model.onnx", help="graph, relative to the folder")
    ap.add_argument("--texts", required=True, help="texts, one per line")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8,16,32,64")
    ap.add_argument("--seconds", type=float, default=4.0, help="per batch size, all rounds together")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds over the batch sizes; each size's best round counts (neighbours on a shared host "
                         "take CPU in bursts: the best round is the least disturbed)")
    args = ap.parse_args()

    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(cfg.get("max_position_embeddings", 512))
    with open(args.texts, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    encs = tok.encode_batch(texts)
    pad = cfg.get("pad_token_id") or 0

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(args.model, args.graph), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    def feeds(batch):
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for i, e in enumerate(batch):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = e.attention_mask
        have = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {n: have[n] for n in names}

    sizes = [int(x) for x in args.batches.split(",")]
    # Consecutive batches walk through the texts, as the server's requests do.
    feeds_of = {b: [feeds([encs[(s + i) % len(encs)] for i in range(b)]) for s in range(0, len(encs), b)] for b in sizes}
    res = {b: 0.0 for b in sizes}
    for _ in range(args.rounds):
        for b in sizes:
            batches = feeds_of[b]
            sess.run(None, batches[0])  # warm up
            n, k, start = 0, 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds / args.rounds:
                sess.run(None, batches[k % len(batches)])
                n, k = n + b, k + 1
            res[b] = max(res[b], n / (time.perf_counter() - start))
    best = max(res, key=res.get)
    print(json.dumps({"graph": args.graph, "threads": args.threads, "onnxruntime": ort.__version__,
                      "batch_sizes": {str(b): round(v, 1) for b, v in res.items()},
                      "best_batch": best, "best_seq_per_s": round(res[best], 1)}))


if __name__ == "__main__":
    main()
