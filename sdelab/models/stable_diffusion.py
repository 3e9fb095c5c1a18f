"""Stable Diffusion (v1 family) behind the DiffusionModel interface: VAE latents, CLIP text, batched CFG.

``load_stable_diffusion`` reads SD 1.5 from the Hugging Face hub or a local folder (safetensors only);
``tiny_stable_diffusion`` builds a random-weight model of the same family offline, for tests and CI.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from sdelab.models.base import DiffusionModel
from sdelab.models.images import to_image_tensor
from sdelab.schedules import VPSchedule

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
CASTS = {torch.float16: "half", torch.bfloat16: "bfloat16", torch.float32: "float", torch.float64: "double"}


class StableDiffusion(DiffusionModel):
    """eps(x_t, t) of SD's UNet under a text prompt (guidance: ``DiffusionModel.eps``); x0 = VAE posterior sample *
    scaling factor.

    Latents the samplers work on are float32 when the networks run in half precision (Eq. 8 divides
    by rho_s, tiny at the last steps); ``eps`` casts its input to the networks' dtype and its output back.
    """

    def __init__(self, unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel,
                 tokenizer: CLIPTokenizer, scheduler: DDIMScheduler, name: str = "stable-diffusion",
                 random_weights: bool = False):
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        self.tokenizer, self.scheduler, self.name = tokenizer, scheduler, name
        self.random_weights = random_weights  # True for the tiny test model: its pictures mean nothing
        for net in (unet, vae, text_encoder):
            net.eval().requires_grad_(False)
        self.schedule = VPSchedule.from_alphas_cumprod(scheduler.alphas_cumprod, name=f"{name} schedule")
        self.scaling_factor = float(vae.config.scaling_factor)
        self.pixels_per_latent = 2 ** (len(vae.config.block_out_channels) - 1)  # 8 for SD's 4-block VAE
        self._text: dict[str, torch.Tensor] = {}  # prompt -> (1, 77, d) embedding, on device, in dtype

    conditional = True

    @property
    def latent_dtype(self) -> torch.dtype:
        """dtype of the x0 that ``encode`` returns: the networks' dtype, float32 for half precision."""
        return torch.float32 if self.dtype in (torch.float16, torch.bfloat16) else self.dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> StableDiffusion:
        """Move / cast the three networks in place (floating-point tensors only) and return the model."""
        if dtype is not None and dtype not in CASTS:
            raise ValueError(f"dtype must be one of {list(CASTS)}, got {dtype}")
        for net in (self.unet, self.vae, self.text_encoder):
            net.to(device=device)
            if dtype is not None:
                getattr(net, CASTS[dtype])()  # .half() etc.: .to(dtype) would warn about fp32 modules
        self._text.clear()
        return self

    # ---- images <-> latents ------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        """images (n, 3, H, W) in [0, 1] (or PIL, see images.to_image_tensor) -> x0 (n, 4, H/8, W/8).

        x0 = scaling_factor * a sample of the VAE posterior (drawn with ``generator``, on the model's device).
        """
        x = to_image_tensor(images, multiple=self.pixels_per_latent).to(self.device, self.dtype)
        posterior = self.vae.encode(2 * x - 1).latent_dist
        return (posterior.sample(generator) * self.scaling_factor).to(self.latent_dtype)

    @torch.no_grad()
    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """x0 (n, 4, h, w) -> images (n, 3, 8h, 8w) in [0, 1] on x0's device and dtype (decoder output clipped)."""
        images = self.vae.decode(x0.to(self.device, self.dtype) / self.scaling_factor).sample
        return ((images + 1) / 2).clamp(0, 1).to(x0.device, x0.dtype)

    # ---- noise prediction --------------------------------------------------------------------------
    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        """CLIP last hidden state of the prompt padded to the tokenizer's length: (1, 77, d), cached."""
        if prompt not in self._text:
            ids = self.tokenizer([prompt], padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            self._text[prompt] = self.text_encoder(ids.to(self.device))[0].to(self.dtype)
        return self._text[prompt]

    def condition(self, prompt: str | None, n: int) -> torch.Tensor:
        """The CLIP embedding of the prompt ("" for None, the unconditional prompt) for n samples: (n, 77, d)."""
        return self.text_embedding("" if prompt is None else prompt).expand(n, -1, -1)

    def network(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The UNet's eps for latents x (n, 4, h, w) at t (n,) under text states (n, 77, d)."""
        return self.unet(x, t, encoder_hidden_states=condition).sample

    def latent_shape(self, n: int) -> tuple[int, ...]:
        size = self.unet.config.sample_size
        return (n, self.unet.config.in_channels, size, size)

    def save_pretrained(self, path) -> None:
        """Write the diffusers layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/, model_index.json),
        readable by ``load_stable_diffusion`` and by diffusers' StableDiffusionPipeline.from_pretrained."""
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
                                       unet=self.unet, scheduler=self.scheduler, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
        pipe.save_pretrained(path, safe_serialization=True)


# ---- loading ---------------------------------------------------------------------------------------
CONFIGS = ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
           "scheduler/scheduler_config.json", "tokenizer/*")
WEIGHTS = {None: ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                  "text_encoder/model.safetensors"),
           "fp16": ("unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
                    "text_encoder/model.fp16.safetensors")}  # the hub's half-size variant of the same weights


def _source(model_id_or_path) -> str:
    """A local folder in the diffusers layout, or else a hub id 'owner/name'; a clear error otherwise."""
    text = str(model_id_or_path)
    path = Path(text).expanduser()
    if path.exists():
        missing = [s for s in SUBFOLDERS if not (path / s).is_dir()]
        if missing:
            raise ValueError(f"model_id_or_path={text!r} is not a Stable Diffusion folder: it lacks {missing}; "
                             f"expected the subfolders {list(SUBFOLDERS)} that save_pretrained writes")
        return str(path)
    if isinstance(model_id_or_path, Path) or text.startswith(("/", ".", "~")) or text.count("/") != 1 or "\\" in text:
        raise ValueError(f"model_id_or_path={text!r}: no such folder; give a folder written by save_pretrained "
                         f"or a hub id 'owner/name' such as {SD15!r}")
    return text


def _has(folder: Path, variant: str | None) -> bool:
    return all((folder / f).is_file() for f in WEIGHTS[variant])


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as the environment says now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _download(repo_id: str, half: bool) -> Path:
    """The hub model's configs and safetensors weights in the local cache (only what sdelab loads, not the repo's
    checkpoints): the fp16 variant first when ``half`` (half the download), else or failing that the full weights.
    The cache is tried first, without the network; offline, a model not in the cache fails at once."""
    from huggingface_hub import snapshot_download

    variants = ("fp16", None) if half else (None,)
    for local_only in (True, False):
        if not local_only and hub_offline():
            break
        for variant in variants:
            try:
                folder = Path(snapshot_download(repo_id, allow_patterns=[*CONFIGS, *WEIGHTS[variant]],
                                                local_files_only=local_only))
            except Exception as err:  # noqa: BLE001 - any hub failure: try the next way, then one clear error
                last = err
                continue
            if _has(folder, variant):
                return folder
            last = FileNotFoundError(f"{repo_id} has no {variant or 'full'} safetensors weights for "
                                     f"{', '.join(WEIGHTS[variant])}")
    where = "it is not in the local cache and HF_HUB_OFFLINE is set" if hub_offline() else f"{last}"
    raise OSError(f"could not load Stable Diffusion {repo_id!r}: {where}. Download it where the Hugging Face hub is "
                  f"reachable (Colab, or `hf download {repo_id}`), or pass a local folder written by "
                  "save_pretrained; 'tiny' is the random-weight test model")


def load_stable_diffusion(model_id_or_path: str | Path = SD15, device=None,
                          dtype: torch.dtype | None = None) -> StableDiffusion:
    """Load SD (v1 family) from the hub or a local folder; safetensors only, no remote code.

    device None -> cuda if available else cpu; dtype None -> float16 on CUDA, float32 elsewhere (docs/conventions.md,
    "Precision"). In half precision the fp16 variant of the weights is taken where it exists. Only eps-prediction
    models are accepted (ValueError for v-prediction, such as SD 2.x at 768).
    """
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    half = dtype in (torch.float16, torch.bfloat16)
    source = _source(model_id_or_path)
    folder = Path(source) if Path(source).exists() else _download(source, half)
    variant = "fp16" if half and _has(folder, "fp16") else None
    scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    if scheduler.config.prediction_type != "epsilon":
        raise ValueError(f"model_id_or_path={str(model_id_or_path)!r} predicts {scheduler.config.prediction_type!r}; "
                         "sdelab's samplers (Eq. 6) take eps-prediction models only (SD 1.x, SD 2.x-base)")
    try:
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype, variant=variant,
                                                    use_safetensors=True)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, variant=variant,
                                            use_safetensors=True)
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=dtype, variant=variant,
                                                     use_safetensors=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    except OSError as err:
        raise OSError(f"could not load Stable Diffusion from {source!r} ({err}). Give a folder written by "
                      "save_pretrained, or 'tiny' for the random-weight test model") from err
    return StableDiffusion(unet, vae, text_encoder, tokenizer, scheduler, name=str(model_id_or_path)).to(device)


