"""pyexec.pool routing: which pool's jail a script gets (no jail is started here)."""

from __future__ import annotations

import pytest

from pyexec.cgroups import CgroupSupport
from pyexec.pool import CHART_MODULE, JailPools
from pyexec.settings import load_settings


@pytest.fixture
def pools() -> JailPools:
    return JailPools(load_settings({}), CgroupSupport.__new__(CgroupSupport))


@pytest.mark.parametrize(
    ("script", "pool"),
    [
        pytest.param("def main():\n    return 1\n", "light", id="plain"),
        pytest.param("import pandas as pd\n", "heavy", id="pandas"),
        pytest.param("import numpy\n", "heavy", id="numpy"),
        pytest.param("import matplotlib.pyplot as plt\n", "chart", id="pyplot"),
        pytest.param("import pandas\nimport matplotlib\n", "chart", id="pandas and a chart"),
        pytest.param("x = 'mymatplotlibx'\n", "light", id="a longer word"),
    ],
)
def test_a_script_goes_to_the_pool_of_what_it_names(
    pools: JailPools, script: str, pool: str
) -> None:
    assert pools.pool_for(script).name == pool


def test_chart_jails_import_the_heavy_modules_and_pyplot(pools: JailPools) -> None:
    assert pools.chart.preimport == f"numpy,pandas,{CHART_MODULE}"
    assert pools.heavy.preimport == "numpy,pandas"
    assert pools.light.preimport == ""


def test_pool_sizes_come_from_the_settings_and_zero_turns_all_off() -> None:
    cgroups = CgroupSupport.__new__(CgroupSupport)
    pools = JailPools(load_settings({"PYEXEC_CHART_POOL_SIZE": "3"}), cgroups)
    assert (pools.light.size, pools.heavy.size, pools.chart.size) == (6, 2, 3)
    off = JailPools(load_settings({"PYEXEC_POOL_SIZE": "0"}), cgroups)
    assert (off.light.size, off.heavy.size, off.chart.size) == (0, 0, 0)
    assert off.idle_counts() == {"light": 0, "heavy": 0, "chart": 0}
