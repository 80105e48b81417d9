"""`microcomp train-codec` and the patch sampler: tiny CPU runs that export loadable weights,
checkpoint/resume, the wall-clock budget, VBR and 3D architectures."""
import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp.cli import main  # noqa: E402
from napari_microcomp.codecs import decode, get_codec  # noqa: E402
from napari_microcomp.errors import InputError, MicrocompError  # noqa: E402
from napari_microcomp.training.data import PatchSampler, collect_files, load_items  # noqa: E402


@pytest.fixture(scope="module")
def data_dir(shared_data, tmp_path_factory):
    """A few real planes and one real stack, written as TIFF like scripts/pack_training_data.py does."""
    import imageio.v3 as iio

    d = tmp_path_factory.mktemp("train")
    isl = shared_data / "isl_phase_to_fluorescence"
    tifffile.imwrite(d / "dapi.tif", iio.imread(isl / "depth_computation-MAXPROJECT_channel-DAPI_CONFOCAL.png")[:160, :200],
                     compression="zlib")
    stack = np.stack([iio.imread(isl / f"z_depth-{k}_channel-PHASE_CONTRAST.png")[:96, :96] for k in range(4)])
    tifffile.imwrite(d / "phase_stack.tif", stack)
    (d / "notes.txt").write_text("ignored")
    return d


ARGS = ["--patch", "64", "--batch", "2", "--log-every", "1", "--threads", "1"]


def _meta(path):
    return torch.load(path, weights_only=True)["meta"]


def test_train_export_resume_and_use(data_dir, tmp_path, capsys):
    out, ckpt = tmp_path / "mbt2018-mean-q3.pt", tmp_path / "run.ckpt"
    rc = main(["train-codec", "--arch", "mbt2018-mean", "--quality", "3", "--data", str(data_dir), "--steps", "2",
               "--widths", "N=8,M=8", "--out", str(out), "--ckpt", str(ckpt), *ARGS])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("step 2/2" in ln and "bpp" in ln and "psnr" in ln for ln in lines)
    m = _meta(out)
    assert m["arch"] == "mbt2018-mean" and m["quality"] == 3 and m["lambda"] == 0.0067 and m["steps"] == 2
    assert m["patch"] == [64, 64] and m["batch"] == 2 and m["device"] == "cpu" and m["widths"] == {"N": 8, "M": 8}
    assert len(m["data"]) == 2 and "git" in m and "train-codec" in m["command"] and m["seconds"] > 0
    assert torch.load(ckpt, weights_only=False)["step"] == 2
    # resume continues the same run (widths from the checkpoint) up to the new step count
    rc = main(["train-codec", "--arch", "mbt2018-mean", "--quality", "3", "--data", str(data_dir), "--steps", "3",
               "--resume", str(ckpt), "--ckpt", str(ckpt), "--out", str(out), *ARGS])
    assert rc == 0 and _meta(out)["steps"] == 3 and torch.load(ckpt, weights_only=False)["step"] == 3
    # a new run never replaces an existing weight file unasked (it may hold hours of training)
    before = out.read_bytes()
    assert main(["train-codec", "--arch", "mbt2018-mean", "--quality", "3", "--data", str(data_dir), "--steps", "1",
                 "--widths", "N=8,M=8", "--out", str(out), *ARGS]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["train-codec", "--arch", "mbt2018-mean", "--quality", "3", "--data", str(data_dir), "--steps", "1",
                 "--widths", "N=8,M=8", "--out", str(out), "--overwrite", *ARGS]) == 0
    assert _meta(out)["steps"] == 1 and "--overwrite" in _meta(out)["command"]
    # warm start: another quality fine-tuned from these weights (widths come from the file)
    tuned = tmp_path / "mbt2018-mean-q5.pt"
    rc = main(["train-codec", "--arch", "mbt2018-mean", "--quality", "5", "--data", str(data_dir), "--steps", "1",
               "--init", str(out), "--out", str(tuned), *ARGS])
    assert rc == 0 and _meta(tuned)["init"] == str(out) and _meta(tuned)["widths"] == {"N": 8, "M": 8}
    assert _meta(tuned)["lambda"] == 0.025   # λ-transfer: the new quality's λ, not the source's 0.0067
    assert main(["train-codec", "--arch", "mbt2018", "--quality", "5", "--data", str(data_dir), "--steps", "1",
                 "--init", str(out), *ARGS]) == 2
    img = tifffile.imread(data_dir / "dapi.tif")
    restored = decode(get_codec("mbt2018-mean", quality=3, weights=str(out)).encode(img))
    assert restored.shape == img.shape and restored.dtype == img.dtype


