"""The SBOM of one image: Trivy's CycloneDX as the base, plus what no scanner sees.

Trivy's output (:func:`mt5forge.tools.trivy.cyclonedx`) lists the Debian packages keyed with
their source package (what Debian's advisories use) and the Python packages it finds, the
Windows wheels in the Wine prefix included. :func:`enrich` adds, with cyclonedx-python-lib:

- every pinned artifact in the image (``pkg:generic/NAME@V?checksum=sha256:...``) with its
  sha256, upstream URL, how it was verified, and its origin (``upstream``, ``real-from-PyPI``
  or ``fixture``: a stand-in is never presented as the upstream file);
- the pinned hashes of the Python wheels and whether each is the Windows (win_amd64) build in
  the Wine prefix or a Linux one; the Windows CPython artifact (python.org's embeddable zip)
  carries the same ``mt5forge:platform`` property;
- the image as the root component: reference, image ID, variant, profile, base image.

:func:`crosscheck` compares the pinned requirement files (read by cyclonedx-bom's
``cyclonedx-py requirements``) with what Trivy found installed; any difference fails the SBOM.
:func:`render` serializes as CycloneDX 1.6 JSON and validates strictly before anything is
written; a schema error names the component it is in.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from mt5forge.errors import SbomError, ToolError
from mt5forge.tools.run import call

SPEC = "1.6"
PROP = "mt5forge:"
"""Prefix of the properties mt5forge adds (CycloneDX property taxonomy: a namespace)."""
WINE_PREFIX = " (Wine prefix)"
_WINDOWS_PYTHON = re.compile(r"python-\d[\w.]*-embed-(?P<arch>amd64|arm64|win32)\.zip")
_WHEEL_TAG = {"amd64": "win_amd64", "arm64": "win_arm64", "win32": "win32"}


def normalize(name: str) -> str:
    """PEP 503 name: ``typing_extensions`` and ``Typing.Extensions`` are ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArtifactFacts:
    """A pinned artifact that went into the image (from the fetch result and the manifests)."""

    name: str
    version: str
    filename: str
    sha256: str
    origin: str
    verified_by: str
    upstream_url: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageFacts:
    reference: str
    image_id: str
    image: str
    variant: str
    profile: str
    base_name: str
    base_digest: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class PythonPackage:
    name: str
    version: str
    windows: bool
    """Found in the Wine prefix (``drive_c``): a win_amd64 wheel, not a Linux one."""
    path: str


def python_packages(doc: Mapping[str, Any]) -> dict[str, PythonPackage]:
    """The Python packages in a Trivy CycloneDX document, by normalized name."""
    out: dict[str, PythonPackage] = {}
    for c in doc.get("components") or []:
        if not str(c.get("purl", "")).startswith("pkg:pypi/"):
            continue
        props = {p.get("name"): p.get("value", "") for p in c.get("properties") or []}
        path = str(props.get("aquasecurity:trivy:FilePath", ""))
        out[normalize(str(c["name"]))] = PythonPackage(
            name=normalize(str(c["name"])),
            version=str(c.get("version", "")),
            windows="/drive_c/" in f"/{path}",
            path=path,
        )
    return out


def requirements(path: Path, *, timeout: float = 120) -> dict[str, str]:
    """Name -> pinned version of a requirement file, read by ``cyclonedx-py requirements``."""
    proc = call(
        "cyclonedx-py", "requirements", "--sv", SPEC, "--of", "JSON", "-o", "-", str(path),
        timeout=timeout,
    )  # fmt: skip
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise ToolError(f"cyclonedx-py printed something that is not JSON for {path}: {e}") from e
    return {normalize(str(c["name"])): str(c.get("version", "")) for c in doc.get("components", [])}


def crosscheck(
    found: Mapping[str, PythonPackage],
    pinned: Mapping[str, str],
    *,
    windows: bool,
    first_party: Mapping[str, str],
) -> list[str]:
    """Differences between the pinned requirements and what is installed: a pinned package
    missing or at another version, one installed for the wrong platform, or one installed
    that nothing pinned (first-party packages, built from this repository, excepted)."""
    problems: list[str] = []
    for name, version in sorted(pinned.items()):
        got = found.get(name)
        if got is None:
            problems.append(f"{name}=={version} is pinned but not installed")
        elif got.version != version:
            problems.append(f"{name} is pinned at {version} but {got.version} is installed")
        elif got.windows != windows:
            where = "Windows (Wine prefix)" if got.windows else "Linux"
            problems.append(f"{name} is installed as a {where} package at {got.path}")
    for name, got in sorted(found.items()):
        if name in pinned:
            continue
        if first_party.get(name) == got.version:
            continue
        problems.append(f"{name} {got.version} is installed ({got.path}) but pinned nowhere")
    return problems


def artifact_platform(a: ArtifactFacts) -> str:
    """The platform of a Windows CPython artifact (python.org's embeddable zip,
    ``python-V-embed-ARCH.zip``), named as a wheel tag names it and said to live in the Wine
    prefix, like the wheels installed into it; empty for any other artifact."""
    m = _WINDOWS_PYTHON.fullmatch(a.filename)
    return _WHEEL_TAG[m.group("arch")] + WINE_PREFIX if m else ""


