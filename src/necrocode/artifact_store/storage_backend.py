"""The reference API's module name for the storage backend contract, kept so code written against
NecroCode's reference implementation imports unchanged; the code lives in
:mod:`.backends.base`."""

from .backends.base import *  # noqa: F403
from .backends.base import __all__  # noqa: F401 - re-exported
