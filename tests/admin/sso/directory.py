"""A private slapd for LDAP tests: its own folder, slapd.conf, mdb, users and groups from LDIF."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "directory admin pw"
PASSWORD = "ldap user password"  # every test user's
START_TIMEOUT_S = 15.0

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{admin_dn}"
rootpw "{admin_password}"
directory {dir}/data
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by * none
"""

# alice: ops (operators of "alpha") and leads (admins of "alpha"); bob: ops only; carol: none.
# svc is the service account the search-then-bind mode binds as.
LDIF = """\
dn: {suffix}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{suffix}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{suffix}
objectClass: organizationalUnit
ou: groups

dn: uid=svc,ou=people,{suffix}
objectClass: inetOrgPerson
uid: svc
cn: svc
sn: svc
userPassword: service account pw
{users}
dn: cn=ops,ou=groups,{suffix}
objectClass: groupOfNames
cn: ops
member: uid=alice,ou=people,{suffix}
member: uid=bob,ou=people,{suffix}

dn: cn=leads,ou=groups,{suffix}
objectClass: groupOfNames
cn: leads
member: uid=alice,ou=people,{suffix}
"""
USER = """
dn: uid={uid},ou=people,{suffix}
objectClass: inetOrgPerson
uid: {uid}
cn: {uid}
sn: {uid}
userPassword: {password}
"""
USERS = ("alice", "bob", "carol")


@dataclass(frozen=True)
class Directory:
    url: str
    suffix: str = SUFFIX
    people: str = f"ou=people,{SUFFIX}"
    groups: str = f"ou=groups,{SUFFIX}"
    service_dn: str = f"uid=svc,ou=people,{SUFFIX}"
    service_password: str = "service account pw"


def slapd_missing_reason() -> str | None:
    """Why LDAP tests cannot run here, or None; under CI=true a missing slapd fails the test."""
    if os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK):
        return None
    reason = f"no {SLAPD} / {SLAPADD} (apt-get install slapd ldap-utils)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    return reason


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _binds(url: str) -> bool:
    server = ldap3.Server(url, connect_timeout=2, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, ADMIN_DN, ADMIN_PASSWORD, receive_timeout=2)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def _load(folder: Path) -> Path:
    (folder / "data").mkdir()
    conf = folder / "slapd.conf"
    conf.write_text(
        CONF.format(dir=folder, suffix=SUFFIX, admin_dn=ADMIN_DN, admin_password=ADMIN_PASSWORD)
    )
    users = "".join(USER.format(uid=u, suffix=SUFFIX, password=PASSWORD) for u in USERS)
    ldif = folder / "data.ldif"
    ldif.write_text(LDIF.format(suffix=SUFFIX, users=users))
    subprocess.run([SLAPADD, "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
    return conf


@contextlib.contextmanager
def running_slapd(folder: Path) -> Iterator[Directory]:
    """slapd in the foreground (-d 0) on 127.0.0.1 at a free port; TERM, then KILL, at the end."""
    conf = _load(folder)
    port = _free_port()
    url = f"ldap://127.0.0.1:{port}"
    with (folder / "slapd.log").open("wb") as log_file:
        proc = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(conf), "-h", f"{url}/"],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listens(port):  # bounded: slapd is up once it accepts connections
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (folder / "slapd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"slapd did not start (exit {proc.returncode}): {log}")
            time.sleep(0.05)
        if not _binds(url):
            raise RuntimeError("slapd does not take the admin bind")
        yield Directory(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
