"""Feature SQL helpers."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from safellm.data.features import time_value_key


def test_time_value_key_orders_like_the_time_value_pair() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    # few distinct times, so that many rows tie on time; values of both signs and all magnitudes
    times = rng.integers(0, 50, n)
    values = rng.choice([-1e9, -3.5, -1e-9, 0.0, 1e-9, 0.5, 7.4, 7.41, 1e12], n) * rng.choice(
        [1, 1, 0.999], n
    )
    frame = pd.DataFrame(
        {
            "g": np.arange(n) % 300,
            "t": pd.Timestamp("2150-01-01") + pd.to_timedelta(times, unit="min"),
            "v": values,
        }
    )
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute("CREATE TABLE r AS SELECT * FROM frame")
    key = time_value_key("t", "v")
    by_key = con.execute(f"SELECT t, v FROM r ORDER BY {key}").fetchall()
    by_pair = con.execute("SELECT t, v FROM r ORDER BY t, v").fetchall()
    assert by_key == by_pair
    # per group: the value at the latest time, ties towards the larger value
    got = con.execute(f"SELECT g, arg_max(v, {key}) FROM r GROUP BY g ORDER BY g").fetchall()
    want = con.execute(
        "SELECT g, max(v) FROM r WHERE (g, t) IN (SELECT (g, max(t)) FROM r GROUP BY g) "
        "GROUP BY g ORDER BY g"
    ).fetchall()
    assert got == want and len(got) == 300
