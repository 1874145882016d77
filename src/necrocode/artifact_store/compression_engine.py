"""The reference API's module name for compression of stored objects, kept so code written against
NecroCode's reference implementation imports unchanged; the code lives in
:mod:`.pipeline.compression`."""

from .pipeline.compression import *  # noqa: F403
from .pipeline.compression import __all__  # noqa: F401 - re-exported
