"""Results users actually return, in a real jail: coerce_result for numpy and pandas
values, strict-mode hints that work when followed, limit errors that name the field,
GET /runtime and ModuleNotFoundError's pointer to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from pyexec.api import Service
from pyexec.errors import Unauthorized
from tests.support import Api, call, check_schema, wait_healthy

PANDAS_ROWS = [
    pytest.param(
        "pd.DataFrame({'a': [1, 2], 'b': [0.5, float('nan')]})",
        [{"a": 1, "b": 0.5}, {"a": 2, "b": None}],
        id="DataFrame with NaN",
    ),
    pytest.param(
        "pd.DataFrame({'v': [1]}, index=pd.Index(['x'], name='k'))",
        [{"k": "x", "v": 1}],
        id="DataFrame with a set index",
    ),
    pytest.param(
        "pd.DataFrame({'t': pd.to_datetime(['2026-01-02', None])})",
        [{"t": "2026-01-02T00:00:00"}, {"t": None}],
        id="DataFrame with Timestamp and NaT",
    ),
    pytest.param("pd.DataFrame({1: [1], 2: [2]})", [{"1": 1, "2": 2}], id="int column labels"),
    pytest.param("pd.Series([1.5, None])", [1.5, None], id="Series"),
    pytest.param("pd.Series([1, 2], index=['a', 'b'])", {"a": 1, "b": 2}, id="labelled Series"),
    pytest.param("pd.Timestamp('2026-11-27 23:49')", "2026-11-27T23:49:00", id="Timestamp"),
    pytest.param("pd.Timedelta(seconds=90)", 90.0, id="Timedelta"),
    pytest.param("[pd.NaT, pd.NA]", [None, None], id="NaT and NA"),
    pytest.param("np.datetime64('2026-01-02T03:04')", "2026-01-02T03:04", id="datetime64"),
    pytest.param(
        "np.array(['2026-01-02', 'NaT'], dtype='datetime64[D]')",
        ["2026-01-02", None],
        id="datetime64 array",
    ),
    pytest.param("np.timedelta64(1500, 'ms')", 1.5, id="timedelta64"),
    pytest.param("np.array([1.0, np.nan])", [1.0, None], id="array with NaN"),
    pytest.param("{np.int64(1): 'x'}", {"1": "x"}, id="numpy integer key"),
]


def _script(expression: str) -> str:
    return f"import numpy as np\nimport pandas as pd\ndef main():\n    return {expression}\n"


@pytest.mark.parametrize(("expression", "expected"), PANDAS_ROWS)
def test_coerce_result_converts_numpy_and_pandas_values(
    api: Api, expression: str, expected: Any
) -> None:
    status, body = api.post({"script": _script(expression), "coerce_result": True})
    assert status == 200, body
    assert body["result"] == expected


def test_duplicate_column_labels_are_refused_even_when_coercing(api: Api) -> None:
    expression = "pd.DataFrame([[1, 2]], columns=['a', 'a'])"
    status, body = api.post({"script": _script(expression), "coerce_result": True})
    assert (status, body["kind"]) == (400, "invalid_result")
    assert "'a'" in body["error"]


# (what the script returns, the line the hint offers, a fragment of the hint)
HINTS = [
    pytest.param(
        "pd.DataFrame({'a': [1, None], 't': pd.to_datetime(['2026-01-02', None])})",
        "json.loads(value.to_json(orient='records', date_format='iso'))",
        'to_json(orient="records", date_format="iso")',
        id="DataFrame",
    ),
    pytest.param(
        "pd.Series([1, None], index=[10, 20])",
        "json.loads(value.to_json(date_format='iso'))",
        'to_json(date_format="iso")',
        id="Series with int labels",
    ),
    pytest.param(
        "pd.Timestamp('2026-01-02')", "value.isoformat()", "value.isoformat()", id="Timestamp"
    ),
    pytest.param(
        "np.array(['2026-01-02'], dtype='datetime64[D]')",
        "np.datetime_as_string(value).tolist()",
        "datetime_as_string(value).tolist()",
        id="datetime64 array",
    ),
    pytest.param(
        "__import__('datetime').date(2026, 1, 2)",
        "value.isoformat()",
        "value.isoformat()",
        id="date",
    ),
    pytest.param(
        "__import__('decimal').Decimal('1.10')", "str(value)", "str(value)", id="Decimal"
    ),
    pytest.param(
        "b'\\x89PNG'",
        "__import__('base64').b64encode(value).decode()",
        "base64.b64encode(value).decode()",
        id="bytes",
    ),
    pytest.param("{1, 2}", "sorted(value)", "sorted(value)", id="set"),
    pytest.param("float('nan')", "None if math.isnan(value) else value", "math.isnan", id="NaN"),
]


@pytest.mark.parametrize(("expression", "fix", "fragment"), HINTS)
def test_each_strict_hint_names_the_returned_type_and_works_when_followed(
    api: Api, expression: str, fix: str, fragment: str
) -> None:
    status, body = api.post({"script": _script(expression)})
    assert (status, body["kind"]) == (400, "invalid_result")
    assert fragment in body["error"]
    assert '"coerce_result": true' in body["error"]
    assert "datetime.date" not in body.get("type", "") or "date" in expression
    followed = (
        "import json, math\nimport numpy as np\nimport pandas as pd\ndef main():\n"
        f"    value = {expression}\n    return {fix}\n"
    )
    status, body = api.post({"script": followed})
    assert status == 200, body
    status, coerced = api.post({"script": _script(expression), "coerce_result": True})
    assert status == 200, coerced


def test_the_numpy_datetime_array_hint_names_numpy_not_datetime(api: Api) -> None:
    expression = "np.array(['2026-01-02'], dtype='datetime64[D]')"
    status, body = api.post({"script": _script(expression)})
    assert status == 400
    assert body["type"] == "numpy.ndarray"


@pytest.mark.parametrize(
    ("script", "extra", "kind", "field", "advice"),
    [
        pytest.param(
            "import time\ndef main():\n    time.sleep(30)\n",
            {"timeout_seconds": 0.5},
            "timeout",
            "timeout_seconds",
            "Raise timeout_seconds, up to 60.",
            id="timeout",
        ),
        pytest.param(
            "def main():\n    while True:\n        pass\n",
            {"cpu_seconds": 1},
            "cpu_limit",
            "cpu_seconds",
            "Raise cpu_seconds, up to 60.",
            id="cpu",
        ),
        pytest.param(
            "def main():\n    hog = []\n    while True:\n        hog.append(bytearray(1 << 24))\n",
            {},
            "memory_limit",
            "memory_mb",
            "Raise memory_mb, up to 1024.",
            id="memory",
        ),
    ],
)
def test_limit_errors_name_the_field_and_its_maximum(
    api: Api, script: str, extra: dict[str, Any], kind: str, field: str, advice: str
) -> None:
    status, body = api.post({"script": script, **extra})
    assert (status, body["kind"]) == (400, kind)
    assert (body["field"], body["maximum"]) == (
        field,
        {"timeout_seconds": 60, "cpu_seconds": 60, "memory_mb": 1024}[field],
    )
    assert body["error"].endswith(advice)


def test_a_limit_already_at_its_maximum_says_so(make_service: Callable[..., Service]) -> None:
    service = make_service(
        PYEXEC_POOL_SIZE="0",
        PYEXEC_LIGHT_POOL_SIZE="0",
        PYEXEC_MAX_TIMEOUT="1",
        PYEXEC_TIMEOUT="1",
    )
    answer = call(
        service,
        {"script": "import time\ndef main():\n    time.sleep(30)\n", "timeout_seconds": 1},
    )
    assert (answer.status, answer.body["kind"]) == (400, "timeout")
    assert answer.body["error"].endswith(
        "The request already had this server's maximum timeout_seconds (1)."
    )


def test_runtime_says_what_the_jail_has(app_client: FlaskClient, service: Service) -> None:
    response = app_client.get("/runtime")
    assert response.status_code == 200
    body = response.get_json()
    check_schema(200, body, "runtime")
    names = {package["name"].lower() for package in body["packages"]}
    assert {"numpy", "pandas"} <= names
    assert body["python"].count(".") == 2
    assert body["preimported"] == ["numpy", "pandas"]
    assert body["limits"]["timeout_seconds"] == {
        "default": service.settings.timeout_seconds,
        "maximum": service.settings.max_timeout_seconds,
    }


def test_runtime_is_the_jail_s_python_not_the_service_s(api: Api, app_client: FlaskClient) -> None:
    status, body = api.post(
        {"script": "import platform\ndef main():\n    return platform.python_version()\n"}
    )
    assert status == 200
    assert app_client.get("/runtime").get_json()["python"] == body["result"]


def test_runtime_is_behind_the_api_key(make_service: Callable[..., Service]) -> None:
    service = make_service(
        PYEXEC_POOL_SIZE="0", PYEXEC_LIGHT_POOL_SIZE="0", PYEXEC_API_KEYS="k" * 20
    )
    wait_healthy(service)
    with flask.Flask(__name__).test_request_context("/runtime"), pytest.raises(Unauthorized):
        service.runtime(flask.request)
    with flask.Flask(__name__).test_request_context("/runtime", headers={"X-API-Key": "k" * 20}):
        assert service.runtime(flask.request).status == 200


def test_a_missing_module_is_named_and_points_at_runtime(api: Api) -> None:
    status, body = api.post({"script": "import no_such_thing\ndef main():\n    return 1\n"})
    assert (status, body["kind"]) == (400, "exception")
    assert body["module"] == "no_such_thing"
    assert "GET /runtime" in body["error"]