def test_vbr_budget_and_default_name(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["train-codec", "--arch", "bmshj2018-hyperprior-vbr", "--data", str(data_dir / "dapi.tif"),
               "--steps", "1000", "--max-minutes", "0.0001", "--widths", "N=8,M=8", *ARGS])
    assert rc == 0
    out = tmp_path / "bmshj2018-hyperprior-vbr.pt"
    m = _meta(out)
    assert m["stop"] == "time" and m["steps"] < 1000 and m["quality"] is None and len(m["lambda"]) == 8
    for q in (1, 8):
        assert get_codec("bmshj2018-hyperprior-vbr", quality=q, weights=str(out)).load().arch.endswith("vbr")


def test_fixed_rate_needs_quality_and_patch_multiple(data_dir, capsys):
    rc = main(["train-codec", "--arch", "bmshj2018-factorized", "--data", str(data_dir), "--steps", "1"])
    assert rc == 2 and "--quality" in capsys.readouterr().err
    rc = main(["train-codec", "--arch", "mbt2018", "--quality", "1", "--data", str(data_dir), "--patch", "96"])
    assert rc == 2 and "multiples of 64" in capsys.readouterr().err


def test_3d_architecture_gets_3d_crops(data_dir, tmp_path):
    from napari_microcomp.models import registry

    arch3d = [a for a in registry.list_archs(ndim=3)]
    if not arch3d:
        pytest.skip("no 3D architecture registered")
    out = tmp_path / "w3d.pt"
    # bf16 forced: oneDNN's bf16 gradients of 1-channel channels-last 3D convolutions were 1e37 here
    rc = main(["train-codec", "--arch", arch3d[0], "--quality", "2", "--data", str(data_dir), "--steps", "2",
               "--widths", "N=8,M=8", "--out", str(out), "--batch", "1", "--patch", "4", "16", "16",
               "--log-every", "1", "--threads", "1", "--bf16"])
    assert rc == 0
    m = _meta(out)
    assert m["patch"] == [4, 16, 16] and m["n_items"] == 1     # only the stack is a 3D item


def test_training_batches_reach_the_model_in_standard_layout(data_dir, tmp_path, monkeypatch):
    """A 1-channel batch in true channels-last strides (what a batch of rotated crops became under bf16)
    corrupted the heap in the first convolution's backward (torch 2.14 CPU, AVX-512 EPYC, bf16 and fp32)."""
    draw = PatchSampler.batch
    # np.stack of crops that were all rotated by 90° keeps their transposed layout: every batch here is so
    monkeypatch.setattr(PatchSampler, "batch", lambda self, n: np.swapaxes(draw(self, n), -1, -2))
    seen = []

    def first_layer_inputs(mod, args):
        if isinstance(mod, torch.nn.Conv2d) and mod.in_channels == 1:
            x = args[0]
            seen.append(x.stride() == torch.empty(x.shape).stride())

    hook = torch.nn.modules.module.register_module_forward_pre_hook(first_layer_inputs)
    try:
        rc = main(["train-codec", "--arch", "cheng2020-anchor", "--quality", "2", "--data", str(data_dir),
                   "--steps", "6", "--widths", "N=8", "--out", str(tmp_path / "c.pt"), *ARGS, "--bf16"])
    finally:
        hook.remove()
    assert rc == 0 and len(seen) >= 6 and all(seen)


def test_sampler_shapes_range_and_padding(data_dir):
    files = collect_files([data_dir])
    assert [f.name for f in files] == ["dapi.tif", "phase_stack.tif"]
    items = load_items(files, ndim=2)
    assert len(items) == 1 + 4                                   # a stack gives its planes to a 2D model
    s = PatchSampler(items, (128, 128), seed=3)
    b = s.batch(4)
    assert b.shape == (4, 1, 128, 128) and b.dtype == np.float32 and 0 <= b.min() and b.max() <= 1
    big = PatchSampler(items, (200, 256), seed=3).batch(2)       # larger than the 96×96 planes: edge-padded
    assert big.shape == (2, 1, 200, 256)
    assert np.array_equal(PatchSampler(items, (64, 64), seed=5).batch(3), PatchSampler(items, (64, 64), seed=5).batch(3))
    with pytest.raises(InputError):
        collect_files([data_dir / "missing"])


