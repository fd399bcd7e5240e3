"""Distil fitted styles into the any-painting network's style predictor (a linear skip layer), on the CPU.

    python scripts/distill_predictor.py harvest --ckpt checkpoints/arbitrary.safetensors \
        --paintings ../shared/data/paintings --shard 0/2 -o runs/harvest0.pt     # one per core
    python scripts/distill_predictor.py apply --ckpt checkpoints/arbitrary.safetensors \
        runs/harvest0.pt runs/harvest1.pt -o arbitrary.safetensors

``harvest`` fits (:func:`fastnst.stylize.paintings.fit_embedding`) the predicted style of training
paintings (the held-out share, by the training split's path hash, is never used), shuffled by a seed
and split into shards, and keeps per painting its VGG statistics, the predicted embedding and the
fitted one. It saves after every painting and skips those already in the file, so it can stop and
continue. ``apply`` ridge-regresses the fits' corrections (fitted - the MLP's prediction) on the log
statistics the predictor reads, the ridge chosen by k-fold cross-validation, and stores the result as
the predictor's ``skip`` layer (``model.predictor_skip``), added to the MLP's output: every other
weight, and the named styles, stay as they were. Applying again (more harvests) learns the skip anew;
``apply --update`` keeps it and adds what harvests of other paintings (``harvest --start N``, past the
shard's first N) correct in its predictions, for when the harvests it was learnt from are gone.

Why: from the MLP's prediction, a fit brought held-out texture from 0.35 to 0.21 but costs about 45 s
per painting; the predictor is one pass. A linear read of the statistics carries the fits'
corrections over to paintings never fitted (0.35 -> 0.22 from 849 fits in three rounds); the MLP's
hidden layer, regressed on the same way, explains less of them and did not move held-out texture
(docs/training.md).
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from pathlib import Path

import torch

from fastnst.checkpoint import load_network, save_network
from fastnst.data import find_images, split_held_out
from fastnst.io import atomic_path
from fastnst.models.arbitrary import PAINTING_SIZE, painting_statistics, prepare_painting
from fastnst.models.registry import build_network
from fastnst.stylize import paintings as P

RIDGES = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # on log statistics scaled to unit mean square norm
HELD_OUT = 0.05  # the training split's (data.style_held_out)
SKIP_RECIPE = "; then the predictor's skip layer learnt from "  # the card's recipe; replaced when applied again
FIT_STEPS = 60  # 40-60 steps give most of a fit's gain (docs/quality.md); more paintings beat longer fits


def training_paintings(root: Path, shard: int, shards: int, held_out: float = HELD_OUT) -> list[Path]:
    """This shard's paintings: the training split of ``root`` (never its held-out share), shuffled by a seed."""
    train = split_held_out(find_images(root), root, held_out)[0]
    random.Random(0).shuffle(train)
    return train[shard::shards]


def harvest(
    net, paintings: list[Path], output: Path, steps: int = FIT_STEPS, count: int | None = None,
    precision: str = "fp32", log=print,
) -> dict:  # fmt: skip
    """Fit each painting's predicted style and keep (statistics, predicted, fitted); resumes from ``output``.

    Which predictor made each prediction is checked painting by painting when they are applied.

    Returns:
        ``{"paths", "stats" (N, 1920), "pred" (N, E), "fit" (N, E), "steps"}`` as saved.
    """
    samples = torch.load(output, weights_only=True) if output.is_file() else None
    samples = samples or {"paths": [], "stats": [], "pred": [], "fit": [], "steps": steps}
    if samples["steps"] != steps:
        raise ValueError(f"{output}: harvested with {samples['steps']} fit steps, not {steps}; give another file")
    photos = P.fit_photos(None)
    done = set(samples["paths"])
    for path in paintings:
        if count is not None and len(samples["paths"]) >= count:
            break
        if str(path) in done:
            continue
        start = time.perf_counter()
        try:
            data = path.read_bytes()
            with torch.no_grad():
                small = prepare_painting(P.read_painting(data, str(path), short_side=PAINTING_SIZE))
                stats = painting_statistics(net.style_encoder(small.float()))  # (1, 1920)
                predicted = net.embed_statistics(stats)[0]
            full = P.read_painting(data, str(path))
        except (OSError, ValueError) as exc:  # unreadable, tiny, animated: one line, the rest go on
            log(f"skipped {path}: {str(exc).splitlines()[0]}")
            continue
        fitted = P.fit_embedding(net, full, predicted, photos, steps, precision=precision)
        for key, value in (("paths", str(path)), ("stats", stats[0]), ("pred", predicted), ("fit", fitted)):
            samples[key].append(value)
        with atomic_path(output) as tmp:
            torch.save(samples, tmp)
        log(f"{len(samples['paths'])} {path.name}: fitted in {time.perf_counter() - start:.0f} s")
    return samples