def load_stable_diffusion_or_tiny(model_id_or_path: str | Path = SD15, device=None, dtype: torch.dtype | None = None,
                                  fallback_to_tiny: bool = False) -> StableDiffusion:
    """The notebooks' and the CLI's loader: "tiny" -> ``tiny_stable_diffusion()``; else ``load_stable_diffusion``.

    fallback_to_tiny (for a smoke run that can do with random weights): a failed
    load falls back to the tiny RANDOM-weight model, with a warning; else the error says how to get the weights.
    """
    if str(model_id_or_path) == "tiny":
        return tiny_stable_diffusion(device=device or "cpu", dtype=dtype or torch.float32)
    try:
        return load_stable_diffusion(model_id_or_path, device, dtype)
    except OSError as err:
        if not fallback_to_tiny:
            raise
        warnings.warn(f"{err}\nFalling back to the tiny RANDOM-weight model; its pictures mean nothing.", stacklevel=2)
        return tiny_stable_diffusion(device=device or "cpu", dtype=dtype or torch.float32)


# ---- the tiny offline model ------------------------------------------------------------------------
def _byte_vocab() -> dict[str, int]:
    """A byte-level CLIP vocabulary without merges: the 256 byte symbols, each also with '</w>', and BOS/EOS."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]  # GPT-2's bytes_to_unicode
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}


def tiny_stable_diffusion(seed: int = 0, device="cpu", dtype: torch.dtype = torch.float32) -> StableDiffusion:
    """A random-weight SD of the same family, built offline: 64x64 images -> 4 x 8 x 8 latents (VAE factor 8),
    a cross-attention UNet, a 2-layer CLIP text encoder, a byte-level tokenizer (77 tokens), SD's schedule.
    Deterministic for a given seed (the global RNG is left untouched)."""
    vocab = _byte_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                    block_out_channels=(32, 64), norm_num_groups=8, cross_attention_dim=32,
                                    attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=64, layers_per_block=1,
                            block_out_channels=(8, 16, 16, 16), norm_num_groups=8, scaling_factor=0.18215,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"]))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    model = StableDiffusion(unet, vae, text_encoder, tokenizer, scheduler, name=f"tiny-random-sd(seed={seed})",
                            random_weights=True)
    return model.to(device, dtype)
