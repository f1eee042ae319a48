"""The OpenAPI document describes every answer: a schema for each 2xx body."""

from __future__ import annotations

import httpx


async def test_every_2xx_answer_has_a_response_schema(api: httpx.AsyncClient) -> None:
    """Each operation's 2xx answer names a model (or a list of one), or is an empty 204."""
    doc = (await api.get("/api/v1/openapi.json")).json()
    missing = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for code, answer in op["responses"].items():
                if not code.startswith("2"):
                    continue
                if code == "204":
                    assert "content" not in answer, f"{method} {path}: 204 with a body"
                    continue
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                named = schema.get("$ref") or schema.get("items", {}).get("$ref")
                if not named:
                    missing.append(f"{method.upper()} {path} {code}: {schema}")
    assert missing == []
    schemas = doc["components"]["schemas"]
    assert set(schemas["RunOut"]["properties"]["status"]["$ref"].split("/")[-1:]) == {"RunStatus"}