def with_skip(net):
    """``net`` with a predictor ``skip`` layer (``model.predictor_skip``): itself if it has one, else a
    copy with every weight of ``net`` and the skip at zero, so it predicts exactly what ``net`` does."""
    if net.config.predictor_skip:
        return net
    wider = build_network(net.arch, {**net.config.to_dict(), "predictor_skip": True}).eval()
    missing = wider.load_state_dict(net.state_dict(), strict=False).missing_keys
    assert all(k.startswith("style_predictor.skip.") for k in missing), missing
    return wider


def ridge_fit(features: torch.Tensor, deltas: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``deltas ≈ features @ A + c`` by ridge regression (the mean shift unpenalised): A (F, E), c (E,).

    Solved in the paintings' space (N x N), as there are fewer paintings than features.
    """
    x, d = features.double(), deltas.double()
    mean_x, mean_d = x.mean(0), d.mean(0)
    x = x - mean_x
    alpha = torch.linalg.solve(x @ x.T + ridge * torch.eye(len(x), dtype=x.dtype), d - mean_d)
    a = x.T @ alpha
    return a.float(), (mean_d - mean_x @ a).float()


def choose_ridge(
    features: torch.Tensor, deltas: torch.Tensor, ridges=RIDGES, folds: int = 8
) -> tuple[float, dict[str, float]]:
    """The ridge with the best k-fold share of the corrections explained (R²); R² of each, and of the
    mean shift alone (``"shift"``)."""
    folds = min(folds, len(deltas))
    if folds < 2:
        raise ValueError(f"{len(deltas)} harvested painting(s): a correction needs at least 2 (harvest more)")
    order = torch.randperm(len(deltas), generator=torch.Generator().manual_seed(0))
    parts = [order[i::folds] for i in range(folds)]

    def explained(predict) -> float:
        error = total = 0.0
        for i, test in enumerate(parts):
            train = torch.cat([p for j, p in enumerate(parts) if j != i])
            error += float((deltas[test] - predict(train, test)).pow(2).sum())
            total += float(deltas[test].pow(2).sum())
        return 1 - error / max(total, 1e-30)  # (nothing to correct: all of it explained)

    scores = {"shift": explained(lambda tr, te: deltas[tr].mean(0).expand(len(te), -1))}
    for ridge in ridges:

        def predict(tr, te, ridge=ridge):
            a, c = ridge_fit(features[tr], deltas[tr], ridge)
            return features[te] @ a + c

        scores[f"{ridge:g}"] = explained(predict)
    best = max(ridges, key=lambda r: scores[f"{r:g}"])
    return best, scores


def apply(net, samples: dict, folds: int = 8, update: bool = False, log=print):
    """Learn the predictor's ``skip`` layer from the fits: returns (the network with it, a report).

    The skip reads the log statistics (what the MLP reads) and adds the fits' correction to the MLP's
    prediction. A network that has a skip already gets a new one, learnt from all the harvests: the
    harvests may have been made with it or with the same MLP alone. ``update``: the skip it has stays
    (with the fits it was learnt from) and what is learnt is the correction to its prediction, added to
    it: for harvests of other paintings, when those the skip was learnt from are not at hand.
    """
    if update and not net.config.predictor_skip:
        raise ValueError("the network has no skip to update; apply without --update")
    net = with_skip(copy.deepcopy(net))  # the caller's network stays as it was
    predictor = net.style_predictor
    stats, predicted, fitted = (torch.stack(samples[k]).float() for k in ("stats", "pred", "fit"))
    logs = predictor.log_statistics(stats)
    with torch.no_grad():
        base = predictor.mlp(logs)
        with_old = base + predictor.skip(logs)
    made_with = torch.minimum((base - predicted).abs().amax(1), (with_old - predicted).abs().amax(1))
    if made_with.max() > 1e-3:  # each painting predicted by this MLP, with or without the skip it has
        raise ValueError("the harvest was made with another predictor; harvest again with this network")
    deltas = fitted - (with_old if update else base)
    # one scale for all features, so the ridges mean the same whatever the network's statistics
    scale = float((logs - logs.mean(0)).pow(2).sum(1).mean().sqrt())
    ridge, scores = choose_ridge(logs / scale, deltas, folds=folds)
    a, c = ridge_fit(logs / scale, deltas, ridge)
    with torch.no_grad():
        keep = 1.0 if update else 0.0  # update: the correction adds to the skip; else it is the skip
        predictor.skip.weight.mul_(keep).add_(a.T / scale)
        predictor.skip.bias.mul_(keep).add_(c)
    log("share of the fits' corrections explained on paintings left out (k-fold R²): "
        + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()) + f"; chosen ridge {ridge:g}")  # fmt: skip
    return net, {"ridge": ridge, "scores": scores, "paintings": len(deltas), "steps": samples["steps"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("harvest", help="fit training paintings; keep (statistics, predicted, fitted)")
    h.add_argument("--ckpt", type=Path, required=True)
    h.add_argument("--paintings", type=Path, required=True, help="the training paintings (data.style_root)")
    h.add_argument("--shard", default="0/1", help="K/N: this process's share (one process per core)")
    h.add_argument("--count", type=int, default=None, help="stop at this many paintings in the file")
    h.add_argument("--start", type=int, default=0, help="begin at the shard's Nth painting (past an earlier harvest)")
    h.add_argument("--steps", type=int, default=FIT_STEPS)
    h.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    h.add_argument("-o", "--output", type=Path, required=True, help="the harvest file (resumed if it exists)")
    a = sub.add_parser("apply", help="add the learnt correction to the predictor; write a new network")
    a.add_argument("harvests", type=Path, nargs="+")
    a.add_argument("--ckpt", type=Path, required=True)
    a.add_argument("-o", "--output", type=Path, required=True)
    a.add_argument("--overwrite", action="store_true")
    a.add_argument("--update", action="store_true",
                   help="keep the network's skip and add the correction to it learnt from these harvests "
                   "(harvests of other paintings than those the skip was learnt from)")  # fmt: skip
    args = parser.parse_args(argv)
    loaded = load_network(args.ckpt)
    net = loaded.net.eval()
    if getattr(net, "arch", None) != "johnson_arbitrary":
        print(f"error: {args.ckpt} is not an any-painting network (johnson_arbitrary)", file=sys.stderr)
        return 2
    if args.command == "harvest":
        shard, _, shards = args.shard.partition("/")
        paintings = training_paintings(args.paintings, int(shard), int(shards or 1))[args.start :]
        precision = P.fit_precision(torch.device("cpu")) if args.precision == "auto" else args.precision
        harvest(net, paintings, args.output, args.steps, args.count, precision)
        return 0
    if args.output.exists() and not args.overwrite:
        print(f"error: {args.output} exists; give another -o or --overwrite", file=sys.stderr)
        return 2
    parts = [torch.load(p, weights_only=True) for p in args.harvests]
    if len({p["steps"] for p in parts}) > 1:
        print("error: the harvests were fitted with different numbers of steps", file=sys.stderr)
        return 2
    samples = {k: [v for p in parts for v in p[k]] for k in ("paths", "stats", "pred", "fit")}
    try:
        net, report = apply(net, {**samples, "steps": parts[0]["steps"]}, update=args.update)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = loaded.info
    card = dict(info.card or {})
    fits = f"{report['steps']}-step fits of {report['paintings']}"
    if args.update:
        card["recipe"] = (
            card.get("recipe", "").rstrip(".") + f"; then updated from {fits} more (ridge {report['ridge']:g})"
        )
    else:
        card["recipe"] = (
            card.get("recipe", "").split(SKIP_RECIPE)[0].rstrip(".")
            + f"{SKIP_RECIPE}{fits} training paintings (ridge {report['ridge']:g}, scripts/distill_predictor.py)"
        )
    card.pop("evaluation", None)  # measured with the old predictor: `fastnst evaluate` the new file
    info.card = card
    save_network(net, args.output, info, half=True)  # as the shipped networks are stored
    print(f"wrote {args.output}; its card has no evaluation until you measure it (fastnst evaluate --paintings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
