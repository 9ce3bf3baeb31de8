#!/usr/bin/env python3
"""PyTorch eager on CUDA, the bar for Chorus's GPU backend: sequences per
second at seq 128 / batch 128 and seq 16 / batch 512, and batch-1 latency,
in fp32 and fp16, for a sequence classifier folder."""
import argparse
import time

import torch
from transformers import AutoModelForSequenceClassification


def bench(model, batch, seq, dtype, iters):
    ids = torch.randint(1000, 2000, (batch, seq), device="cuda")
    mask = torch.ones_like(ids)
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        for _ in range(5):
            model(input_ids=ids, attention_mask=mask)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            model(input_ids=ids, attention_mask=mask)
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / iters
    return batch / dt, dt * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    model = AutoModelForSequenceClassification.from_pretrained(args.model).cuda().eval()
    for dtype in (torch.float32, torch.float16):
        m = model.half() if dtype == torch.float16 else model
        for batch, seq in ((128, 128), (512, 16), (1, 16)):
            sps, ms = bench(m, batch, seq, dtype, 50)
            print(f"pytorch {str(dtype)[6:]} batch {batch} seq {seq}: {sps:,.0f} seq/s, {ms:.2f} ms/batch")


if __name__ == "__main__":
    main()
