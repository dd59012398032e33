"""Data sets and where they live."""
from .images import (Augment, ImageData, iterate_batches, load_cifar10, load_digits_data, load_image_data,
                     load_image_folder)
from .paths import DataFormatError, DataNotFoundError, data_root, find

__all__ = ["DataFormatError", "DataNotFoundError", "data_root", "find",
           "Augment", "ImageData", "iterate_batches", "load_cifar10", "load_digits_data", "load_image_data",
           "load_image_folder"]
