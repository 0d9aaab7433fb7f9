"""Errors shared by the driver and the NumPy kernels (which must not import Dask)."""

from __future__ import annotations


class NonFiniteInputError(ValueError):
    """The input holds NaN or infinity; ``row`` is the first offending global row found."""

    def __init__(self, what: str, row: int, chunk: tuple[int, int]):
        self.row, self.chunk = row, chunk
        super().__init__(
            f"{what} contains NaN or infinity: first found in row {row} "
            f"(chunk of rows {chunk[0]}-{chunk[1] - 1}). Remove or impute non-finite values."
        )


class NonFiniteRow(Exception):
    """Raised by a row-wise kernel at a non-finite row, by index within its chunk; the driver
    turns it into :class:`NonFiniteInputError` with the global row."""

    def __init__(self, local_row: int):
        super().__init__(local_row)
        self.local_row = local_row
