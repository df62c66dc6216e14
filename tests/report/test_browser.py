"""The report page in headless Chromium (the Debian package ``chromium``; ``.ci/run``
installs it): it loads without a console error, its script runs (sorting, filtering),
the table has one row per compute layer, plots and the graph are there, and the JSON
twin agrees with the table. Marked ``browser`` (the EfficientNet-Lite0 page also ``zoo``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from ovq.data import demo_model_path
from ovq_testing.browser import load

pytestmark = pytest.mark.browser

COMPUTE = {"Convolution", "GroupConvolution", "MatMul"}


def check_page(page: Path, model: ov.Model) -> dict:
    """The checks every rendered report must pass; returns the JSON twin."""
    dom, console = load(page)
    assert console == []
    assert 'data-ready="1"' in dom and "data-errors" not in dom
    twin = json.loads(page.with_suffix(".json").read_text())
    rows = re.findall(r'<tr id="(layer-\d+)"[^>]*data-name="([^"]*)"', dom)
    assert [r[0] for r in rows] == [f"layer-{r['index']}" for r in twin["layers"]]
    assert [r[1] for r in rows] == [r["name"].replace("&", "&amp;") for r in twin["layers"]]
    compute = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in COMPUTE]
    assert [r["name"] for r in twin["layers"] if r["type"] in COMPUTE] == compute
    assert dom.count('class="plot"') >= 1 + len(twin["histograms"]) + len(twin["weight_ranges"])
    assert 'class="graph' in dom
    links = set(re.findall(r'href="#(layer-\d+)"', dom))
    assert links and links <= {r[0] for r in rows}  # graph nodes and error bars jump to table rows
    return twin


def test_checker_sees_a_script_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>undefined_function();</script></body></html>")
    _dom, console = load(page)
    assert any("undefined_function" in line for line in console)


@pytest.fixture(scope="module")
def digits_page(tmp_path_factory, digits_files):
    from ovq.report import report_model

    fp, q, data = digits_files
    folder = tmp_path_factory.mktemp("page")
    samples = list(np.load(data)[:, None][:32])
    report_model(q, folder / "digits.html", fp_model=fp, data=samples, analyze=True, subset_size=32)
    return folder / "digits.html"


def test_digits_page(digits_page):
    twin = check_page(digits_page, ov.Core().read_model(str(demo_model_path())))
    assert twin["rank_by"] == "output_nmse"


def test_sort_and_filter_in_the_browser(digits_page):
    twin = json.loads(digits_page.with_suffix(".json").read_text())
    column = "NMSE (model out)"
    script = f"""
    var heads=[].slice.call(document.querySelectorAll('#layers th'));
    var th=heads.filter(function(h){{return h.textContent==={json.dumps(column)};}})[0];
    th.click(); th.click();  // the second click sorts descending
    var ids=[].slice.call(document.querySelectorAll('#layers tbody tr')).map(function(r){{return r.id;}});
    document.body.setAttribute('data-sorted', ids.join(','));
    var f=document.getElementById('filter'); f.value='Multiply'; f.dispatchEvent(new Event('input'));
    document.body.setAttribute('data-shown', document.getElementById('shown').textContent);
    """
    dom, console = load(digits_page, extra_script=script)
    assert console == []
    worst_first = sorted(twin["layers"], key=lambda r: r["output_nmse"], reverse=True)
    assert re.search(r'data-sorted="([^"]*)"', dom).group(1) == ",".join(f"layer-{r['index']}" for r in worst_first)
    shown = sum("multiply" in " ".join(str(v) for v in r.values()).lower() for r in twin["layers"])
    assert 0 < int(re.search(r'data-shown="(\d+)"', dom).group(1)) <= shown


@pytest.mark.zoo
def test_efficientnet_lite0_page(tmp_path):
    import ovq
    from ovq_testing.assets import AssetUnavailable, asset_path, efficientnet_crops

    try:
        path = asset_path("efficientnet_lite0")
        crops = efficientnet_crops(600)
    except AssetUnavailable as exc:
        pytest.skip(str(exc))
    fp = ov.Core().read_model(str(path))
    calib = [np.array(crops[i:i + 1]) for i in range(40)]
    q = ovq.quantize(fp, calib, subset_size=40, progress=False, report=tmp_path / "effnet.html")
    twin = check_page(tmp_path / "effnet.html", q)
    assert "collapsed to" in twin["graph_note"]  # ~200 ops: blocks
    script = """document.querySelectorAll('g.block')[1].dispatchEvent(new MouseEvent('click', {bubbles: true}));
    document.body.setAttribute('data-open', document.getElementById('block-1').className);"""
    dom, console = load(tmp_path / "effnet.html", extra_script=script)
    assert console == [] and 'data-open="block-detail-box open"' in dom
    assert twin["summary"]["runtime_int8"] >= twin["summary"]["runtime_audited"] // 2 > 0
    assert twin["histograms"] and twin["weight_ranges"]
