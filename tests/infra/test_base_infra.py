"""Checks on the base every image starts from, the way tests/infra checks each product image."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.infra

# Debian's minbase ships these setuid/setgid programs; product images start from this list and
# the secure variant removes all of them.
BASE_SETUID_ALLOWED = {
    "/usr/bin/chfn",
    "/usr/bin/chsh",
    "/usr/bin/gpasswd",
    "/usr/bin/newgrp",
    "/usr/bin/passwd",
    "/usr/bin/su",
    "/usr/bin/mount",
    "/usr/bin/umount",
    "/usr/bin/chage",
    "/usr/bin/expiry",
    "/usr/sbin/unix_chkpwd",
    "/usr/sbin/pam_extrausers_chkpwd",
}


def test_runs_as_the_configured_non_root_user(base_host: Any) -> None:
    assert base_host.check_output("id -u") == "1000"
    assert base_host.check_output("id -g") == "1000"


def test_no_sudo(base_host: Any) -> None:
    assert not base_host.exists("sudo"), "sudo is installed in the base"


def test_setuid_files_are_known(base_host: Any) -> None:
    found = base_host.check_output("find / -xdev -perm /6000 -type f 2>/dev/null || true").split()
    unknown = sorted(set(found) - BASE_SETUID_ALLOWED)
    assert unknown == [], f"setuid/setgid files not on the allow-list: {unknown}"


def test_no_empty_passwords(docker_client: Any, base_image: Any) -> None:
    # /etc/shadow is readable by root only, so this one check runs as root from outside.
    out = docker_client.containers.run(
        base_image.reference,
        ["awk", "-F:", '$2 == "" {print $1}', "/etc/shadow"],
        user="0",
        remove=True,
        network_disabled=True,
    ).decode()
    assert out.split() == [], f"accounts with an empty password: {out.split()}"
    assert not base_host_readable_shadow(docker_client, base_image)


def base_host_readable_shadow(docker_client: Any, base_image: Any) -> bool:
    proc = docker_client.containers.run(
        base_image.reference,
        ["sh", "-c", "test -r /etc/shadow && echo yes || echo no"],
        user="1000:1000",
        remove=True,
        network_disabled=True,
    ).decode()
    return bool(proc.strip() == "yes")


def test_apt_caches_are_clear(base_host: Any) -> None:
    leftovers = base_host.check_output(
        "find /var/lib/apt/lists /var/cache/apt/archives -type f ! -name lock"
    ).split()
    assert leftovers == [], f"apt lists or caches left in the image: {leftovers}"
