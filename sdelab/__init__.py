"""sdelab: SDE beats ODE in diffusion-based image editing (Nie et al., ICLR 2024), reproduced and taught."""

from sdelab._lazy import lazy_exports

__version__ = "0.1.0"

_SAMPLING = ("add_noise", "ddim_step", "denoise", "forward_chain", "cycle_noise", "cycle_sde_noises",
             "ddim_invert", "reverse_sde_euler_maruyama", "probability_flow_heun", "FreshNoise", "StoredNoise",
             "CycleNoise")
__all__ = ["SAMPLERS", "VPSchedule", "time_grid", *_SAMPLING]
__getattr__, __dir__ = lazy_exports(__name__, {"SAMPLERS": "sdelab.samplers", "VPSchedule": "sdelab.schedules",
                                               "time_grid": "sdelab.schedules"}
                                    | dict.fromkeys(_SAMPLING, "sdelab.sampling"))
