"""Invoke entry point: composition only. Each task lives in src/mt5forge/tasks/."""

from invoke import Collection

from mt5forge.tasks import base, certs, config, demo, engine, registry
from mt5forge.tasks import build as build_tasks
from mt5forge.tasks import fetch as fetch_tasks
from mt5forge.tasks import lint as lint_tasks
from mt5forge.tasks import publish as publish_tasks
from mt5forge.tasks import release as release_tasks
from mt5forge.tasks import sbom as sbom_tasks
from mt5forge.tasks import scan as scan_tasks
from mt5forge.tasks import verify as verify_tasks
from mt5forge.tasks import watch as watch_tasks

ns = Collection()
ns.add_task(engine.engine)
ns.add_task(engine.tools)
ns.add_task(base.base)
ns.add_task(fetch_tasks.fetch)
ns.add_task(fetch_tasks.pin)
ns.add_task(build_tasks.build)
ns.add_task(sbom_tasks.sbom)
ns.add_task(scan_tasks.scan)
ns.add_task(verify_tasks.verify)
ns.add_task(publish_tasks.push)
ns.add_task(publish_tasks.sign)
ns.add_task(publish_tasks.verify_signature, name="verify-signature")
ns.add_task(release_tasks.release)
ns.add_task(release_tasks.rebuild)
ns.add_task(lint_tasks.lint)
ns.add_task(certs.certs)
ns.add_task(demo.demo)
ns.add_task(config.show_config, name="config")
ns.add_task(watch_tasks.watch)
ns.add_collection(Collection.from_module(registry), name="registry")
