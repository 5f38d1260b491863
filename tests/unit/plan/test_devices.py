from __future__ import annotations

import pytest

from harness.plan.devices import list_devices, missing_devices, validate_device_string


@pytest.mark.parametrize("d", ["CPU", "GPU", "GPU.1", "NPU", "AUTO", "AUTO:GPU,CPU", "HETERO:GPU,CPU", "MULTI:CPU"])
def test_valid_device_strings(d):
    validate_device_string(d)


@pytest.mark.parametrize("d", ["cpu", "TPU", "HETERO", "HETERO:", "AUTO:TPU", "GPU:0", ""])
def test_invalid_device_strings(d):
    with pytest.raises(ValueError):
        validate_device_string(d)


def test_missing_devices_logic():
    avail = ["CPU"]
    assert missing_devices("CPU", avail) == []
    assert missing_devices("GPU", avail) == ["GPU"]
    assert missing_devices("GPU.1", ["CPU", "GPU.0"]) == ["GPU.1"]
    assert missing_devices("GPU", ["CPU", "GPU.0"]) == []
    assert missing_devices("AUTO", avail) == []
    assert missing_devices("AUTO:GPU,CPU", avail) == []
    assert missing_devices("AUTO:GPU,NPU", avail) == ["GPU", "NPU"]
    assert missing_devices("HETERO:CPU", avail) == []
    assert missing_devices("HETERO:GPU,CPU", avail) == ["GPU"]


def test_list_devices_has_cpu_with_full_name():
    devs = {d.name: d for d in list_devices()}
    assert "CPU" in devs
    assert devs["CPU"].full_name
