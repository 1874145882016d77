"""The reference API's module name for the retention rules, kept so code written against
NecroCode's reference implementation imports unchanged; the code lives in
:mod:`.maintenance.retention`."""

from .maintenance.retention import *  # noqa: F403
from .maintenance.retention import __all__  # noqa: F401 - re-exported
