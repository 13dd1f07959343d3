"""Token sequences from a synthetic oracle (SeqGAN's task, Yu et al. 2017): an LSTM with N(0, 1) weights (seeded by
`dataset.stack_seed`) over a vocabulary of `dataset.vocab` tokens generates sequences of `dataset.seq_len` tokens;
10,000 training sequences and 2,000 held-out ones are drawn from it. Because the oracle is known, a generator's
samples are scored by the oracle's own likelihood (NLL-oracle, bench.structures.seqgan), with no evaluator network.

The benchmark's first non-image modality: `SequenceData` carries what a structure needs (train / test token
tensors, the oracle), nothing image-specific; structures that train on it declare `datasets: [oracle]` and
`samples: false` (their rows hold their own metrics only)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

EMB, HIDDEN = 32, 32   # the oracle's embedding and LSTM sizes (the paper's)
N_TRAIN, N_TEST = 10_000, 2_000


class Oracle(nn.Module):
    """An LSTM language model: embedding -> LSTM cell -> softmax over the vocabulary, every weight N(0, 1)."""

    def __init__(self, vocab: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab = vocab
        self.emb = nn.Parameter(torch.randn(vocab, EMB, generator=g), requires_grad=False)
        self.w = nn.Parameter(torch.randn(EMB + HIDDEN, 4 * HIDDEN, generator=g), requires_grad=False)
        self.b = nn.Parameter(torch.randn(4 * HIDDEN, generator=g), requires_grad=False)
        self.out = nn.Parameter(torch.randn(HIDDEN, vocab, generator=g), requires_grad=False)

    def _cell(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, o, u = (torch.cat([x, h], -1) @ self.w + self.b).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
        return torch.sigmoid(o) * torch.tanh(c), c

    @torch.no_grad()
    def sample(self, n: int, length: int, generator: torch.Generator) -> Tensor:
        h = c = torch.zeros(n, HIDDEN)
        x, out = torch.zeros(n, EMB), []
        for _ in range(length):
            h, c = self._cell(x, h, c)
            tok = torch.multinomial(torch.softmax(h @ self.out, -1), 1, generator=generator).squeeze(1)
            out.append(tok)
            x = self.emb[tok]
        return torch.stack(out, 1)

    @torch.no_grad()
    def nll(self, seqs: Tensor) -> Tensor:
        """Mean per-token negative log-likelihood of each sequence [N, L] -> [N]."""
        n, length = seqs.shape
        h = c = torch.zeros(n, HIDDEN)
        x, total = torch.zeros(n, EMB), torch.zeros(n)
        for t in range(length):
            h, c = self._cell(x, h, c)
            logp = torch.log_softmax(h @ self.out, -1)
            total -= logp.gather(1, seqs[:, t:t + 1]).squeeze(1)
            x = self.emb[seqs[:, t]]
        return total / length


@dataclass
class SequenceData:
    name: str
    train: Tensor     # int64 [N, L]
    test: Tensor      # int64 [N_test, L]
    vocab: int
    length: int
    oracle: Oracle
    key: str = ""

    @property
    def dim(self) -> tuple:
        return (self.length,)


def oracle(cfg) -> SequenceData:
    """The oracle of `dataset.stack_seed` and its training / held-out sequences (drawn from a stream of their own)."""
    model = Oracle(cfg.vocab, cfg.stack_seed)
    g = torch.Generator().manual_seed(cfg.stack_seed + 1)
    train, test = model.sample(N_TRAIN, cfg.seq_len, g), model.sample(N_TEST, cfg.seq_len, g)
    return SequenceData("oracle", train, test, cfg.vocab, cfg.seq_len, model,
                        key=f"oracle-v{cfg.vocab}-l{cfg.seq_len}-s{cfg.stack_seed}")