def _artifact_component(a: ArtifactFacts) -> Component:
    platform = artifact_platform(a)
    purl = PackageURL(
        type="generic",
        name=a.name,
        version=a.version,
        qualifiers={"checksum": f"sha256:{a.sha256}", "download_url": a.upstream_url},
    )
    return Component(
        name=a.name,
        version=a.version,
        type=ComponentType.FILE,
        bom_ref=f"mt5forge-artifact:{a.name}@{a.sha256[:16]}",
        purl=purl,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=a.sha256)],
        external_references=[
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION,
                url=XsUri(a.upstream_url),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=a.sha256)],
            )
        ],
        properties=[
            Property(name=f"{PROP}file", value=a.filename),
            Property(name=f"{PROP}origin", value=a.origin),
            Property(name=f"{PROP}verified-by", value=a.verified_by),
            Property(name=f"{PROP}upstream-url", value=a.upstream_url),
            *([Property(name=f"{PROP}platform", value=platform)] if platform else []),
        ],
    )


def enrich(
    doc: Mapping[str, Any],
    *,
    facts: ImageFacts,
    artifacts: Sequence[ArtifactFacts],
    wheel_hashes: Mapping[str, tuple[str, str]],
) -> Bom:
    """Trivy's document as a Bom, with the artifacts, wheel hashes and root facts added.
    ``wheel_hashes``: normalized name -> (version, sha256) from the pinned requirement file."""
    try:
        bom: Bom = Bom.from_json(dict(doc))  # type: ignore[attr-defined]
    except Exception as e:  # the library raises a variety of errors for a malformed document
        raise SbomError(f"Trivy's SBOM of {facts.reference} could not be read: {e}") from e
    root = bom.metadata.component
    if root is None:
        raise SbomError(f"Trivy's SBOM of {facts.reference} has no root component.")
    root.version = facts.image_id
    for key, value in (
        ("image", facts.image),
        ("variant", facts.variant),
        ("profile", facts.profile),
        ("image-id", facts.image_id),
        ("base-image", facts.base_name),
        ("base-digest", facts.base_digest),
    ):
        root.properties.add(Property(name=f"{PROP}{key}", value=value))
    for c in bom.components:
        if c.purl is None or c.purl.type != "pypi":
            continue
        pinned = wheel_hashes.get(normalize(c.name))
        if pinned and pinned[0] == c.version:
            c.hashes.add(HashType(alg=HashAlgorithm.SHA_256, content=pinned[1]))
        windows = any(
            p.name == "aquasecurity:trivy:FilePath" and "drive_c/" in p.value for p in c.properties
        )
        c.properties.add(
            Property(
                name=f"{PROP}platform", value=f"win_amd64{WINE_PREFIX}" if windows else "linux"
            )
        )
    added = [_artifact_component(a) for a in artifacts]
    for comp in added:
        bom.components.add(comp)
    if added:
        bom.register_dependency(root, added)
    return bom


def _component_at(doc: Mapping[str, Any], path: Iterable[Any]) -> str:
    """The component a JSON path points into, for a validation message."""
    parts = list(path)
    node: Any = doc
    name = ""
    for i, part in enumerate(parts):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if i > 0 and parts[i - 1] == "components" and isinstance(node, dict):
            name = f"{node.get('name', '?')}@{node.get('version', '?')}"
    return name or "/".join(str(p) for p in parts) or "the document"


def check(text: str) -> None:
    """Validate CycloneDX 1.6 JSON strictly; SbomError naming the component at fault."""
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is None:
        return
    data = getattr(error, "data", None)
    path = list(getattr(data, "absolute_path", []) or [])
    message = getattr(data, "message", str(error))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = {}
    raise SbomError(
        f"The SBOM does not validate against CycloneDX {SPEC}: component "
        f"{_component_at(doc, path)}: {message}",
        hint="at " + "/".join(str(p) for p in path) if path else None,
    )


def render(bom: Bom) -> str:
    """CycloneDX 1.6 JSON of ``bom``, validated strictly first."""
    text: str = JsonV1Dot6(bom).output_as_string(indent=2)
    check(text)
    return text + "\n"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Summary:
    by_type: Mapping[str, int]
    components: int
    trivy_components: int
    debian: int
    python: int
    windows_wheels: int
    artifacts: int


def summarize(text: str, trivy_doc: Mapping[str, Any]) -> Summary:
    doc = json.loads(text)
    comps = doc.get("components") or []
    by_type = Counter(str(c.get("type", "?")) for c in comps)
    purls = [str(c.get("purl", "")) for c in comps]
    windows = sum(
        1
        for c in comps
        if str(c.get("purl", "")).startswith("pkg:pypi/")
        for p in c.get("properties") or []
        if p.get("name") == f"{PROP}platform" and p.get("value", "").startswith("win")
    )
    return Summary(
        by_type=dict(sorted(by_type.items())),
        components=len(comps),
        trivy_components=len(trivy_doc.get("components") or []),
        debian=sum(p.startswith("pkg:deb/") for p in purls),
        python=sum(p.startswith("pkg:pypi/") for p in purls),
        windows_wheels=windows,
        artifacts=sum(p.startswith("pkg:generic/") for p in purls),
    )
