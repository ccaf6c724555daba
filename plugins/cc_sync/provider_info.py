"""Airflow's provider metadata for this package (entry point ``apache_airflow_provider``).

Installed (``make`` does ``pip install -e .``), it registers the ``constant_contact`` connection
type: the UI's connection form gets Constant Contact's fields, and its Test button (and
``airflow connections test``) calls :meth:`ConstantContactHook.test_connection`, which names the
account. Without it (the package only on the plugins path) everything still runs: hooks read
their connection whatever its type.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "cc-member-sync"
CONSTANT_CONTACT_CONN_TYPE = "constant_contact"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Constant Contact member sync",
        "description": "Two-way sync between a SQL member database and Constant Contact (v3 API).",
        "connection-types": [
            {
                "connection-type": CONSTANT_CONTACT_CONN_TYPE,
                "hook-class-name": "cc_sync.constant_contact.hook.ConstantContactHook",
            }
        ],
    }
