"""The temporal model: a time-aware GRU with attention over each unit's event sequence (PyTorch, CPU).

Network. Each step (events charted at one time, `safellm.risk.sequences`) enters as the sum of its
events' embeddings, an event being `emb(token) + value · vemb(token)` (the value: a standardised lab
result, 0 for other events). Between steps the hidden state decays, per hidden unit, by
`exp(-softplus(w) · days since the previous step)` (a time-decay gate), then a GRU cell reads the
step with `log(1 + hours since the previous step)` and `log(1 + hours to the prediction)`. Attention over all hidden states scores each
`v·tanh(W h) - softplus(b) · log(1 + hours to the prediction)`, so old steps weigh less unless the
model learns otherwise. Output: one logit from the attended context and the last hidden state.

Training is honest in the same way as the tabular models (`safellm.risk.train`): the same
patient-grouped outer folds (same splitter, seed and labels, so the same folds), the number of
epochs chosen inside each training fold by early stopping on a patient-grouped 15 % of it,
out-of-fold predictions for every metric with the same bootstrap CIs, then a final fit on all units
for the median of the folds' epoch counts.

Explanations: integrated gradients (`attribute`) on the event embeddings, from the baseline "the same
timeline with every event's content removed" (all embeddings zero) to the unit's input; the
attributions of a step's events add up to the step's, and all of them to the model output minus the
baseline output (the small Riemann-sum residual is spread over events in proportion to their size,
so the sum is exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from safellm.risk.dataset import TaskData
from safellm.risk.evaluate import CLASSIFICATION, Estimate, bootstrap
from safellm.risk.sequences import Encoded, Vocab, encode
from safellm.risk.train import outer_splitter
from safellm.tasks import temporal_task

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TemporalConfig:
    max_steps: int = 64
    max_events: int = 16
    dim: int = 16
    hidden: int = 48
    lr: float = 3e-3
    weight_decay: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 25
    patience: int = 4
    ig_steps: int = 48

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TimeAwareGRU(nn.Module):
    def __init__(self, n_tokens: int, dim: int = 32, hidden: int = 48) -> None:
        super().__init__()
        self.emb = nn.Embedding(n_tokens, dim, padding_idx=0)
        self.vemb = nn.Embedding(n_tokens, dim, padding_idx=0)
        nn.init.normal_(self.emb.weight, std=0.1)
        nn.init.normal_(self.vemb.weight, std=0.1)
        with torch.no_grad():
            self.emb.weight[0].zero_()
            self.vemb.weight[0].zero_()
        self.cell = nn.GRUCell(dim + 2, hidden)
        self.decay = nn.Parameter(torch.full((hidden,), -1.0))
        self.att = nn.Linear(hidden, hidden)
        self.att_v = nn.Linear(hidden, 1, bias=False)
        self.age_w = nn.Parameter(torch.tensor(0.0))
        self.out = nn.Linear(2 * hidden, 1)
        self.hidden = hidden

    def event_inputs(self, tok: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """(N, L, K, D) per-event embeddings (zero for padding slots)."""
        return self.emb(tok) + val.unsqueeze(-1) * self.vemb(tok)

    def from_steps(
        self, x: torch.Tensor, hours: torch.Tensor, gap: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits (N,) from step inputs x (N, L, D)."""
        live = torch.nonzero(mask.any(dim=0))
        if len(live):  # right-aligned: skip the leading columns where no unit has a step
            first = int(live[0, 0])
            x, hours, gap, mask = x[:, first:], hours[:, first:], gap[:, first:], mask[:, first:]
        n, steps, _ = x.shape
        h = x.new_zeros(n, self.hidden)
        rate = nn.functional.softplus(self.decay)
        lgap = torch.log1p(gap).unsqueeze(-1)
        lhours = torch.log1p(hours).unsqueeze(-1)
        states = []
        for t in range(steps):
            m = mask[:, t].unsqueeze(-1)
            h_dec = h * torch.exp(-rate * (gap[:, t : t + 1] / 24.0))
            h_new = self.cell(torch.cat([x[:, t], lgap[:, t], lhours[:, t]], dim=-1), h_dec)
            h = torch.where(m, h_new, h)
            states.append(h)
        hs = torch.stack(states, dim=1)  # (N, L, H)
        score = self.att_v(torch.tanh(self.att(hs))).squeeze(-1)
        score = score - nn.functional.softplus(self.age_w) * torch.log1p(hours)
        score = score.masked_fill(~mask, -1e9)
        alpha = torch.softmax(score, dim=1) * mask.any(dim=1, keepdim=True)
        ctx = (alpha.unsqueeze(-1) * hs).sum(dim=1)
        return self.out(torch.cat([ctx, h], dim=-1)).squeeze(-1)

    def forward(
        self,
        tok: torch.Tensor,
        val: torch.Tensor,
        hours: torch.Tensor,
        gap: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        return self.from_steps(self.event_inputs(tok, val).sum(dim=2), hours, gap, mask)


def _tensors(enc: Encoded, idx: np.ndarray | slice) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(enc.tok[idx]),
        torch.from_numpy(enc.val[idx]),
        torch.from_numpy(enc.hours[idx]),
        torch.from_numpy(enc.gap[idx]),
        torch.from_numpy(enc.mask[idx]),
    )