def test_damaged_and_non_finite_training_files_are_left_out_and_said(data_dir, tmp_path):
    import tifffile

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a_truncated.tif").write_bytes((data_dir / "dapi.tif").read_bytes()[:64])
    hot = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)
    hot[3, 3] = np.inf                                   # one Inf would make every crop of it NaN
    tifffile.imwrite(bad / "b_inf.tif", hot)
    files = collect_files([data_dir, bad])
    with pytest.raises(InputError, match="a_truncated.tif"):
        load_items(files, ndim=2)                        # without a list to note them in: an error
    skipped = []
    items = load_items(files, ndim=2, skipped=skipped)
    assert len(items) == 1 + 4 and all(np.isfinite(it.hi) for it in items)
    assert len(skipped) == 2 and "a_truncated.tif" in skipped[0] and "b_inf.tif: NaN/Inf" in skipped[1]


def test_sampling_power_shifts_draws_towards_small_images():
    from napari_microcomp.training.data import Item

    big, small = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256), np.eye(32, dtype=np.uint16)
    items = [Item("big", big, 0.0, float(big.max())), Item("small", small, 0.0, 1.0)]
    by_pixel = PatchSampler(items, (32, 32), power=1.0).p
    assert by_pixel[1] == pytest.approx(32 * 32 / (256 * 256 + 32 * 32))
    assert PatchSampler(items, (32, 32), power=0.5).p[1] == pytest.approx(32 / (256 + 32))
    assert np.allclose(PatchSampler(items, (32, 32), power=0.0).p, [0.5, 0.5])   # one image, one share
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InputError, match="sampling power"):
            PatchSampler(items, (32, 32), power=bad)


def test_restretch_maps_crops_by_their_own_range_and_keeps_old_sequences():
    from napari_microcomp.training.data import Item

    # a ramp whose 32-px crops span 1/8 of the image's range
    ramp = np.tile(np.arange(256, dtype=np.uint16), (64, 1))
    flat = (7 + np.indices((64, 256)).sum(0) % 2).astype(np.uint16)   # 7/8 checkerboard
    items = [Item("ramp", ramp, 0.0, 255.0)]
    plain = PatchSampler(items, (32, 32), seed=1).batch(8)
    assert all(0.8 < np.ptp(x) * 8 < 1.0 for x in plain)              # the image's stretch
    always = PatchSampler(items, (32, 32), seed=1, restretch=1.0).batch(8)
    assert all(x.min() == 0.0 and x.max() == pytest.approx(1.0) for x in always)
    never = PatchSampler(items, (32, 32), seed=1, restretch=0.0).batch(8)
    assert np.array_equal(never, plain)                  # no extra draws: earlier runs stay reproducible
    # a crop spanning < 5 % of its image's range keeps the image's stretch (no posterised steps)
    # (the image's range, 0..200, as if set by a hot pixel elsewhere)
    low = PatchSampler([Item("flat", flat, 0.0, 200.0)], (16, 16), seed=2, restretch=1.0).batch(6)
    assert all(np.ptp(x) == pytest.approx(1 / 200) for x in low)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InputError, match="restretch"):
            PatchSampler(items, (32, 32), restretch=bad)


def test_vbr_with_its_own_lambda_table(data_dir, tmp_path, capsys):
    lams = ["0.0018", "0.0042", "0.0099", "0.0233", "0.0547", "0.128", "0.302", "0.71"]
    out = tmp_path / "wide.pt"
    rc = main(["train-codec", "--arch", "mbt2018-mean-vbr", "--data", str(data_dir / "dapi.tif"), "--steps", "2",
               "--widths", "N=8,M=8", "--lambdas", *lams, "--out", str(out), *ARGS])
    assert rc == 0
    assert _meta(out)["lambda"] == [float(v) for v in lams]   # recorded: refinement uses the file's own table
    rc = main(["train-codec", "--arch", "mbt2018-mean-vbr", "--data", str(data_dir / "dapi.tif"), "--steps", "1",
               "--lambdas", *reversed(lams), *ARGS])
    assert rc == 2 and "increasing" in capsys.readouterr().err


