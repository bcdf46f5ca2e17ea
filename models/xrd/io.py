"""Read and write powder patterns: PANalytical XRDML (all schema versions), two/three-column .xy,
Bruker .brml. This is THE reader module of labos: drivers and the analysis both use it.

Every problem with a file (missing, empty, truncated, no 2θ axis, counts that do not match the
positions) raises :class:`PatternFormatError` naming the file and the problem.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from labos.domain import CU_KA1, CU_KA2, XRDPattern
from labos.errors import LabosError

XRDML_NAMESPACE = "http://www.xrdml.com/XRDMeasurement/{version}"
XRDML_VERSION = "2.3"
XY_SUFFIXES = {".xy", ".xye", ".txt", ".dat", ".csv"}


class PatternFormatError(LabosError, ValueError):
    """A diffraction file that cannot be read (empty, truncated, or not the format it claims)."""


def read_pattern(path: str | Path) -> XRDPattern:
    """Read a pattern, choosing the format from the suffix (then from the content)."""
    path = Path(path)
    if not path.exists():
        raise PatternFormatError(f"{path}: no such file")
    if not path.is_file():
        raise PatternFormatError(f"{path}: not a file")
    data = path.read_bytes()
    if not data.strip():
        raise PatternFormatError(f"{path}: file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".xrdml" or (
            suffix not in XY_SUFFIXES | {".brml"} and data.lstrip()[:5] in (b"<?xml", b"\xef\xbb\xbf<?")
        ):
            pattern = _read_xrdml(data, path)
        elif suffix == ".brml" or data[:2] == b"PK":
            pattern = _read_brml(data, path)
        else:
            pattern = _read_xy(data, path)
    except PatternFormatError:
        raise
    except ValueError as exc:  # pydantic ValidationError of XRDPattern is a ValueError
        raise PatternFormatError(f"{path}: {_first_line(exc)}") from None
    pattern.metadata.setdefault("file", str(path))
    pattern.metadata.setdefault("sample_id", path.stem)
    return pattern


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(t.strip() for t in text[:3]) if text else type(exc).__name__


# --------------------------------------------------------------------------------------- XRDML
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(elem: ET.Element, name: str) -> ET.Element | None:
    for child in elem.iter():
        if _local(child.tag) == name:
            return child
    return None


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _floats(text: str | None, path: Path, what: str) -> np.ndarray:
    try:
        return np.array((text or "").split(), dtype=float)
    except ValueError:
        raise PatternFormatError(f"{path}: {what} contains a value that is not a number") from None


def _read_xrdml(data: bytes, path: Path) -> XRDPattern:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PatternFormatError(f"{path}: not well-formed XML (truncated file?): {exc}") from None
    if _local(root.tag) != "xrdMeasurements":
        raise PatternFormatError(f"{path}: root element is <{_local(root.tag)}>, not <xrdMeasurements>")
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    version = namespace.rsplit("/", 1)[-1] if namespace else "unknown"

    scans = [s for s in root.iter() if _local(s.tag) == "scan"]
    if not scans:
        raise PatternFormatError(f"{path}: XRDML file has no <scan> (measurement not completed?)")
    scan = scans[0]
    points = _find(scan, "dataPoints")
    if points is None:
        raise PatternFormatError(f"{path}: XRDML scan has no <dataPoints>")

    counts_el = next((c for c in points if _local(c.tag) in ("counts", "intensities")), None)
    if counts_el is None:
        raise PatternFormatError(f"{path}: XRDML dataPoints hold neither <counts> nor <intensities>")
    counts = _floats(counts_el.text, path, f"<{_local(counts_el.tag)}>")
    n = counts.size
    if n == 0:
        raise PatternFormatError(f"{path}: XRDML scan holds no data points")

    counting_time = None
    cct = _children(points, "commonCountingTime")
    if cct:
        times = _floats(cct[0].text, path, "<commonCountingTime>")
        counting_time = float(times[0]) if times.size else None
    if (counts_el.get("unit") or "").lower() == "cps" and counting_time:
        counts = counts * counting_time
    att = _children(points, "beamAttenuationFactors")
    if att:
        factors = _floats(att[0].text, path, "<beamAttenuationFactors>")
        if factors.size == n:
            counts = counts * factors
        elif factors.size == 1:
            counts = counts * factors[0]

    two_theta = None
    for pos in _children(points, "positions"):
        if pos.get("axis") not in ("2Theta", "2theta", "2-Theta"):
            continue
        listed = _children(pos, "listPositions")
        if listed:
            two_theta = _floats(listed[0].text, path, "<listPositions>")
        else:
            start, end = _children(pos, "startPosition"), _children(pos, "endPosition")
            common = _children(pos, "commonPosition")
            if start and end:
                two_theta = np.linspace(float(start[0].text), float(end[0].text), n)
            elif common:
                raise PatternFormatError(f"{path}: 2θ is fixed (a rocking curve or 2D frame), not a 2θ scan")
        break
    if two_theta is None:
        raise PatternFormatError(f"{path}: XRDML scan has no 2Theta positions")
    if two_theta.size != n:
        raise PatternFormatError(f"{path}: {two_theta.size} 2θ positions but {n} counts (truncated data?)")

    wavelengths, weights = [CU_KA1, CU_KA2], [1.0, 0.5]
    used = _find(root, "usedWavelength")
    if used is not None:
        ka1, ka2, ratio = (_find(used, t) for t in ("kAlpha1", "kAlpha2", "ratioKAlpha2KAlpha1"))
        if ka1 is not None:
            wavelengths, weights = [float(ka1.text)], [1.0]
            if ka2 is not None and ratio is not None and float(ratio.text) > 0:
                wavelengths.append(float(ka2.text))
                weights.append(float(ratio.text))

    sample = _find(root, "sample")
    sample_id = None
    if sample is not None:
        sid = _find(sample, "id")
        sample_id = (sid.text or "").strip() if sid is not None else None
    metadata = {"format": "xrdml", "xrdml_version": version, "scans": len(scans)}
    if sample_id:
        metadata["sample_id"] = sample_id
    radius = _find(root, "radius")
    if radius is not None and radius.text:
        metadata["goniometer_radius_mm"] = float(radius.text)
    return XRDPattern(
        two_theta=two_theta.tolist(),
        counts=counts.tolist(),
        wavelengths=wavelengths,
        wavelength_weights=weights,
        counting_time_s=counting_time,
        metadata=metadata,
    )


def write_xrdml(pattern: XRDPattern, path: str | Path, *, sample_id: str | None = None) -> Path:
    """Write ``pattern`` as an XRDML 2.3 file like the ones an Aeris drops (counts, start/end positions
    when the steps are even, list positions otherwise)."""
    path = Path(path)
    ns = XRDML_NAMESPACE.format(version=XRDML_VERSION)
    ET.register_namespace("", ns)
    q = lambda tag: f"{{{ns}}}{tag}"  # noqa: E731
    root = ET.Element(q("xrdMeasurements"), {"status": "Completed"})
    sample = ET.SubElement(root, q("sample"), {"type": "To be analyzed"})
    sid = sample_id or str(pattern.metadata.get("sample_id", path.stem))
    ET.SubElement(sample, q("id")).text = sid
    ET.SubElement(sample, q("name")).text = sid
    meas = ET.SubElement(root, q("xrdMeasurement"), {"measurementType": "Scan", "status": "Completed"})
    used = ET.SubElement(meas, q("usedWavelength"), {"intended": "K-Alpha 1"})
    ET.SubElement(used, q("kAlpha1"), {"unit": "Angstrom"}).text = f"{pattern.wavelengths[0]:.7f}"
    if len(pattern.wavelengths) > 1:
        ET.SubElement(used, q("kAlpha2"), {"unit": "Angstrom"}).text = f"{pattern.wavelengths[1]:.7f}"
        ratio = pattern.wavelength_weights[1] / pattern.wavelength_weights[0]
        ET.SubElement(used, q("ratioKAlpha2KAlpha1")).text = f"{ratio:.4f}"
    if "goniometer_radius_mm" in pattern.metadata:
        beam = ET.SubElement(meas, q("incidentBeamPath"))
        ET.SubElement(
            beam, q("radius"), {"unit": "mm"}
        ).text = f"{pattern.metadata['goniometer_radius_mm']:.2f}"
    scan = ET.SubElement(
        meas,
        q("scan"),
        {"appendNumber": "0", "mode": "Continuous", "scanAxis": "Gonio", "status": "Completed"},
    )
    points = ET.SubElement(scan, q("dataPoints"))
    x, y = pattern.x, pattern.y
    pos = ET.SubElement(points, q("positions"), {"axis": "2Theta", "unit": "deg"})
    steps = np.diff(x)
    if np.allclose(steps, steps.mean(), rtol=1e-6, atol=1e-9):
        ET.SubElement(pos, q("startPosition")).text = f"{x[0]:.8f}"
        ET.SubElement(pos, q("endPosition")).text = f"{x[-1]:.8f}"
    else:
        ET.SubElement(pos, q("listPositions")).text = " ".join(f"{v:.8f}" for v in x)
    if pattern.counting_time_s:
        ET.SubElement(
            points, q("commonCountingTime"), {"unit": "seconds"}
        ).text = f"{pattern.counting_time_s:.3f}"
    integral = np.allclose(y, np.round(y))
    text = " ".join(str(int(round(v))) if integral else f"{v:.6g}" for v in y)
    ET.SubElement(points, q("counts"), {"unit": "counts"}).text = text
    tree = ET.ElementTree(root)
    ET.indent(tree, space="\t")
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


# ------------------------------------------------------------------------------------------ .xy
def _read_xy(data: bytes, path: Path) -> XRDPattern:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PatternFormatError(f"{path}: not a text file (expected 2θ/intensity columns)") from None
    rows: list[list[float]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;!'\"/%":
            continue
        parts = line.replace(",", " ").split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            if rows:  # text after data started: a corrupt row
                raise PatternFormatError(f"{path}: line {lineno} is not numeric: {line[:40]!r}") from None
            continue  # a header line
        if len(values) not in (2, 3):
            raise PatternFormatError(
                f"{path}: line {lineno} has {len(values)} columns; expected 2θ, intensity[, esd]"
            )
        rows.append(values[:2])
    if not rows:
        raise PatternFormatError(f"{path}: no numeric 2θ/intensity rows")
    arr = np.asarray(rows)
    return XRDPattern(two_theta=arr[:, 0].tolist(), counts=arr[:, 1].tolist(), metadata={"format": "xy"})


# ---------------------------------------------------------------------------------------- .brml
def _read_brml(data: bytes, path: Path) -> XRDPattern:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PatternFormatError(f"{path}: not a Bruker .brml (ZIP) archive, or truncated") from None
    names = sorted(n for n in archive.namelist() if n.lower().endswith(".xml") and "rawdata" in n.lower())
    if not names:
        raise PatternFormatError(f"{path}: .brml archive has no Experiment*/RawData*.xml")
    try:
        root = ET.fromstring(archive.read(names[0]))
    except (ET.ParseError, zipfile.BadZipFile, OSError) as exc:
        raise PatternFormatError(f"{path}: {names[0]} cannot be read: {exc}") from None
    rows = []
    for datum in root.iter():
        if _local(datum.tag) == "Datum" and datum.text:
            try:
                rows.append([float(v) for v in datum.text.split(",")])
            except ValueError:
                raise PatternFormatError(f"{path}: <Datum> row {datum.text[:40]!r} is not numeric") from None
    if not rows:
        raise PatternFormatError(f"{path}: {names[0]} holds no <Datum> rows")
    width = min(len(r) for r in rows)
    arr = np.asarray([r[:width] for r in rows])
    # Rows are "time, (flag), 2θ, θ, ..., counts"; find the 2θ column as the one that is twice the next.
    tt_col = None
    for c in range(width - 1):
        a, b = arr[:, c], arr[:, c + 1]
        if np.all(np.diff(a) > 0) and np.allclose(a, 2 * b, rtol=1e-3, atol=1e-3):
            tt_col = c
            break
    if tt_col is None:
        tt_col = 2 if width >= 4 else 0
    counts = arr[:, -1]
    step_time = float(np.median(arr[:, 0])) if tt_col > 0 and width >= 4 else None
    wavelengths, weights = [CU_KA1, CU_KA2], [1.0, 0.5]
    found: dict[str, float] = {}
    for el in root.iter():
        name = _local(el.tag)
        if name in ("WaveLengthAlpha1", "WaveLengthAlpha2", "WaveLengthRatio") and el.get("Value"):
            found.setdefault(name, float(el.get("Value")))
    if "WaveLengthAlpha1" in found:
        wavelengths, weights = [found["WaveLengthAlpha1"]], [1.0]
        if found.get("WaveLengthAlpha2") and found.get("WaveLengthRatio", 0) > 0:
            wavelengths.append(found["WaveLengthAlpha2"])
            weights.append(found["WaveLengthRatio"])
    return XRDPattern(
        two_theta=arr[:, tt_col].tolist(),
        counts=counts.tolist(),
        wavelengths=wavelengths,
        wavelength_weights=weights,
        counting_time_s=step_time,
        metadata={"format": "brml", "raw_file": names[0]},
    )
