"""Which tinygrad device minimac runs on, and a clear message when the CPU backend cannot work.

tinygrad picks METAL on a Mac, CUDA/NV/AMD where a GPU is present, and otherwise the CPU backend, which compiles
its kernels with `clang`. Without clang the first tensor operation dies deep inside a compile pool with
`FileNotFoundError: 'clang'`; `check_device()` says what is wrong and how to fix it instead.
`DEV=CPU|CUDA|METAL` chooses a device by hand.

    >>> check_device()   # doctest: +SKIP
    'CPU'
"""
from __future__ import annotations

import platform
import shutil


class BackendUnavailable(RuntimeError):
    """The chosen tinygrad backend cannot run on this machine (with the fix in the message)."""


def clang_install_hint() -> str:
    system = platform.system()
    if system == "Darwin":
        return "run `xcode-select --install` (or set DEV=METAL to use the GPU)"
    if shutil.which("apt-get"):
        return "run `sudo apt-get install -y clang` (Debian/Ubuntu)"
    if shutil.which("dnf"):
        return "run `sudo dnf install -y clang` (Fedora)"
    if shutil.which("pacman"):
        return "run `sudo pacman -S clang` (Arch)"
    return "install clang with your system's package manager"


def check_device() -> str:
    """Return tinygrad's default device name, raising `BackendUnavailable` if the CPU backend has no clang."""
    from tinygrad import Device

    device = Device.DEFAULT
    if device == "CPU" and shutil.which("clang") is None:
        raise BackendUnavailable(
            "tinygrad is using its CPU backend, which compiles kernels with clang, but `clang` is not on PATH. "
            f"To fix it, {clang_install_hint()}; or run on a GPU with DEV=CUDA / DEV=METAL.")
    return device
