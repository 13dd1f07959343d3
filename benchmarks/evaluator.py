"""Wall time of the evaluator metric set on 10,000 generated images (Fashion-MNIST, 32x32): evaluator
features + FID + KID (100 x 1000) + precision/recall (k = 3) + density/coverage (k = 5) + modes, with
the real statistics already cached, as every evaluation after a trial's first pays it.

Run: .venv/bin/python -m benchmarks.evaluator [--threads 2] [--n 10000] [--repeat 3]
"""

import argparse
import time

import torch


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dataset", default="fashion_mnist")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from bench import registry
    from bench.metrics import fid as F
    from bench.metrics.evaluator import get_evaluator
    from bench.metrics.images import image_metrics, class_modes, real_stats
    from bench.schema import DatasetCfg

    t = time.perf_counter()
    cfg = DatasetCfg(name=args.dataset, image_size=32)
    data = registry.get("dataset", args.dataset)(cfg)
    ev = get_evaluator(data, cfg)
    print(f"data + evaluator (cached or trained): {time.perf_counter() - t:.2f} s; {ev.id}, "
          f"test accuracy {ev.test_accuracy:.4f}, trained in {ev.meta['train_seconds']:.0f} s")
    # "generated" images: training images with a little noise (not the real split the stats use)
    g = torch.Generator().manual_seed(0)
    x = data.to_float(data.train)
    fake = (x[:args.n] + 0.1 * torch.randn(x[:args.n].shape, generator=g)).clamp(-1, 1)
    t = time.perf_counter()
    real = real_stats(ev, data, "test", args.n)
    print(f"real statistics (first call computes and caches them): {time.perf_counter() - t:.2f} s")

    rows = []
    for _ in range(args.repeat):
        tt = {}
        t0 = time.perf_counter()
        feats, logits = ev.embed(fake)
        tt["features"] = time.perf_counter() - t0
        t = time.perf_counter()
        mu, sigma = F.feature_stats(feats)
        F.fid(real["mu"], real["sigma"], mu, sigma)
        tt["fid"] = time.perf_counter() - t
        t = time.perf_counter()
        F.kid(real["features"], feats, real_xx=real["kid_xx"].tolist())
        tt["kid"] = time.perf_counter() - t
        t = time.perf_counter()
        F.manifold_metrics(real["features"], feats, real_radii=real["radii"])
        tt["pr+dc"] = time.perf_counter() - t
        t = time.perf_counter()
        class_modes(ev.classes_from_logits(logits), ev.num_classes)
        tt["modes"] = time.perf_counter() - t
        tt["total"] = time.perf_counter() - t0
        t = time.perf_counter()
        image_metrics(ev, data, fake)
        tt["image_metrics()"] = time.perf_counter() - t
        rows.append(tt)
    t = time.perf_counter()
    F.kid(real["features"], feats)
    t_kid = time.perf_counter() - t
    t = time.perf_counter()
    F.manifold_metrics(real["features"], feats)
    t_pr = time.perf_counter() - t
    print(f"without the cached real side: kid {t_kid:.2f} s (real-real kernel sums recomputed), "
          f"pr+dc {t_pr:.2f} s (real k-NN radii recomputed)")
    print(f"{args.n} generated images, {torch.get_num_threads()} torch threads; seconds per repeat:")
    keys = list(rows[0])
    print("  ".join(f"{k:>15s}" for k in ["repeat"] + keys))
    for i, r in enumerate(rows):
        print("  ".join([f"{i:>15d}"] + [f"{r[k]:15.2f}" for k in keys]))
    best = {k: min(r[k] for r in rows) for k in keys}
    print("  ".join([f"{'best':>15s}"] + [f"{best[k]:15.2f}" for k in keys]))
    return best


if __name__ == "__main__":
    main()
