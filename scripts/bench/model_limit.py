#!/usr/bin/env python3
"""The model-only limit: ONNX Runtime in Python, no server, no HTTP.

    model_limit.py --model FOLDER --graph onnx/model.onnx --texts texts.txt --layouts 1x2,2x1

Runs the graph on the given texts (one per line), tokenised beforehand with
the folder's tokenizer.json, at each batch size of --batches for --seconds
each, in each layout of --layouts: RxT is R runs at once (Python threads;
ONNX Runtime releases the GIL), on one session of T intra-op threads. It
prints JSON {"layouts": {L: {B: seq/s}}, "best_layout": L, "best_batch": B,
"best_seq_per_s": X}. cmd/chorus-bench compares Chorus end to end against
the best. Needs scripts/onnx_tools/requirements.txt (make venv-onnx).
"""
import argparse
import json
import os
import threading
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model folder (config.json, tokenizer.json)")
    ap.add_argument("--graph", default="onnx/model.onnx", help="graph, relative to the folder")
    ap.add_argument("--texts", required=True, help="texts, one per line")
    ap.add_argument("--layouts", default="1x2,2x1",
                    help="comma-separated RxT: R concurrent runs on a session of T intra-op threads")
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

    layouts = args.layouts.split(",")
    sessions = {}
    for layout in layouts:
        runs, threads = (int(x) for x in layout.split("x"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sessions[layout] = (runs, ort.InferenceSession(os.path.join(args.model, args.graph), so,
                                                      providers=["CPUExecutionProvider"]))
    names = [i.name for i in next(iter(sessions.values()))[1].get_inputs()]

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
    res = {layout: {b: 0.0 for b in sizes} for layout in layouts}
    for _ in range(args.rounds):
        for layout in layouts:
            runs, sess = sessions[layout]
            for b in sizes:
                rate = measure(sess, runs, feeds_of[b], b, args.seconds / args.rounds)
                res[layout][b] = max(res[layout][b], rate)
    best_layout, best = max(((layout, b) for layout in layouts for b in sizes), key=lambda lb: res[lb[0]][lb[1]])
    print(json.dumps({"graph": args.graph, "onnxruntime": ort.__version__,
                      "layouts": {layout: {str(b): round(v, 1) for b, v in r.items()} for layout, r in res.items()},
                      "best_layout": best_layout, "best_batch": best,
                      "best_seq_per_s": round(res[best_layout][best], 1)}))


def measure(sess, runs, batches, b, seconds):
    """Sequences per second with runs threads calling sess.run for seconds."""
    sess.run(None, batches[0])  # warm up
    counts = [0] * runs
    stop = time.perf_counter() + seconds

    def work(w):
        k = w
        while time.perf_counter() < stop:
            sess.run(None, batches[k % len(batches)])
            counts[w] += b
            k += runs

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)

if __name__ == "__main__":
    main()
