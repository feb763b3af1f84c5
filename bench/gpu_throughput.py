"""GPU throughput of the generative core, against the reference figures of REFERENCE §3.

- DiT train step (forward, backward, fused AdamW), bf16 autocast, compile off and on: img/s and TFLOP/s
  (model FLOPs, and the reference's 6·params·tokens + attention convention for comparison).
- VA-VAE f16d32 encode and decode img/s at 256², batch 32: fp32-weight autocast (eager) vs bf16 weights,
  channels-last, compiled.
- Sampling img/s, Euler with batched CFG vs two-pass CFG.
`--tiny` runs every measurement at toy sizes (CPU, CI); the default is the reference setting (B/1, batch 256).
Mean of `--steps` timed iterations after `--warmup` untimed ones."""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from mdaug.flow import SamplingConfig, flow_loss, sample
from mdaug.models.dit import LightningDiT, dit_config
from mdaug.models.vavae import VAE_ARCHITECTURES, AutoencoderKL

REFERENCE = {  # REFERENCE §3, reference code with torch.compile, bf16
    "H200": {"dit_b1": 2305, "encode": 731, "decode": 447},
    "H100": {"dit_b1": 2128, "encode": 633, "decode": 384},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def bench_dit(size: str, batch: int, latent: int, channels: int, classes: int, compile_: bool, device, args) -> dict:
    torch.manual_seed(0)
    model = LightningDiT(dit_config(size, input_size=latent, in_channels=channels, num_classes=classes)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.95), fused=device.type == "cuda")
    fwd = torch.compile(model) if compile_ else model
    x = torch.randn(batch, channels, latent, latent, device=device)
    y = torch.randint(0, classes, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss, _ = flow_loss(fwd, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sec = _time(step, device, args.warmup, args.steps)
    params = sum(p.numel() for p in model.parameters()) + model.pos_embed.numel()
    c = model.config
    n = (c.input_size // c.patch_size) ** 2
    ref_flops = 6 * params * n + 12 * c.depth * n * n * c.hidden_size
    return {"img_s": batch / sec, "tflops_model": batch * model.train_flops_per_image() / sec / 1e12,
            "tflops_ref_convention": batch * ref_flops / sec / 1e12}


def bench_vae(architecture: str, batch: int, optimized: bool, device, args) -> dict:
    torch.manual_seed(0)
    cfg = VAE_ARCHITECTURES[architecture]
    vae = AutoencoderKL(cfg).to(device).eval()
    x = torch.rand(batch, cfg.in_channels, cfg.resolution, cfg.resolution, device=device) * 2 - 1
    z = torch.randn(batch, cfg.z_channels, cfg.latent_size, cfg.latent_size, device=device)
    if optimized:
        vae = vae.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
        x = x.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
        z = z.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
        enc = torch.compile(lambda t: vae.encode(t).mean) if device.type == "cuda" else (lambda t: vae.encode(t).mean)
        dec = torch.compile(vae.decode) if device.type == "cuda" else vae.decode
    else:
        enc, dec = (lambda t: vae.encode(t).mean), vae.decode
    out = {}
    for name, fn, inp in (("encode", enc, x), ("decode", dec, z)):
        def run(fn=fn, inp=inp) -> None:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=not optimized):
                fn(inp)
        out[f"{name}_img_s"] = batch / _time(run, device, args.warmup, args.steps)
    return out


def bench_sampling(size: str, n: int, latent: int, channels: int, classes: int, steps: int, device, args) -> dict:
    torch.manual_seed(0)
    model = LightningDiT(dit_config(size, input_size=latent, in_channels=channels, num_classes=classes))
    model = model.to(device).eval()
    out = {}
    dtype = torch.bfloat16 if device.type == "cuda" else None
    for mode in ("batched", "two_pass"):
        cfg = SamplingConfig(steps=steps, cfg_scale=4.0, cfg_interval_start=0.0, cfg_mode=mode)
        sec = _time(lambda cfg=cfg: sample(model, [i % classes for i in range(n)], list(range(n)), cfg, device, dtype),
                    device, 1, max(1, args.steps // 5))
        out[f"{mode}_img_s"] = n / sec
    out["batched_over_two_pass"] = out["batched_img_s"] / out["two_pass_img_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tiny", action="store_true", help="toy sizes (CPU / CI)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--only", choices=("dit", "vae", "sampling"), help="run one part")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    card = next((k for k in REFERENCE if k in name), None)
    print(f"device: {name}  torch {torch.__version__}  threads {torch.get_num_threads()}  cpus {os.cpu_count()}")
    if args.tiny:
        dit_args = ("tiny", 8, 8, 8, 31)
        vae_arch, vae_batch, samp = "tiny", 4, ("tiny", 8, 8, 8, 31, 4)
    else:
        dit_args = ("B", 256, 16, 32, 1000)
        vae_arch, vae_batch, samp = "f16d32", 32, ("B", 256, 16, 32, 1000, 10)
    results: dict = {"device": name}

    def report(key: str, value: dict) -> None:
        results[key] = value
        print(key, json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in value.items()}), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)

    if args.only in (None, "dit"):
        for compiled in (False, True) if device.type == "cuda" else (False,):
            report(f"dit_{dit_args[0]}_train_compile={compiled}", bench_dit(*dit_args, compiled, device, args))
    if args.only in (None, "vae"):
        report(f"vae_{vae_arch}_autocast_eager", bench_vae(vae_arch, vae_batch, False, device, args))
        report(f"vae_{vae_arch}_bf16_channels_last_compiled", bench_vae(vae_arch, vae_batch, True, device, args))
    if args.only in (None, "sampling"):
        report("sampling", bench_sampling(*samp, device, args))
    if card and not args.tiny:
        ref = REFERENCE[card]
        dit = results.get("dit_B_train_compile=True", {}).get("img_s")
        enc = results.get("vae_f16d32_bf16_channels_last_compiled", {}).get("encode_img_s")
        dec = results.get("vae_f16d32_bf16_channels_last_compiled", {}).get("decode_img_s")
        for label, got, want in (("DiT B/1 train", dit, ref["dit_b1"]), ("VA-VAE encode", enc, ref["encode"]),
                                 ("VA-VAE decode", dec, ref["decode"])):
            if got:
                print(f"{label}: {got:.0f} img/s vs reference {want} on {card}: ×{got / want:.2f}")


if __name__ == "__main__":
    main()
