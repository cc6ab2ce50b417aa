"""``invoke push``, ``invoke sign`` and ``invoke verify-signature``."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.errors import VerificationError
from mt5forge.report.publish import checks_report, push_report, sign_report
from mt5forge.sigcheck import check_all, trust_for
from mt5forge.stages.push import push_all, requests_for
from mt5forge.stages.sign import from_records, sign_all, store_dir, trust_dir
from mt5forge.tasks._common import FORMAT_HELP, check_format, err_console, names, show, task_context
from mt5forge.tasks._progress import RichProgress
from mt5forge.tools import skopeo
from mt5forge.tools.toolsimage import ensure_tools_image

_SELECT = {
    "image": "Only these images (comma-separated: terminal, bot, terminal-sim).",
    "variant": "Only these variants (comma-separated: slim, secure).",
    "ref": "This local image (with exactly one --image and --variant).",
    "format": FORMAT_HELP,
    "verbose": "Show debug logs and tracebacks.",
}


@task(
    help={
        **_SELECT,
        "registry": "host:port to push to (default: [registry] address).",
        "release": "Also tag <variant> and latest (what `invoke release` does).",
    }
)
def push(
    c: Context,
    image: str | None = None,
    variant: str | None = None,
    ref: str | None = None,
    registry: str | None = None,
    release: bool = False,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Push each gated image by digest with skopeo, then tag it.

    Only with passing sbom, scan and verify records for its exact image id; otherwise refuses
    naming the missing, failing or mismatched gate. Fixture images go only to 127.0.0.1."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        requests = requests_for(settings, names(image), names(variant), ref)
        with RichProgress(err_console) as progress:
            results = push_all(
                settings, requests, release=release, registry=registry, progress=progress
            )
        show(push_report(results), fmt)


@task(help=_SELECT)
def sign(
    c: Context,
    image: str | None = None,
    variant: str | None = None,
    ref: str | None = None,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Sign each pushed digest with GPG simple signing and cosign (+ SBOM, SLSA attestations).

    Writes the lookaside store, policy.json and registries.d. Keys: SIGNING_GPG_HOME,
    SIGNING_GPG_FINGERPRINT, SIGNING_GPG_PUBLIC_KEY, SIGNING_COSIGN_KEY,
    SIGNING_COSIGN_PUBLIC_KEY; passphrases SIGNING_GPG_PASSPHRASE (or gpg-agent) and
    COSIGN_PASSWORD."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        requests = requests_for(settings, names(image), names(variant), ref)
        pushed = from_records(settings.run_dir, {r.target: r.image_id for r in requests})
        with RichProgress(err_console) as progress:
            results = sign_all(settings, pushed, progress=progress)
        show(
            sign_report(results, store=str(store_dir(settings)), trust=str(trust_dir(settings))),
            fmt,
        )


@task(
    help={
        "ref": "The pushed image: host:port/repo@sha256:... (or :tag, resolved to its digest).",
        "format": FORMAT_HELP,
        "verbose": "Show debug logs and tracebacks.",
    }
)
def verify_signature(c: Context, ref: str, format: str = "table", verbose: bool = False) -> None:
    """Check every signature on a pushed image with skopeo, cosign and our own verifiers.

    Says which verifier said what; non-zero when any refused."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        if "@" in ref:
            repository, digest = ref.split("@", 1)
        else:
            repository = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
            digest = skopeo.manifest_digest(
                f"docker://{ref}", tls_verify=not ref.startswith("127.")
            )
        trust = trust_for(settings.run_dir)
        checks = check_all(repository, digest, trust, tools_image=ensure_tools_image(settings))
        show(checks_report(f"{repository}@{digest}", checks), fmt)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise VerificationError(
                f"{len(failed)} of {len(checks)} signature check(s) of {repository}@{digest} "
                "failed: " + "; ".join(f"{c.format} by {c.verifier}" for c in failed) + "."
            )
