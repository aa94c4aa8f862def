"""Types of the native decoder (see stream_scorer/codec/native.py for its Python face)."""

from typing import Any

import numpy as np
import numpy.typing as npt

class DecodeFailed(RuntimeError): ...

class Decoder:
    def __init__(
        self, reader_json: str, reader_canonical: str, paths: list[str], confluent: bool, max_bytes: int
    ) -> None: ...
    def add_writer(self, schema_id: int, canonical: str) -> None: ...
    def knows(self, schema_id: int) -> bool: ...
    def decode(
        self, values: list[bytes | None]
    ) -> tuple[
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        list[tuple[int, str, str, int | None]],
        list[tuple[int, int]],
        list[tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]],
    ]: ...

def encode_predictions(*args: Any) -> list[bytes]: ...
def pack_commands(commands: list[tuple[Any, ...]]) -> bytes: ...
def unpack_records(
    replies: list[bytes | None], n_features: int, version: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]: ...