def test_transplanted_start_keeps_the_source_lambda_through_resume(data_dir, tmp_path):
    """Warm starts from another architecture train at the source's λ; a resumed run must not fall back to the
    default table (it did: the checkpoint did not hold the λ)."""
    lams = ["0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128"]
    src = tmp_path / "vbr.pt"
    assert main(["train-codec", "--arch", "mbt2018-mean-vbr", "--data", str(data_dir / "dapi.tif"), "--steps", "1",
                 "--widths", "N=8,M=8", "--lambdas", *lams, "--out", str(src), *ARGS]) == 0
    for arch, q, want in (("mbt2018", "2", 0.002), ("bmshj2018-hyperprior-vbr", None, [float(v) for v in lams])):
        out, ckpt = tmp_path / f"{arch}.pt", tmp_path / f"{arch}.ckpt"
        qa = ["--quality", q] if q else []
        assert main(["train-codec", "--arch", arch, *qa, "--data", str(data_dir / "dapi.tif"), "--steps", "1",
                     "--init", str(src), "--out", str(out), "--ckpt", str(ckpt), *ARGS]) == 0
        assert _meta(out)["lambda"] == want
        ck = torch.load(ckpt, weights_only=True)   # the new parts train in their own group (faster lr)
        fresh = "context_prediction.weight" if q else "h_s.4.weight"
        assert fresh in ck["fresh_params"] and "g_a.0.weight" not in ck["fresh_params"]
        assert [g["lr_mult"] for g in ck["opt"]["param_groups"]] == [1.0, 10.0]
        assert main(["train-codec", "--arch", arch, *qa, "--data", str(data_dir / "dapi.tif"), "--steps", "2",
                     "--resume", str(ckpt), "--ckpt", str(ckpt), "--out", str(out), *ARGS]) == 0
        assert _meta(out)["lambda"] == want and _meta(out)["steps"] == 2
        # continuing the file (same architecture) keeps its λ too
        again = tmp_path / f"{arch}-continued.pt"
        assert main(["train-codec", "--arch", arch, *qa, "--data", str(data_dir / "dapi.tif"), "--steps", "1",
                     "--init", str(out), "--out", str(again), *ARGS]) == 0
        assert _meta(again)["lambda"] == want


def test_a_non_finite_gradient_restores_the_last_good_state(data_dir, tmp_path, monkeypatch):
    """A finite loss with an overflowing gradient is a divergence too: no step is taken from it."""
    import torch

    from napari_microcomp.training import codec as tc

    real, calls = torch.nn.utils.clip_grad_norm_, []

    def clip(params, max_norm, **kw):
        calls.append(1)
        norm = real(params, max_norm, **kw)
        return torch.tensor(float("inf")) if len(calls) == 2 else norm

    monkeypatch.setattr(tc.torch.nn.utils, "clip_grad_norm_", clip)
    cfg = tc.TrainConfig(arch="bmshj2018-factorized", quality=2, data=[str(data_dir / "dapi.tif")], steps=3,
                         patch=[64], batch=2, widths={"N": 8, "M": 8}, threads=1, out=str(tmp_path / "w.pt"),
                         log_every=1)
    messages = [ev.message for ev in tc.train(cfg)]
    restored = [m for m in messages if "restored" in m]
    assert len(restored) == 1 and "gradient norm not finite" in restored[0] and "lr ×0.5" in restored[0]
    assert len(calls) == 4                       # 3 steps taken, one refused
    state = torch.load(tmp_path / "w.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_retries_train_in_a_child_restarted_from_the_checkpoint(data_dir, tmp_path, monkeypatch, capsys):
    from napari_microcomp.cli import train_zoo

    out = tmp_path / "f.pt"
    base = ["train-codec", "--arch", "bmshj2018-factorized", "--quality", "2", "--data", str(data_dir),
            "--steps", "2", "--widths", "N=8,M=8", "--out", str(out), *ARGS]
    # the child really trains; the checkpoint defaults to OUT.ckpt
    assert main(base + ["--retries", "1", "--max-minutes", "5"]) == 0
    assert _meta(out)["steps"] == 2 and torch.load(tmp_path / "f.ckpt", weights_only=False)["step"] == 2
    # what each start runs: no --retries or stale --max-minutes (the supervisor adds what is left), and after a
    # crash --resume from the checkpoint
    seen = {}
    monkeypatch.setattr(train_zoo, "supervise", lambda cmd, retries, log, budget, name: seen.update(
        cmd=cmd, retries=retries, budget=budget) or 0)
    assert main(base + ["--retries", "3", "--max-minutes", "7", "--ckpt", str(tmp_path / "f.ckpt"), "--overwrite"]) == 0
    first, again = seen["cmd"](0), seen["cmd"](1)
    assert seen["retries"] == 3 and seen["budget"] == 7
    assert "--retries" not in first and "--max-minutes" not in first and "--resume" not in first
    assert again[again.index("--resume") + 1] == str(tmp_path / "f.ckpt")
    assert main(base + ["--retries", "-1"]) == 2
    assert main(["train-codec", "--arch", "bmshj2018-factorized", "--quality", "2", "--data", str(data_dir),
                 "--retries", "1"]) == 2 and "--retries needs --ckpt" in capsys.readouterr().err


def test_mixed_quantization_feeds_the_decoder_what_a_stream_decodes_to(data_dir, tmp_path, capsys):
    from napari_microcomp.models.registry import build_model
    from napari_microcomp.training.quant import mixed_forward

    torch.manual_seed(0)
    model = build_model("bmshj2018-factorized-relu", 2, N=8, M=8).train()
    x = torch.rand(2, 1, 64, 64, requires_grad=True)
    out = mixed_forward(model, x)
    model.eval()
    with torch.no_grad():   # the real codec path: rounding around the medians, then the decoder
        y = model.g_a(x)
        y_q = model.entropy_bottleneck.dequantize(model.entropy_bottleneck.quantize(
            y, "symbols", model.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)),
            model.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1))
        assert torch.allclose(out["x_hat"], model.g_s(y_q), atol=1e-6)
    out["x_hat"].mean().backward()   # straight-through: the encoder still gets a distortion gradient
    assert model.g_a[0].weight.grad is not None and model.g_a[0].weight.grad.abs().sum() > 0
    assert out["likelihoods"]["y"].shape == y.shape

    dst = tmp_path / "relu.pt"
    assert main(["train-codec", "--arch", "bmshj2018-factorized-relu", "--quality", "2", "--data", str(data_dir),
                 "--steps", "2", "--widths", "N=8,M=8", "--quant", "mixed", "--out", str(dst), *ARGS]) == 0
    assert _meta(dst)["quant"] == "mixed" and "--quant mixed" in _meta(dst)["command"]
    capsys.readouterr()
    assert main(["train-codec", "--arch", "mbt2018-mean-vbr", "--data", str(data_dir), "--steps", "1",
                 "--widths", "N=8,M=8", "--quant", "mixed", "--out", str(tmp_path / "m.pt"), *ARGS]) == 2
    assert "for the fixed-rate architectures" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("arch, ok", [("factorized3d", True), ("hyperprior3d", False), ("mbt2018-mean-vbr3d", False),
                                     ("bmshj2018-hyperprior-vbr", False), ("cheng2020-anchor", True)])
