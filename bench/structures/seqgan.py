"""SeqGAN (Yu et al., AAAI 2017) on its synthetic-oracle task (dataset `oracle`, bench.data.sequences): an LSTM
generator G over tokens, pretrained by maximum likelihood on the oracle's sequences, then trained by REINFORCE
against a CNN discriminator D whose probability that a complete sequence is real is the reward; the reward of a
partial sequence is the mean of D over `variant.seqgan_rollouts` Monte Carlo completions by G itself.

One iteration, per configuration (`variant.seqgan_pretrain` = the MLE steps, counted in train.steps):
- G: before `seqgan_pretrain` (or always, with `seqgan_adversarial: false`, the MLE-only baseline arm): teacher-forced
  cross-entropy on a batch of the oracle's sequences (loss_g); after: generate a batch, reward each token
  y_t by Q_t = mean D(complete(y_1..t)) over the rollouts (Q_L = D(y)), loss_g = -mean_t log G(y_t | y_<t) Q_t;
- D: `variant.seqgan_d_steps` steps of binary cross-entropy, the oracle's sequences real, G's fake (loss_d), at every
  iteration (so D is pretrained alongside G's MLE phase, as the paper pretrains it before the adversarial one).
Departures: the rollout policy is G itself (the paper: a delayed copy), D is updated every iteration instead of the
paper's 5 x 3 epochs per G step, no highway layer.

Networks are packed over configurations (embedding, LSTM gates and output as batched matrix products, D's
convolutions grouped), every token drawn by inverse-CDF sampling from each configuration's own `noise` stream, so a
pack trains each configuration as alone. Evaluate: nll_oracle (the oracle's mean per-token NLL of `eval_samples`
sequences from G: the paper's NLL-oracle, lower is better), nll_test (G's NLL of the oracle's held-out sequences)
and nll_floor (the oracle's NLL of its own held-out sequences: what a perfect G scores, a diagnostic).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from bench.objectives.classic import ns
from bench.structures import Pack, Result, Streams, draws, eval_mode, pack_nets
from bench.structures.cgan import cross_entropy

DECLARE = {"seqgan": {
    "title": "SeqGAN", "doc": "sequence GAN by policy gradient with Monte Carlo rollouts (Yu et al. 2017)",
    "options": {
        "seqgan_pretrain": {"type": "int", "default": 500, "ge": 0,
                            "doc": "seqgan: maximum-likelihood steps before the adversarial ones (part of train.steps)"},
        "seqgan_rollouts": {"type": "int", "default": 16, "ge": 1,
                            "doc": "seqgan: Monte Carlo completions per token for its reward"},
        "seqgan_d_steps": {"type": "int", "default": 1, "ge": 1, "doc": "seqgan: D steps per iteration"},
        "seqgan_adversarial": {"type": "bool", "default": True,
                               "doc": "seqgan: false trains by maximum likelihood throughout (the MLE baseline)"},
    },
    "uses": [], "datasets": ["oracle"], "samples": False,
    "losses": ["loss_g", "loss_d"],
    "new_metrics": {
        "nll_oracle": {"higher_is_better": False, "range": [0, None], "positive": True,
                       "label": "NLL-oracle: the oracle's mean per-token NLL of G's sequences"},
        "nll_test": {"higher_is_better": False, "range": [0, None], "positive": True,
                     "label": "G's mean per-token NLL of the oracle's held-out sequences"},
        "nll_floor": {"label": "the oracle's NLL of its own held-out sequences (a perfect G's NLL-oracle)",
                      "diagnostic": True},
    },
    "metrics": ["nll_oracle", "nll_test", "nll_floor"],
    "headline": "nll_oracle", "success": "finished", "sections": ["own_weights"],
    "arms": ["seqgan_adversarial"],  # different methods, not settings: the report never pools them
}}

EMB, HIDDEN = 32, 32            # G's sizes (the paper's)
D_EMB, D_FILTERS = 64, ((2, 32), (3, 32), (4, 32), (5, 32))  # D's embedding, (width, filters) of its convolutions


def check(cfg) -> None:
    """Nothing of its own: the catalog limits it to the oracle data; a seqgan_pretrain of train.steps or more trains
    by maximum likelihood throughout (the MLE arm, as seqgan_adversarial: false)."""


class Embedding(nn.Module):
    """tokens [K, B, ...] -> [K, B, ..., E]; weight [K, V, E] (each configuration's own table)."""

    def __init__(self, K: int, vocab: int, dim: int):
        super().__init__()
        self.K = K
        self.weight = nn.Parameter(torch.stack([nn.Embedding(vocab, dim).weight.detach() for _ in range(K)]))

    def forward(self, tokens: Tensor) -> Tensor:
        k = torch.arange(self.K, device=tokens.device).view(-1, *([1] * (tokens.dim() - 1)))
        return self.weight[k, tokens]


class Generator(nn.Module):
    """A packed LSTM language model over the vocabulary."""

    def __init__(self, vocab: int, K: int = 1):
        super().__init__()
        from bench.nets import packed as P

        self.K, self.vocab = K, vocab
        self.emb = Embedding(K, vocab, EMB)
        self.gates = P.Linear(K, EMB + HIDDEN, 4 * HIDDEN)
        self.out = P.Linear(K, HIDDEN, vocab)

    def start(self, n: int, device) -> tuple[Tensor, Tensor, Tensor]:
        z = torch.zeros(self.K, n, HIDDEN, device=device)
        return torch.zeros(self.K, n, EMB, device=device), z, z

    def cell(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step: (x [K, n, E], h, c) -> (logits [K, n, V], h, c)."""
        i, f, o, u = self.gates(torch.cat([x, h], -1)).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
        h = torch.sigmoid(o) * torch.tanh(c)
        return self.out(h), h, c

    def logits(self, seqs: Tensor) -> Tensor:
        """Teacher forcing: seqs [K, n, L] -> logits [K, n, L, V] of each token given the ones before it."""
        x, h, c = self.start(seqs.shape[1], seqs.device)
        out = []
        for t in range(seqs.shape[2]):
            logit, h, c = self.cell(x, h, c)
            out.append(logit)
            x = self.emb(seqs[:, :, t])
        return torch.stack(out, 2)

    def complete(self, prefix: Tensor, length: int, u: Tensor) -> Tensor:
        """Sequences [K, n, length] continuing `prefix` [K, n, t]; u [K, n, length - t]: the uniform draws of the
        tokens sampled (inverse CDF: each configuration's own stream)."""
        x, h, c = self.start(prefix.shape[1], prefix.device)
        for s in range(prefix.shape[2]):  # run through the prefix
            _, h, c = self.cell(x, h, c)
            x = self.emb(prefix[:, :, s])
        toks = [prefix]
        for s in range(length - prefix.shape[2]):
            logit, h, c = self.cell(x, h, c)
            tok = sample(logit, u[:, :, s])
            toks.append(tok[..., None])
            x = self.emb(tok)
        return torch.cat(toks, 2)


def sample(logits: Tensor, u: Tensor) -> Tensor:
    """Tokens [K, n] from logits [K, n, V] by inverse CDF with uniforms u [K, n]."""
    cdf = torch.softmax(logits.float(), -1).cumsum(-1)
    return torch.searchsorted(cdf, u[..., None].clamp(max=cdf[..., -1:].min().item() - 1e-7)).squeeze(-1)


class Discriminator(nn.Module):
    """sequences [K, n, L] -> logits [K, n]: embedding, convolutions of widths 2-5 over time, max over time, linear."""

    def __init__(self, vocab: int, length: int, K: int = 1):
        super().__init__()
        from bench.nets import packed as P

        self.K = K
        self.emb = Embedding(K, vocab, D_EMB)
        self.convs = nn.ModuleList([P.Conv2d(K, 1, f, (w, D_EMB)) for w, f in D_FILTERS if w <= length])
        self.fc = P.Linear(K, sum(f for w, f in D_FILTERS if w <= length), 1)

    def forward(self, seqs: Tensor) -> Tensor:
        from bench.nets import packed as P

        e = P.to_grouped(self.emb(seqs)[:, :, None])                     # [n, K, L, E]
        feats = [P.from_grouped(torch.relu(conv(e)), self.K).amax((3, 4)) for conv in self.convs]  # [K, n, f]
        return self.fc(torch.cat(feats, -1)).squeeze(-1)


def build(pack: Pack, data, streams: list[Streams], device):
    per_config = []
    for s in streams:
        torch.manual_seed(s.init)
        per_config.append({"G": Generator(data.vocab), "D": Discriminator(data.vocab, data.length)})
    return pack_nets(per_config, pack, device)


def batch(pack: Pack, data, gens: list[dict], device) -> dict:
    """real [n, B, L] oracle sequences (`data` stream); u_gen [n, B, L] and u_roll [n, L, R, B, L] uniforms for
    G's samples and its rollouts (`noise` stream)."""
    B, L, R = pack.cfg.train.batch_size, data.length, pack.cfg.variant.seqgan_rollouts
    idx = draws(gens, "cpu", torch.randint, len(data.train), (B,), stream="data")
    u = draws(gens, device, torch.rand, B, L)
    ur = draws(gens, device, torch.rand, L, R, B, L)
    return {"real": data.train[idx].to(device), "u_gen": u, "u_roll": ur}


def _nll(G: Generator, seqs: Tensor) -> Tensor:
    """Each configuration's mean per-token NLL of seqs [K, n, L] -> [K]."""
    return cross_entropy(G.logits(seqs).flatten(1, 2), seqs.flatten(1))


def _rewards(nets, seqs: Tensor, u: Tensor) -> Tensor:
    """Q [K, n, L]: D's mean probability over the rollouts completing each prefix (the last token: D itself)."""
    K, n, L = seqs.shape
    R = u.shape[2]
    q = []
    with torch.no_grad():
        for t in range(1, L):
            prefix = seqs[:, :, :t].repeat_interleave(R, 1)                      # [K, n*R, t]
            draws = u[:, t - 1].permute(0, 2, 1, 3).reshape(K, n * R, L)[:, :, : L - t]
            full = nets.G.complete(prefix, L, draws)
            q.append(torch.sigmoid(nets.D(full)).view(K, n, R).mean(2))
        q.append(torch.sigmoid(nets.D(seqs)))
    return torch.stack(q, 2)


def step(nets, batch: dict, pack: Pack, t: int) -> dict:
    v = pack.cfg.variant
    real, L = batch["real"], batch["real"].shape[2]
    adversarial = v.seqgan_adversarial and t >= v.seqgan_pretrain
    with torch.no_grad():
        fake = nets.G.complete(real[:, :, :0], L, batch["u_gen"])
    if adversarial:
        q = _rewards(nets, fake, batch["u_roll"])
        logp = torch.log_softmax(nets.G.logits(fake).float(), -1).gather(3, fake[..., None]).squeeze(-1)
        loss_g = -(logp * q).mean((1, 2))
    else:
        loss_g = _nll(nets.G, real)
    nets.opt["G"].zero_grad()
    loss_g.sum().backward()
    nets.opt["G"].step()
    for _ in range(v.seqgan_d_steps):
        loss_d = ns.d(nets.D(real), nets.D(fake))  # cross-entropy, real 1 and fake 0
        nets.opt["D"].zero_grad()
        loss_d.sum().backward()
        nets.opt["D"].step()
    return {"loss_g": loss_g.detach(), "loss_d": loss_d.detach()}


class Evaluate:
    """NLL-oracle of G's samples (a fixed draw of uniforms: the `eval` stream), G's NLL of held-out sequences."""

    def __init__(self, pack: Pack, data, gens: list[dict], device):
        self.size, self.device, self.data = pack.size, device, data
        n, L = pack.cfg.train.eval_samples, data.length
        self.u = torch.stack([torch.rand(n, L, generator=g["eval"]) for g in gens]).to(device)
        self.test = data.test[: min(len(data.test), n)]
        self.floor = float(data.oracle.nll(self.test).mean())

    def __call__(self, nets, final: bool = False, alive: Optional[list[int]] = None) -> list[Optional[Result]]:
        alive = range(self.size) if alive is None else alive
        with eval_mode(*nets.modules()), torch.no_grad():
            seqs = nets.G.complete(torch.zeros(self.size, self.u.shape[1], 0, dtype=torch.long, device=self.device),
                                   self.data.length, self.u).cpu()
            test = self.test.to(self.device).expand(self.size, *self.test.shape)
            nll_test = _nll(nets.G, test).cpu()
        out = []
        for k in range(self.size):
            if k not in alive:
                out.append(None)
            elif not bool(torch.isfinite(nll_test[k])):
                out.append(Result(diverged="G's likelihood is NaN/Inf"))
            else:
                out.append(Result({"nll_oracle": float(self.data.oracle.nll(seqs[k]).mean()),
                                   "nll_test": float(nll_test[k]), "nll_floor": self.floor}))
        return out
