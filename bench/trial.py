"""train_trial(config): the one function Ray Tune runs. Build, loop, evaluate, report.

Every evaluation is reported as one flat dict (a row of curves.parquet). The last report carries
`done=True`, the trial's status (`ok` or `diverged`), and a few samples for the report's scatter plots
(toys); on images every evaluation carries PNG grids of generated, real and lensed samples.
A NaN/Inf loss, weight or sample ends the run as status `diverged` at the step it happened: a result,
not a crash.

`cfg.variant.structure` picks the training structure: `gan` (G from noise, optionally with the lens;
bench.structures.gan) or an encoder-decoder structure on a conditional image task (`ed+gan`, `ed+gan2`,
`ed//gan`; bench.structures.edgan, bench.nets.encdec, bench.data.tasks). The ED structures are
evaluated on a fixed subset of the TEST split (the same images for every trial: first
max(eval_samples, nrds_samples) of a permutation seeded with EVAL_SUBSET_SEED): `l1` and `psnr` of the
outputs (clamped to [-1, 1]) against the targets in [0, 1] scale, the evaluator metrics of the outputs,
and for caae `swap_accuracy`; grids of input / output / target (caae: also `swapped`); and at the end
`outputs` (base64 of np.savez_compressed bytes: `outputs` uint8 [N, C, H, W], `index` int64 test
indices, `labels` int64, `swapped_labels` for caae) for the study-level NRDS.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from bench import registry
from bench.metrics import INFO
from bench.metrics.toy import toy_metrics
from bench.structures import edgan
from bench.structures.gan import Nets, lens_weight, step
from bench.study import trial_config

N_SCATTER = 1000  # points per kind kept for the report's real-vs-generated plots


def _streams(seed: int, n: int) -> list[int]:
    """Independent integer seeds for the trial's random streams (init, data, noise, eval, lens)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def make_optimizer(params, train, discriminator: bool = False) -> torch.optim.Optimizer:
    """train.optimizer at train.lr; a discriminator's (D, D_z) uses train.d_optimizer / d_lr where set."""
    kind = (train.d_optimizer if discriminator else None) or train.optimizer
    lr = (train.d_lr if discriminator else None) or train.lr
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(train.betas))
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=train.momentum)
    return torch.optim.SGD(params, lr=lr, momentum=train.momentum)


def build(cfg, device: torch.device):
    """Data, networks and optimizers for a trial. G and D depend only on the seed, so the same seed
    gives the same initial G and D with and without a lens (the paired comparison)."""
    s_init, s_data, s_noise, s_eval, s_lens = _streams(cfg.seed, 5)
    data = registry.get("dataset", cfg.dataset.name)(cfg.dataset)
    nets_module = registry.get("network", cfg.model.name)
    torch.manual_seed(s_init)
    G, D = nets_module.build(cfg.model, data.dim)
    lens = None
    if cfg.variant.lens is not None:
        torch.manual_seed(s_lens)
        lens = nets_module.build_lens(cfg.variant.lens, cfg.model, data.dim).to(device)
    G, D = G.to(device), D.to(device)
    t = cfg.train
    nets = Nets(G, D, make_optimizer(G.parameters(), t), make_optimizer(D.parameters(), t, discriminator=True),
                lens, make_optimizer(lens.parameters(), t) if lens is not None else None)
    gens = {k: torch.Generator().manual_seed(s) for k, s in (("data", s_data), ("noise", s_noise), ("eval", s_eval))}
    return data, nets, gens


def sample_batch(data, cfg, gens, device) -> dict:
    t, nc = cfg.train, cfg.train.n_critic
    real = data.sample(nc * t.batch_size, gens["data"])
    real = real.reshape(nc, t.batch_size, *real.shape[1:])
    z = torch.randn(nc + 1, t.batch_size, cfg.model.z_dim, generator=gens["noise"])
    eps = torch.rand(nc, t.batch_size, generator=gens["noise"])
    return {"real": real.to(device), "z": z.to(device), "eps": eps.to(device)}


def _finite_weights(nets) -> bool:
    """Nets or EDNets: every weight of every network finite."""
    return all(bool(torch.isfinite(p).all()) for m in nets.modules() for p in m.parameters())