def test_which_architectures_take_mixed_quantization(arch, ok):
    from napari_microcomp.models.registry import build_model, get_arch
    from napari_microcomp.training.quant import check_quant

    model = build_model(arch, None if get_arch(arch).vbr else 2, N=8, **({} if arch.startswith("cheng") else {"M": 8}))
    if ok:
        check_quant("mixed", model, arch)
    else:
        with pytest.raises(MicrocompError, match="fixed-rate architectures"):
            check_quant("mixed", model, arch)


@pytest.mark.parametrize("arch, exact", [("bmshj2018-hyperprior", True), ("mbt2018-mean", True), ("mbt2018", False)])
def test_mixed_quantization_of_the_hyperpriors_matches_their_streams(arch, exact):
    from napari_microcomp.models.registry import build_model
    from napari_microcomp.training.quant import mixed_forward

    torch.manual_seed(0)
    model = build_model(arch, 2, N=8, M=8).train()
    x = torch.rand(1, 1, 64, 64)
    out = mixed_forward(model, x)
    assert set(out["likelihoods"]) == {"y", "z"}
    out["x_hat"].mean().backward(retain_graph=True)   # straight-through: distortion reaches the encoder
    assert model.g_a[0].weight.grad.abs().sum() > 0
    sum(torch.log(v).sum() for v in out["likelihoods"].values()).backward()   # the rate reaches the hyper-encoder
    assert model.h_a[0].weight.grad.abs().sum() > 0
    model.eval().update(force=True)
    with torch.no_grad():
        s = model.compress(x)
        real = model.decompress(s["strings"], s["shape"])["x_hat"]
    err = float((out["x_hat"].detach() - real).abs().max())
    # the context model's causal decoding is approximated in two parallel passes (codecs/refine.py)
    assert err == 0.0 if exact else 0.0 < err < 0.05


@pytest.mark.parametrize("field, value, flag", [("steps", 0, "--steps"), ("lr", -1.0, "--lr"), ("batch", 0, "--batch"),
                                                ("lmbda", float("nan"), "--lambda"), ("widths", {"N": 0}, "--widths N"),
                                                ("max_minutes", 0.0, "--max-minutes")])
def test_settings_that_cannot_train_are_refused_before_a_run(tmp_path, field, value, flag):
    # zero steps exported untrained weights; a negative lr, zero batch or width ended in a torch traceback
    from napari_microcomp.errors import InputError
    from napari_microcomp.training.codec import CodecTrainer, TrainConfig

    cfg = TrainConfig(arch="bmshj2018-factorized", data=[str(tmp_path)], quality=2, out=str(tmp_path / "w.pt"))
    setattr(cfg, field, value)
    with pytest.raises(InputError, match=flag):
        CodecTrainer(cfg)
    assert not (tmp_path / "w.pt").exists()
