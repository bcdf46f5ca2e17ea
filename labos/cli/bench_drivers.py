"""``labos bench drivers``: driver round trip vs the raw pty/TCP round trip, per protocol."""

from __future__ import annotations

import typer

from labos.cli.bench import bench_app
from labos.cli.common import emit_json, fail


@bench_app.command("drivers")
def bench_drivers(
    n: int = typer.Option(200, min=1, help="round trips per protocol and per side"),
    protocol: list[str] = typer.Option(None, "--protocol", "-p", help="only these (repeatable)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Median latency of each driver call against the bare link to the same emulator.

    Target: the driver adds at most 2x the raw round trip, read as added time <= 2x raw
    (``overhead_ratio`` = (driver - raw) / raw <= 2, i.e. ``ratio`` = driver / raw <= 3).
    """
    from labos.drivers.benchmarks import TARGET_OVERHEAD_RATIO, TARGET_READING, measure_protocols

    try:
        results = measure_protocols(n, protocol or None)
    except ValueError as exc:
        fail(str(exc))
        return
    except (OSError, TimeoutError) as exc:
        fail(f"driver benchmark could not run: {exc}")
        return
    report = {
        "benchmark": "drivers",
        "n": n,
        "target": {"reading": TARGET_READING, "max_overhead_ratio": TARGET_OVERHEAD_RATIO},
        "protocols": results,
        "all_within_target": all(r["within_target"] for r in results.values()),
    }
    if json_out:
        emit_json(report)
        return
    for name, r in results.items():
        typer.echo(
            f"{name:16s} driver {r['driver_us']:9.1f} us  raw {r['raw_us']:9.1f} us  "
            f"ratio x{r['ratio']:.2f}  added x{r['overhead_ratio']:.2f}  "
            f"{'ok' if r['within_target'] else 'OVER TARGET'}"
        )
