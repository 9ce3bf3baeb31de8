#!/usr/bin/env python3
"""Train Chorus's demo sentiment model: a small DistilBERT that has learned sentiment.

No dataset can be downloaded on our machines, so the text is generated from a
human-rated sentiment lexicon that a PyPI package ships (VADER's
vader_lexicon.txt, in vaderSentiment==3.3.2): rated words placed into varied
sentence templates with negation ("not good" flips), intensifiers, contrast
("X but Y" takes Y's sentiment) and neutral filler. Splits are disjoint by
sentence; words are shared, so the test split measures new sentences, not new
words. The model is the real `transformers` DistilBERT architecture with the
real bert-base-uncased vocabulary, trained from scratch (dim 64, 2 layers).

It is a demo: it knows the words of one lexicon in simple sentences, not
English. For real answers serve distilbert-base-uncased-finetuned-sst-2-english.

Usage: train.py --tokenizer bert-base-uncased.json --out models/demo-sentiment --data data/demo-sentiment
"""

import argparse
import importlib.util
import json
import os
import random
import shutil
import tempfile

import numpy as np
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast

SEED = 20261125  # the data: templates, words, splits (shared by every demo model)
SEED_SENTENCES = ["Hello, my dog is cute", "I am feeling sad"]

SUBJECTS = ["the movie", "my dog", "this book", "the food", "the service", "our trip", "the weather",
            "my day", "the hotel", "this phone", "the song", "the game", "my job", "the show", "the staff",
            "the room", "this place", "the ending", "the plot", "my cat", "the concert", "the class",
            "the coffee", "her speech", "his idea", "the team", "the app", "the city", "the party", "life"]
INTENSIFIERS = ["", "", "", "very ", "really ", "so ", "extremely ", "quite ", "incredibly ", "truly "]
OPENERS = ["", "", "", "", "Hello, ", "Well, ", "Honestly, ", "To be honest, ", "I think ", "Today ",
           "In my opinion, ", "Overall, ", "Wow, ", "Hmm, ", "Yesterday "]
ENDINGS = ["", "", ".", ".", "!", "...", " today.", " overall.", " to be honest.", "!!"]
POSITIVE = ["{s} is {i}{w}", "I am feeling {i}{w}", "it was {i}{w}", "{s} was {i}{w}", "{w}",
            "what a {w} experience", "I find {s} {i}{w}", "{s} seems {i}{w}", "everything felt {i}{w}",
            "we were {i}{w}", "{s} looks {i}{w}", "that is {i}{w}"]
NEGATED = ["{s} is not {i}{w}", "I am not feeling {w}", "it was not {w} at all", "{s} isn't {i}{w}",
           "{s} was never {w}", "nothing about {s} was {w}", "I don't find {s} {w}", "not {w}",
           "we were not {w}", "{s} wasn't {w}"]


def load_lexicon():
    spec = importlib.util.find_spec("vaderSentiment")
    path = os.path.join(os.path.dirname(spec.origin), "vader_lexicon.txt")
    words = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            word, mean, std, _ = line.rstrip("\n").split("\t")
            mean, std = float(mean), float(std)
            # Alphabetic words that raters clearly agreed were positive or negative.
            if word.isalpha() and abs(mean) >= 1.5 and std <= 1.0:
                words[word] = 1 if mean > 0 else 0
    return words


def sentence(rng, words, pos, neg):
    s = rng.choice(SUBJECTS)
    if rng.random() < 0.15:  # contrast: the clause after "but" decides
        first, second = rng.choice(pos + neg), rng.choice(pos + neg)
        text = f"{s} was {first} but {rng.choice(INTENSIFIERS)}{second}"
        label = words[second]
    else:
        w = rng.choice(pos if rng.random() < 0.5 else neg)
        negate = rng.random() < 0.3
        tpl = rng.choice(NEGATED if negate else POSITIVE)
        text = tpl.format(s=s, i=rng.choice(INTENSIFIERS), w=w)
        label = words[w] ^ 1 if negate else words[w]
    opener = rng.choice(OPENERS)
    text = opener + text if opener else text[0].upper() + text[1:]
    return text + rng.choice(ENDINGS), label


