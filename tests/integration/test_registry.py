"""The schema registry of the local stack (Apicurio, Confluent-compatible API) behaves as the worker expects."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration
TRANSACTION = Path(__file__).resolve().parents[2] / "examples" / "fraud" / "transaction.avsc"


def call(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One registry request; the status and the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data, {"Content-Type": "application/vnd.schemaregistry.v1+json"}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_the_stack_registry_registers_serves_by_id_and_enforces_compatibility(stack: Stack) -> None:
    subject = f"it-{uuid.uuid4().hex[:10]}-value"
    v1 = json.loads(TRANSACTION.read_text())
    status, answer = call(f"{stack.registry_url}/subjects/{subject}/versions", "POST", {"schema": json.dumps(v1)})
    assert status == 200 and isinstance(answer["id"], int) and 0 < answer["id"] < 2**31  # fits a Confluent frame
    schema_id = answer["id"]
    status, answer = call(f"{stack.registry_url}/schemas/ids/{schema_id}")
    assert status == 200 and json.loads(answer["schema"])["name"] == "Transaction"
    assert call(f"{stack.registry_url}/config/{subject}", "PUT", {"compatibility": "BACKWARD"})[0] == 200
    no_default = {**v1, "fields": [*v1["fields"], {"name": "tier", "type": "string"}]}
    status, _ = call(f"{stack.registry_url}/subjects/{subject}/versions", "POST", {"schema": json.dumps(no_default)})
    assert status == 409  # a new field without a default breaks BACKWARD compatibility
    with_default = {**v1, "fields": [*v1["fields"], {"name": "tier", "type": "string", "default": "none"}]}
    status, answer = call(
        f"{stack.registry_url}/subjects/{subject}/versions", "POST", {"schema": json.dumps(with_default)}
    )
    assert status == 200 and answer["id"] != schema_id
    assert call(f"{stack.registry_url}/schemas/ids/999999999")[0] == 404
    assert call(f"{stack.registry_url}/subjects/{subject}", "DELETE")[0] == 200
