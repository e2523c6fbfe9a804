"""A dict whose keys are also attributes: the type of every `cfg` in this project."""

from __future__ import annotations


class AttrDict(dict):
    """`cfg.env` and `cfg["env"]` are the same thing; missing attributes raise AttributeError."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getstate__(self):
        return dict(self)

    def __setstate__(self, state):
        self.update(state)