@torch.no_grad()
def _apply(net, x: torch.Tensor, device, batch: int = 1024) -> torch.Tensor:
    """net(x) in eval mode (batch norm uses its running statistics), batched, on the CPU as float."""
    was = net.training
    net.eval()
    out = torch.cat([net(x[i:i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])
    net.train(was)
    return out


def _png_grid(x: torch.Tensor) -> str:
    """64 images in [-1, 1] -> a base64 PNG grid (travels to the driver inside the report)."""
    import base64
    import io

    from torchvision.transforms.functional import to_pil_image
    from torchvision.utils import make_grid

    grid = make_grid(x[:64].clamp(-1, 1), nrow=8, normalize=True, value_range=(-1, 1), pad_value=1.0)
    if x.shape[1] == 1:
        grid = grid[:1]  # make_grid repeats one channel three times; a grey PNG is a third of the size
    buf = io.BytesIO()
    to_pil_image(grid).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


class Evaluation:
    """Metrics of G's samples from a fixed noise batch: toy metrics on 2-D mixtures, evaluator metrics on
    images. `payload` is what the report needs to show the samples: points for toys, image grids."""

    def __init__(self, data, cfg, gens, device):
        self.data, self.device = data, device
        n = cfg.train.eval_samples
        self.z = torch.randn(n, cfg.model.z_dim, generator=gens["eval"])
        self.images = isinstance(data.dim, tuple)
        if self.images:
            from bench.metrics.evaluator import get_evaluator

            from bench.metrics.images import inception_status

            self.evaluator = get_evaluator(data)
            self.real = data.sample(64, gens["eval"])
            # Inception FID/KID only with a local weights file; the reason it was skipped goes in the row
            self.inception_skipped = inception_status()
        else:
            self.real = data.sample(n, gens["eval"])

    def __call__(self, nets: Nets, final: bool = False) -> tuple[dict, dict]:
        fake = _apply(nets.G, self.z, self.device)
        if not bool(torch.isfinite(fake).all()):
            raise FloatingPointError("generated samples contain NaN/Inf")
        if self.images:
            from bench.metrics.images import image_metrics

            from bench.metrics.images import inception_metrics

            metrics = {**image_metrics(self.evaluator, self.data, fake), **self.evaluator.columns()}
            if self.inception_skipped is None:
                metrics.update(inception_metrics(self.data, fake, device=self.device)[0])
            grids = {"generated": _png_grid(fake), "real": _png_grid(self.real)}
            if nets.lens is not None:
                grids["lensed"] = _png_grid(_apply(nets.lens, self.real, self.device))
            return metrics, {"grids": grids}
        metrics = toy_metrics(fake, self.real, self.data.modes, self.data.std)
        samples = {"generated": fake[:N_SCATTER], "real": self.real[:N_SCATTER]}
        if nets.lens is not None:
            samples["lensed"] = _apply(nets.lens, self.real[:N_SCATTER], self.device)
        return metrics, {"samples": {k: v.tolist() for k, v in samples.items()}}


# ----------------------------------------------------------------------------- encoder-decoder structures
EVAL_SUBSET_SEED = 0  # the ED structures' test subset: the same images for every trial (paired comparisons)
SWAP_SEED = 1         # caae: the swapped labels of that subset


def build_ed(cfg, device: torch.device):
    """Data, E / Dec / D (from the init stream) and G_res (ed//gan, from its own stream, so the same seed
    gives the same initial E, Dec and D for ed+gan and ed//gan), one optimizer per network."""
    s_init, s_data, s_noise, s_eval, s_res = _streams(cfg.seed, 5)
    data = registry.get("dataset", cfg.dataset.name)(cfg.dataset)
    if not isinstance(data.dim, tuple):
        raise ValueError(f"structure {cfg.variant.structure} needs an image dataset, not {cfg.dataset.name}")
    torch.manual_seed(s_init)
    m = registry.get("network", cfg.model.name).build_ed(cfg.model, cfg.variant, data.dim, data.num_classes,
                                                         res_seed=s_res)
    t = cfg.train

    def opt(mod, discriminator=False):
        return make_optimizer(mod.parameters(), t, discriminator) if mod is not None else None

    E, Dec, D = m.E.to(device), m.Dec.to(device), m.D.to(device)
    G_res = m.G_res.to(device) if m.G_res is not None else None
    D_z = m.D_z.to(device) if m.D_z is not None else None
    nets = edgan.EDNets(E, Dec, D, opt(E), opt(Dec), opt(D, discriminator=True),
                        G_res, opt(G_res), D_z, opt(D_z, discriminator=True))
    gens = {k: torch.Generator().manual_seed(s) for k, s in (("data", s_data), ("noise", s_noise))}
    return data, nets, gens


def sample_ed_batch(data, cfg, gens, device) -> dict:
    """batch_size training images: input (degraded by the task), target (the clean image), labels, eps
    (and `prior`, U(-1, 1) codes for D_z, when variant.code_prior > 0)."""
    from bench.data.tasks import degrade

    B = cfg.train.batch_size
    idx = torch.randint(len(data.train), (B,), generator=gens["data"])
    x = data.to_float(data.train[idx])
    eps = torch.rand(B, generator=gens["noise"])
    batch = {"input": degrade(cfg.variant.task, x).to(device), "target": x.to(device),
             "labels": data.train_labels[idx].to(device), "eps": eps.to(device)}
    if cfg.variant.code_prior > 0:  # drawn only then: trials without the prior keep their noise stream
        batch["prior"] = (torch.rand(B, cfg.model.z_dim, generator=gens["noise"]) * 2 - 1).to(device)
    return batch


def encode_outputs(**arrays) -> str:
    """np.savez_compressed of the arrays, as base64 text (travels to the driver inside the report)."""
    import base64
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return base64.b64encode(buf.getvalue()).decode()


def psnr_l1(out: torch.Tensor, target: torch.Tensor) -> dict:
    """l1 = mean |out - target| and psnr = mean over images of 10 log10(1 / MSE_i), in [0, 1] scale
    (inputs in [-1, 1]; MSE floored at 1e-10)."""
    d = (out.double() - target.double()) / 2
    mse = (d ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return {"l1": float(d.abs().mean()), "psnr": float((10 * torch.log10(1 / mse)).mean())}


class EDEvaluation:
    """The ED structures' evaluation on a fixed test subset (see the module docstring)."""

    def __init__(self, data, cfg, device):
        from bench.data.tasks import degrade, swapped_labels, uses_labels
        from bench.metrics.images import inception_status

        self.data, self.device, self.task = data, device, cfg.variant.task
        n_test = len(data.test)
        self.n_eval = min(cfg.train.eval_samples, n_test)
        self.n_nrds = min(cfg.train.nrds_samples, n_test)
        perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(EVAL_SUBSET_SEED))
        self.index = perm[:max(self.n_eval, self.n_nrds)]
        self.target = data.to_float(data.test[self.index])
        self.labels = data.test_labels[self.index]
        self.input = degrade(self.task, self.target)
        self.evaluator = None
        if data.num_classes:
            from bench.metrics.evaluator import get_evaluator

            self.evaluator = get_evaluator(data)
        self.swapped = None
        if uses_labels(self.task):
            self.swapped = swapped_labels(self.labels, data.num_classes,
                                          torch.Generator().manual_seed(SWAP_SEED))
        self.inception_skipped = inception_status()

    @torch.no_grad()
    def outputs(self, nets: edgan.EDNets, x_in: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> torch.Tensor:
        """The structure's outputs in eval mode (batch norm uses running statistics), on the CPU."""
        was = [m.training for m in nets.modules()]
        for m in nets.modules():
            m.eval()
        out = []
        for i in range(0, len(x_in), batch):
            y = edgan.onehot(nets, labels[i:i + batch].to(self.device))
            out.append(edgan.output(nets, x_in[i:i + batch].to(self.device), y).float().cpu())
        for m, w in zip(nets.modules(), was):
            m.train(w)
        out = torch.cat(out)
        if not bool(torch.isfinite(out).all()):
            raise FloatingPointError("outputs contain NaN/Inf")
        return out.clamp(-1, 1)

    def __call__(self, nets: edgan.EDNets, final: bool = False) -> tuple[dict, dict]:
        from bench.metrics.images import image_metrics, inception_metrics, to_uint8

        n = self.n_eval
        out = self.outputs(nets, self.input, self.labels)
        metrics = psnr_l1(out[:n], self.target[:n])
        if self.evaluator is not None:
            metrics.update(image_metrics(self.evaluator, self.data, out[:n]))
            metrics.update(self.evaluator.columns())
        if self.inception_skipped is None:
            metrics.update(inception_metrics(self.data, out[:n], device=self.device)[0])
        grids = {"input": _png_grid(self.input), "output": _png_grid(out), "target": _png_grid(self.target)}
        swapped = None
        if self.swapped is not None:
            swapped = self.outputs(nets, self.input[:n], self.swapped[:n])
            metrics["swap_accuracy"] = float((self.evaluator.predict(swapped) == self.swapped[:n]).double().mean())
            grids["swapped"] = _png_grid(swapped)
        payload = {"grids": grids}
        if final:
            k = self.n_nrds
            arrays = {"outputs": to_uint8(out[:k]).numpy(), "index": self.index[:k].numpy(),
                      "labels": self.labels[:k].numpy()}
            if self.swapped is not None:
                arrays["swapped_labels"] = self.swapped[:k].numpy()
            payload["outputs"] = encode_outputs(**arrays)
        return metrics, payload


# ----------------------------------------------------------------------------- the loop
def run_trial(config: dict, report: Callable[[dict], None], device: str | None = None, **final_extra) -> dict:
    """Train one configuration, calling `report(row)` at every evaluation. Returns the last row.
    Image grids ride on every evaluation's row; toy samples and ED outputs only on the last."""
    cfg = trial_config(config)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() and config.get("resources", {}).get("gpu", 0) > 0
                                  else "cpu"))
    torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.variant.structure == "gan":
        data, nets, gens = build(cfg, dev)
        evaluate = Evaluation(data, cfg, gens, dev)
        step_fn, batch_fn = step, sample_batch
    else:
        data, nets, gens = build_ed(cfg, dev)
        evaluate = EDEvaluation(data, cfg, dev)
        step_fn, batch_fn = edgan.step, sample_ed_batch
    start = time.perf_counter()
    T, every = cfg.train.steps, cfg.train.eval_every
    losses: dict = {}
    last_payload: dict = {}
    payload_step = 0

    def row(t: int, metrics: dict, **extra) -> dict:
        return {"step": t, "lambda": lens_weight(cfg, t) if cfg.variant.lens else math.nan,
                **{k: float(v) for k, v in losses.items()}, **metrics,
                "wall_seconds": time.perf_counter() - start, **extra}

    def final(t: int, metrics: dict, status: str, why: str | None = None) -> dict:
        last = row(t, metrics, done=True, status=status, diverged_step=t if status == "diverged" else None,
                   error=why, torch_version=torch.__version__, device=str(dev), torch_threads=torch.get_num_threads(),
                   samples_step=payload_step, inception_skipped=getattr(evaluate, "inception_skipped", None),
                   **final_extra, **last_payload)
        report(last)
        return last

    def diverged(t: int, why: str) -> dict:
        last_payload.pop("grids", None)  # those grids were reported with their own evaluation
        last_payload.pop("outputs", None)
        return final(t, {m: math.nan for m in INFO}, "diverged", why)

    for t in range(T + 1):
        if t % every == 0 or t == T:
            if not _finite_weights(nets):
                return diverged(t, "non-finite weights")
            try:
                metrics, payload = evaluate(nets, final=t == T)
            except FloatingPointError as e:
                return diverged(t, str(e))
            last_payload, payload_step = payload, t
            if t == T:
                return final(t, metrics, "ok")
            report(row(t, metrics, done=False, status="running", **({"grids": payload["grids"]} if "grids" in payload else {})))
        out = step_fn(nets, batch_fn(data, cfg, gens, dev), cfg, t)
        losses = {k: v.item() for k, v in out.items()}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            return diverged(t, f"non-finite {', '.join(bad)} at step {t}")
    raise AssertionError("unreachable")


def train_trial(config: dict) -> None:
    """The Ray Tune trainable. Torch threads are limited to the trial's CPU share."""
    from ray import tune

    import ray

    torch.set_num_threads(max(1, int(config.get("resources", {}).get("cpu", 1))))
    run_trial(config, tune.report, ray_node_id=ray.get_runtime_context().get_node_id())
