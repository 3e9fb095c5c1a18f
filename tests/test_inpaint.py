"""sdelab.edit.inpaint: the known region, what eta changes, agreement with diffusers' inpainting pipeline."""

import pytest
import torch
from conftest import DEVICE
from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline

from sdelab.data.digits import digits_dataset
from sdelab.edit.inpaint import dpm_solver_pipeline, inpaint, inpaint_dpm_solver, inpaint_latents, known_region
from sdelab.models import load_digits_model, tiny_stable_diffusion
from sdelab.models.images import load_mask
from sdelab.samplers import SAMPLERS
from sdelab.schedules import time_grid


@pytest.fixture(scope="module")
def digits():
    return load_digits_model(device=DEVICE)


@pytest.fixture(scope="module")
def sd():
    return tiny_stable_diffusion(device=DEVICE)


def _hole():
    mask = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    mask[..., 4:11, 3:12] = True  # 63 of 256 pixels to fill
    return mask


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_known_region_equals_the_input_at_the_end(digits, eta):
    x0 = digits.encode(digits_dataset(split="test")[:4])
    mask = _hole().to(x0.device)
    gen = torch.Generator(device=x0.device).manual_seed(0)
    out = inpaint_latents(digits, x0, mask, eta=eta, grid=time_grid(digits.schedule, 10), generator=gen)
    assert torch.equal(out[~mask.expand_as(out)], x0[~mask.expand_as(x0)])
    assert (out - x0)[mask.expand_as(out)].abs().mean() > 0.05  # the hole was sampled, not copied


def test_known_region_is_the_input_noised_with_one_draw(digits, gen):
    x0 = digits.encode(digits_dataset(split="test")[:2])
    grid = time_grid(digits.schedule, 5)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    known = known_region(digits, x0, grid, noise)
    alpha, sigma = digits.schedule.alpha(grid).float(), digits.schedule.sigma(grid).float()
    for i in range(len(grid) - 1):  # every level uses the same noise: (x_t - alpha x0) / sigma is that noise
        assert torch.allclose((known[i] - alpha[i] * x0) / sigma[i], noise, atol=1e-4)
    assert known[-1] is x0


def test_eta_changes_only_the_noise(digits):
    x0 = digits.encode(digits_dataset(split="test")[:3])
    mask, grid = _hole().to(x0.device), time_grid(digits.schedule, 8)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5)).to(x0.device)

    def run(eta, seed):
        gen = torch.Generator(device=x0.device).manual_seed(seed)
        return inpaint_latents(digits, x0, mask, eta=eta, grid=grid, noise=noise, generator=gen)

    assert torch.equal(run(0.0, 1), run(0.0, 2))  # ODE: the fixed noise decides everything
    assert not torch.allclose(run(1.0, 1), run(1.0, 2))  # SDE: fresh noise at every step
    assert torch.equal(run(1.0, 1), run(1.0, 1))
    nothing = torch.zeros_like(mask)  # nothing to fill: both samplers return the input exactly
    for eta in (0.0, 1.0):
        assert torch.equal(inpaint_latents(digits, x0, nothing, eta=eta, grid=grid, noise=noise), x0)


@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_ode_equals_diffusers_inpainting_pipeline(sd, guidance):
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[16:40, 8:48] = True  # whole 8 x 8 blocks: diffusers' and our mask resizing agree
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    pipe = StableDiffusionInpaintPipeline(vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                                          unet=sd.unet, scheduler=DDIMScheduler.from_config(sd.scheduler.config),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompt="a red square", image=image, mask_image=mask[None, None].float(), height=64, width=64,
                  num_inference_steps=10, guidance_scale=guidance, latents=latents, output_type="latent",
                  generator=torch.Generator(device=DEVICE).manual_seed(0)).images
    grid = torch.cat([pipe.scheduler.timesteps.cpu(), torch.tensor([0])])  # 901, 801, ..., 1, then alphas_cumprod[0]
    x0 = sd.encode(image, generator=torch.Generator(device=DEVICE).manual_seed(0))  # the pipeline's VAE sample
    ours = inpaint_latents(sd, x0, load_mask(mask, (8, 8)), eta=0.0, grid=grid, prompt="a red square",
                           guidance=guidance, noise=latents)
    scale = theirs.abs().max()
    assert (ours - theirs).abs().max() <= 1e-5 * scale


def test_inpaint_on_images_and_bad_input(digits):
    images = digits_dataset(split="test")[:2]
    mask = _hole()[0, 0]
    out = inpaint(digits, images, mask, eta=1.0, steps=4, seed=3, progress=False)
    assert out.shape == (2, 1, 16, 16) and 0 <= out.min() and out.max() <= 1
    assert torch.allclose(out[:, :, ~mask], images[:, :, ~mask].to(out.device), atol=1e-6)
    with pytest.raises(ValueError, match="mask must have the image's size"):
        inpaint(digits, images, torch.zeros(8, 8, dtype=torch.bool), eta=0.0, steps=4)
    with pytest.raises(ValueError, match="eta must lie in"):
        inpaint(digits, images, mask, eta=1.5, steps=4)
    with pytest.raises(ValueError, match="prompt must be None"):
        inpaint(digits, images, mask, eta=0.0, steps=4, prompt="3")
    with pytest.raises(ValueError, match="steps"):
        inpaint(digits, images, mask, eta=0.0, steps=0)


def test_the_papers_dpm_solver_path_runs(sd):
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[8:40, 8:40] = True
    for name, algorithm in (("ode", "dpmsolver++"), ("sde", "sde-dpmsolver++")):
        pipe = dpm_solver_pipeline(sd, name)
        assert pipe.scheduler.config.algorithm_type == algorithm and pipe.scheduler.config.solver_order == 1
        assert dpm_solver_pipeline(sd, SAMPLERS[name]).scheduler.config.algorithm_type == algorithm  # or the Sampler
    ode = [inpaint_dpm_solver(sd, image, mask, "a cat", sampler="ode", steps=4, seed=s, progress=False)
           for s in (0, 0)]
    sde = [inpaint_dpm_solver(sd, image, mask, "a cat", sampler="sde", steps=4, seed=s, progress=False)
           for s in (0, 1)]
    assert ode[0].shape == (1, 3, 64, 64) and 0 <= ode[0].min() and ode[0].max() <= 1
    assert torch.equal(ode[0], ode[1]) and not torch.equal(sde[0], sde[1])
    with pytest.raises(ValueError, match="sampler must be one of"):
        inpaint_dpm_solver(sd, image, mask, sampler="cycle-sde")
    with pytest.raises(ValueError, match="mask must have the image's size"):
        inpaint_dpm_solver(sd, image, torch.zeros(32, 32, dtype=torch.bool))
