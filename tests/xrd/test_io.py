"""Readers and writer of diffraction files, on the real files in ../shared/data/xrd and on bad input."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from labos.models.xrd.io import PatternFormatError, read_pattern, write_xrdml

from labos.domain import XRDPattern

XRDML_15 = """<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5" status="Completed">
  <sample type="To be analyzed"><id>old-one</id></sample>
  <xrdMeasurement measurementType="Scan" status="Completed">
    <usedWavelength intended="K-Alpha 1">
      <kAlpha1 unit="Angstrom">1.5405980</kAlpha1>
      <kAlpha2 unit="Angstrom">1.5444260</kAlpha2>
      <ratioKAlpha2KAlpha1>0.5000</ratioKAlpha2KAlpha1>
    </usedWavelength>
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <dataPoints>
        <positions axis="2Theta" unit="deg"><listPositions>{positions}</listPositions></positions>
        <commonCountingTime unit="seconds">2.0</commonCountingTime>
        <intensities unit="counts">{counts}</intensities>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
"""


def test_reads_real_aeris_xrdml(shared_data):
    path = shared_data("xrd/precursor_mixtures/TiO2_0p4009-ZnO_0p6010--8min.xrdml")
    p = read_pattern(path)
    assert len(p.two_theta) == 8282
    assert p.two_theta[0] == pytest.approx(10.00943322)
    assert p.two_theta[-1] == pytest.approx(99.99442286)
    assert p.counts[0] == 2174
    assert p.counting_time_s == pytest.approx(12.495)
    assert p.wavelengths == pytest.approx([1.540598, 1.544426])
    assert p.wavelength_weights == pytest.approx([1.0, 0.5])
    assert p.metadata["xrdml_version"] == "2.3"
    assert p.metadata["goniometer_radius_mm"] == 145.0


def test_reads_xrdml_2_2_and_xy(shared_data):
    p = read_pattern(shared_data("xrd/binary_reactions/CoO-ZnO_1100C_60min.xrdml"))
    assert p.metadata["xrdml_version"] == "2.2" and len(p.counts) == 8301
    xy = read_pattern(shared_data("xrd/autoanalyzer_example/spectra/MnO.xy"))
    assert len(xy.two_theta) == 9001 and xy.two_theta[0] == 10.0 and xy.counts[0] == 2001


def test_old_xrdml_with_list_positions_and_intensities(tmp_path):
    x = np.linspace(20, 30, 50)
    text = XRDML_15.format(positions=" ".join(f"{v:.4f}" for v in x), counts=" ".join(["7"] * 50))
    f = tmp_path / "old.xrdml"
    f.write_text(text)
    p = read_pattern(f)
    assert p.metadata["xrdml_version"] == "1.5"
    assert p.metadata["sample_id"] == "old-one"
    assert np.allclose(p.x, x, atol=1e-4) and p.counting_time_s == 2.0 and set(p.counts) == {7.0}


def test_write_then_read_round_trip(tmp_path):
    x = np.round(np.arange(10, 40, 0.02), 6)
    y = np.arange(x.size) % 17 + 3.0
    pattern = XRDPattern(two_theta=x.tolist(), counts=y.tolist(), counting_time_s=12.5)
    f = write_xrdml(pattern, tmp_path / "a" / "s1.xrdml", sample_id="s1")
    back = read_pattern(f)
    assert np.allclose(back.x, x, atol=1e-7)
    assert np.array_equal(back.y, y)
    assert back.metadata["sample_id"] == "s1" and back.counting_time_s == 12.5
    # uneven steps are written as listPositions
    x2 = np.sort(np.concatenate([x[:100], x[100:] + 0.005]))
    f2 = write_xrdml(XRDPattern(two_theta=x2.tolist(), counts=y.tolist()), tmp_path / "b.xrdml")
    assert "listPositions" in f2.read_text()
    assert np.allclose(read_pattern(f2).x, x2, atol=1e-7)


def _brml(rows: list[str]) -> bytes:
    raw = (
        '<?xml version="1.0"?><RawData><FixedInformation><Instrument><PrimaryTracks><TrackInfoData>'
        '<Tube><WaveLengthAlpha1 Value="1.5406"/><WaveLengthAlpha2 Value="1.54439"/>'
        '<WaveLengthRatio Value="0.5"/></Tube></TrackInfoData></PrimaryTracks></Instrument></FixedInformation>'
        "<DataRoutes><DataRoute>"
        + "".join(f"<Datum>{r}</Datum>" for r in rows)
        + "</DataRoute></DataRoutes></RawData>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("Experiment0/RawData0.xml", raw)
    return buf.getvalue()


def test_reads_bruker_brml(tmp_path):
    rows = [f"0.5,1,{10 + 0.02 * i:.4f},{(10 + 0.02 * i) / 2:.4f},{100 + i}" for i in range(40)]
    f = tmp_path / "scan.brml"
    f.write_bytes(_brml(rows))
    p = read_pattern(f)
    assert p.two_theta[0] == pytest.approx(10.0) and p.two_theta[-1] == pytest.approx(10.78)
    assert p.counts[:2] == [100.0, 101.0]
    assert p.wavelengths == pytest.approx([1.5406, 1.54439]) and p.counting_time_s == 0.5


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.xrdml", b"", "empty"),
        ("blank.xy", b"  \n\n", "empty"),
        ("cut.xrdml", None, "truncated"),
        ("words.xy", b"# header\n10 5\n10.1 6\nhello world\n", "not numeric"),
        ("four.xy", b"10 1 2 3\n", "columns"),
        ("few.xy", b"10 1\n11 2\n", "at least 10 points"),
        ("bad.brml", b"PK\x03\x04garbage", "ZIP"),
        ("norows.brml", None, "Datum"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, shared_data, name, content, message):
    f = tmp_path / name
    if name == "cut.xrdml":
        real = shared_data("xrd/precursor_mixtures/TiO2_0p4009-ZnO_0p6010--2min.xrdml").read_bytes()
        content = real[: len(real) // 2]
    if name == "norows.brml":
        content = _brml([])
    f.write_bytes(content)
    with pytest.raises(PatternFormatError, match=message):
        read_pattern(f)


def test_counts_and_positions_disagree(tmp_path):
    text = XRDML_15.format(positions=" ".join(str(v) for v in range(20, 40)), counts=" ".join(["1"] * 19))
    f = tmp_path / "mismatch.xrdml"
    f.write_text(text)
    with pytest.raises(PatternFormatError, match="20 2θ positions but 19 counts"):
        read_pattern(f)


def test_missing_file():
    with pytest.raises(PatternFormatError, match="no such file"):
        read_pattern("/nonexistent/scan.xrdml")
