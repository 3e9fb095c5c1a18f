"""Shared test setup: the device under test, one torch thread per pytest worker, common fixtures."""

import os

import pytest
import torch

from sdelab.schedules import VPSchedule

# benchmarks/gpu_check.py reruns the model tests with SDELAB_TEST_DEVICE=cuda
DEVICE = os.environ.get("SDELAB_TEST_DEVICE", "cpu")
if DEVICE.startswith("cuda"):  # TF32 convolutions would blur the float32 exactness the tests check
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny tensors: one torch thread is as fast, and does not fight pytest-xdist's other worker for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sd_schedule():
    return VPSchedule.stable_diffusion()


@pytest.fixture(scope="session")
def linear_schedule():
    return VPSchedule.linear()


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
