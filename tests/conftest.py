import pytest
import torch

from sdelab.schedules import VPSchedule


@pytest.fixture(scope="session")
def sd_schedule():
    return VPSchedule.stable_diffusion()


@pytest.fixture(scope="session")
def linear_schedule():
    return VPSchedule.linear()


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
