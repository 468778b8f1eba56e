"""COLD fusion in plain PyTorch, written from the paper's equations: the speed peer of the benchmarks.

A straightforward script of the kind a researcher would write first, at the paper's sizes by default
(batch 4, 300-frame windows, 128-d audio, 512-d visual, 2-layer bidirectional GRU with 256 units per
direction and dropout 0.5 between the layers, latent size 128):

* per modality m: z_m = BiGRU_m(x_m); mu_m = W_mu z_m, sigma_m = softplus(W_s z_m) + 1e-6;
  h_m = mu_m + sigma_m * eps (training; eps ~ N(0, I));
* fusion (Eq. 2): w_V = ||sigma_V|| / (||sigma_V|| + ||sigma_A||), w_A = 1 - w_V, h_AV = w_A h_A + w_V h_V;
* one shared head f: y = tanh(W_f h) for valence and arousal, applied to h_A, h_V and h_AV;
* L_emo = sum over the three outputs and two dimensions of (1 - CCC) + MSE;
* d_m = squared error of Y_m (mean over the two dimensions, no gradient), s_m = 1 / ||sigma_m||;
  L_CO = KL(P_D || P_S) + KL(P_S || P_D) with P = softmax over the frames, per modality (N frames) and
  across both modalities (2N frames);
* L_regu = KL(N(mu, sigma) || N(0, I)), summed over the latent dimensions and averaged over the frames
  of both modalities;
* L = L_emo + 1e-3 (L_CO_V + L_CO_A + L_CO_AV) + 1e-4 L_regu; AdamW, learning rate 5e-3, weight decay 1e-4.

Windows in the benchmark are full (no padding), so no mask enters the peer.

    python bench/peers/torch_cold.py [--steps 20] [--repeats 3] [--threads N]

Prints one line `frames_per_second <median>` (and the per-repeat figures), used by
`bench/train_throughput.py --vs-torch`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class BiGRUBlock(nn.Module):
    def __init__(self, input_dim, units, layers, dropout):
        super().__init__()
        self.gru = nn.GRU(input_dim, units, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout)

    def forward(self, x):
        return self.gru(x)[0]


class ColdFusion(nn.Module):
    def __init__(self, audio_dim, visual_dim, units, layers, dropout, latent):
        super().__init__()
        self.audio_block = BiGRUBlock(audio_dim, units, layers, dropout)
        self.visual_block = BiGRUBlock(visual_dim, units, layers, dropout)
        self.audio_mu = nn.Linear(2 * units, latent)
        self.audio_sigma = nn.Linear(2 * units, latent)
        self.visual_mu = nn.Linear(2 * units, latent)
        self.visual_sigma = nn.Linear(2 * units, latent)
        self.head = nn.Linear(latent, 2)

    @staticmethod
    def gaussian(z, mu_layer, sigma_layer, training):
        mu = mu_layer(z)
        sigma = F.softplus(sigma_layer(z)) + 1e-6
        h = mu + sigma * torch.randn_like(sigma) if training else mu
        return h, mu, sigma

    def forward(self, audio, visual):
        h_a, mu_a, sigma_a = self.gaussian(self.audio_block(audio), self.audio_mu, self.audio_sigma, self.training)
        h_v, mu_v, sigma_v = self.gaussian(self.visual_block(visual), self.visual_mu, self.visual_sigma, self.training)
        norm_a = sigma_a.norm(dim=-1)
        norm_v = sigma_v.norm(dim=-1)
        w_v = (norm_v / (norm_v + norm_a)).unsqueeze(-1)
        h_av = (1.0 - w_v) * h_a + w_v * h_v
        # One head call on the three branches stacked: [3, B, T, 2] (fused, audio, visual).
        outputs = torch.tanh(self.head(torch.stack([h_av, h_a, h_v])))
        return outputs, (mu_a, sigma_a, norm_a), (mu_v, sigma_v, norm_v)


def ccc_losses(predictions, targets):
    """1 - CCC of every (branch, dimension) at once: predictions [3, B, T, 2], targets [B, T, 2]; sum."""
    predictions = predictions.flatten(1, 2)  # [3, B*T, 2]
    targets = targets.flatten(0, 1)[None]  # [1, B*T, 2]
    mean_p, mean_t = predictions.mean(1, keepdim=True), targets.mean(1, keepdim=True)
    var_p = ((predictions - mean_p) ** 2).mean(1)
    var_t = ((targets - mean_t) ** 2).mean(1)
    covariance = ((predictions - mean_p) * (targets - mean_t)).mean(1)
    ccc = 2.0 * covariance / (var_p + var_t + (mean_p - mean_t).squeeze(1) ** 2 + 1e-8)
    return (1.0 - ccc).sum()


def symmetric_kl(distances, scores):
    # Per sequence: softmax over the frames of d and of s, KL both ways, averaged over the batch.
    log_p = F.log_softmax(distances, dim=1)
    log_q = F.log_softmax(scores, dim=1)
    kl_pq = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    kl_qp = (log_q.exp() * (log_q - log_p)).sum(dim=1)
    return (kl_pq + kl_qp).mean()


def objective(outputs, audio_latent, visual_latent, target):
    """outputs [3, B, T, 2] (fused, audio, visual), target [B, T, 2] (valence, arousal)."""
    loss = ccc_losses(outputs, target) + ((outputs - target) ** 2).mean((1, 2)).sum()
    errors = ((outputs[1:] - target) ** 2).mean(-1).detach()  # [2, B, T]: audio, visual
    d_a, d_v = errors[0], errors[1]
    (mu_a, sigma_a, norm_a), (mu_v, sigma_v, norm_v) = audio_latent, visual_latent
    s_a, s_v = 1.0 / norm_a, 1.0 / norm_v
    calibration = (
        symmetric_kl(d_v, s_v)
        + symmetric_kl(d_a, s_a)
        + symmetric_kl(torch.cat([d_a, d_v], dim=1), torch.cat([s_a, s_v], dim=1))
    )
    mu = torch.cat([mu_a, mu_v], dim=1)
    sigma = torch.cat([sigma_a, sigma_v], dim=1)
    kl = -0.5 * (1.0 + 2.0 * torch.log(sigma) - mu**2 - sigma**2).sum(dim=-1).mean()
    return loss + 1e-3 * calibration + 1e-4 * kl


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed repeat (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats after one warm-up (default 3)")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per batch (default 4)")
    parser.add_argument("--frames", type=int, default=300, help="frames per window (default 300)")
    parser.add_argument("--audio-dim", type=int, default=128, help="audio features per frame (default 128)")
    parser.add_argument("--visual-dim", type=int, default=512, help="visual features per frame (default 512)")
    parser.add_argument("--units", type=int, default=256, help="GRU units per direction (default 256)")
    parser.add_argument("--latent-dim", type=int, default=128, help="latent size (default 128)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads (default 0: PyTorch's own choice)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    b, t = args.batch_size, args.frames
    audio = torch.from_numpy(rng.standard_normal((b, t, args.audio_dim)).astype("float32"))
    visual = torch.from_numpy(rng.standard_normal((b, t, args.visual_dim)).astype("float32"))
    target = torch.from_numpy(rng.uniform(-1, 1, (b, t, 2)).astype("float32"))  # valence, arousal

    model = ColdFusion(args.audio_dim, args.visual_dim, args.units, 2, 0.5, args.latent_dim)
    model.train()
    # fused=True: one kernel updates every parameter (PyTorch's fastest AdamW on a CPU).
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-4, fused=True)

    def step():
        optimiser.zero_grad(set_to_none=True)
        outputs, audio_latent, visual_latent = model(audio, visual)
        loss = objective(outputs, audio_latent, visual_latent, target)
        loss.backward()
        optimiser.step()
        return loss

    rates = []
    for repeat in range(1 + args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        float(loss.detach())
        seconds = time.perf_counter() - start
        if repeat:
            rates.append(args.steps * b * t / seconds)
    if not np.isfinite(float(loss)):
        raise SystemExit("torch_cold.py: the loss is not finite")
    median = float(np.median(rates))
    if args.json:
        print(json.dumps({"frames_per_second": median, "repeats": rates, "threads": torch.get_num_threads()}))
    else:
        print(
            f"torch cold_fusion: {median:.0f} frames/s (repeats {', '.join(f'{r:.0f}' for r in rates)}; "
            f"{torch.get_num_threads()} threads)"
        )


if __name__ == "__main__":
    main()
