"""Small helpers over (nested) dicts, with sample-factory 2.x's names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def dict_of_lists_append(d: dict[Any, list], new_data: dict) -> None:
    for key, value in new_data.items():
        d.setdefault(key, []).append(value)


def dict_of_lists_append_idx(d: dict[Any, list], new_data: dict, index: int) -> None:
    for key, value in new_data.items():
        d.setdefault(key, []).append(value[index])


def iterate_recursively(d: dict) -> Iterator[tuple[dict, Any, Any]]:
    """Yields (the dict holding it, key, value) for every leaf of a nested dict."""
    for key, value in d.items():
        if isinstance(value, dict):
            yield from iterate_recursively(value)
        else:
            yield d, key, value


def iterate_recursively_with_prefix(d: dict, prefix: list | None = None) -> Iterator[tuple[dict, list, Any]]:
    """Yields (the dict holding it, path of keys, value) for every leaf."""
    prefix = [] if prefix is None else prefix
    for key, value in d.items():
        if isinstance(value, dict):
            yield from iterate_recursively_with_prefix(value, prefix + [key])
        else:
            yield d, prefix + [key], value


def copy_dict_structure(d: dict) -> dict:
    """The same nesting with every leaf None."""
    return {key: copy_dict_structure(value) if isinstance(value, dict) else None for key, value in d.items()}


def iter_dicts_recursively(d1: dict, d2: dict) -> Iterator[tuple[dict, dict, Any, Any, Any]]:
    """Walks two dicts of the same structure: yields (d1 part, d2 part, key, value1, value2) per leaf."""
    for key, value in d1.items():
        if isinstance(value, dict):
            yield from iter_dicts_recursively(value, d2[key])
        else:
            yield d1, d2, key, value, d2[key]


def list_of_dicts_to_dict_of_lists(list_of_dicts: list[dict]) -> dict[Any, list]:
    result: dict[Any, list] = {}
    for d in list_of_dicts:
        dict_of_lists_append(result, d)
    return result


def get_first_present(d: dict, keys: Iterable, default: Any = None) -> Any:
    for key in keys:
        if key in d:
            return d[key]
    return default
