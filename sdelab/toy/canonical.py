"""The toy experiment's canonical setup as plain numbers (no torch), fixed so that figures are comparable.

The paper's toy experiment is a binary 1-D Gaussian mixture q_0 sampled from mismatched priors; it
publishes no parameters, so sdelab defines them here (docs/conventions.md):
q_0 = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2), and three mismatched ("edited") 1-D Gaussian priors at t0.
"""

# q_0: weights, means, standard deviations of the binary 1-D mixture
BIMODAL_1D = {"weights": (0.5, 0.5), "means": (-2.0, 2.0), "stds": (0.5, 0.5)}

# name -> (mean, std) of a 1-D Gaussian prior at t0
PRIORS_1D = {
    "shifted": (1.0, 1.0),
    "narrow": (0.0, 0.5),
    "skewed": (0.7, 0.8),
}
