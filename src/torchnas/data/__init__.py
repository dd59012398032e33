"""Data sets and where they live."""
from .paths import DataFormatError, DataNotFoundError, data_root, find

__all__ = ["DataFormatError", "DataNotFoundError", "data_root", "find"]
