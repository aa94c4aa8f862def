"""Writer schemas by id from a Confluent-compatible schema registry (``GET /schemas/ids/{id}``).

Only the worker's side: fetch the schema of an id on first sight. A 404 means the registry has no such id
(the message is ``unknown_schema_id``); anything else that is not an answer (refused, timed out, a 5xx) is
a :class:`~stream_scorer.errors.SchemaRegistryError`, a transient fault the worker waits out.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import fastavro

from stream_scorer.codec.schemas import CONFLUENT_HEADER, CONFLUENT_MAGIC, strip_logical_types
from stream_scorer.codec.strict import MalformedAvro, Reader, compile_reader
from stream_scorer.errors import InvalidEventError, SchemaError, SchemaRegistryError


class RegistryClient:
    """A schema registry's Confluent API at ``url`` (e.g. ``http://127.0.0.1:18081/apis/ccompat/v7``)."""

    def __init__(self, url: str, *, username: str = "", password: str = "", timeout_seconds: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        if username:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def register(self, subject: str, schema: str) -> int:
        """The id of ``schema`` under ``subject``, registering it as a new version when it is not there yet."""
        answer = self._call(f"/subjects/{subject}/versions", {"schema": schema}, f"registering {subject}")
        return int(answer["id"])

    def latest(self, subject: str) -> tuple[int, str]:
        """The id and schema text of the latest version under ``subject``."""
        answer = self._call(f"/subjects/{subject}/versions/latest", None, f"the latest version of {subject}")
        return int(answer["id"]), str(answer["schema"])

    def _call(self, path: str, body: dict[str, str] | None, what: str) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {**self._headers, "Content-Type": "application/vnd.schemaregistry.v1+json"}
        request = urllib.request.Request(f"{self.url}{path}", data, headers, method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:  # an error response is a response too: close it
                detail = exc.read()[:300].decode(errors="replace")
            raise SchemaRegistryError(f"schema registry {self.url}: HTTP {exc.code} for {what}: {detail}") from exc
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise SchemaRegistryError(f"schema registry {self.url} did not answer for {what}: {exc}") from exc
        if not isinstance(answer, dict) or "id" not in answer:
            raise SchemaRegistryError(f"schema registry {self.url}: no id in its answer for {what}")
        return answer

    def schema(self, schema_id: int) -> str | None:
        """The schema text registered under ``schema_id``, or None when the registry has no such id."""
        request = urllib.request.Request(f"{self.url}/schemas/ids/{schema_id}", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read()[:1000]
            if exc.code == 404 and b"40403" in body:  # Confluent's "schema not found" (a wrong path is a fault)
                return None
            raise SchemaRegistryError(f"schema registry {self.url}: HTTP {exc.code} for schema id {schema_id}") from exc
        except (
            OSError,
            ValueError,
            http.client.HTTPException,
        ) as exc:  # refused, timed out, reset; or an answer that is not JSON
            raise SchemaRegistryError(
                f"schema registry {self.url} did not answer for schema id {schema_id}: {exc}"
            ) from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise SchemaRegistryError(f"schema registry {self.url}: no schema in its answer for id {schema_id}")
        if answer.get("schemaType", "AVRO") != "AVRO":
            return json.dumps({"not avro": answer["schemaType"]})  # refused as a schema by the decoder
        text: str = answer["schema"]
        return text


class SchemaSource(Protocol):
    """Where writer schemas come from by id (:class:`RegistryClient`; tests pass a small fake)."""

    def schema(self, schema_id: int) -> str | None: ...


class WriterSchemas:
    """The writer schemas the decoder knows by Confluent id: those configured, and those learnt from a registry.

    A writer schema equal to the reader schema (in Avro's parsing canonical form) is the reader schema
    itself, so its messages skip schema resolution. An id the registry does not have is asked again after
    ``forget_absent_seconds`` (each distinct id once per batch: the batch size bounds the requests); a schema the
    registry holds that cannot be a writer schema (not JSON, not Avro, not a record) makes its messages
    ``incompatible_schema``.
    """

    def __init__(
        self,
        reader: Any,
        configured: Mapping[int, Any],
        registry: SchemaSource | None = None,
        *,
        forget_absent_seconds: float = 30.0,
    ) -> None:
        self._reader = reader
        self._canonical = fastavro.schema.to_parsing_canonical_form(reader)
        self._registry = registry
        self._forget = forget_absent_seconds
        self._known: dict[int, Any] = {}
        self._readers: dict[int, Reader] = {}
        self._refused: dict[int, str] = {}
        self._absent_until: dict[int, float] = {}
        for schema_id, schema in configured.items():
            self._add(schema_id, schema)

    def _add(self, schema_id: int, schema: Any) -> None:
        same = fastavro.schema.to_parsing_canonical_form(schema) == self._canonical
        writer = self._reader if same else schema
        try:
            self._readers[schema_id] = compile_reader(writer)
        except MalformedAvro as exc:
            raise SchemaError(f"cannot build a reader for writer schema id {schema_id}: {exc}") from exc
        self._known[schema_id] = writer

    def known(self) -> Mapping[int, Any]:
        """The usable writer schemas by id (the reader schema itself where they are equal)."""
        return self._known

    def writer(self, schema_id: int) -> tuple[Any, Reader]:
        """The writer schema of ``schema_id`` and its strict reader; raise :class:`InvalidEventError` when the
        id is unknown or its schema unusable."""
        if schema_id in self._known:
            return self._known[schema_id], self._readers[schema_id]
        if schema_id in self._refused:
            raise InvalidEventError("incompatible_schema", self._refused[schema_id], schema_id=schema_id)
        where = "configured in kafka.schema_ids" if self._registry is None else "in the schema registry"
        raise InvalidEventError("unknown_schema_id", f"schema id {schema_id} is not {where}", schema_id=schema_id)

    def learn(self, values: Iterable[bytes | None]) -> None:
        """Fetch the schemas of the Confluent-framed ids among ``values`` not seen before; raise
        :class:`SchemaRegistryError` (nothing learnt from this batch is lost) when the registry cannot answer."""
        if self._registry is None:
            return
        now = time.monotonic()
        new: dict[int, None] = {}
        for value in values:
            if value and len(value) >= CONFLUENT_HEADER.size and value[0] == CONFLUENT_MAGIC:
                schema_id = CONFLUENT_HEADER.unpack_from(value)[1]
                seen = schema_id in self._known or schema_id in self._refused
                if not seen and self._absent_until.get(schema_id, 0.0) <= now:
                    new[schema_id] = None
        for schema_id in new:  # every new id is asked: one not asked would be dead-lettered, valid or not
            text = self._registry.schema(schema_id)
            if text is None:
                self._absent_until[schema_id] = now + self._forget
                continue
            try:
                parsed = json.loads(text)
                if not isinstance(parsed, dict) or parsed.get("type") != "record":
                    raise ValueError("it is not an Avro record schema")
                self._add(schema_id, fastavro.parse_schema(strip_logical_types(parsed)))
            except (
                ValueError,
                TypeError,
                KeyError,
                RecursionError,
                SchemaError,
                fastavro.schema.SchemaParseException,
            ) as exc:
                self._refused[schema_id] = f"schema id {schema_id} in the registry cannot be read: {exc}"[:300]
