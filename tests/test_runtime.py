"""Device choice, seeding and the scale preset."""
import pytest
import torch

from sigprop import runtime


def test_scale_defaults_to_small_on_cpu_and_env_overrides(monkeypatch):
    monkeypatch.delenv("SIGPROP_SCALE", raising=False)
    monkeypatch.setenv("SIGPROP_DEVICE", "cpu")
    assert runtime.scale() == "small"
    monkeypatch.setenv("SIGPROP_SCALE", "paper")
    assert runtime.scale() == "paper"
    assert runtime.pick({"small": 1, "paper": 2}) == 2
    monkeypatch.setenv("SIGPROP_SCALE", "huge")
    with pytest.raises(ValueError, match="scale must be one of"):
        runtime.scale()


def test_pick_requires_the_active_preset():
    with pytest.raises(ValueError, match="options must define"):
        runtime.pick({"paper": 1}, preset="small")


def test_generator_is_deterministic_and_validates_seed():
    a = torch.randn(5, generator=runtime.generator(3, "cpu"))
    b = torch.randn(5, generator=runtime.generator(3, "cpu"))
    assert torch.equal(a, b)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be"):
            runtime.generator(bad, "cpu")
    with pytest.raises(ValueError, match="seed must be"):
        runtime.seed_everything(-3)


def test_device_rejects_unknown_and_unavailable_devices(monkeypatch):
    monkeypatch.delenv("SIGPROP_DEVICE", raising=False)
    with pytest.raises(ValueError, match="device must be"):
        runtime.device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            runtime.device("cuda")
    assert runtime.device("cpu").type == "cpu"
    assert set(runtime.describe()) >= {"device", "scale", "torch", "threads"}


def test_medium_preset_falls_back_to_small_where_a_chapter_gives_no_medium_size():
    assert runtime.pick({"small": 1, "medium": 2, "paper": 3}, preset="medium") == 2
    assert runtime.pick({"small": 1, "paper": 3}, preset="medium") == 1
    with pytest.raises(ValueError, match="options must define"):
        runtime.pick({"paper": 3}, preset="medium")
