#!/usr/bin/env python3
"""Build the benchmark models, each with PyTorch weights (for the KServe peer)
and the ONNX graph (for Chorus) of the very same random weights:

  tiny/  the fixture architecture (dim 16, 2 layers), seed 11
  full/  full-size DistilBERT (dim 768, 6 layers, 12 heads, 66M parameters)

Not committed: generated at bench time into --out.
"""
import argparse
import os
import sys

import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from make_fixtures import build_model, export_onnx  # noqa: E402


def save(model, tok, out):
    if os.path.exists(os.path.join(out, "onnx", "model.onnx")):
        print(f"{out}: already built")
        return
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    export_onnx(model, tok, os.path.join(out, "onnx", "model.onnx"))
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tok = DistilBertTokenizerFast(tokenizer_file=args.tokenizer, model_max_length=512, do_lower_case=True)
    save(build_model("distilbert", 11, ["NEGATIVE", "POSITIVE"]), tok, os.path.join(args.out, "tiny"))
    torch.manual_seed(66)
    cfg = DistilBertConfig(id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
                           attn_implementation="eager")
    full = DistilBertForSequenceClassification(cfg).eval()
    print(f"full-size: {sum(p.numel() for p in full.parameters()) / 1e6:.1f}M parameters")
    save(full, tok, os.path.join(args.out, "full"))


if __name__ == "__main__":
    main()
