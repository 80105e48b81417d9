"""Label-free training losses and the Pearson r used for validation (pix2pixHD: LSGAN, feature matching)."""


def pearson(a, b) -> float:
    a = a.double().flatten()
    b = b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    den = float((a.square().sum() * b.square().sum()).sqrt())
    return float((a * b).sum()) / den if den > 0 else float("nan")


def lsgan(maps, real: bool):
    import torch

    return sum(torch.mean((m[-1].float() - (1.0 if real else 0.0)) ** 2) for m in maps) / len(maps)


def feature_matching(fake_maps, real_maps):
    n_scales = len(fake_maps)
    total = 0.0
    for f_scale, r_scale in zip(fake_maps, real_maps):
        layers = len(f_scale) - 1  # the last map is the score, not a feature
        for f, r in zip(f_scale[:-1], r_scale[:-1]):
            total = total + (f.float() - r.detach().float()).abs().mean() / (layers * n_scales)
    return total
