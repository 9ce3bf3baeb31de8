#!/usr/bin/env python3
"""Write a model folder's optimised and int8 ONNX graphs and report their accuracy.

    variants.py --model models/demo-sentiment --data data/demo-sentiment/test.jsonl

Beside FOLDER/onnx/model.onnx (fp32, as exported) it writes:

- onnx/model_optimized.onnx: ONNX Runtime's transformer optimizer (fused
  attention, LayerNorm, GELU), kept only where it runs faster than the fp32
  graph under ONNX Runtime's own session optimisations (it often does not:
  the session already fuses most of it);
- onnx/model_quantized.onnx (the Hub's name): dynamic int8 quantisation
  (int8 weights, activations quantised at run time) of the faster of the two;
- onnx/variants.json: for each graph, its speed (ONNX Runtime, --threads
  threads, batch 1 and --batch), and for int8 against fp32 on the labelled
  split: label agreement, max |Δlogit|, accuracy and ECE (15 bins) before and
  after.

--data is JSON lines with "text" and "label" (the label's index). The script
fails when int8 label agreement falls below --min-agreement. A served int8
graph has its own fingerprint: fit it its own calibration (chorus calibrate).

Needs scripts/onnx_tools/requirements.txt (make venv-onnx).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from tokenizers import Tokenizer

FP32, OPTIMIZED, QUANTIZED = "model.onnx", "model_optimized.onnx", "model_quantized.onnx"


def load_tokenizer(folder, max_len):
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.no_padding()  # rows are padded per batch below, as Chorus does
    tok.enable_truncation(max_len)
    return tok


def read_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        return json.load(f)


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def feeds(sess, encs, pad_id):
    """Pads encodings to the batch's longest, for the inputs sess takes."""
    n, width = len(encs), max(len(e.ids) for e in encs)
    ids = np.full((n, width), pad_id, dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    types = np.zeros((n, width), dtype=np.int64)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = e.ids
        mask[i, :len(e.ids)] = e.attention_mask
        types[i, :len(e.ids)] = e.type_ids
    have = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {i.name: have[i.name] for i in sess.get_inputs()}


def logits(sess, encs, pad_id, batch=64):
    out = []
    order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))  # little padding
    for b in range(0, len(order), batch):
        idx = order[b:b + batch]
        out.append((idx, sess.run(None, feeds(sess, [encs[i] for i in idx], pad_id))[0]))
    res = np.zeros((len(encs), out[0][1].shape[1]), dtype=np.float32)
    for idx, l in out:
        res[idx] = l
    return res


def seqs_per_second(sess, encs, pad_id, batch, seconds):
    """Best-of-three throughput over repeated runs of the first `batch` texts."""
    f = feeds(sess, (encs * batch)[:batch], pad_id)
    sess.run(None, f)  # warm up
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            sess.run(None, f)
            n += batch
        best = max(best, n / (time.perf_counter() - start))
    return best


def ece(probs, labels, bins=15):
    """Expected calibration error, right-closed bins as scripts/demo_model/train.py."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs((pred[m] == labels[m]).mean() - conf[m].mean())
    return float(total)


def softmax(x):
    z = np.exp(x - x.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model folder with onnx/model.onnx, config.json, tokenizer.json")
    ap.add_argument("--data", help="labelled split, JSON lines {text, label}")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads for the speed test")
    ap.add_argument("--batch", type=int, default=32, help="the speed test's large batch")
    ap.add_argument("--seconds", type=float, default=3.0, help="speed test time per graph and batch size")
    ap.add_argument("--min-agreement", type=float, default=0.995, help="fail below this int8 label agreement")
    args = ap.parse_args()

    onnx_dir = os.path.join(args.model, "onnx")
    fp32 = os.path.join(onnx_dir, FP32)
    cfg = read_config(args.model)
    max_len = cfg.get("max_position_embeddings", 512)
    tok = load_tokenizer(args.model, max_len)
    pad_id = cfg.get("pad_token_id") or 0

    if args.data:
        with open(args.data, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        texts, labels = [r["text"] for r in rows], np.array([int(r["label"]) for r in rows])
    else:  # no labels: agreement and Δlogit on a few sentences only
        texts = ["Hello, my dog is cute", "I am feeling sad", "The plot was dull but the acting was superb.",
                 "An utterly forgettable film.", "I would watch it again tomorrow!"]
        labels = None
    encs = tok.encode_batch(texts)
    speed_encs = tok.encode_batch(texts[:args.batch])

    def speed(path):
        s = session(path, args.threads)
        return {"batch_1": round(seqs_per_second(s, speed_encs, pad_id, 1, args.seconds), 1),
                f"batch_{args.batch}": round(seqs_per_second(s, speed_encs, pad_id, args.batch, args.seconds), 1)}

    report = {"threads": args.threads, "onnxruntime": ort.__version__, "graphs": {}}
    report["graphs"][FP32] = {"seq_per_s": speed(fp32)}
    base = fp32

    # The transformer optimizer's own fusions (opt_level 0: its ONNX Runtime
    # pre-pass needs torch, and the session applies those passes anyway).
    # num_heads/hidden_size 0 lets it read them off the graph.
    opt_path = os.path.join(onnx_dir, OPTIMIZED)
    heads = cfg.get("n_heads") or cfg.get("num_attention_heads") or 0
    hidden = cfg.get("dim") or cfg.get("hidden_size") or 0
    opt = optimize_model(fp32, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
    opt.save_model_to_file(opt_path)
    fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    opt_speed = speed(opt_path)
    faster = sum(opt_speed.values()) > sum(report["graphs"][FP32]["seq_per_s"].values())
    report["graphs"][OPTIMIZED] = {"seq_per_s": opt_speed, "fused": fused, "kept": faster}
    if faster:
        base = opt_path
    else:
        os.remove(opt_path)
        print(f"{OPTIMIZED}: not faster than {FP32} here ({opt_speed} vs {report['graphs'][FP32]['seq_per_s']}), not kept")

    q_path = os.path.join(onnx_dir, QUANTIZED)
    # Some exports leave a MatMul output untyped after ONNX's shape inference
    # (the full-size bench model from torch 2.5); its activations are float.
    quantize_dynamic(base, q_path, weight_type=QuantType.QInt8, per_channel=False, reduce_range=False,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    report["graphs"][QUANTIZED] = {"seq_per_s": speed(q_path), "from": os.path.basename(base)}

    ref = logits(session(fp32, args.threads), encs, pad_id)
    for name in [n for n in (OPTIMIZED, QUANTIZED) if os.path.exists(os.path.join(onnx_dir, n))]:
        got = logits(session(os.path.join(onnx_dir, name), args.threads), encs, pad_id)
        acc = {"texts": len(texts), "label_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
               "max_abs_logit_diff": float(np.abs(got - ref).max())}
        if labels is not None:
            acc.update({"split": args.data, "accuracy_fp32": float((ref.argmax(1) == labels).mean()),
                        "accuracy": float((got.argmax(1) == labels).mean()),
                        "ece_fp32": ece(softmax(ref.astype(np.float64)), labels),
                        "ece": ece(softmax(got.astype(np.float64)), labels)})
        report["graphs"][name]["vs_fp32"] = acc
    with open(os.path.join(onnx_dir, "variants.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(json.dumps(report, indent=1))
    agreement = report["graphs"][QUANTIZED]["vs_fp32"]["label_agreement"]
    if agreement < args.min_agreement:
        sys.exit(f"{QUANTIZED}: label agreement {agreement:.4f} < {args.min_agreement}")


if __name__ == "__main__":
    main()
