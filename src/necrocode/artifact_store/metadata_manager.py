"""The reference API's module name for records and the index together, kept so code written against
NecroCode's reference implementation imports unchanged; the code lives in
:mod:`.index.manager`."""

from .index.manager import *  # noqa: F403
from .index.manager import __all__  # noqa: F401 - re-exported
