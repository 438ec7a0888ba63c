#!/usr/bin/env python3
"""The peer of our CF build: the same item-item similarity computed with numpy/scipy.

Same recipe as server/src/recall/cf.rs: per (user, item) summed action weights (click 1,
buy 3, favourite 2; MovieLens rating/5), each user's 500 most recent items, inverse user
frequency 1/ln(1+|history|), cosine normalisation by sqrt(sum w^2) per item, top-N per item.

Usage: cf_peer.py LOG TOP_N OUT.tsv  -> prints one JSON line of figures.
"""
import csv
import json
import sys
import time

import numpy as np
import scipy.sparse as sp

MAX_HISTORY = 500


def main():
    log, top_n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    t0 = time.perf_counter()
    users, items = {}, {}
    weight, last = {}, {}
    with open(log, newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        movielens = len(header) > 2 and header[2] == "rating"
        action_w = {"0": 1.0, "1": 3.0, "2": 2.0}
        for r in rows:
            u = users.setdefault(r[0], len(users))
            i = items.setdefault(r[1], len(items))
            w = float(r[2]) / 5.0 if movielens else action_w[r[2]]
            t = int(r[3])
            key = (u, i)
            weight[key] = weight.get(key, 0.0) + w
            last[key] = max(last.get(key, t), t)
    parse_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    per_user = {}
    for (u, i), w in weight.items():
        per_user.setdefault(u, []).append((last[(u, i)], i, w))
    rows_u, cols_i, vals = [], [], []
    iuf = np.zeros(len(users))
    for u, lst in per_user.items():
        lst.sort(key=lambda x: (-x[0], x[1]))
        lst = lst[:MAX_HISTORY]
        iuf[u] = 1.0 / np.log(1.0 + len(lst))
        for _, i, w in lst:
            rows_u.append(u)
            cols_i.append(i)
            vals.append(w)
    x = sp.csr_matrix((np.array(vals, dtype=np.float64), (rows_u, cols_i)), shape=(len(users), len(items)))
    norm = np.asarray(x.multiply(x).sum(axis=0)).ravel()
    co = (x.T @ sp.diags(iuf) @ x).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    inv = 1.0 / np.sqrt(np.where(norm > 0, norm, 1.0))
    sim = sp.diags(inv) @ co @ sp.diags(inv)
    sim = sim.tocsr()
    names = {v: k for k, v in items.items()}
    with open(out, "w") as f:
        for i in range(sim.shape[0]):
            start, end = sim.indptr[i], sim.indptr[i + 1]
            if start == end:
                continue
            js, ss = sim.indices[start:end], sim.data[start:end]
            k = min(top_n, len(ss))
            order = np.lexsort((js, -ss))[:k]
            f.write(names[i] + "\t" + ",".join(f"{names[js[o]]}:{ss[o]:.4f}" for o in order) + "\n")
    build_s = time.perf_counter() - t1
    print(json.dumps({"user_item_pairs": len(weight), "users": len(users), "items": len(items),
                      "parse_s": parse_s, "build_s": build_s, "total_s": parse_s + build_s}))


if __name__ == "__main__":
    main()
