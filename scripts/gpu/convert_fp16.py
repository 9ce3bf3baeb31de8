#!/usr/bin/env python3
"""Fuse a BERT-family ONNX graph with ONNX Runtime's transformer optimizer
(attention, layer norm, GELU) and, with --float16, convert it to fp16 for
the CUDA provider. Copies the rest of the model folder alongside.

    python scripts/gpu/convert_fp16.py --model full --out full-fp16 --float16 --heads 12 --hidden 768

Check the result against the fp32 logits (the contract suite does, within
its tolerance) before serving it: fp16 should stay within 3e-3.
"""
import argparse
import os
import shutil

from onnxruntime.transformers import optimizer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model folder with onnx/model.onnx")
    ap.add_argument("--out", required=True)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--float16", action="store_true")
    args = ap.parse_args()
    shutil.copytree(args.model, args.out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.onnx", "*.safetensors"))
    opt = optimizer.optimize_model(os.path.join(args.model, "onnx", "model.onnx"), model_type="bert",
                                   num_heads=args.heads, hidden_size=args.hidden, use_gpu=args.float16)
    if args.float16:
        opt.convert_float_to_float16(keep_io_types=True)
    os.makedirs(os.path.join(args.out, "onnx"), exist_ok=True)
    opt.save_model_to_file(os.path.join(args.out, "onnx", "model.onnx"))
    print(f"wrote {args.out}: {opt.get_fused_operator_statistics()}")


if __name__ == "__main__":
    main()
