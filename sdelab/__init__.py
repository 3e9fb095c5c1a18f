"""sdelab: SDE beats ODE in diffusion-based image editing (Nie et al., ICLR 2024), reproduced and taught."""

from sdelab.sampling import (
                             cycle_noise,
                             cycle_sde_noises,
                             ddim_invert,
                             ddim_step,
                             denoise,
                             forward_chain,
                             probability_flow_heun,
                             reverse_sde_euler_maruyama,
)
from sdelab.schedules import VPSchedule, time_grid

__version__ = "0.1.0"

__all__ = ["VPSchedule", "time_grid", "ddim_step", "denoise", "forward_chain", "cycle_noise",
           "cycle_sde_noises", "ddim_invert", "reverse_sde_euler_maruyama", "probability_flow_heun"]
