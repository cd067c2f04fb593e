"""The model as a directed graphical model: nodes, edges and plates."""

import xml.etree.ElementTree as ET

import pytest

import multilevel


def graph(formula, data, **kw):
    return multilevel.Model(formula, multilevel.load_dataset(data), **kw).graph()


def test_sleepstudy_graph():
    g = graph("Reaction ~ Days + (Days | Subject)", "sleepstudy")
    assert {n.id for n in g.nodes} == {"beta", "Sigma_Subject", "b_Subject", "eta", "y", "sigma"}
    assert set(g.edges) == {
        ("beta", "eta"),
        ("Sigma_Subject", "b_Subject"),
        ("b_Subject", "eta"),
        ("eta", "y"),
        ("sigma", "y"),
    }
    assert g.plate("Subject").size == 18 and g.plate("obs").size == 180
    assert g.plate("obs").parent == "Subject"  # observations within subjects
    assert g.node("y").kind == "observed" and g.node("b_Subject").plate == "Subject"
    assert "2x2" in g.node("Sigma_Subject").label


def test_nested_plates_for_pastes():
    g = graph("strength ~ 1 + (1 | batch/cask)", "Pastes")
    assert g.plate("cask:batch").parent == "batch" and g.plate("cask:batch").size == 30
    assert g.plate("batch").parent is None and g.plate("batch").size == 10
    assert g.plate("obs").parent == "cask:batch"
    assert ("b_batch", "eta") in g.edges and ("b_cask:batch", "eta") in g.edges


def test_crossed_plates_for_penicillin():
    g = graph("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin")
    assert g.plate("plate").parent is None and g.plate("sample").parent is None
    assert g.plate("obs").parent is None  # crossed: observations in neither plate alone
    assert len(g.edges) == 7


def test_glmm_graph_has_no_residual_node():
    g = graph("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", family="binomial")
    assert "sigma" not in {n.id for n in g.nodes}


def test_renderings(tmp_path):
    g = graph("strength ~ 1 + (1 | batch/cask)", "Pastes")
    dot = g.to_dot()
    assert dot.count("subgraph") == 3 and '"b_batch" -> "eta";' in dot
    svg = ET.fromstring(g.to_svg(engine="python"))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{ns}ellipse")) == len(g.nodes)
    assert len(svg.findall(f"{ns}rect")) == len(g.plates)
    assert len(svg.findall(f"{ns}line")) == len(g.edges)
    pytest.importorskip("matplotlib")
    png = g.save(tmp_path / "pastes.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert g.save(tmp_path / "pastes.dot").read_text() == dot
