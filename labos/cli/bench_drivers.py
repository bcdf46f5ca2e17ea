"""``labos bench drivers``: driver round trip vs the raw pty/TCP round trip, per protocol."""

from __future__ import annotations

import importlib.util

import typer

from labos.cli.bench import bench_app
from labos.cli.common import emit_json, fail


@bench_app.command("drivers")
def bench_drivers(
    n: int = typer.Option(200, min=1, help="round trips per protocol and per side"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Median latency of each driver call against the bare link to the same emulator.

    Target: the driver adds at most 2x the raw round trip (``overhead_ratio`` <= 2).
    """
    from labos.drivers.benchmarks_serial import measure_serial_protocols

    try:
        results = measure_serial_protocols(n)
        if importlib.util.find_spec("labos.drivers.benchmarks_net") is not None:
            from labos.drivers.benchmarks_net import measure_network_protocols

            results.update(measure_network_protocols(n))
    except (OSError, TimeoutError) as exc:
        fail(f"driver benchmark could not run: {exc}")
        return
    report = {
        "benchmark": "drivers",
        "n": n,
        "target_overhead_ratio": 2.0,
        "protocols": results,
        "all_within_target": all(r.get("within_target", False) for r in results.values()),
    }
    if json_out:
        emit_json(report)
        return
    for name, r in results.items():
        typer.echo(
            f"{name:16s} driver {r['driver_us']:9.1f} us  raw {r['raw_us']:9.1f} us  "
            f"overhead x{r['overhead_ratio']:.2f}  {'ok' if r['within_target'] else 'OVER TARGET'}"
        )
