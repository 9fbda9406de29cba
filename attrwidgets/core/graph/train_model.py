"""The trainable transcoder: every layer in stacked tensors (one bmm per step for all layers), normalised units.

Inputs are scaled per layer so each dimension has unit mean square, outputs centred-scaled so each dimension
has unit variance: one learning rate fits every layer, and the loss of layer l is its normalised MSE
(1 - fraction of variance explained). `export()` folds the scales back into a plain `Transcoder`
(pre-activations and thresholds are unchanged by the folding, decoders and biases are rescaled).

JumpReLU thresholds are learned through a straight-through estimator (GemmaScope / Anthropic's JumpReLU
papers): the forward is pre * (pre > t); the backward passes the gradient to pre only where the unit is open,
and to t through a rectangle kernel of width `bandwidth` around the threshold (d out / d t ~ -t / bandwidth).
The threshold is parameterised by its logarithm so it stays positive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from attrwidgets.core.graph.transcoder import Transcoder
from attrwidgets.errors import AttrWidgetsError


class JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        bandwidth = ctx.bandwidth
        grad_pre = grad * (pre > threshold)
        window = ((pre - threshold).abs() < bandwidth / 2).to(grad.dtype)
        grad_threshold = (-(threshold / bandwidth) * window * grad).sum(dim=1, keepdim=True)
        return grad_pre, grad_threshold, None


class TrainableTranscoder(nn.Module):
    def __init__(self, kind: str, activation: str, n_layers: int, d_model: int, n_features: int, *,
                 top_k: int | None = None, skip: bool = False, bandwidth: float = 0.1):
        super().__init__()
        L, D, F = n_layers, d_model, n_features
        self.kind, self.activation, self.top_k, self.bandwidth = kind, activation, top_k, bandwidth
        self.n_layers, self.d_model, self.n_features = L, D, F
        self.W_enc = nn.Parameter(torch.zeros(L, D, F))
        self.b_enc = nn.Parameter(torch.zeros(L, F))
        self.b_dec = nn.Parameter(torch.zeros(L, D))
        if kind == "plt":
            self.W_dec = nn.Parameter(torch.zeros(L, F, D))
        else:  # the features of layer l write to layers l..L-1
            self.W_dec_clt = nn.ParameterList([nn.Parameter(torch.zeros(F, L - l, D)) for l in range(L)])
        self.log_threshold = nn.Parameter(torch.zeros(L, F)) if activation == "jumprelu" else None
        self.W_skip = nn.Parameter(torch.zeros(L, D, D)) if skip else None
        # normalisation: x_n = x / x_scale; y_n = (y - y_mean) / y_scale (y_mean lives in b_dec)
        self.register_buffer("x_scale", torch.ones(L))
        self.register_buffer("y_scale", torch.ones(L))
        # JumpReLU, first phase: one threshold per layer steered so each token has `steer_l0` active features
        # on average over the batch (BatchTopK); its running value seeds the per-feature thresholds
        self.steer_l0: int | None = None
        self.register_buffer("batch_threshold", torch.zeros(L))

    def batch_thresholds(self, pre: torch.Tensor) -> torch.Tensor:
        """(L, 1, 1) the value above which steer_l0 units per token fire on average in this batch; on a large
        batch from every 17th pre-activation (a selection over all of them costs 10x more for the same
        threshold; 17 is prime, so unless F is a multiple of it every feature is sampled)."""
        sample = pre.detach().reshape(pre.shape[0], -1)
        if sample.shape[1] > 200_000:
            sample = sample[:, ::17]
        rank = max(1, min(sample.shape[1], round(sample.shape[1] * self.steer_l0 / pre.shape[-1])))
        value = sample.kthvalue(sample.shape[1] - rank + 1, dim=1).values.clamp_min(1e-3)
        if self.training:
            fresh = self.batch_threshold == 0
            self.batch_threshold.copy_(torch.where(fresh, value, 0.9 * self.batch_threshold + 0.1 * value))
        return value.view(-1, 1, 1)

    def begin_threshold_learning(self) -> None:
        """Second phase: every feature starts from its layer's running batch threshold, then learns its own."""
        with torch.no_grad():
            self.log_threshold.copy_(self.batch_threshold.clamp_min(1e-3).log().unsqueeze(1).expand_as(
                self.log_threshold))
        self.steer_l0 = None

    # -- forward -----------------------------------------------------------------------------------
    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.activation == "jumprelu" and self.steer_l0:
            return pre * (pre > self.batch_thresholds(pre))
        if self.activation == "jumprelu":
            return JumpReLU.apply(pre, self.log_threshold.exp().unsqueeze(1), self.bandwidth)
        if self.activation == "relu":
            return torch.relu(pre)
        top = pre.topk(min(self.top_k, pre.shape[-1]), dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def forward(self, x: torch.Tensor):
        """x: (L, B, D) normalised inputs -> (activations (L, B, F), reconstruction (L, B, D))."""
        pre = torch.baddbmm(self.b_enc.unsqueeze(1), x, self.W_enc)
        acts = self.activate(pre)
        if self.kind == "plt":
            out = torch.baddbmm(self.b_dec.unsqueeze(1), acts, self.W_dec)
        else:
            out = self.b_dec.unsqueeze(1).expand(-1, x.shape[1], -1)
            writes = [torch.einsum("bf,fkd->kbd", acts[l], self.W_dec_clt[l]) for l in range(self.n_layers)]
            out = out + torch.stack([sum(writes[l][m - l] for l in range(m + 1)) for m in range(self.n_layers)])
        if self.W_skip is not None:
            out = out + torch.bmm(x, self.W_skip)
        return acts, out

    def decoder_norms(self) -> torch.Tensor:
        """(L, F) each feature's decoder norm (CLT: over every layer it writes to), per sqrt(D)."""
        if self.kind == "plt":
            norms = self.W_dec.norm(dim=-1)
        else:
            norms = torch.stack([w.pow(2).sum(dim=(1, 2)).sqrt() for w in self.W_dec_clt])
        return norms / math.sqrt(self.d_model)

    def losses(self, x, y, sparsity: float, sparsity_c: float, sparse: bool = True):
        """-> (loss, per-layer normalised MSE (L,), per-layer L0 (L,)). sparse=True decodes only the units that
        carry a value or a gradient (same loss and gradients as the dense path, test_train_transcoder)."""
        if sparse:
            layer, _, col, values, l0, out = self._sparse_forward(x)
        else:
            acts, out = self(x)
            l0 = (acts > 0).float().sum(-1).mean(1)
        mse = (out - y).pow(2).mean(dim=(1, 2))  # y has unit variance per dimension: this is 1 - FVE
        loss = mse.mean()
        if sparsity > 0 and self.activation != "topk":  # TopK fixes L0 itself
            norms = self.decoder_norms()
            if sparse:
                penalty = torch.tanh(sparsity_c * values * norms[layer, col]).sum() / (x.shape[0] * x.shape[1])
            else:
                penalty = torch.tanh(sparsity_c * acts * norms.unsqueeze(1)).sum(-1).mean(1).mean()
            loss = loss + sparsity * penalty
        return loss, mse.detach(), l0.detach()

    def _sparse_units(self, pre: torch.Tensor):
        """The units that carry a value or a gradient, as flat (layer, row, column, value) in row-major order,
        and the L0 per layer. JumpReLU: the open units and those within half a bandwidth of the threshold,
        whose value is pre * open + z with z = 0 but dz/dt = -t / bandwidth: the straight-through gradient
        of JumpReLU.backward, for exactly the units its rectangle kernel reaches."""
        if self.activation == "topk":
            top = pre.topk(min(self.top_k, pre.shape[-1]), dim=-1)
            L, B, k = top.values.shape
            layer = torch.arange(L, device=pre.device).view(L, 1, 1).expand(L, B, k).reshape(-1)
            row = torch.arange(B, device=pre.device).view(1, B, 1).expand(L, B, k).reshape(-1)
            values = torch.relu(top.values)
            return layer, row, top.indices.reshape(-1), values.reshape(-1), (values > 0).float().sum(-1).mean(1)
        if self.activation == "relu":
            layer, row, col = (pre > 0).nonzero(as_tuple=True)
            values = pre[layer, row, col]
            return layer, row, col, values, (pre > 0).float().sum(-1).mean(1)
        if self.steer_l0:
            is_open = pre > self.batch_thresholds(pre)
            layer, row, col = is_open.nonzero(as_tuple=True)
            return layer, row, col, pre[layer, row, col], is_open.float().sum(-1).mean(1)
        threshold = self.log_threshold.exp()
        gap = pre - threshold.unsqueeze(1)
        is_open, near = gap > 0, gap.abs() < self.bandwidth / 2
        layer, row, col = (is_open | near).nonzero(as_tuple=True)
        t = threshold[layer, col]
        z = (t.detach() - t) * (t.detach() / self.bandwidth) * near[layer, row, col]
        values = pre[layer, row, col] * is_open[layer, row, col] + z
        return layer, row, col, values, is_open.float().sum(-1).mean(1)

    def _sparse_forward(self, x: torch.Tensor):
        L, B, _ = x.shape
        D = self.d_model
        pre = torch.baddbmm(self.b_enc.unsqueeze(1), x, self.W_enc)
        layer, row, col, values, l0 = self._sparse_units(pre)
        if self.kind == "plt":  # one bag per (layer, row) over the stacked decoders
            bag = layer * B + row
            counts = torch.bincount(bag, minlength=L * B)
            decoded = nn.functional.embedding_bag(layer * self.n_features + col, self.W_dec.reshape(-1, D),
                                                  counts.cumsum(0) - counts, mode="sum",
                                                  per_sample_weights=values.to(self.W_dec.dtype))
            out = decoded.view(L, B, D) + self.b_dec.unsqueeze(1)
        else:
            out = self.b_dec.unsqueeze(1).expand(L, B, D)
            for source in range(L):
                pick = layer == source
                counts = torch.bincount(row[pick], minlength=B)
                decoded = nn.functional.embedding_bag(col[pick], self.W_dec_clt[source].reshape(self.n_features, -1),
                                                      counts.cumsum(0) - counts, mode="sum",
                                                      per_sample_weights=values[pick].to(self.b_dec.dtype))
                out = out + nn.functional.pad(decoded.view(B, L - source, D).transpose(0, 1), (0, 0, 0, 0, source, 0))
        if self.W_skip is not None:
            out = out + torch.bmm(x, self.W_skip)
        return layer, row, col, values, l0, out

    # -- init --------------------------------------------------------------------------------------
    @torch.no_grad()
    def initialise(self, x_raw: torch.Tensor, y_raw: torch.Tensor, *, start_l0: int, generator: torch.Generator,
                   exemplars: bool = True):
        """x_raw, y_raw: (N, L, D) samples. Scales from data; b_dec = mean output; thresholds (ReLU: encoder
        biases) at each feature's quantile, so every feature starts firing on start_l0 / F of the tokens.

        exemplars=True (data-driven): feature i reads the direction of one sampled token's input and writes
        that token's output (minus the mean and the skip's share) divided by start_l0: at step 0 the
        transcoder is a nearest-neighbour regression, which shortens a short run a lot (README "Transcoders").
        False: random decoder directions and encoder = decoder transpose."""
        L, D, F = self.n_layers, self.d_model, self.n_features
        x, y = x_raw.float().transpose(0, 1), y_raw.float().transpose(0, 1)  # (L, N, D)
        self.x_scale.copy_(x.pow(2).mean(dim=(1, 2)).sqrt().clamp_min(1e-8))
        y_mean = y.mean(1)
        self.y_scale.copy_((y - y_mean.unsqueeze(1)).pow(2).mean(dim=(1, 2)).sqrt().clamp_min(1e-8))
        self.b_dec.copy_(y_mean / self.y_scale.unsqueeze(1))
        xn = x / self.x_scale.view(L, 1, 1)
        if self.W_skip is not None:
            self.fit_skip(x_raw, y_raw)
        if exemplars:
            pick = torch.randint(0, x.shape[1], (F,), generator=generator)
            directions = xn[:, pick] - xn.mean(1, keepdim=True)
            residual = y[:, pick] / self.y_scale.view(L, 1, 1) - self.b_dec.unsqueeze(1)
            if self.W_skip is not None:
                residual = residual - torch.bmm(xn[:, pick], self.W_skip)
            dec = residual / max(start_l0, 1)
            self.W_enc.copy_((directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-8)).transpose(1, 2))
            self.b_enc.copy_(-(xn.mean(1, keepdim=True) @ self.W_enc).squeeze(1))
        else:
            directions = torch.randn(L, F, D, generator=generator)
            directions /= directions.norm(dim=-1, keepdim=True)
            # each active feature writes about 1/sqrt(start_l0) of the output's norm (sqrt(D) in these units)
            dec = directions * math.sqrt(D / max(start_l0, 1)) * 0.5
            self.W_enc.copy_(directions.transpose(1, 2))
        quantile = torch.empty(L, F)
        for l in range(L):  # one layer at a time: (N, F) pre-activations only
            pre = torch.addmm(self.b_enc[l], xn[l], self.W_enc[l])
            spread = pre.std(dim=0).clamp_min(1e-8)  # unit pre-activation variance per feature
            self.W_enc[l].div_(spread)
            self.b_enc[l].div_(spread)
            quantile[l] = torch.quantile(pre / spread, 1 - min(start_l0, F) / F, dim=0)
        if self.activation == "jumprelu":
            self.log_threshold.copy_(quantile.clamp_min(1e-3).log())
        elif self.activation == "relu":
            self.b_enc.sub_(quantile)
            quantile = torch.zeros_like(quantile)
        if exemplars:  # a typical active unit has pre ~ 1 + threshold: divide it out of the decoder
            dec = dec / (1.0 + quantile.clamp_min(0)).unsqueeze(-1)
        if self.kind == "plt":
            self.W_dec.copy_(dec)
        else:  # written to its own layer; later layers start at zero (exemplars) or share the direction
            for l, w in enumerate(self.W_dec_clt):
                w.zero_()
                w[:, 0] = dec[l]

    @torch.no_grad()
    def fit_skip(self, x_raw: torch.Tensor, y_raw: torch.Tensor):
        """Least-squares skip connection (the linear part of each MLP) from a sample, in normalised units."""
        L = self.n_layers
        x = x_raw.float().transpose(0, 1) / self.x_scale.view(L, 1, 1)
        y = y_raw.float().transpose(0, 1) / self.y_scale.view(L, 1, 1) - self.b_dec.unsqueeze(1)
        for l in range(L):  # float64 Cholesky per layer (MKL's batched LU failed on 30 x 576 x 576 systems)
            xl, yl = x[l].double(), y[l].double()
            gram = xl.T @ xl
            gram += 1e-3 * gram.diagonal().mean() * torch.eye(self.d_model, dtype=gram.dtype)  # ridge
            factor, info = torch.linalg.cholesky_ex(gram)
            if info != 0 or not torch.isfinite(gram).all():
                raise AttrWidgetsError(f"Layer {l}'s MLP inputs are degenerate (non-finite or constant): cannot fit "
                                       "the skip connection; train with skip=False.")
            self.W_skip[l].copy_(torch.cholesky_solve(xl.T @ yl, factor).to(self.W_skip.dtype))

    # -- export ------------------------------------------------------------------------------------
    @torch.no_grad()
    def export(self, config: dict | None = None) -> Transcoder:
        L = self.n_layers
        sx, sy = self.x_scale.cpu(), self.y_scale.cpu()
        W_enc = [(self.W_enc[l].cpu() / sx[l]).t().contiguous() for l in range(L)]
        b_enc = [self.b_enc[l].cpu().clone() for l in range(L)]
        b_dec = [self.b_dec[l].cpu() * sy[l] for l in range(L)]
        if self.kind == "plt":
            W_dec = [self.W_dec[l].cpu() * sy[l] for l in range(L)]
        else:
            W_dec = [w.cpu() * sy[l:].view(1, -1, 1) for l, w in enumerate(self.W_dec_clt)]
        threshold = None if self.log_threshold is None else [t.cpu().exp() for t in self.log_threshold]
        W_skip = None if self.W_skip is None else [
            (self.W_skip[l].cpu() * (sy[l] / sx[l])).t().contiguous() for l in range(L)]
        return Transcoder(self.kind, self.activation, W_enc, b_enc, W_dec, b_dec, threshold, W_skip, self.top_k,
                          dict(config or {}))


@dataclass
class TrainSettings:
    kind: str
    activation: str
    n_features: int
    steps: int
    batch_tokens: int
    sparsity: float
    sparsity_c: float
    lr: float
    top_k: int | None
    skip: bool
    seed: int
    bandwidth: float
    target_l0: int
    threshold_phase: float

    def matches(self, other: dict) -> list[str]:
        """Names of the settings that differ from a checkpoint's (steps may grow: training continues)."""
        mine = asdict(self)
        return [k for k, v in mine.items() if k != "steps" and other.get(k) != v]


def threshold_switch(settings) -> int:
    """The step from which JumpReLU thresholds are learned per feature (before it: steered per layer)."""
    if settings.activation != "jumprelu":
        return -1
    return round(settings.steps * (1 - settings.threshold_phase))
