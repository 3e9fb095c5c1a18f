"""The models the commands load by name (``--model``): one rule for ``drag``, ``bench`` and ``bench-metrics``.

- ``tiny``: the random-weight Stable Diffusion for tests (offline; its pictures mean nothing);
- a pixel model shipped in the package (``sdelab.models.pixel.shipped()``: digits, digits_cond, shapes) or a
  folder written by ``PixelDiffusion.save_pretrained``: ``load_pixel_model``;
- else a Stable Diffusion hub id 'owner/name' or a folder written by its ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path


def load_model(name: str, device=None):
    """The model called ``name`` on ``device`` (None: the loader's default); ValueError naming ``model`` for a name
    that is none of the above, OSError for Stable Diffusion weights that cannot be had."""
    from sdelab.models.pixel import CONFIG_NAME, load_pixel_model, shipped
    from sdelab.models.stable_diffusion import load_stable_diffusion_or_tiny

    path = Path(name).expanduser()
    if name in shipped() or (path / CONFIG_NAME).is_file():
        return load_pixel_model(path if path.is_dir() else name, device=device)
    if name != "tiny" and not path.exists() and name.count("/") != 1:
        raise ValueError(f"model must be 'tiny', a shipped pixel model {shipped()}, a model folder or a hub id "
                         f"'owner/name', got {name!r}")
    return load_stable_diffusion_or_tiny(name, device=device)
