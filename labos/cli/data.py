"""``labos data``: fetch the public datasets labos uses into ``get_settings().datasets``.

Each dataset has its public source URL and the sha256 of the copy labos was developed against;
a download whose checksum differs is rejected (and not installed). Offline, the command fails
with a message naming the URL; ``--from DIR`` installs from a local copy instead (checked the same
way), e.g. a mirror on a machine without internet.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import typer

from labos.cli.common import console, emit_json, fail

app = typer.Typer(no_args_is_help=True, help="Public datasets: list and fetch them.")


@dataclass(frozen=True)
class Dataset:
    path: str  # relative to get_settings().datasets
    url: str
    sha256: str
    size: int
    description: str
    licence: str


DATASETS: dict[str, Dataset] = {
    "mp-summary": Dataset(
        "thermo/mp_materials_summary.csv",
        "https://raw.githubusercontent.com/google-deepmind/materials_discovery/main/data/mp_materials_summary.csv",
        "1a450664f5dff94678ce4d3f8752c746bd6008dad77361a07432caadcbc7216a",
        3_135_813,
        "31 840 Materials Project hull entries with MP2020-corrected energies, as published with GNoME",
        "data CC BY 4.0 (google-deepmind/materials_discovery)",
    ),
    "text-mined-synthesis": Dataset(
        "literature/solid-state_dataset_2019-12-03.json.xz",
        "https://raw.githubusercontent.com/CederGroupHub/text-mined-synthesis_public/master/"
        "solid-state_dataset_2019-12-03.json.xz",
        "7559aafabfbe6be5ceef5cfeb5cbf046ce95f10c1ae0b3536d4e5eb427777e94",
        3_391_040,
        "30 031 text-mined solid-state synthesis recipes (Kononova et al., Sci. Data 6, 203, 2019)",
        "CC BY 4.0",
    ),
    "ternary-oxides": Dataset(
        "literature/manually_curated_ternary_oxides.csv",
        "https://raw.githubusercontent.com/vchung1263/solid_state_synthesizability_public/main/"
        "manually_curated_ternary_oxides.csv",
        "1c97431617b7f30fba8792a61e19d4d8e8ffe321a6a4576b6c7c2e6dc5e6467c",
        752_619,
        "4 103 ternary oxides with manually checked solid-state synthesisability (Chung et al.)",
        "see vchung1263/solid_state_synthesizability_public",
    ),
    "oxide-melting-points": Dataset(
        "literature/binary_oxide_melting_points.csv",
        "https://raw.githubusercontent.com/vchung1263/solid_state_synthesizability_public/main/"
        "binary_oxide_melting_points.csv",
        "22698198ae45447500663667eed7202e5a08e0b4f87bc7cff71a5abc0a2abdc4",
        2_853,
        "melting points of 124 binary oxides, mostly from the CRC Handbook (Chung et al.)",
        "see vchung1263/solid_state_synthesizability_public",
    ),
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _status(ds: Dataset, root: Path) -> str:
    target = root / ds.path
    if not target.exists():
        return "missing"
    return "ok" if sha256_of(target) == ds.sha256 else "checksum differs"


def _download(url: str, dest: Path, timeout: float) -> None:
    import httpx

    from labos.errors import DataMissingError

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise DataMissingError(f"download of {url} failed: HTTP {resp.status_code}")
            with open(dest, "wb") as fh:
                for chunk in resp.iter_bytes(1 << 16):
                    fh.write(chunk)
    except httpx.HTTPError as exc:
        raise DataMissingError(
            f"cannot download {url} ({type(exc).__name__}: {exc}); are you offline? "
            "Copy the file from a machine with internet and use `labos data fetch --from DIR`"
        ) from None


def fetch_dataset(
    name: str, *, source_dir: Path | None = None, force: bool = False, timeout: float = 60.0
) -> Path:
    """Install one dataset under the datasets folder after checking its sha256; returns its path."""
    from labos.config import get_settings
    from labos.errors import DataMissingError, LabosError

    if name not in DATASETS:
        raise LabosError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    ds = DATASETS[name]
    target = get_settings().datasets / ds.path
    if target.exists() and not force and sha256_of(target) == ds.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        part = Path(tmp) / target.name
        if source_dir is not None:
            src = Path(source_dir) / ds.path
            if not src.exists():
                src = Path(source_dir) / Path(ds.path).name
            if not src.exists():
                raise DataMissingError(f"{name}: neither {Path(source_dir) / ds.path} nor {src} exists")
            shutil.copyfile(src, part)
            origin = str(src)
        else:
            _download(ds.url, part, timeout)
            origin = ds.url
        digest = sha256_of(part)
        if digest != ds.sha256:
            raise LabosError(
                f"{name}: checksum of {origin} is {digest}, expected {ds.sha256}; the file was not installed"
            )
        part.replace(target)
    return target


@app.command("list")
def list_datasets(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the datasets, where they go and whether they are installed."""
    from labos.config import get_settings

    root = get_settings().datasets
    rows = [
        {
            "name": n,
            "path": str(root / d.path),
            "status": _status(d, root),
            "url": d.url,
            "sha256": d.sha256,
            "size": d.size,
            "description": d.description,
            "licence": d.licence,
        }
        for n, d in DATASETS.items()
    ]
    if json_out:
        emit_json(rows)
        return
    for r in rows:
        console.print(f"{r['name']:<22} {r['status']:<17} {r['path']}")


@app.command("fetch")
def fetch(
    names: list[str] = typer.Argument(None, help="datasets to fetch (default: all)"),
    source_dir: Path = typer.Option(None, "--from", help="install from a local copy instead of the URL"),
    force: bool = typer.Option(False, "--force", help="fetch again even when installed"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Download public datasets (checksum-verified) into the datasets folder."""
    from labos.errors import LabosError

    results = []
    for name in names or list(DATASETS):
        try:
            path = fetch_dataset(name, source_dir=source_dir, force=force)
        except LabosError as exc:
            fail(str(exc))
        results.append({"name": name, "path": str(path), "sha256": DATASETS[name].sha256})
        if not json_out:
            console.print(f"{name}: {path}")
    if json_out:
        emit_json(results)
