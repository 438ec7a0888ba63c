#!/usr/bin/env python3
"""Compares two item_item TSV files: mean overlap of the top-N sets per item, and the
largest score difference on shared pairs. Usage: compare_topn.py OURS.tsv PEER.tsv"""
import json
import sys


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, value = line.rstrip("\n").split("\t")
            out[key] = {p.rsplit(":", 1)[0]: float(p.rsplit(":", 1)[1]) for p in value.split(",") if p}
    return out


ours, peer = load(sys.argv[1]), load(sys.argv[2])
keys = set(ours) | set(peer)
overlaps, max_diff = [], 0.0
for k in keys:
    a, b = ours.get(k, {}), peer.get(k, {})
    if not a and not b:
        continue
    # Ties at the cut-off may pick different items: count only items scored above the
    # lowest kept score of both lists.
    cut = max(min(a.values(), default=0.0), min(b.values(), default=0.0))
    sa = {i for i, s in a.items() if s > cut + 1e-4}
    sb = {i for i, s in b.items() if s > cut + 1e-4}
    overlaps.append(len(sa & sb) / max(len(sa | sb), 1) if (sa or sb) else 1.0)
    for i in set(a) & set(b):
        max_diff = max(max_diff, abs(a[i] - b[i]))
print(json.dumps({"items": len(keys), "mean_topn_jaccard_above_ties": sum(overlaps) / max(len(overlaps), 1),
                  "max_score_diff": max_diff}))
