#!/usr/bin/env python3
"""Export a Hugging Face sequence-classification model to the folder Chorus serves.

    python scripts/export_onnx.py --model distilbert/distilbert-base-uncased-finetuned-sst-2-english --out ./sst2
    bin/chorus --model_name distilbert --model_dir ./sst2

--model is a Hub id or a local folder (anything from_pretrained takes). The
output folder holds config.json, the tokenizer files and onnx/model.onnx with
dynamic batch and sequence axes (inputs input_ids, attention_mask and, for
models that take it, token_type_ids; output logits). The script checks the
ONNX logits against PyTorch's before it finishes.

Then (unless --no-variants) it writes beside it ONNX Runtime's
transformer-optimised graph (onnx/model_optimized.onnx, kept where it is
faster) and a dynamic-int8 graph (onnx/model_quantized.onnx), and reports
their accuracy against fp32 in onnx/variants.json: label agreement and max
|Δlogit|, and with --data (JSON lines {text, label}) accuracy and ECE before
and after (scripts/onnx_tools/variants.py). Serve a variant with the
replica option onnx_file: onnx/model_quantized.onnx, and fit it its own
calibration (chorus calibrate).

Needs: pip install torch transformers onnx onnxruntime sentencepiece protobuf
(versions as in scripts/fixtures/requirements.txt and
scripts/onnx_tools/requirements.txt). The folder always has a tokenizer.json,
which Chorus reads.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="Hub id (ORG/REPO) or local folder")
    ap.add_argument("--out", required=True, help="folder to write")
    ap.add_argument("--revision", default=None, help="Hub revision")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--data", help="labelled split (JSON lines {text, label}) for the int8 accuracy report")
    ap.add_argument("--no-variants", action="store_true", help="write only onnx/model.onnx")
    args = ap.parse_args()

    # Chorus reads tokenizer.json (the fast tokenizer): for SentencePiece
    # models (XLM-R, ALBERT, DeBERTa-v3, CamemBERT…) transformers converts
    # the .model file here (needs the sentencepiece and protobuf packages).
    tok = AutoTokenizer.from_pretrained(args.model, revision=args.revision, use_fast=True)
    if not tok.is_fast:
        raise SystemExit(f"{args.model}: transformers has no fast tokenizer for {type(tok).__name__}; Chorus needs tokenizer.json")
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, revision=args.revision, attn_implementation="eager").eval()
    os.makedirs(os.path.join(args.out, "onnx"), exist_ok=True)
    model.config.save_pretrained(args.out)
    tok.save_pretrained(args.out)
    if not os.path.exists(os.path.join(args.out, "tokenizer.json")):
        raise SystemExit(f"{args.out}: the tokenizer saved no tokenizer.json")

    sample = tok(["Hello, my dog is cute", "I am feeling sad"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    path = os.path.join(args.out, "onnx", "model.onnx")
    torch.onnx.export(model, tuple(sample[n] for n in names), path, input_names=names,
                      output_names=["logits"], dynamic_axes=axes, opset_version=args.opset,
                      do_constant_folding=True)

    with torch.no_grad():
        want = model(**{n: sample[n] for n in names}).logits.numpy()
    try:
        import onnxruntime as ort
    except ImportError:
        print(f"wrote {args.out} (install onnxruntime to check the export)")
        return
    got = ort.InferenceSession(path).run(["logits"], {n: sample[n].numpy() for n in names})[0]
    err = float(np.abs(got - want).max())
    print(f"wrote {args.out}: max |onnx - pytorch| = {err:.2e}")
    if err > 1e-3:
        raise SystemExit("the exported graph disagrees with PyTorch")
    if not args.no_variants:
        cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "onnx_tools", "variants.py"), "--model", args.out]
        if args.data:
            cmd += ["--data", args.data]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
