"""JUnit XML of verify verdicts: one testsuite per image (its id and terminal as properties),
one testcase per check; a failed check is a ``failure``, a check that does not apply is
``skipped`` with the reason. CI systems draw these without knowing mt5forge."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # we write XML, we never parse it
from collections.abc import Sequence
from pathlib import Path

from mt5forge.files import atomic_write
from mt5forge.verify.run import ImageVerdict


def junit_xml(verdicts: Sequence[ImageVerdict]) -> str:
    suites = ET.Element("testsuites", name="mt5forge verify")
    for v in verdicts:
        failures = sum(o.status == "failed" for o in v.outcomes)
        skipped = sum(o.status == "not applicable" for o in v.outcomes)
        suite = ET.SubElement(
            suites, "testsuite", name=f"verify {v.image}:{v.variant}",
            tests=str(len(v.outcomes)), failures=str(failures), errors="0",
            skipped=str(skipped), time=f"{v.seconds:.2f}",
        )  # fmt: skip
        props = ET.SubElement(suite, "properties")
        for key, value in (("image_id", v.image_id), ("reference", v.reference),
                           ("terminal", v.terminal)):  # fmt: skip
            ET.SubElement(props, "property", name=key, value=value)
        for o in v.outcomes:
            case = ET.SubElement(
                suite, "testcase", classname=f"verify.{v.image}.{v.variant}", name=o.name,
                time=f"{o.seconds:.2f}",
            )  # fmt: skip
            if o.status == "failed":
                ET.SubElement(case, "failure", message=o.detail[:500]).text = o.detail
            elif o.status == "not applicable":
                ET.SubElement(case, "skipped", message=o.detail)
            else:
                ET.SubElement(case, "system-out").text = o.detail
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: Path, verdicts: Sequence[ImageVerdict]) -> Path:
    return atomic_write(path, junit_xml(verdicts))