def make_splits(words, n_train, n_eval):
    rng = random.Random(SEED)
    pos = sorted(w for w, l in words.items() if l == 1)
    neg = sorted(w for w, l in words.items() if l == 0)
    seen = set(s.lower() for s in SEED_SENTENCES)  # never train or test on the seed's own sentences
    rows = []
    while len(rows) < n_train + 2 * n_eval:
        text, label = sentence(rng, words, pos, neg)
        if text.lower() not in seen:
            seen.add(text.lower())
            rows.append({"text": text, "label": label})
    return rows[:n_train], rows[n_train:n_train + n_eval], rows[n_train + n_eval:]


def encode(tok, rows, max_len=64):
    enc = tok([r["text"] for r in rows], truncation=True, max_length=max_len, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], torch.tensor([r["label"] for r in rows])


def evaluate(model, tok, rows, bins=15):
    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(rows), 256):
            ids, mask, _ = encode(tok, rows[i:i + 256])
            probs.append(torch.softmax(model(input_ids=ids, attention_mask=mask).logits.double(), -1))
    p = torch.cat(probs).numpy()
    y = np.array([r["label"] for r in rows])
    conf, pred = p.max(1), p.argmax(1)
    nll = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None))))
    ece = 0.0
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):  # right-closed bins (lo, hi]
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return {"n": len(y), "accuracy": float((pred == y).mean()), "nll": nll, "ece": float(ece)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=SEED, help="weights and batch order (the data splits never change)")
    ap.add_argument("--name", default="demo-sentiment", help="model name in reference.json")
    args = ap.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)

    words = load_lexicon()
    train, val, test = make_splits(words, n_train=40000, n_eval=3000)
    tok = DistilBertTokenizerFast(tokenizer_file=args.tokenizer, model_max_length=512, do_lower_case=True)
    cfg = DistilBertConfig(vocab_size=30522, dim=64, n_layers=2, n_heads=4, hidden_dim=256,
                           max_position_embeddings=512, dropout=0.1, seq_classif_dropout=0.1,
                           id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
                           attn_implementation="eager")
    model = DistilBertForSequenceClassification(cfg)
    # A constant rate: a one-cycle schedule left a third of the data at 50/50.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    order_rng = random.Random(args.seed)
    for epoch in range(args.epochs):
        model.train()
        order = list(range(len(train)))
        order_rng.shuffle(order)
        total = 0.0
        for b in range(0, len(order), 64):
            ids, mask, y = encode(tok, [train[i] for i in order[b:b + 64]])
            loss = model(input_ids=ids, attention_mask=mask, labels=y).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
        print(f"epoch {epoch + 1}: train loss {total / len(train):.4f}, val {evaluate(model, tok, val)}", flush=True)

    model.eval()
    metrics = {"train_size": len(train), "validation": evaluate(model, tok, val), "test": evaluate(model, tok, test),
               "lexicon": "vaderSentiment==3.3.2 vader_lexicon.txt", "words": len(words), "seed": args.seed}
    with torch.no_grad():
        ids, mask, _ = encode(tok, [{"text": t, "label": 0} for t in SEED_SENTENCES])
        seed_logits = model(input_ids=ids, attention_mask=mask).logits
    metrics["seed_sentences"] = {t: [float(x) for x in l] for t, l in zip(SEED_SENTENCES, seed_logits)}
    print(json.dumps(metrics, indent=1))
    assert seed_logits.argmax(-1).tolist() == [1, 0], "the demo model must get the seed's sentences right"
    assert metrics["test"]["accuracy"] >= 0.90, "the demo model must reach 90% test accuracy"

    os.makedirs(args.data, exist_ok=True)
    for name, rows in (("validation", val), ("test", test)):
        with open(os.path.join(args.data, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    # Same folder layout and reference format as the test fixtures.
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
    from make_fixtures import export_onnx, reference  # noqa: E402
    with tempfile.TemporaryDirectory() as tmp:
        model.config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        export_onnx(model, "distilbert", os.path.join(tmp, "onnx", "model.onnx"))
        ref = reference(model, tok, args.name)
        with open(os.path.join(tmp, "reference.json"), "w", encoding="utf-8") as f:
            json.dump(ref, f, ensure_ascii=False, indent=1)
            f.write("\n")
        with open(os.path.join(tmp, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
            f.write("\n")
        shutil.rmtree(args.out, ignore_errors=True)
        shutil.copytree(tmp, args.out)
    print(f"wrote {args.out} and {args.data}")


if __name__ == "__main__":
    main()