def predict_logits(net: TimeAwareGRU, enc: Encoded, batch: int = 512) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(enc.tok), batch):
            out.append(net(*_tensors(enc, slice(s, s + batch))).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def fit_network(
    enc: Encoded,
    y: np.ndarray,
    n_tokens: int,
    cfg: TemporalConfig,
    *,
    seed: int,
    epochs: int | None = None,
    valid: tuple[Encoded, np.ndarray] | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[TimeAwareGRU, int]:
    """Train on (enc, y). With `valid`, stop when its AUROC has not improved for `patience` epochs
    and return the best epoch's weights; otherwise train exactly `epochs` epochs."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = TimeAwareGRU(n_tokens, cfg.dim, cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    yt = torch.from_numpy(y.astype(np.float32))
    total = epochs if epochs is not None else cfg.max_epochs
    best, best_epoch, best_state, waited = -math.inf, total, None, 0
    for epoch in range(1, total + 1):
        net.train()
        order = rng.permutation(len(y))
        losses = []
        for s in range(0, len(order), cfg.batch_size):
            b = order[s : s + cfg.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(*_tensors(enc, b)), yt[b])
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            losses.append(float(loss.detach()))
        if on_epoch is not None:
            on_epoch(epoch, float(np.mean(losses)))
        if valid is None:
            continue
        venc, vy = valid
        score = (
            roc_auc_score(vy, predict_logits(net, venc))
            if 0 < vy.sum() < len(vy)
            else -float(np.mean(losses))
        )
        if score > best + 1e-4:
            best, best_epoch, waited = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, best_epoch


@dataclass
class TemporalRun:
    task: str
    oof: np.ndarray  # out-of-fold logits
    metrics: dict[str, Estimate]
    fold_epochs: list[int]
    epochs: int
    net: TimeAwareGRU
    vocab: Vocab
    cfg: TemporalConfig
    folds: np.ndarray
    epoch_seconds: list[float] = field(default_factory=list)


def _inner_split(td: TaskData, idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A patient-grouped, stratified ~15 % of `idx` for early stopping."""
    split = StratifiedGroupKFold(n_splits=7, shuffle=True, random_state=seed)
    tr, va = next(split.split(idx, td.y[idx], td.groups[idx]))
    return idx[tr], idx[va]


def train_temporal(
    td: TaskData,
    events: pd.DataFrame,
    *,
    seed: int = 0,
    n_splits: int = 5,
    n_boot: int = 200,
    cfg: TemporalConfig | None = None,
    progress: Progress | None = None,
) -> TemporalRun:
    """Grouped CV (the tabular models' outer folds), OOF metrics with CIs, then a final fit."""
    import time

    from safellm.risk.train import _check_size

    temporal_task(td.task)
    _check_size(td, n_splits)
    cfg = cfg or TemporalConfig()
    step = progress or (lambda _s: None)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    units = td.frame["unit_id"].to_numpy()
    y = td.y
    splits = list(outer_splitter(td.kind, n_splits, seed).split(td.X, y, td.groups))
    folds = np.full(len(y), -1)
    oof = np.full(len(y), np.nan)
    fold_epochs: list[int] = []
    timings: list[float] = []

    def timed(stamp: list[float]) -> Callable[[int, float], None]:
        def on_epoch(_e: int, _loss: float) -> None:
            now = time.perf_counter()
            timings.append(now - stamp[0])
            stamp[0] = now

        return on_epoch

    for k, (train, test) in enumerate(splits):
        folds[test] = k
        fit_idx, val_idx = _inner_split(td, train, seed + k)
        vocab = Vocab.fit(events[events["unit_id"].isin(units[fit_idx])])
        enc_of = {
            name: encode(events, units[i], vocab, cfg.max_steps, cfg.max_events)
            for name, i in (("fit", fit_idx), ("val", val_idx), ("test", test))
        }
        net, best = fit_network(
            enc_of["fit"],
            y[fit_idx],
            len(vocab.tokens),
            cfg,
            seed=seed + k,
            valid=(enc_of["val"], y[val_idx]),
            on_epoch=timed([time.perf_counter()]),
        )
        fold_epochs.append(best)
        oof[test] = predict_logits(net, enc_of["test"])
        step(f"{td.task}/temporal fold {k + 1}")
    prob = 1 / (1 + np.exp(-oof))
    metrics = bootstrap(CLASSIFICATION, y, prob, td.groups, n_boot=n_boot, seed=seed)
    epochs = max(1, int(np.median(fold_epochs)))
    vocab = Vocab.fit(events[events["unit_id"].isin(units)])
    enc = encode(events, units, vocab, cfg.max_steps, cfg.max_events)
    net, _ = fit_network(
        enc,
        y,
        len(vocab.tokens),
        cfg,
        seed=seed,
        epochs=epochs,
        on_epoch=timed([time.perf_counter()]),
    )
    step(f"{td.task}/temporal final fit")
    return TemporalRun(td.task, oof, metrics, fold_epochs, epochs, net, vocab, cfg, folds, timings)


def attribute(net: TimeAwareGRU, enc: Encoded, steps: int = 48) -> tuple[np.ndarray, float, float]:
    """Integrated gradients of ONE unit's logit (enc holds one unit): per-event attributions
    (L, K), the baseline logit and the unit's logit. The attributions add up to logit - baseline."""
    tok, val, hours, gap, mask = _tensors(enc, slice(0, 1))
    with torch.no_grad():
        ev = net.event_inputs(tok, val)[0]  # (L, K, D)
    x = ev.sum(dim=1)  # (L, D)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps  # midpoint rule
    path = (alphas[:, None, None] * x[None]).requires_grad_(True)  # (S, L, D)
    rep = [t.expand(steps, *t.shape[1:]) for t in (hours, gap, mask)]
    out = net.from_steps(path, *rep)
    (grad,) = torch.autograd.grad(out.sum(), path)
    avg = grad.mean(dim=0)  # (L, D)
    attr = (ev * avg[:, None, :]).sum(dim=-1).numpy().astype(float)  # (L, K)
    with torch.no_grad():
        zero = net.from_steps(torch.zeros_like(x)[None], hours, gap, mask)
        full = net.from_steps(x[None], hours, gap, mask)
    base, value = float(zero[0]), float(full[0])
    residual = (value - base) - attr.sum()
    size = np.abs(attr)
    if size.sum() > 0:
        attr = attr + residual * size / size.sum()
    return attr, base, value
