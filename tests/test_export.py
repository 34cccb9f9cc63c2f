"""`dtvm bindings export` (issue 4, item 5): dt-schema documents that dtschema accepts and agrees with."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dtvm.bindings import load_bindings, validate_tree
from dtvm.bindings.export import PATHS_DOC, export_documents
from dtvm.cli.bindings_cmd import bindings_group
from dtvm.cli.validate import load_input

ROOT = Path(__file__).resolve().parent.parent
QEMU = ROOT / "fixtures" / "qemu-dt"
VIRT = ROOT / "fixtures" / "bindings" / "virt.dts"
# a handful: dt-validate costs 0.25-1.5 s a blob
BLOBS = [
    "aarch64-virt-default",
    "aarch64-virt-gic3",
    "arm-virt-secure-gic3-smp2",
    "riscv64-virt-default",
    "riscv64-virt-aia-aplic-imsic",
]
BROKEN = [
    (
        "reg = <0 0x9000000 0 0x1000>;\n\t\tcompatible",
        "reg = <0 0x9000000 0 0x1000 0 0 0 1>;\n\t\tcompatible",
    ),
    ("#interrupt-cells = <3>;", "#interrupt-cells = <3>; interrupts = <1 9 4 1 10 4>;"),
    ("msi-controller; compatible", "compatible"),
    ("gic: intc@8000000 {", "gic: gic@8000000 {"),
    ("\tchosen {", "\tchosen {\n\t\tmystery-property = <1>;"),
]

HAVE_DTSCHEMA = shutil.which("dt-doc-validate") is not None and shutil.which("dt-validate") is not None
needs_dtschema = pytest.mark.skipif(
    not HAVE_DTSCHEMA, reason="dtschema is not installed (pip install dtschema)"
)


@pytest.fixture(scope="module")
def bindings():
    return load_bindings([str(ROOT / "bindings")])


@pytest.fixture(scope="module")
def exported(tmp_path_factory, bindings) -> Path:
    out = tmp_path_factory.mktemp("export")
    res = CliRunner().invoke(bindings_group, ["export", "-q", "--bindings", str(ROOT / "bindings"), str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def processed(exported: Path) -> Path:
    if not HAVE_DTSCHEMA:
        pytest.skip("dtschema is not installed (pip install dtschema)")
    out = exported.parent / "processed.json"
    subprocess.run(["dt-mk-schema", "-j", "-o", str(out), str(exported)], check=True, capture_output=True)
    return out


def test_one_document_per_binding(exported: Path, bindings) -> None:
    files = sorted(str(p.relative_to(exported)) for p in exported.rglob("*.yaml"))
    assert len(files) == len(bindings) + 1  # and the path-selection document
    assert PATHS_DOC in files
    for rel in files:
        doc = yaml.safe_load((exported / rel).read_text())
        assert doc["$id"] == f"http://devicetree.org/schemas/{rel}#"
        assert doc["$schema"] == "http://devicetree.org/meta-schemas/core.yaml#"
        assert "qemu" not in doc and "x-qemu" not in doc
        assert {"title", "maintainers", "select"} <= doc.keys()
        assert "additionalProperties" in doc or "unevaluatedProperties" in doc


def test_documents_carry_types_and_constraints(bindings) -> None:
    docs, _notes = export_documents(bindings)
    pl011 = docs["dtvm/serial/arm,pl011.yaml"]
    alts = pl011["select"]["properties"]["compatible"]["anyOf"]
    assert alts[0]["items"] == [{"const": "arm,pl011"}]
    assert (
        alts[1]["items"][1] == {"const": "arm,pl011"}
        and "arm,pl011" not in alts[1]["items"][0]["not"]["enum"]
    )
    assert pl011["properties"]["compatible"]["items"] == [{"const": "arm,pl011"}, {"const": "arm,primecell"}]
    assert "reg" in pl011["required"]
    gic = docs["dtvm/interrupt-controller/arm,gic-v3.yaml"]
    assert gic["properties"]["#redistributor-regions"]["$ref"] == "/schemas/types.yaml#/definitions/uint32"
    assert gic["properties"]["$nodename"]["pattern"].startswith("^(?:")
    assert docs["dtvm/core/chosen.yaml"]["select"] is False  # applied from the path document


@needs_dtschema
def test_dt_doc_validate_passes(exported: Path) -> None:
    res = subprocess.run(
        ["dt-doc-validate", "-u", str(exported), str(exported)], capture_output=True, text=True, cwd=exported
    )
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr[:4000]


# -- agreement ---------------------------------------------------------------------
_LINE = re.compile(r"^(?P<file>[^:]+): (?P<node>\S+)(?: \([^)]*\))?: (?P<rest>.*)$")


def dt_validate(schema: Path, blob: Path) -> set[tuple[str, str | None]]:
    """(node name, property or None) of every dt-validate error from an exported schema.

    Errors from dtschema's own core schemas (chosen.yaml, dt-core.yaml...) are left out:
    they judge the tree by dt-schema's rules, not by dtvm's bindings."""
    res = subprocess.run(["dt-validate", "-s", str(schema), str(blob)], capture_output=True, text=True)
    blocks: list[list[str]] = []
    for line in res.stderr.splitlines():
        if line.startswith("\t") and blocks:
            blocks[-1].append(line[1:])
        elif _LINE.match(line):
            blocks.append([line])
    out: set[tuple[str, str | None]] = set()
    for block in blocks:
        if not any(
            sub.startswith("from schema $id: http://devicetree.org/schemas/dtvm/") for sub in block[1:]
        ):
            continue
        m = _LINE.match(block[0])
        assert m is not None
        node, rest = m["node"], m["rest"]
        path: list[str] = []
        head, sep, msg = rest.partition(": ")
        if sep and not head.startswith(("False schema", "'")) and " " not in head:
            path = [p for p in head.split(":") if not p.isdigit()]
        else:
            msg = rest
        if msg.startswith("'anyOf' conditional failed"):  # a child-binding node: the reasons follow
            node = path[-1] if path else node
            for sub in block[1:]:
                rq = re.match(r"'([^']+)' is a required property", sub)
                pm = re.match(r"([#\w,.+@-]+): ", sub)
                if rq:
                    out.add((node, rq[1]))
                elif pm and not sub.startswith("from schema"):
                    out.add((node, None if pm[1] == "$nodename" else pm[1]))
            continue
        node = path[-2] if len(path) >= 2 else node
        prop = path[-1] if path else None
        req = re.match(r"'([^']+)' is a required property", msg)
        if req:
            if prop is not None:
                node = prop
            prop = req[1]
        if prop == "$nodename":
            prop = None
        out.add((node, prop))
    return out


def dtvm_findings(bindings, blob: Path) -> set[tuple[str, str | None]]:
    res = validate_tree(load_input(str(blob)), bindings, str(blob))
    return {
        (f.path.rsplit("/", 1)[-1] or "/", f.prop if f.rule != "node-name" else None) for f in res.findings
    }


@needs_dtschema
@pytest.mark.parametrize("name", BLOBS)
def test_dt_validate_agrees_on_qemu_dts(processed: Path, bindings, name: str) -> None:
    blob = QEMU / f"{name}.dtb"
    assert dt_validate(processed, blob) == dtvm_findings(bindings, blob)


def _dtb(tmp_path: Path, text: str) -> Path:
    from dtvm.cli.dtc import run

    src = tmp_path / "v.dts"
    src.write_text(text)
    out = tmp_path / "v.dtb"
    err = io.StringIO()
    assert run(["-q", "-I", "dts", "-O", "dtb", "-o", str(out), str(src)], io.BytesIO(), err) == 0, (
        err.getvalue()
    )
    return out


@needs_dtschema
@pytest.mark.parametrize(("old", "new"), BROKEN)
def test_dt_validate_agrees_on_broken_nodes(
    processed: Path, bindings, tmp_path: Path, old: str, new: str
) -> None:
    text = VIRT.read_text()
    assert old in text
    blob = _dtb(tmp_path, text.replace(old, new, 1))
    mine = dtvm_findings(bindings, blob)
    assert mine, "the broken variant must have findings"
    assert dt_validate(processed, blob) == mine


def test_export_without_dtschema_types(monkeypatch, bindings) -> None:
    """Without dtschema the export still works (every property keeps its dtvm type)."""
    import dtvm.bindings.export as ex

    monkeypatch.setattr(ex, "core_types", lambda: {})
    docs, _ = ex.export_documents(bindings)
    assert docs["dtvm/core/cpus.yaml"]["properties"]["timebase-frequency"]["$ref"].endswith("uint32-array")
    assert os.sep not in PATHS_DOC.replace("/", "")
